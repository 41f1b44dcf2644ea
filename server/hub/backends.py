"""Fan-out backends, chosen by URL scheme. Only news travels here.

The database event log is the truth; a backend only tells the processes that
serve a meeting that new events were committed. Losing a message here delays
delivery; a client that resumes reads the database (Guarantee 7).

`memory://` serves one process. Backends for several processes (Redis,
PostgreSQL LISTEN/NOTIFY) implement the same small contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from server.domain.models import Event

Deliver = Callable[[list[Event]], None]


class Backend(Protocol):
    async def start(self, deliver: Deliver) -> None: ...

    def publish(self, events: list[Event]) -> None: ...

    async def stop(self) -> None: ...


class MemoryBackend:
    """One process: publishing is delivering."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def publish(self, events: list[Event]) -> None:
        if self._deliver is not None:
            self._deliver(events)

    async def stop(self) -> None:
        self._deliver = None


def backend_for(url: str) -> Backend:
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return MemoryBackend()
    raise ValueError(f"no fan-out backend for {url!r}")
