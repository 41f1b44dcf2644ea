"""Test support: a real server in a subprocess, and real HTTP and WebSocket clients.

Every JSON body and every frame the server sends through these clients is
validated against the JSON Schemas in schema/ (see tests/schemas.py); a test
fails on the first one that does not match.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from tests import schemas

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "test-admin-token"

# Generous limits so that ordinary tests never meet the rate limiter; the
# rate-limit test starts its own server with the real defaults.
TEST_ENV = {
    "TING_ADMIN_TOKEN": ADMIN_TOKEN,
    "TING_POST_BURST": "100000",
    "TING_POST_RATE": "100000",
    "TING_VOTE_BURST": "100000",
    "TING_VOTE_RATE": "100000",
    "TING_VOTE_INTERVAL": "0.1",
    "TING_PRESENCE_INTERVAL": "0.2",
}


@dataclass
class ServerProcess:
    """A `python -m server serve` on a free port, on its own database file."""

    db_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    output: list[str] = field(default_factory=list)
    _drainer: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.db_path}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        env = os.environ | TEST_ENV | self.env
        env.pop("TING_PUBLIC_URL", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(self.port),
             "--database-url", self.database_url],
            cwd=self.db_path.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline().decode()
            if not line:
                break
            self.output.append(line)
            if line.startswith("Ting listening on"):
                self.port = int(line.rsplit("port ", 1)[1].rstrip(")\n"))
                self._drainer = _drain(self.process)
                return self
        self.stop()
        raise RuntimeError("server did not start:\n" + "".join(self.output))

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._release()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; what was committed must survive."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._release()

    def _release(self) -> None:
        assert self.process is not None
        if self._drainer is not None:
            self._drainer.join(5)
            self._drainer = None
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def restart(self) -> ServerProcess:
        """Start again on the same database and the same port."""
        self.stop()
        return self.start()


def _drain(process: subprocess.Popen[bytes]) -> threading.Thread:
    """Keep reading the server's output so that it never blocks on a full pipe."""

    def run() -> None:
        assert process.stdout is not None
        for _ in iter(process.stdout.readline, b""):
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body

    @property
    def code(self) -> str:
        return str(self.body["error"]["code"])


class Api:
    """HTTP client for one server; validates every JSON body it receives."""

    def __init__(self, server: ServerProcess, client: httpx.AsyncClient) -> None:
        self.server = server
        self.client = client

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        content: bytes | None = None,
        route: str | None = None,
        expect: int | None = None,
    ) -> Any:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        if json is not None:
            content = orjson.dumps(json)
        if content is not None:
            headers["content-type"] = "application/json"
        response = await self.client.request(method, self.server.url + path, headers=headers,
                                             content=content)
        body: Any = response.content
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            schemas.validate_http(method, route or path, response.status_code, body)
        if expect is not None:
            assert response.status_code == expect, (response.status_code, body)
        elif response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body

    async def create_meeting(self, **fields: Any) -> dict[str, Any]:
        body = {"title": "Test meeting", "basis": "The basis.", "phase": "open"} | fields
        return await self.request("POST", "/api/meetings", token=ADMIN_TOKEN, json=body,  # type: ignore[no-any-return]
                                  route="/api/meetings")

    async def join(self, meeting_id: str, **fields: Any) -> dict[str, Any]:
        return await self.request("POST", f"/api/meetings/{meeting_id}/join", json=fields,  # type: ignore[no-any-return]
                                  route="/api/meetings/{id}/join")

    async def command(self, meeting_id: str, token: str, **frame: Any) -> dict[str, Any]:
        return await self.request("POST", f"/api/meetings/{meeting_id}/commands", token=token,  # type: ignore[no-any-return]
                                  json=frame, route="/api/meetings/{id}/commands")

    async def snapshot(self, meeting_id: str, token: str | None = None) -> dict[str, Any]:
        return await self.request("GET", f"/api/meetings/{meeting_id}/snapshot", token=token,  # type: ignore[no-any-return]
                                  route="/api/meetings/{id}/snapshot")

    async def events(self, meeting_id: str, since: int, token: str | None = None,
                     limit: int = 10_000) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "GET", f"/api/meetings/{meeting_id}/events?since={since}&limit={limit}", token=token,
            route="/api/meetings/{id}/events",
        )


_refs = itertools.count(1)


class Socket:
    """A WebSocket client speaking protocol v1; validates every frame it gets.

    Frames are unwrapped from batches, so `frames` is what a client handles,
    in order.
    """

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.frames: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] | None = None
        self._pending: list[dict[str, Any]] = []

    async def send(self, frame: Any) -> None:
        await self.conn.send(frame if isinstance(frame, str | bytes) else orjson.dumps(frame).decode())

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        if not self._pending:
            raw = await asyncio.wait_for(self.conn.recv(), timeout)
            frame = orjson.loads(raw)
            schemas.validate_server_frame(frame)
            self._pending = frame["frames"] if frame["type"] == "batch" else [frame]
        frame = self._pending.pop(0)
        self.frames.append(frame)
        return frame

    async def recv_until(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("no matching frame")
            frame = await self.recv(left)
            if predicate(frame):
                return frame

    async def command(self, type: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """Send a command and wait for its ack or error (other frames are kept)."""
        ref = f"r{next(_refs)}"
        await self.send({"type": type, "ref": ref, **fields})
        return await self.recv_until(
            lambda f: f.get("ref") == ref and f["type"] in ("ack", "error", "pong"), timeout
        )

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "event"]

    async def close(self) -> None:
        await self.conn.close()

    @property
    def close_code(self) -> int | None:
        return self.conn.close_code


@contextlib.asynccontextmanager
async def connect(
    server: ServerProcess,
    meeting_id: str,
    token: str | None,
    since: int | None = None,
    *,
    hello: bool = True,
    **options: Any,
) -> AsyncIterator[Socket]:
    """Open a socket, say hello and read the welcome (unless hello=False)."""
    conn = await websockets.connect(
        f"{server.ws_url}/ws/meetings/{meeting_id}", compression=None, **options
    )
    sock = Socket(conn)
    try:
        if hello:
            await sock.send({"type": "hello", "token": token, "since": since})
            sock.welcome = await sock.recv()
            assert sock.welcome["type"] == "welcome", sock.welcome
        yield sock
    finally:
        await conn.close()


async def tiny_window_socket(server: ServerProcess, meeting_id: str, token: str) -> ClientConnection:
    """A client that has said hello and reads only when told to.

    A tiny receive buffer and a receive queue of one frame make the server
    meet a full connection after a few kilobytes instead of megabytes.
    """
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", server.port))
    conn = await websockets.connect(
        f"{server.ws_url}/ws/meetings/{meeting_id}", sock=raw, compression=None,
        max_queue=1, ping_interval=None, max_size=None,
    )
    await conn.send(f'{{"type": "hello", "token": "{token}", "since": null}}')
    return conn


def client_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Meeting:
    """A meeting with a moderator, a speaker and handy helpers."""

    api: Api
    created: dict[str, Any]
    moderator: dict[str, Any]
    speaker: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.created["id"])

    async def citizen(self, name: str | None = None, in_room: bool = False) -> dict[str, Any]:
        fields: dict[str, Any] = {"in_room": in_room}
        if name is not None:
            fields["name"] = name
        return await self.api.join(self.id, **fields)

    async def post(self, who: dict[str, Any], body: str, parent_id: int | None = None,
                   **extra: Any) -> dict[str, Any]:
        ack = await self.api.command(self.id, who["token"], type="post", ref="p", body=body,
                                     parent_id=parent_id, client_id=client_id(), **extra)
        return ack["result"]["message"]  # type: ignore[no-any-return]

    async def run(self, who: dict[str, Any], type: str, **fields: Any) -> dict[str, Any]:
        return await self.api.command(self.id, who["token"], type=type, ref="c", **fields)

    async def topic(self, title: str = "A topic") -> dict[str, Any]:
        return await self.post(self.moderator, title, kind="topic")


async def new_meeting(api: Api, **fields: Any) -> Meeting:
    created = await api.create_meeting(**fields)
    moderator = await api.join(created["id"], key=created["moderator_key"], name="Moderator")
    speaker = await api.join(created["id"], key=created["speaker_key"], name="Speaker")
    return Meeting(api, created, moderator, speaker)
