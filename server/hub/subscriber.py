"""One connection's place in the fan-out: a bounded queue of encoded frames.

Fast path: when nothing is queued and the socket can take data, a frame is
written straight to the transport as ready-made WebSocket bytes (the same
bytes for every connection of an audience), with no task switch.
Otherwise frames queue up and a writer task, which exists only while they
do, sends them several at a time wrapped in one batch frame.

An idle connection holds no queue and no task: with thousands of them in
one process, each empty deque (~760 bytes) and each parked task counts.

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
from server.protocol import CLOSE_TOO_SLOW, rebatch, ws_text_frame

# A batch frame larger than this is split, so that one frame stays small
# enough for a phone to parse without stalling its page.
MAX_BATCH_BYTES = 256 * 1024


class Sink(Protocol):
    """Direct access to a socket's transport (see endpoints/wsprotocol.py)."""

    def ting_write(self, data: bytes) -> bool:
        """Write `data` if it goes out without waiting (open, not paused); else False."""
        ...

    async def ting_wait_writable(self) -> bool:
        """Until a write goes out without waiting (True) or the connection closes (False)."""
        ...

    def ting_close(self, code: int, reason: str) -> None:
        """Close the connection with `code`; its reader sees the disconnect."""
        ...


class Subscriber:
    __slots__ = (
        "_frames",
        "_queued",
        "_writer",
        "budget",
        "close_code",
        "held",
        "in_room",
        "last_seq",
        "meeting_id",
        "sink",
        "staff",
        "syncing",
        "viewer",
    )

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
        # Looked up per event for every connection (the hub's fan-out loop).
        self.staff = viewer.is_staff
        self.in_room = in_room
        self.budget = budget
        # Without a sink (no socket to write to) frames stay queued, up to the budget.
        self.sink = sink
        # Highest seq this connection has been brought up to (seen or skipped).
        self.last_seq = 0
        # While syncing (replay or snapshot being read), live events wait here.
        self.syncing = True
        self.held: list[Event] = []
        # Frames waiting for the socket; None while nothing waits.
        self._frames: deque[bytes] | None = None
        self._queued = 0
        self._writer: asyncio.Task[None] | None = None
        self.close_code: int | None = None

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
        if self._frames is None:
            if sink is not None and sink.ting_write(
                wire if wire is not None else ws_text_frame(payload)
            ):
                return
            self._frames = deque()
        self._frames.append(payload)
        self._queued += len(payload)
        if self._queued > self.budget:
            self.close(CLOSE_TOO_SLOW, "too slow: resume with since")
            return
        if sink is not None and self._writer is None:
            self._writer = asyncio.create_task(self._write(sink))

    def close(self, code: int, reason: str = "") -> None:
        """Close the connection; the frames still queued are dropped."""
        if self.close_code is not None:
            return
        self.close_code = code
        self._frames = None
        self._queued = 0
        if self._writer is not None:
            self._writer.cancel()
        if self.sink is not None:
            self.sink.ting_close(code, reason)

    async def _write(self, sink: Sink) -> None:
        """Sends what queued while the socket could not take it at once."""
        try:
            while self._frames:
                if not await sink.ting_wait_writable():
                    # The connection is closing: what waits can no longer be delivered.
                    self._frames = None
                    self._queued = 0
                    return
                # Writable now (nothing ran since the check), so this write
                # goes out. Taken and written in one step: a frame pushed
                # meanwhile queues behind these.
                sink.ting_write(ws_text_frame(self._take(self._frames)))
        finally:
            self._writer = None

    def _take(self, frames: deque[bytes]) -> bytes:
        """The next payload to send: one frame, or several wrapped in a batch."""
        taken: list[bytes] = []
        size = 0
        while frames and (not taken or size + len(frames[0]) <= MAX_BATCH_BYTES):
            frame = frames.popleft()
            size += len(frame)
            taken.append(frame)
        self._queued -= size
        if not frames:
            self._frames = None
        return taken[0] if len(taken) == 1 else rebatch(taken)
