"""One connection's place in the fan-out: a bounded queue of encoded frames.

Overflow policy: when more than `budget` bytes wait for a connection, the
client is too slow to be useful live. Its queue is dropped and it is closed
with 4409; it resumes with `since` and catches up from the database.
"""

from __future__ import annotations

import asyncio
from collections import deque

from server.domain.models import Event
from server.domain.views import Viewer
from server.protocol import CLOSE_TOO_SLOW, batch_frame

# A batch frame larger than this is split, so that one frame stays small
# enough for a phone to parse without stalling its page.
MAX_BATCH_BYTES = 256 * 1024


class Subscriber:
    def __init__(
        self,
        meeting_id: str,
        viewer: Viewer,
        *,
        budget: int,
        in_room: bool = False,
    ) -> None:
        self.meeting_id = meeting_id
        self.viewer = viewer
        self.in_room = in_room
        self.budget = budget
        # Highest seq this connection has been brought up to (seen or skipped).
        self.last_seq = 0
        # While syncing (replay or snapshot being read), live events wait here.
        self.syncing = True
        self.held: list[Event] = []
        self._frames: deque[bytes] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def participant_id(self) -> str | None:
        return self.viewer.participant_id

    @property
    def queued_bytes(self) -> int:
        return self._queued

    def push(self, frame: bytes) -> None:
        if self.close_code is not None:
            return
        self._frames.append(frame)
        self._queued += len(frame)
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
        self._wake.set()

    async def next_frame(self) -> bytes | None:
        """The next frame to send (several wrapped in a batch), None to close."""
        while not self._frames and self.close_code is None:
            self._wake.clear()
            await self._wake.wait()
        if self.close_code is not None:
            return None
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
        if len(frames) == 1:
            return frames[0]
        return batch_frame(frames)
