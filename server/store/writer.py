"""Group commit: one writer runs the queued commands in batches, one commit each.

A command becomes a job: a plain function of a `Tx` that reads, checks,
writes and records the events it causes. The writer takes every job waiting
in its queue (up to `batch_size`), runs them all in one transaction, numbers
the events, commits once, and only then resolves the callers and publishes
the events. An ack therefore always follows a durable commit (Guarantee 1),
and events are published in seq order after their commit (Guarantee 2).

Why batches: one SQLite commit with synchronous=FULL costs an fsync; many
commands to one commit is what lets thousands of posts a second through.

Why synchronous jobs: through SQLAlchemy's async layer and aiosqlite every
statement costs three or four hand-offs between the event loop and the
driver's thread (~0.4 ms each on a busy 2-core machine), and a post needs
several statements. A batch is instead one synchronous function. On SQLite
the writer has its own pysqlite connection; a batch's statements run on the
event loop's thread and only its commit (the fsync) on a thread of its own:
one hand-off per batch (`SQLiteRunner`). Any other database runs the same
function through `AsyncConnection.run_sync` (`AsyncRunner`).

Why no savepoint per job: jobs check before they write, so a refused command
has normally written nothing, and a batch runs without savepoints. A job that
fails after it wrote, or fails in an unexpected way, sends the batch back:
it is rolled back and run again with each job in its own savepoint, so that
the refused command still changes nothing and the others still commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.domain.errors import DomainError
from server.domain.models import Event, EventKind, Meeting
from server.store import repository
from server.store.database import create_writer_engine, note_write, now_iso, writes

log = logging.getLogger("ting.writer")

# Seconds between checkpoints of the SQLite WAL while commits come.
CHECKPOINT_INTERVAL = 0.5

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

    A job runs on the writer's thread: it must not await or touch objects of
    the event loop; what should happen there after the commit goes into
    `after_commit`.

    Meetings are read at most once per batch (every command needs its
    meeting's phase and settings): `meetings` is shared by the jobs of a
    batch. A job that changes a meeting goes through `update_meeting`, which
    drops the cached copy for the jobs after it.
    """

    conn: Connection
    now: str
    meetings: dict[str, Meeting | None] = field(default_factory=dict)
    pending: list[_PendingEvent] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    def meeting(self, meeting_id: str) -> Meeting | None:
        if meeting_id not in self.meetings:
            self.meetings[meeting_id] = repository.load_meeting(self.conn, meeting_id)
        return self.meetings[meeting_id]

    def update_meeting(self, meeting_id: str, **values: Any) -> None:
        self.meetings.pop(meeting_id, None)
        repository.update_meeting(self.conn, meeting_id, self.now, **values)

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


Job = Callable[[Tx], T]


# --- runners: where the synchronous batch function runs ---------------------------


class Runner(Protocol):
    """Runs synchronous functions on the write connection, one at a time."""

    async def open(self) -> None: ...

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """`fn(conn)` on the write connection; `fn` owns the transaction."""
        ...

    async def run_batch(self, jobs: list[Job[Any]], now: str, *, heavy: bool = False) -> _Done:
        """The jobs in one transaction, committed (see `_run_batch`).

        `heavy`: the jobs may take long; they must not hold up the event loop.
        """
        ...

    async def run_outside_transaction(self, fn: Callable[[Connection], None]) -> None:
        """`fn(conn)` on a connection in autocommit mode (VACUUM cannot run in a transaction)."""
        ...

    async def close(self) -> None: ...


class SQLiteRunner:
    """SQLite: a pysqlite connection of the writer's own.

    A batch's statements run on the event loop's thread, as one synchronous
    call: they only touch SQLite's page cache, a few microseconds each, and
    the jobs' Python around them needs the interpreter anyway. Run on another
    thread they would hand the interpreter lock back and forth with the event
    loop at every statement (SQLite releases it for each step), which doubled
    the time of a batch under load. The commit, where the fsync waits on the
    disk, runs on a thread of its own, and the loop goes on meanwhile.
    """

    def __init__(self, url: URL) -> None:
        self._engine = create_writer_engine(url)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ting-writer")
        self._conn: Connection | None = None
        # Checkpoints: beside the commits, on a thread and connection of their own.
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ting-checkpoint")
        self._checkpoint_conn: Any = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._last_checkpoint = 0.0

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def open(self) -> None:
        self._conn = await self._call(self._connect)

    def _connect(self) -> Connection:
        conn = self._engine.connect().execution_options(ting_writer=True)
        # SQLite would checkpoint inside a commit every 1,000 pages of WAL,
        # making that commit (and the acks waiting on it) several times
        # slower; `_checkpoint` does it beside the commits instead.
        conn.connection.dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")  # type: ignore[union-attr]
        return conn

    def _start_checkpoint(self) -> None:
        """A checkpoint on the checkpoint thread, at most one at a time and every so often."""
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_checkpoint < CHECKPOINT_INTERVAL:
            return
        self._last_checkpoint = loop.time()
        self._checkpointing = loop.run_in_executor(self._checkpointer, self._checkpoint)
        self._checkpointing.add_done_callback(_log_failure)

    def _checkpoint(self) -> None:
        """Copies into the database file what the WAL holds that no reader still needs.

        PASSIVE waits for nobody: the writer commits on meanwhile, readers
        keep their snapshots, and what is left is copied next time. Once all
        is copied, SQLite writes the WAL from its start again.
        """
        if self._checkpoint_conn is None:
            self._checkpoint_conn = self._engine.raw_connection()
        self._checkpoint_conn.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def run(self, fn: Callable[[Connection], T]) -> T:
        assert self._conn is not None, "the runner is not open"
        return await self._call(fn, self._conn)

    async def run_batch(self, jobs: list[Job[Any]], now: str, *, heavy: bool = False) -> _Done:
        conn = self._conn
        assert conn is not None, "the runner is not open"
        if heavy:
            # Long jobs (a prune, an erasure) would hold up the loop: all on the thread.
            return await self._call(_run_batch, conn, jobs, now)
        # The write lock is taken on the thread: if another process holds it
        # (a command-line tool on the same file), the thread waits, not the loop.
        transaction = await self._call(conn.begin)
        transaction, done = _run_begun(conn, transaction, jobs, now)
        try:
            await self._call(_commit, conn, transaction)
        except BaseException:
            # Cancelled (the writer stops) while the commit ran: once it has
            # run, nothing may stay open.
            await asyncio.shield(self._call(_end_transaction, conn, transaction))
            raise
        self._start_checkpoint()
        return done

    async def run_outside_transaction(self, fn: Callable[[Connection], None]) -> None:
        if self._checkpointing is not None:
            # A TRUNCATE checkpoint of the job's would not wait for it, only fail.
            with contextlib.suppress(Exception):
                await self._checkpointing
        await self._call(self._autocommit, fn)

    def _autocommit(self, fn: Callable[[Connection], None]) -> None:
        with self._engine.connect() as conn:
            fn(conn.execution_options(isolation_level="AUTOCOMMIT"))

    async def close(self) -> None:
        # Queued behind a commit that may still be running (the loop task was
        # cancelled while it waited): the connection closes after it.
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        if self._checkpoint_conn is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._checkpointer, self._checkpoint_conn.close
            )
            self._checkpoint_conn = None
        self._thread.shutdown(wait=False)
        self._checkpointer.shutdown(wait=False)
        self._engine.dispose()


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("checkpoint failed", exc_info=future.exception())


class AsyncRunner:
    """Other databases: the same functions through `AsyncConnection.run_sync`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def open(self) -> None:
        conn = await self._engine.connect()
        self._conn = await conn.execution_options(ting_writer=True)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        assert self._conn is not None, "the runner is not open"
        return await self._conn.run_sync(fn)

    async def run_batch(self, jobs: list[Job[Any]], now: str, *, heavy: bool = False) -> _Done:
        assert self._conn is not None, "the runner is not open"
        return await self._conn.run_sync(functools.partial(_run_batch, jobs=jobs, now=now))

    async def run_outside_transaction(self, fn: Callable[[Connection], None]) -> None:
        async with self._engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            await conn.run_sync(fn)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def runner_for(engine: AsyncEngine) -> Runner:
    """The runner for the engine's database, chosen by its URL."""
    if engine.dialect.name == "sqlite":
        return SQLiteRunner(engine.url)
    return AsyncRunner(engine)


# --- the writer ---------------------------------------------------------------------


# Told a job's outcome, (result, None) or (None, error), right after its commit.
Done = Callable[[Any, BaseException | None], None]


@dataclass
class _Queued(Generic[T]):
    job: Job[T]
    future: asyncio.Future[T] | None
    heavy: bool = False
    done: Done | None = None


@dataclass
class _Maintenance:
    job: Callable[[Connection], None]
    future: asyncio.Future[None]


Item = _Queued[Any] | _Maintenance


class Writer:
    """The single writer; `run(job)` returns the job's result after commit.

    What the callers of one turn of the event loop hand in goes to the
    writer's queue together, at the end of that turn, so that commands that
    arrive together are committed together. A task of the loop takes the
    batches, one after another, and runs each through the runner.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        publish: Callable[[list[Event]], None],
        *,
        batch_size: int = 64,
        runner: Runner | None = None,
    ) -> None:
        self._runner = runner or runner_for(engine)
        self._publish = publish
        self._batch_size = batch_size
        self._queue: asyncio.Queue[list[Item]] | None = None
        self._incoming: list[Item] = []
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.jobs = 0
        # Batches that a failing job sent back to run again job by job.
        self.reruns = 0

    async def start(self) -> None:
        await self._runner.open()
        await self._runner.run(_count_writes)
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="ting-writer")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._runner.close()

    async def run(self, job: Job[T], *, heavy: bool = False) -> T:
        """`job`'s result once committed. `heavy`: a job that may take long (a
        prune, an erasure): it runs alone, and off the event loop's thread."""
        return await self.submit(job, heavy=heavy)

    def submit(self, job: Job[T], *, heavy: bool = False) -> asyncio.Future[T]:
        """Queue `job`; the future resolves after the commit of its batch."""
        if self._task is None or self._task.done():
            raise RuntimeError("the writer is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._hand_in(_Queued(job, future, heavy))
        return future

    async def maintain(self, job: Callable[[Connection], None]) -> None:
        """Run `job` on the writer's connection outside any transaction (VACUUM)."""
        if self._task is None or self._task.done():
            raise RuntimeError("the writer is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hand_in(_Maintenance(job, future))
        await future

    def hand(self, job: Job[T], done: Done) -> None:
        """Queue `job`; `done` is called with its outcome once its batch has
        committed, after the batch's events are published, in the order the
        jobs were handed in.

        No future and no loop callback per job: a socket's commands are
        answered this way, thousands a second.
        """
        if self._task is None or self._task.done():
            raise RuntimeError("the writer is not running")
        self._hand_in(_Queued(job, None, done=done))

    def _hand_in(self, item: Item) -> None:
        if not self._incoming:
            asyncio.get_running_loop().call_soon(self._hand_over)
        self._incoming.append(item)

    def _hand_over(self) -> None:
        items, self._incoming = self._incoming, []
        assert self._queue is not None
        self._queue.put_nowait(items)

    def _take(self, waiting: list[Item]) -> tuple[Item, list[_Queued[Any]], list[Item]]:
        """From the front of what waits: a maintenance job (alone) or a batch.

        `waiting` is topped up from the queue without waiting; what is not
        taken is returned, to come first next time.
        """
        first = waiting[0]
        if not isinstance(first, _Queued):
            return first, [], waiting[1:]
        if first.heavy:
            return first, [first], waiting[1:]
        batch: list[_Queued[Any]] = []
        i = 0
        while len(batch) < self._batch_size:
            if i == len(waiting):
                assert self._queue is not None
                if self._queue.empty():
                    break
                waiting = waiting[i:] + self._queue.get_nowait()
                i = 0
            item = waiting[i]
            if not isinstance(item, _Queued) or item.heavy:
                break
            batch.append(item)
            i += 1
        return first, batch, waiting[i:]

    async def _loop(self) -> None:
        """Batch after batch, until cancelled."""
        assert self._queue is not None
        waiting: list[Item] = []
        while True:
            if not waiting:
                waiting = await self._queue.get()
            first, batch, waiting = self._take(waiting)
            if isinstance(first, _Maintenance):
                try:
                    await self._runner.run_outside_transaction(first.job)
                except Exception as exc:
                    _resolve(first.future, None, exc)
                else:
                    _resolve(first.future, None, None)
                continue
            try:
                done = await self._runner.run_batch(
                    [item.job for item in batch], now_iso(), heavy=batch[0].heavy
                )
            except Exception as exc:
                log.exception("commit failed")
                for item in batch:
                    _settle(item, None, exc)
            else:
                self._committed(batch, done)

    def _committed(self, batch: list[_Queued[Any]], done: _Done) -> None:
        """The batch is durable; its callers get their results."""
        self.commits += 1
        self.jobs += len(batch)
        self.reruns += done.reruns
        # Callers who wait on a future resume in the next turn of the loop,
        # after all of this; callers who handed in a callback are called at
        # the end of it. Either way their acks are written after the events
        # that go out at once (to their authors, always; to others, unless a
        # burst's window holds them), and both leave together at the end of
        # the turn (endpoints/wsprotocol.py): one write per connection, the
        # events before the ack.
        for item, (result, error) in zip(batch, done.outcomes, strict=True):
            if item.future is not None:
                _settle(item, result, error)
        # What failed here is logged, and the writer and the answers go on:
        # the batch is committed, and events not delivered live reach their
        # readers when they resume from the log.
        if done.events:
            try:
                self._publish(done.events)
            except Exception:
                log.exception("publishing committed events failed")
        for hook in done.hooks:
            try:
                hook()
            except Exception:
                log.exception("an after-commit hook failed")
        for item, (result, error) in zip(batch, done.outcomes, strict=True):
            if item.done is not None:
                _settle(item, result, error)


def _settle(item: _Queued[Any], result: Any, error: BaseException | None) -> None:
    future = item.future
    if future is None:
        assert item.done is not None
        try:
            item.done(result, error)
        except Exception:
            # One caller's failure must not keep the others of the batch unanswered.
            log.exception("a caller failed to take its outcome")
        return
    _resolve(future, result, error)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return  # the caller went away; the work is done all the same
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# --- one batch, on the write connection ------------------------------------------


@dataclass
class _Done:
    """A committed batch: per job (result, error), its events and hooks."""

    outcomes: list[tuple[Any, BaseException | None]]
    events: list[Event]
    hooks: list[Callable[[], None]]
    reruns: int = 0


class _SendBack(Exception):
    """A job failed after it wrote: the batch must run again, job by job."""


def _run_batch(conn: Connection, jobs: list[Job[Any]], now: str) -> _Done:
    """Run the jobs in one transaction and commit; runs on the write connection."""
    transaction, done = _run_begun(conn, conn.begin(), jobs, now)
    _commit(conn, transaction)
    return done


def _run_begun(
    conn: Connection, transaction: Any, jobs: list[Job[Any]], now: str
) -> tuple[Any, _Done]:
    """The jobs in the transaction begun for them, not committed yet.

    The transaction returned is the one to commit: a batch sent back is rolled
    back and run again in a new one. If they fail, nothing stays open.
    """
    try:
        try:
            return transaction, _run_jobs(conn, jobs, now, isolated=False)
        except _SendBack:
            transaction.rollback()
            transaction = conn.begin()
            done = _run_jobs(conn, jobs, now, isolated=True)
            done.reruns = 1
            return transaction, done
    except BaseException:
        _end_transaction(conn, transaction)
        raise


def _commit(conn: Connection, transaction: Any) -> None:
    try:
        transaction.commit()
    except BaseException:
        _end_transaction(conn, transaction)
        raise


def _end_transaction(conn: Connection, transaction: Any) -> None:
    """Nothing stays open of `transaction`, failed, cancelled or committed.

    After a failed commit SQLAlchemy forgets the transaction but the driver
    may still be in it (SQLite does not roll back by itself after every kind
    of failure), and the next batch could never begin.
    """
    current = conn.get_transaction()
    if current is not None and current is transaction:
        current.rollback()
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is not None:
        dbapi_connection.rollback()


def _run_jobs(conn: Connection, jobs: list[Job[Any]], now: str, *, isolated: bool) -> _Done:
    """The jobs in order, then their events numbered and stored.

    `isolated`: each job in a savepoint. Otherwise a job that fails having
    written, or with anything but a DomainError, raises `_SendBack`; the
    caller's transaction then rolls back what every job of the batch wrote.
    """
    meetings: dict[str, Meeting | None] = {}
    outcomes: list[tuple[Any, BaseException | None]] = []
    pending: list[_PendingEvent] = []
    hooks: list[Callable[[], None]] = []
    for job in jobs:
        tx = Tx(conn, now, meetings)
        written = writes(conn)
        try:
            if isolated:
                with conn.begin_nested():
                    result = job(tx)
            else:
                result = job(tx)
        except Exception as exc:
            if isolated:
                if not isinstance(exc, DomainError):
                    log.exception("command failed")
                # The savepoint took back what the job wrote, maybe a
                # meeting it had cached since.
                meetings.clear()
            elif not isinstance(exc, DomainError) or writes(conn) != written:
                raise _SendBack from exc
            outcomes.append((None, exc))
        else:
            outcomes.append((result, None))
            pending.extend(tx.pending)
            hooks.extend(tx.after_commit)
    return _Done(outcomes, _number_and_store(conn, pending, now), hooks)


def _number_and_store(conn: Connection, pending: list[_PendingEvent], now: str) -> list[Event]:
    """Give each event the next seq of its meeting and store them all.

    One UPDATE per meeting reserves its seqs; one executemany stores the rows.
    """
    if not pending:
        return []
    per_meeting: dict[str, int] = {}
    for p in pending:
        per_meeting[p.meeting_id] = per_meeting.get(p.meeting_id, 0) + 1
    next_seq: dict[str, int] = {}
    for meeting_id, count in per_meeting.items():
        last = repository.next_seqs(conn, meeting_id, count)
        next_seq[meeting_id] = last - count + 1
    numbered: list[Event] = []
    for p in pending:
        seq = next_seq[p.meeting_id]
        next_seq[p.meeting_id] = seq + 1
        numbered.append(Event(p.meeting_id, seq, p.kind, p.data, p.message_id, p.recipient))
    repository.insert_events(conn, numbered, now)
    return numbered


def _count_writes(conn: Connection) -> None:
    """From now on, count on `conn` every statement that is not a SELECT."""

    @event.listens_for(conn, "before_cursor_execute")
    def _count(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if statement.lstrip()[:6].upper() != "SELECT":
            note_write(conn)
