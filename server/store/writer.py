"""Group commit: one task owns the write connection and commits in batches.

A command becomes a job: an async function of a `Tx` that reads, checks,
writes and records the events it causes. The writer runs every job waiting
in its queue (up to `batch_size`) inside one transaction, each job in its own
savepoint so that a refused command changes nothing, numbers the events,
commits once, and only then resolves the callers and publishes the events.
An ack therefore always follows a durable commit (Guarantee 1), and events
are published in seq order after their commit (Guarantee 2).

Why: one SQLite commit with synchronous=FULL costs an fsync; batching many
commands into one commit is what lets thousands of posts a second through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.domain.errors import DomainError
from server.domain.models import Event, EventKind, Meeting
from server.store import repository
from server.store.database import now_iso

log = logging.getLogger("ting.writer")

T = TypeVar("T")


@dataclass
class _PendingEvent:
    meeting_id: str
    kind: EventKind
    data: dict[str, Any]
    message_id: int | None
    recipient: str | None


@dataclass
class Tx:
    """What a job sees: the connection, the time, and where events go.

    Meetings are read at most once per batch (every command needs its
    meeting's phase and settings); a job that changes a meeting goes through
    `update_meeting`, which drops the cached copy for the jobs after it.
    """

    conn: AsyncConnection
    now: str
    pending: list[_PendingEvent] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    meetings: dict[str, Meeting | None] = field(default_factory=dict)

    async def meeting(self, meeting_id: str) -> Meeting | None:
        if meeting_id not in self.meetings:
            self.meetings[meeting_id] = await repository.load_meeting(self.conn, meeting_id)
        return self.meetings[meeting_id]

    async def update_meeting(self, meeting_id: str, **values: Any) -> None:
        self.meetings.pop(meeting_id, None)
        await repository.update_meeting(self.conn, meeting_id, self.now, **values)

    def emit(
        self,
        meeting_id: str,
        kind: EventKind,
        data: dict[str, Any],
        *,
        message_id: int | None = None,
        recipient: str | None = None,
    ) -> None:
        self.pending.append(_PendingEvent(meeting_id, kind, data, message_id, recipient))


Job = Callable[[Tx], Awaitable[T]]


@dataclass
class _Queued(Generic[T]):
    job: Job[T]
    future: asyncio.Future[T]
    maintenance: bool = False


class Writer:
    """The single writer; `run(job)` returns the job's result after commit."""

    def __init__(
        self,
        engine: AsyncEngine,
        publish: Callable[[list[Event]], None],
        *,
        batch_size: int = 64,
    ) -> None:
        self._engine = engine
        self._publish = publish
        self._batch_size = batch_size
        self._queue: asyncio.Queue[_Queued[Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.jobs = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ting-writer")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def run(self, job: Job[T]) -> T:
        if self._task is None or self._task.done():
            raise RuntimeError("the writer is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Queued(job, future))
        return await future

    async def maintain(self, job: Callable[[AsyncConnection], Awaitable[None]]) -> None:
        """Run `job` on the write connection outside any transaction (VACUUM)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def wrapped(tx: Tx) -> None:
            await job(tx.conn)

        self._queue.put_nowait(_Queued(wrapped, future, maintenance=True))
        await future

    async def _loop(self) -> None:
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(ting_writer=True)
            carry: _Queued[Any] | None = None
            while True:
                first = carry or await self._queue.get()
                carry = None
                if first.maintenance:
                    await self._maintain(first)
                    continue
                batch = [first]
                while len(batch) < self._batch_size and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item.maintenance:
                        carry = item
                        break
                    batch.append(item)
                await self._commit_batch(conn, batch)

    async def _maintain(self, item: _Queued[Any]) -> None:
        try:
            async with self._engine.connect() as raw:
                conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
                await item.job(Tx(conn, now_iso()))
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
        else:
            if not item.future.done():
                item.future.set_result(None)

    async def _commit_batch(self, conn: AsyncConnection, batch: list[_Queued[Any]]) -> None:
        now = now_iso()
        outcomes: list[tuple[_Queued[Any], Any, BaseException | None]] = []
        pending: list[_PendingEvent] = []
        hooks: list[Callable[[], None]] = []
        published: list[Event] = []
        try:
            async with conn.begin():
                for item in batch:
                    tx = Tx(conn, now)
                    try:
                        async with conn.begin_nested():
                            result = await item.job(tx)
                    except DomainError as exc:
                        outcomes.append((item, None, exc))
                    except Exception as exc:
                        log.exception("command failed")
                        outcomes.append((item, None, exc))
                    else:
                        outcomes.append((item, result, None))
                        pending.extend(tx.pending)
                        hooks.extend(tx.after_commit)
                published = await _number_and_store(conn, pending, now)
        except Exception as exc:
            log.exception("commit failed")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        self.commits += 1
        self.jobs += len(batch)
        if published:
            self._publish(published)
        for hook in hooks:
            hook()
        for item, result, error in outcomes:
            if item.future.done():
                continue  # the caller went away; the work is done all the same
            if error is not None:
                item.future.set_exception(error)
            else:
                item.future.set_result(result)


async def _number_and_store(
    conn: AsyncConnection, pending: list[_PendingEvent], now: str
) -> list[Event]:
    """Give each event the next seq of its meeting and store them all."""
    if not pending:
        return []
    per_meeting: dict[str, int] = {}
    for p in pending:
        per_meeting[p.meeting_id] = per_meeting.get(p.meeting_id, 0) + 1
    next_seq: dict[str, int] = {}
    for meeting_id, count in per_meeting.items():
        last = await repository.next_seqs(conn, meeting_id, count)
        next_seq[meeting_id] = last - count + 1
    numbered: list[Event] = []
    for p in pending:
        seq = next_seq[p.meeting_id]
        next_seq[p.meeting_id] = seq + 1
        numbered.append(Event(p.meeting_id, seq, p.kind, p.data, p.message_id, p.recipient))
    await repository.insert_events(conn, numbered, now)
    return numbered
