"""One connection's place in the fan-out: a bounded queue of encoded frames.

Fast path: when nothing is queued and the socket can take data, a frame is
written straight to the transport as ready-made WebSocket bytes (the same
bytes for every connection of an audience), with no task switch.
Otherwise frames queue up and the connection's writer task sends them, several
at a time wrapped in one batch frame.

Overflow policy: when more than `budget` bytes wait for a connection, the
client is too slow to be useful live. Its queue is dropped and it is closed
with 4409; it resumes with `since` and catches up from the database.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from server.domain.models import Event
from server.domain.views import Viewer
from server.protocol import CLOSE_TOO_SLOW, batch_frame, ws_text_frame

# A batch frame larger than this is split, so that one frame stays small
# enough for a phone to parse without stalling its page.
MAX_BATCH_BYTES = 256 * 1024


class Sink(Protocol):
    """Direct access to a socket's transport (see endpoints/wsprotocol.py)."""

    def ting_ready(self) -> bool: ...

    def ting_write(self, data: bytes) -> None: ...

    async def ting_wait_writable(self) -> None: ...


class Subscriber:
    def __init__(
        self,
        meeting_id: str,
        viewer: Viewer,
        *,
        budget: int,
        in_room: bool = False,
        sink: Sink | None = None,
    ) -> None:
        self.meeting_id = meeting_id
        self.viewer = viewer
        self.in_room = in_room
        self.budget = budget
        self.sink = sink
        # Highest seq this connection has been brought up to (seen or skipped).
        self.last_seq = 0
        # While syncing (replay or snapshot being read), live events wait here.
        self.syncing = True
        self.held: list[Event] = []
        self._frames: deque[bytes] = deque()
        self._queued = 0
        # True while the writer task holds frames it has taken but not written:
        # the fast path must wait, or frames would overtake each other.
        self._busy = False
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def participant_id(self) -> str | None:
        return self.viewer.participant_id

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def push(self, payload: bytes, wire: bytes | None = None) -> None:
        """Send `payload` (a JSON frame); `wire` is it framed, when already built."""
        if self.close_code is not None:
            return
        sink = self.sink
        if sink is not None and not self._frames and not self._busy and sink.ting_ready():
            sink.ting_write(wire if wire is not None else ws_text_frame(payload))
            return
        self._frames.append(payload)
        self._queued += len(payload)
        if self._queued > self.budget:
            self.close(CLOSE_TOO_SLOW, "too slow: resume with since")
            return
        self._wake.set()

    def close(self, code: int, reason: str = "") -> None:
        """Ask the connection to close; the frames still queued are dropped."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self._frames.clear()
            self._queued = 0
            self._closed.set()
        self._wake.set()

    async def wait_closed(self) -> None:
        """Until `close()`: also while the writer is stuck on a peer that stopped reading."""
        await self._closed.wait()

    async def next_frame(self) -> bytes | None:
        """The next payload to send (several wrapped in a batch), None to close.

        The caller must call `sent()` once it has written it.
        """
        while not self._frames and self.close_code is None:
            self._wake.clear()
            await self._wake.wait()
        if self.close_code is not None:
            return None
        self._busy = True
        if len(self._frames) == 1:
            frame = self._frames.popleft()
            self._queued -= len(frame)
            return frame
        frames: list[bytes] = []
        size = 0
        while self._frames and (not frames or size + len(self._frames[0]) <= MAX_BATCH_BYTES):
            frame = self._frames.popleft()
            size += len(frame)
            frames.append(frame)
        self._queued -= size
        return frames[0] if len(frames) == 1 else batch_frame(frames)

    def sent(self) -> None:
        self._busy = False
