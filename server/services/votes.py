"""Vote counts, coalesced: a storm of votes becomes a few events a second.

A vote is committed (and acked) at once, with a personal `votes.updated`
event for the voter. The public counts follow: every `interval` the
coalescer counts the votes of the questions that changed and publishes them
in one `votes.updated` event per meeting. If the server dies between the
two, the counts are reconciled at the next start, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.domain.models import EventKind, Status
from server.store import repository
from server.store.writer import Tx, Writer

log = logging.getLogger("ting.votes")


def publish_counts(tx: Tx, meeting_id: str, counts: dict[int, int]) -> None:
    """Store the counts as published and emit one public votes.updated.

    Counts of messages the public cannot see at all (pending, rejected) are
    marked with their author, so that only staff and that author receive
    them. Hidden, withdrawn and erased messages are seen by everybody as
    placeholders, votes included, so their counts go to everybody: a reader
    who missed them would hold a count that its next snapshot contradicts.
    """
    if not counts:
        return
    restricted: dict[str, str | None] = {}
    changed: dict[str, int] = {}
    for message_id, count in sorted(counts.items()):
        message = repository.update_message(tx.conn, message_id, votes=count)
        changed[str(message_id)] = count
        if message.status in (Status.PENDING, Status.REJECTED):
            restricted[str(message_id)] = message.author_id
    data: dict[str, object] = {"counts": changed}
    if restricted:
        data["restricted"] = restricted
    tx.emit(meeting_id, EventKind.VOTES_UPDATED, data)


class VoteCoalescer:
    def __init__(self, writer: Writer, interval: float) -> None:
        self._writer = writer
        self._interval = interval
        self._dirty: dict[str, set[int]] = {}
        self._task: asyncio.Task[None] | None = None

    def mark(self, meeting_id: str, message_id: int) -> None:
        self._dirty.setdefault(meeting_id, set()).add(message_id)

    async def start(self) -> None:
        await self._writer.run(self._reconcile, heavy=True)
        self._task = asyncio.create_task(self._loop(), name="ting-votes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._dirty:
            await self.flush()

    async def flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        if dirty:
            await self._writer.run(lambda tx: self._publish(tx, dirty))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                log.exception("publishing vote counts failed; retrying")

    @staticmethod
    def _publish(tx: Tx, dirty: dict[str, set[int]]) -> None:
        for meeting_id, message_ids in dirty.items():
            publish_counts(tx, meeting_id, repository.count_votes(tx.conn, message_ids))

    @staticmethod
    def _reconcile(tx: Tx) -> None:
        """Publish counts that votes committed before a crash left behind."""
        for meeting_id, counts in repository.stale_vote_counts(tx.conn).items():
            publish_counts(tx, meeting_id, counts)
