"""HTTP API: parse the request, call a service, encode the answer. Nothing else."""

from __future__ import annotations

import io
from typing import Any

import orjson
import segno
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.domain.errors import HTTP_STATUS, DomainError, ErrorCode, invalid
from server.domain.models import STAFF, Phase
from server.protocol import (
    Ping,
    ack_frame,
    error_frame,
    parse_command,
    parse_json,
    parse_ref,
    pong_frame,
)
from server.services import commands, erasure, export, meetings
from server.services.context import Services, authenticate, unauthorized


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: DomainError, extra: dict[str, Any] | None = None) -> JSONResponse:
    body = {"error": {"code": error.code.value, "message": error.message}} | (extra or {})
    return JSONResponse(body, status_code=HTTP_STATUS[error.code])


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("use Authorization: Bearer <token>")
    return token.strip()


async def read_json(request: Request) -> Any:
    limit = services_of(request).settings.http_max_body
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise DomainError(ErrorCode.TOO_LARGE, f"the body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise DomainError(ErrorCode.TOO_LARGE, f"the body is larger than {limit} bytes")
    if not body:
        raise invalid("a JSON body is required")
    return parse_json(bytes(body))


async def create_meeting(request: Request) -> Response:
    services = services_of(request)
    if not services.is_admin(bearer(request)):
        raise unauthorized("creating a meeting needs the admin token")
    return JSONResponse(await meetings.create_meeting(services, await read_json(request)), 201)


async def get_meeting(request: Request) -> Response:
    services = services_of(request)
    meeting_id = request.path_params["meeting_id"]
    actor = await meetings.actor_for(services, meeting_id, bearer(request))
    meeting = await meetings.load_visible_meeting(services, meeting_id, actor)
    return JSONResponse(meeting.to_json())


async def patch_meeting(request: Request) -> Response:
    services = services_of(request)
    actor = await authenticate(services, request.path_params["meeting_id"], bearer(request))
    return JSONResponse(await meetings.update_meeting(services, actor, await read_json(request)))


async def meeting_by_code(request: Request) -> Response:
    return JSONResponse(
        await meetings.meeting_for_code(services_of(request), request.path_params["code"])
    )


async def join(request: Request) -> Response:
    services = services_of(request)
    result = await meetings.join(
        services, request.path_params["meeting_id"], await read_json(request)
    )
    return JSONResponse(result, 201)


async def snapshot(request: Request) -> Response:
    services = services_of(request)
    meeting_id = request.path_params["meeting_id"]
    actor = await meetings.actor_for(services, meeting_id, bearer(request))
    return JSONResponse(await meetings.snapshot(services, meeting_id, actor))


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise invalid(f"the query parameter {name} is required")
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise invalid(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


async def events(request: Request) -> Response:
    services = services_of(request)
    meeting_id = request.path_params["meeting_id"]
    actor = await meetings.actor_for(services, meeting_id, bearer(request))
    since = _int_param(request, "since", None, 0, 2**53)
    limit = _int_param(request, "limit", 1000, 1, services.settings.replay_limit)
    return JSONResponse(await meetings.events_since(services, meeting_id, actor, since, limit))


async def command(request: Request) -> Response:
    """The same command frames as the WebSocket, through the same dispatcher."""
    services = services_of(request)
    try:
        actor = await authenticate(services, request.path_params["meeting_id"], bearer(request))
    except DomainError as exc:
        # Every reply of this route is a command reply, a refused token too.
        services.metrics.errors.labels(exc.code.value).inc()
        return error_response(exc, error_frame(None, exc))
    ref = None
    try:
        obj = await read_json(request)
        ref = parse_ref(obj)
        cmd = parse_command(obj)
        if isinstance(cmd, Ping):
            return JSONResponse(pong_frame(cmd.ref))
        result = await commands.dispatch(services, actor, cmd, "http")
    except DomainError as exc:
        return error_response(exc, error_frame(ref, exc))
    return JSONResponse(ack_frame(cmd.ref, result))


async def export_minutes(request: Request) -> Response:
    services = services_of(request)
    meeting_id = request.path_params["meeting_id"]
    actor = await meetings.actor_for(services, meeting_id, bearer(request))
    meeting = await meetings.load_visible_meeting(services, meeting_id, actor)
    staff = actor is not None and actor.role in STAFF
    if not staff and meeting.phase not in (Phase.CLOSED, Phase.ARCHIVED):
        raise DomainError(ErrorCode.FORBIDDEN, "the minutes are public once the meeting is closed")
    fmt = request.query_params.get("format", "md")
    if fmt not in export.FORMATS:
        raise invalid(f"format must be one of {', '.join(export.FORMATS)}")
    content, media_type = await export.minutes(services, meeting_id, fmt)
    filename = f"{meeting_id}-minutes.{fmt}"
    return Response(
        content,
        media_type=media_type,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


async def erase_participant(request: Request) -> Response:
    services = services_of(request)
    if not services.is_admin(bearer(request)):
        raise unauthorized("erasing personal data needs the admin token")
    result = await erasure.erase(
        services, request.path_params["meeting_id"], request.path_params["participant_id"]
    )
    return JSONResponse(result)


async def qr_svg(request: Request) -> Response:
    services = services_of(request)
    meeting = await meetings.load_visible_meeting(services, request.path_params["meeting_id"], None)
    qr = segno.make(meetings.join_url(services, meeting), error="m")
    # A standalone SVG document: it needs its namespace to render in an <img>.
    out = io.BytesIO()
    qr.save(
        out,
        kind="svg",
        scale=8,
        border=2,
        dark="#000",
        light="#fff",
        xmldecl=False,
        svgns=True,
        omitsize=True,
    )
    return Response(
        out.getvalue(), media_type="image/svg+xml", headers={"cache-control": "max-age=300"}
    )


async def healthz(request: Request) -> Response:
    return JSONResponse(
        {"status": "ok", "connections": services_of(request).hub.total_connections()}
    )


async def metrics(request: Request) -> Response:
    services = services_of(request)
    services.metrics.connections.set(services.hub.total_connections())
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    services_of(request).metrics.errors.labels(exc.code.value).inc()
    return error_response(exc)


M = "/api/meetings/{meeting_id}"
routes = [
    Route("/api/meetings", create_meeting, methods=["POST"]),
    Route("/api/meetings/by-code/{code}", meeting_by_code, methods=["GET"]),
    Route(M, get_meeting, methods=["GET"]),
    Route(M, patch_meeting, methods=["PATCH"]),
    Route(M + "/join", join, methods=["POST"]),
    Route(M + "/snapshot", snapshot, methods=["GET"]),
    Route(M + "/events", events, methods=["GET"]),
    Route(M + "/commands", command, methods=["POST"]),
    Route(M + "/export", export_minutes, methods=["GET"]),
    Route(M + "/participants/{participant_id}", erase_participant, methods=["DELETE"]),
    Route(M + "/qr.svg", qr_svg, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
