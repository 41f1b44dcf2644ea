"""A small HTTP/1.1 client on asyncio streams, with keep-alive.

The load generator joins thousands of participants before a run; a client this
small costs the generator little and keeps the bench free of extra packages.
It speaks only what Ting's JSON API needs: a body with Content-Length.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

# Longest response head accepted; Ting's are a few hundred bytes.
MAX_HEAD = 64 * 1024


class HttpError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


class HttpClient:
    """One keep-alive connection; requests on it run one at a time."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, bytes]:
        """(status, body bytes). Retries once on a connection the server closed."""
        payload = b"" if body is None else orjson.dumps(body)
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if token:
            head.append(f"Authorization: Bearer {token}")
        if body is not None:
            head.append("Content-Type: application/json")
        head.append(f"Content-Length: {len(payload)}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        async with self._lock:
            for attempt in (1, 2):
                try:
                    return await asyncio.wait_for(self._exchange(raw), self.timeout)
                except (ConnectionError, asyncio.IncompleteReadError):
                    await self._drop()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    async def json(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        status, data = await self.request(method, path, body, token)
        if status >= 400:
            raise HttpError(status, data)
        return orjson.loads(data)

    async def _exchange(self, raw: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(raw)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            raise ConnectionError("response head too long")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
            elif name == "transfer-encoding":
                raise ConnectionError("chunked responses are not supported")
        data = await self._reader.readexactly(length) if length else b""
        if close:
            await self._drop()
        return status, data

    async def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


class HttpPool:
    """A few keep-alive connections used round-robin, for concurrent requests."""

    def __init__(self, host: str, port: int, size: int = 8, timeout: float = 30.0) -> None:
        self._clients = [HttpClient(host, port, timeout) for _ in range(max(1, size))]
        self._next = 0

    def client(self) -> HttpClient:
        self._next = (self._next + 1) % len(self._clients)
        return self._clients[self._next]

    async def json(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        return await self.client().json(method, path, body, token)

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
