"""The live socket `/ws/meetings/{id}`: hello, then a reader.

The reader (uvicorn's task for the socket) parses commands and hands them to
the shared dispatcher. Frames go out through the hub's Subscriber, straight
to the transport or, while it is paused, from a writer task that lives only
as long as frames wait. When the hub closes the connection (4409, 4401,
1001), the reader's next receive is the disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.datastructures import Headers
from starlette.routing import Match, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from server.domain.errors import DomainError, ErrorCode
from server.domain.models import Actor
from server.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_HELLO_TIMEOUT,
    CLOSE_MALFORMED_HELLO,
    Command,
    Ping,
    ack_frame,
    error_frame,
    parse_command,
    parse_hello,
    parse_json,
    parse_ref,
    pong_frame,
)
from server.services import commands
from server.services.context import Services
from server.services.sessions import Session, SessionRefused, open_session

log = logging.getLogger("ting.ws")

# A close goes out at once (wsprotocol.ting_close); this bounds the wait
# for one sent to a socket that is already on its way out.
CLOSE_TIMEOUT = 5.0


def origin_allowed(services: Services, websocket: WebSocket) -> bool:
    """Browsers always send Origin; other clients need not. Allow our own."""
    # Read from the scope, not `websocket.headers`, which would keep a copy
    # for as long as the socket is open.
    headers = Headers(scope=websocket.scope)
    origin = headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    own = urlsplit(services.settings.public_url)
    allowed = {f"{own.scheme}://{own.netloc}", *services.settings.allowed_origins}
    host = headers.get("host")
    if host:
        scheme = "https" if websocket.scope.get("scheme") == "wss" else "http"
        allowed.add(f"{scheme}://{host}")
    return origin in allowed


async def _receive_text(websocket: WebSocket) -> str | bytes | None:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


async def meeting_socket(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    sink = websocket.scope["extensions"].get("ting.sink")
    if sink is None:
        # Frames go to the transport directly, which needs the server's own
        # protocol (`python -m server serve` sets it up).
        raise RuntimeError("Ting's sockets need server.endpoints.wsprotocol.TingWebSocketProtocol")
    if not origin_allowed(services, websocket):
        # Refused in the handshake (HTTP 403): a page of another site must
        # not ride on a visitor's session (the CORS middleware covers HTTP only).
        await websocket.close(CLOSE_FORBIDDEN)
        return
    meeting_id = websocket.path_params["meeting_id"]
    await websocket.accept()
    # Not read again; kept, they would cost a few KB for each open socket.
    websocket.scope["headers"] = []
    try:
        raw = await asyncio.wait_for(_receive_text(websocket), services.settings.hello_timeout)
    except TimeoutError:
        await _close(websocket, services, CLOSE_HELLO_TIMEOUT, "no hello in time")
        return
    if raw is None:
        return
    try:
        hello = parse_hello(parse_json(raw))
    except DomainError as exc:
        await _close(websocket, services, CLOSE_MALFORMED_HELLO, exc.message[:120])
        return
    try:
        session = await open_session(services, meeting_id, hello, sink)
    except SessionRefused as exc:
        await _close(websocket, services, exc.code, exc.reason[:120])
        return
    services.metrics.connections.inc()
    try:
        await _read(websocket, services, session, sink)
    finally:
        services.metrics.connections.dec()
        services.hub.unsubscribe(session.subscriber)
    if session.subscriber.close_code is not None:
        # The hub closed it (4409, 4401, 1001); the socket is closing already.
        services.metrics.closes.labels(str(session.subscriber.close_code)).inc()


async def _read(websocket: WebSocket, services: Services, session: Session, sink: Any) -> None:
    """Handles commands until the peer leaves or the hub closes the connection.

    Each message is handled in the callback that read it (`ting_receive_with`
    of endpoints/wsprotocol.py), with no task switch per command; this task
    only waits for the disconnect. Commands go to the writer and are
    answered when they commit, so reading never waits on a slow commit and
    pongs and closes are never stuck behind one.
    """
    sub = session.subscriber
    actor = session.actor
    runner = _CommandRunner(services, session, sink)

    def handle(raw: str | bytes) -> None:
        if sub.close_code is not None:
            return
        ref = None
        try:
            obj = parse_json(raw)
            ref = parse_ref(obj)
            cmd = parse_command(obj)
            if isinstance(cmd, Ping):
                sub.push(orjson.dumps(pong_frame(cmd.ref)))
                return
            if actor is None:
                raise DomainError(ErrorCode.FORBIDDEN, "a viewer without a token only reads")
            runner.submit(actor, cmd)
        except DomainError as exc:
            sub.push(orjson.dumps(error_frame(ref, exc)))
        except Exception:
            # A bug: this message goes unanswered, the connection reads on.
            log.exception("a message could not be handled")

    sink.ting_receive_with(handle)
    try:
        while True:
            # Only what the protocol does not hand to `handle` comes here.
            raw = await _receive_text(websocket)
            if raw is None or sub.close_code is not None:
                return
            handle(raw)
    finally:
        runner.cancel()


# Commands of one connection not answered yet. A phone has a few in flight
# (its offline outbox replays them at once after a drop); a client with
# hundreds unacknowledged is flooding, and gets rate_limited.
MAX_PENDING_COMMANDS = 256


class _CommandRunner:
    """Hands one connection's commands to the writer in the order they came
    (which is the order they commit in) and answers each from its future's
    callback: no task per command, which at thousands of commands a second
    is a good part of what the event loop does for one."""

    __slots__ = ("_closed", "_pending", "_services", "_sink", "_sub")

    def __init__(self, services: Services, session: Session, sink: Any) -> None:
        self._services = services
        self._sub = session.subscriber
        # Told when answers are due, so that events and acks leave together.
        self._sink = sink
        self._pending = 0
        self._closed = False

    def submit(self, actor: Actor, cmd: Command) -> None:
        if self._pending >= MAX_PENDING_COMMANDS:
            raise DomainError(ErrorCode.RATE_LIMITED, "too many commands waiting; wait for acks")
        try:
            commands.start(
                self._services,
                actor,
                cmd,
                "ws",
                lambda result, error: self._answer(cmd, result, error),
            )
        except DomainError:
            raise
        except Exception:
            # The writer is not running (the server is stopping): unanswered,
            # the client retries it elsewhere or later.
            log.exception("command %s failed", cmd.type_name)
            return
        self._pending += 1
        self._sink.ting_answers_due = True

    def _answer(
        self, cmd: Command, result: commands.Result | None, error: BaseException | None
    ) -> None:
        self._pending -= 1
        if not self._pending:
            self._sink.ting_answers_due = False
        if self._closed:
            return
        if error is None:
            self._sub.push(orjson.dumps(ack_frame(cmd.ref, result or {})))
        elif isinstance(error, DomainError):
            self._sub.push(orjson.dumps(error_frame(cmd.ref, error)))
        else:
            # A bug or a failing database: this command goes unanswered (the
            # client retries it); the others are answered as they commit.
            log.error("command %s failed", cmd.type_name, exc_info=error)

    def cancel(self) -> None:
        # The peer is gone: what it sent still commits (a retry of it, with
        # the same client_id, gets the same ack), and goes unanswered.
        self._closed = True


async def _close(websocket: WebSocket, services: Services, code: int, reason: str) -> None:
    services.metrics.closes.labels(str(code)).inc()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason), CLOSE_TIMEOUT)


_MEETING_SOCKET = WebSocketRoute("/ws/meetings/{meeting_id}", meeting_socket)


async def socket_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Every WebSocket of the app, dispatched without the HTTP middleware and router.

    Their frames would stay on each socket's stack for as long as it is open.
    A path other than /ws/meetings/{id} is refused in the handshake (HTTP 403),
    as Starlette's router does.
    """
    match, child = _MEETING_SOCKET.matches(scope)
    if match is not Match.FULL:
        await send({"type": "websocket.close", "code": 1000, "reason": ""})
        return
    scope["path_params"] = child["path_params"]
    await meeting_socket(WebSocket(scope, receive, send))
