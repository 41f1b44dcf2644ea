"""The group-commit writer, driven directly on a real SQLite file.

Every test runs twice: with the runner SQLite gets (`SQLiteRunner`: a
batch's statements on the loop's thread, its commit on the writer's) and with the one
any other database gets (`AsyncRunner`: the same batch through
`AsyncConnection.run_sync`), so that the second stays working.

A job that refuses before it writes leaves nothing to undo, so batches run
without savepoints; these tests hold the writer to what that must not break:
a command that fails changes nothing, whenever it fails, and the others of
its batch still commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.domain.errors import DomainError, conflict
from server.domain.models import Event, EventKind, Meeting, MeetingSettings, Phase
from server.store import repository
from server.store.database import create_engine, migrate, purge_file_copies
from server.store.writer import CHECKPOINT_INTERVAL, AsyncRunner, Runner, Tx, Writer, runner_for

KEYS = {"moderator": "m", "speaker": "s", "screen": "c"}
BATCH_SIZE = 16


class Harness:
    def __init__(self, path: Path, writer: Writer) -> None:
        self.path = path
        self.writer = writer
        self.published: list[list[Event]] = []
        # Publishes to refuse (raise) before publishing again.
        self.failing_publishes = 0
        # For each publish: the seqs the database held at that moment.
        self.stored_when_published: list[set[tuple[str, int]]] = []

    def stored_meetings(self) -> set[str]:
        with sqlite3.connect(self.path) as db:
            return {row[0] for row in db.execute("SELECT id FROM meetings")}

    def stored_events(self) -> set[tuple[str, int]]:
        with sqlite3.connect(self.path) as db:
            return {(row[0], row[1]) for row in db.execute("SELECT meeting_id, seq FROM events")}

    async def together(self, *jobs: Callable[[Tx], Any]) -> list[Any]:
        """Run the jobs in one batch; results or exceptions, in order."""
        before = self.writer.commits
        outcomes = await asyncio.gather(
            *(self.writer.run(job) for job in jobs), return_exceptions=True
        )
        assert self.writer.commits == before + 1, "the jobs did not share one batch"
        return outcomes


RUNNERS: dict[str, Callable[[AsyncEngine], Runner]] = {
    "thread": runner_for,
    "async": AsyncRunner,
}


@pytest.fixture(params=sorted(RUNNERS))
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    path = tmp_path / "writer.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    make_runner = RUNNERS[request.param]
    h: Harness

    def publish(events: list[Event]) -> None:
        if h.failing_publishes:
            h.failing_publishes -= 1
            raise RuntimeError("the hub failed")
        h.published.append(events)
        h.stored_when_published.append(h.stored_events())

    writer = Writer(engine, publish, batch_size=BATCH_SIZE, runner=make_runner(engine))
    h = Harness(path, writer)
    await writer.start()
    try:
        yield h
    finally:
        await writer.stop()
        await engine.dispose()


def create(meeting_id: str, *, then: Exception | None = None) -> Callable[[Tx], str]:
    """A job that stores a meeting, emits an event, and maybe fails after that."""

    def job(tx: Tx) -> str:
        meeting = Meeting(
            meeting_id,
            "t",
            "",
            Phase.OPEN,
            meeting_id.upper(),
            "da",
            MeetingSettings(),
            None,
            tx.now,
        )
        repository.insert_meeting(tx.conn, meeting, KEYS, tx.now)
        tx.emit(meeting_id, EventKind.MEETING_UPDATED, meeting.to_json())
        if then is not None:
            raise then
        return meeting_id

    return job


def refuse(tx: Tx) -> str:
    """A job that checks first and refuses, having written nothing."""
    if repository.meeting_exists(tx.conn, "a"):
        raise conflict("refused")
    return "not refused"


async def test_a_command_refused_after_writing_changes_nothing_and_the_others_commit(
    harness: Harness,
) -> None:
    outcomes = await harness.together(
        create("a"), create("b", then=conflict("refused late")), create("c")
    )
    assert outcomes[0] == "a" and outcomes[2] == "c"
    assert isinstance(outcomes[1], DomainError)
    assert harness.stored_meetings() == {"a", "c"}
    assert harness.writer.reruns == 1
    published = [(e.meeting_id, e.seq) for batch in harness.published for e in batch]
    assert published == [("a", 1), ("c", 1)]


async def test_a_command_refused_before_writing_does_not_rerun_its_batch(
    harness: Harness,
) -> None:
    outcomes = await harness.together(create("a"), refuse, create("c"))
    assert outcomes[0] == "a" and outcomes[2] == "c"
    assert isinstance(outcomes[1], DomainError)
    assert harness.stored_meetings() == {"a", "c"}
    assert harness.writer.reruns == 0


async def test_an_unexpected_error_fails_only_its_own_command(harness: Harness) -> None:
    # The second insert of "a" breaks the primary key inside the database.
    outcomes = await harness.together(create("a"), create("a"), create("b", then=ValueError()))
    assert outcomes[0] == "a"
    assert not isinstance(outcomes[1], DomainError) and isinstance(outcomes[1], Exception)
    assert isinstance(outcomes[2], ValueError)
    assert harness.stored_meetings() == {"a"}


async def test_events_are_numbered_per_meeting_and_published_after_their_commit(
    harness: Harness,
) -> None:
    await harness.together(create("a"), create("b"))

    def more(tx: Tx) -> None:
        for meeting_id in ("a", "b", "a"):
            tx.emit(meeting_id, EventKind.SPOTLIGHT_CHANGED, {"message_id": None})

    await harness.writer.run(more)
    seqs = [[(e.meeting_id, e.seq) for e in batch] for batch in harness.published]
    assert seqs == [[("a", 1), ("b", 1)], [("a", 2), ("b", 2), ("a", 3)]]
    for batch, stored in zip(harness.published, harness.stored_when_published, strict=True):
        assert {(e.meeting_id, e.seq) for e in batch} <= stored


async def test_maintenance_runs_outside_a_transaction(harness: Harness) -> None:
    await harness.writer.run(create("a"))
    # VACUUM fails inside a transaction.
    await harness.writer.maintain(purge_file_copies)
    assert harness.stored_meetings() == {"a"}

    def broken(conn: Connection) -> None:
        conn.exec_driver_sql("NOT SQL")

    with pytest.raises(Exception, match="syntax error"):
        await harness.writer.maintain(broken)
    assert await harness.writer.run(create("b")) == "b"


@contextlib.asynccontextmanager
async def sqlite_writer(path: Path) -> AsyncIterator[Writer]:
    """A started writer with the runner SQLite gets, and no one to publish to."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    writer = Writer(engine, lambda events: None, runner=runner_for(engine))
    await writer.start()
    try:
        yield writer
    finally:
        await writer.stop()
        await engine.dispose()


def spotlight(meeting_id: str, index: int) -> Callable[[Tx], int]:
    """A job that only emits an event; returns its index."""

    def job(tx: Tx) -> int:
        tx.emit(meeting_id, EventKind.SPOTLIGHT_CHANGED, {"message_id": index})
        return index

    return job


async def test_more_commands_than_a_batch_commit_in_order_over_several_batches(
    harness: Harness,
) -> None:
    await harness.writer.run(create("a"))
    before = harness.writer.commits
    count = 2 * BATCH_SIZE + 10
    results = await asyncio.gather(*(harness.writer.run(spotlight("a", i)) for i in range(count)))
    assert results == list(range(count))
    assert harness.writer.commits == before + 3
    published = [e for batch in harness.published[-3:] for e in batch]
    assert [e.seq for e in published] == list(range(2, count + 2))
    assert [e.data["message_id"] for e in published] == list(range(count))


async def test_commands_sent_while_a_batch_commits_go_together_in_the_next(
    harness: Harness,
) -> None:
    await harness.writer.run(create("a"))
    before = harness.writer.commits

    def slow(tx: Tx) -> str:
        time.sleep(0.3)
        return "slow"

    first = asyncio.ensure_future(harness.writer.run(slow))
    await asyncio.sleep(0.1)
    later = await asyncio.gather(*(harness.writer.run(spotlight("a", i)) for i in range(5)))
    assert await first == "slow"
    assert later == list(range(5))
    assert harness.writer.commits == before + 2


async def test_sqlite_commits_reach_the_database_file_by_checkpoints_beside_them(
    tmp_path: Path,
) -> None:
    # SQLite's own checkpoint (inside a commit, every 1,000 pages) is off for
    # the writer; the runner checkpoints on a thread of its own instead. The
    # database file read without its WAL shows what those checkpoints copied.
    path = tmp_path / "checkpoint.db"
    async with sqlite_writer(path) as writer:
        await writer.run(create("a"))
        await asyncio.gather(*(writer.run(spotlight("a", i)) for i in range(40)))
        await asyncio.sleep(CHECKPOINT_INTERVAL + 0.1)
        # This commit comes after the interval: a checkpoint follows it.
        await asyncio.gather(*(writer.run(spotlight("a", i)) for i in range(40, 80)))
        await asyncio.sleep(0.3)
        with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as db:
            (stored,) = db.execute("SELECT count(*) FROM events WHERE meeting_id = 'a'").fetchone()
        assert stored == 81


async def test_after_a_commit_fails_nothing_of_it_is_stored_and_the_next_batch_commits(
    harness: Harness,
) -> None:
    runner: Any = harness.writer._runner
    engine = runner._engine
    dialect = engine.sync_engine.dialect if isinstance(engine, AsyncEngine) else engine.dialect
    real_commit = dialect.do_commit
    failures = []

    def fail_once(dbapi_connection: Any) -> None:
        if not failures:
            failures.append(1)
            raise sqlite3.OperationalError("disk I/O error")
        real_commit(dbapi_connection)

    dialect.do_commit = fail_once
    try:
        with pytest.raises(Exception, match="disk I/O error"):
            await harness.writer.run(create("a"))
        assert await harness.writer.run(create("b")) == "b"
    finally:
        del dialect.do_commit
    assert harness.stored_meetings() == {"b"}


async def test_a_heavy_job_runs_alone_and_the_event_loop_goes_on_meanwhile(
    tmp_path: Path,
) -> None:
    async with sqlite_writer(tmp_path / "heavy.db") as writer:
        await writer.run(create("a"))
        before = writer.commits

        def long(tx: Tx) -> str:
            time.sleep(0.4)
            tx.emit("a", EventKind.SPOTLIGHT_CHANGED, {"message_id": None})
            return "long"

        heavy = asyncio.ensure_future(writer.run(long, heavy=True))
        others = asyncio.gather(*(writer.run(spotlight("a", i)) for i in range(3)))
        started = time.monotonic()
        await asyncio.sleep(0.05)
        # The loop was not held up by the job (it runs on the writer's thread).
        assert time.monotonic() - started < 0.3
        assert await heavy == "long"
        assert await others == [0, 1, 2]
        assert writer.commits == before + 2  # alone, then the others together


async def _hand_all(harness: Harness, *jobs: Callable[[Tx], Any]) -> list[tuple[Any, Any, int]]:
    """Hand the jobs in together; (result, error, batches published so far) per
    callback, in the order the callbacks came."""
    calls: list[tuple[Any, Any, int]] = []
    answered = asyncio.get_running_loop().create_future()

    def done(result: Any, error: BaseException | None) -> None:
        calls.append((result, error, len(harness.published)))
        if len(calls) == len(jobs) and not answered.done():
            answered.set_result(None)

    for job in jobs:
        harness.writer.hand(job, done)
    await asyncio.wait_for(answered, 10)
    await asyncio.sleep(0.05)  # no callback comes twice
    return calls


async def test_handed_jobs_are_answered_once_in_order_after_their_events_are_published(
    harness: Harness,
) -> None:
    calls = await _hand_all(harness, create("a"), refuse, create("b"))
    assert [(result, type(error)) for result, error, _ in calls] == [
        ("a", type(None)),
        (None, DomainError),
        ("b", type(None)),
    ]
    # Each callback came after its batch's events had gone to the hub.
    assert all(published == len(harness.published) == 1 for _, _, published in calls)
    assert {e.meeting_id for e in harness.published[0]} == {"a", "b"}


async def test_a_failing_publish_still_answers_the_batch_and_the_writer_goes_on(
    harness: Harness,
) -> None:
    harness.failing_publishes = 1
    calls = await _hand_all(harness, create("a"), create("b"))
    assert [(result, error) for result, error, _ in calls] == [("a", None), ("b", None)]
    # Committed all the same (readers catch up from the log); the next batch commits.
    assert harness.stored_meetings() == {"a", "b"}
    assert await harness.writer.run(create("c")) == "c"
    assert [[e.meeting_id for e in batch] for batch in harness.published] == [["c"]]
