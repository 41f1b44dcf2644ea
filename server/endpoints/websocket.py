"""The live socket `/ws/meetings/{id}`: hello, then one reader and one writer.

The reader parses commands and hands them to the shared dispatcher; the
writer drains the connection's bounded queue. When either ends, the other is
cancelled and the socket is closed with the code the session ended on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from urllib.parse import urlsplit

import orjson
from starlette.routing import WebSocketRoute
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
    ws_text_frame,
)
from server.services import commands
from server.services.context import Services
from server.services.sessions import Session, SessionRefused, open_session

log = logging.getLogger("ting.ws")

# Time allowed for the closing handshake with a peer that stopped reading.
CLOSE_TIMEOUT = 5.0


def origin_allowed(services: Services, websocket: WebSocket) -> bool:
    """Browsers always send Origin; other clients need not. Allow our own."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    own = urlsplit(services.settings.public_url)
    allowed = {f"{own.scheme}://{own.netloc}", *services.settings.allowed_origins}
    host = websocket.headers.get("host")
    if host:
        scheme = "https" if websocket.url.scheme == "wss" else "http"
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
    if not origin_allowed(services, websocket):
        # Refused in the handshake (HTTP 403): a page of another site must
        # not ride on a visitor's session (the CORS middleware covers HTTP only).
        await websocket.close(CLOSE_FORBIDDEN)
        return
    await websocket.accept()
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
        sink = websocket.scope.get("extensions", {}).get("ting.sink")
        session = await open_session(services, websocket.path_params["meeting_id"], hello, sink)
    except SessionRefused as exc:
        await _close(websocket, services, exc.code, exc.reason[:120])
        return
    services.metrics.connections.inc()
    try:
        await _serve(websocket, services, session)
    finally:
        services.metrics.connections.dec()
        services.hub.unsubscribe(session.subscriber)


async def _serve(websocket: WebSocket, services: Services, session: Session) -> None:
    sub = session.subscriber
    reader = asyncio.create_task(_read(websocket, services, session))
    writer = asyncio.create_task(_write(websocket, session))
    # The hub's close (4409, 4401, 1001) must end the session even when the
    # writer is blocked on a peer that stopped reading and never drains.
    closed = asyncio.create_task(sub.wait_closed())
    tasks = (reader, writer, closed)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if sub.close_code is not None:
        await _close(websocket, services, sub.close_code, sub.close_reason)


async def _read(websocket: WebSocket, services: Services, session: Session) -> None:
    """Keeps reading while commands run, so that pongs and closes are never stuck
    behind a slow commit (uvicorn stops reading a socket whose app does not)."""
    sub = session.subscriber
    actor = session.actor
    runner = _CommandRunner(services, session)
    try:
        while True:
            raw = await _receive_text(websocket)
            if raw is None:
                return
            ref = None
            try:
                obj = parse_json(raw)
                ref = parse_ref(obj)
                cmd = parse_command(obj)
                if isinstance(cmd, Ping):
                    sub.push(orjson.dumps(pong_frame(cmd.ref)))
                    continue
                if actor is None:
                    raise DomainError(ErrorCode.FORBIDDEN, "a viewer without a token only reads")
                runner.submit(actor, cmd)
            except DomainError as exc:
                sub.push(orjson.dumps(error_frame(ref, exc)))
    finally:
        runner.cancel()


# Commands of one connection waiting for their turn. A phone has a few in
# flight (its offline outbox replays them at once after a drop); a client
# with hundreds unacknowledged is flooding, and gets rate_limited.
MAX_PENDING_COMMANDS = 256


class _CommandRunner:
    """Runs one connection's commands in order, one at a time, in a task of its own
    that exists only while commands wait."""

    def __init__(self, services: Services, session: Session) -> None:
        self._services = services
        self._sub = session.subscriber
        self._waiting: deque[tuple[Actor, Command]] = deque()
        self._task: asyncio.Task[None] | None = None

    def submit(self, actor: Actor, cmd: Command) -> None:
        if len(self._waiting) >= MAX_PENDING_COMMANDS:
            raise DomainError(ErrorCode.RATE_LIMITED, "too many commands waiting; wait for acks")
        self._waiting.append((actor, cmd))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._waiting:
            actor, cmd = self._waiting.popleft()
            try:
                result = await commands.dispatch(self._services, actor, cmd, "ws")
            except DomainError as exc:
                self._sub.push(orjson.dumps(error_frame(cmd.ref, exc)))
            else:
                self._sub.push(orjson.dumps(ack_frame(cmd.ref, result)))

    def cancel(self) -> None:
        # Commands not started are dropped unacked (the client retries them
        # with the same client_id); one already handed to the writer completes.
        self._waiting.clear()
        if self._task is not None:
            self._task.cancel()


async def _write(websocket: WebSocket, session: Session) -> None:
    """Sends what queued up while the socket could not take it at once."""
    sub = session.subscriber
    sink = sub.sink
    while True:
        frame = await sub.next_frame()
        if frame is None:
            return
        if sink is not None:
            await sink.ting_wait_writable()
            if sub.close_code is not None or not sink.ting_ready():
                return
            sink.ting_write(ws_text_frame(frame))
        else:
            await websocket.send({"type": "websocket.send", "text": frame.decode()})
        sub.sent()


async def _close(websocket: WebSocket, services: Services, code: int, reason: str) -> None:
    services.metrics.closes.labels(str(code)).inc()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason), CLOSE_TIMEOUT)


routes = [WebSocketRoute("/ws/meetings/{meeting_id}", meeting_socket)]
