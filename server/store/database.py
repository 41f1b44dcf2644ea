"""The engine: connection settings that durability depends on, and migrations.

SQLite runs in WAL mode with `synchronous=FULL`, so that a commit is on disk
before the ack goes out (Guarantee 1), with foreign keys on, a busy timeout,
and `secure_delete` so that erased text is overwritten, not just unlinked.

Readers use the async engine (aiosqlite). On SQLite the writer has an engine
of its own on the same file, synchronous (pysqlite), with the same settings
(see `writer`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import event, select, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from server.store import tables

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, pool_size=8, max_overflow=8)
        _configure_sqlite(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def create_writer_engine(url: str | URL) -> Engine:
    """SQLite only: a synchronous (pysqlite) engine on the same file, for the writer.

    No pool: the writer holds one connection for its whole life and opens a
    second one only for maintenance (VACUUM); a pool would keep that one open
    and hand it back later with the isolation level it was reset to. The
    connection is used by one thread at a time, not always the same one: a
    batch's statements run on the event loop's thread, its commit on the
    writer's (see `writer.SQLiteRunner`).
    """
    sync_url = make_url(url).set(drivername="sqlite+pysqlite")
    engine = sqlalchemy.create_engine(
        sync_url, poolclass=NullPool, connect_args={"check_same_thread": False}
    )
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy own transaction boundaries (the driver's implicit
        # BEGIN would make SELECT-only transactions non-repeatable).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # The writer takes the write lock up front; readers take a snapshot.
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("ting_writer") else "BEGIN")


# Key in the write connection's `info`: statements run that may have changed
# data. A job that ran none (it refused before writing) leaves nothing to undo.
_WRITES = "ting_writes"


def writes(conn: Connection) -> int:
    """Statements run on `conn` that may have changed data (the writer's count)."""
    return int(conn.info.get(_WRITES, 0))


def note_write(conn: Connection) -> None:
    conn.info[_WRITES] = writes(conn) + 1


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def migrate(engine: AsyncEngine) -> None:
    """Create the schema on an empty database, or bring an old one up to date."""
    async with engine.begin() as conn:
        await conn.run_sync(tables.metadata.create_all)
        current = (
            await conn.execute(
                select(tables.schema_version.c.version)
                .order_by(tables.schema_version.c.version.desc())
                .limit(1)
            )
        ).scalar()
        for version in range((current or 0) + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS.get(version, ()):
                await conn.execute(text(statement))
            await conn.execute(
                tables.schema_version.insert().values(version=version, applied_at=now_iso())
            )


# version -> SQL run to reach it from the one before (version 1 is create_all).
MIGRATIONS: dict[int, tuple[str, ...]] = {}


def purge_file_copies(conn: Connection) -> None:
    """Push erased pages out of the WAL and the free space of the file.

    With secure_delete the freed cells are zeroed on write; a TRUNCATE
    checkpoint copies the zeroed pages into the file and empties the WAL, and
    VACUUM rebuilds the file so that no stale page survives in free space.
    """
    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.exec_driver_sql("VACUUM")
    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
