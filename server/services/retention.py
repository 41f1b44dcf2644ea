"""Event log retention: keep the last N events of every meeting for replay.

By default (`TING_EVENT_RETENTION=0`) every event is kept. With a limit, a
background pass prunes older events; a client that resumes from before the
kept window gets an explicit snapshot, never a partial replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.store import repository
from server.store.writer import Tx, Writer

log = logging.getLogger("ting.retention")

# Pruning is housekeeping: once every few seconds is plenty, and deleting in
# larger steps keeps it off the hot path of the writer.
PRUNE_INTERVAL = 5.0


class Retention:
    def __init__(self, writer: Writer, keep: int) -> None:
        self._writer = writer
        self._keep = keep
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._keep:
            self._task = asyncio.create_task(self._loop(), name="ting-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def prune(self) -> None:
        await self._writer.run(self._prune, heavy=True)

    def _prune(self, tx: Tx) -> None:
        for meeting in repository.list_meetings(tx.conn):
            repository.prune_events(tx.conn, meeting.id, self._keep)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            try:
                await self.prune()
            except Exception:
                log.exception("pruning the event log failed; retrying")
