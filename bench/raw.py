"""Raw SQLite baselines, measured in the same run as the server.

- `one_commit_per_row`: aiosqlite inserting one message row per transaction,
  WAL with synchronous=FULL, as a naive server would; the ingest target is
  a multiple of it.
- `fetch_and_encode`: the rows of one meeting's messages fetched with plain
  SQL and encoded as JSON; the join target is a multiple of it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from bench.wsclient import publish_body

# The shape of Ting's message row (the columns a post writes), without its ORM.
MESSAGES_TABLE = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_id VARCHAR(64) NOT NULL,
    parent_id BIGINT,
    depth INTEGER NOT NULL,
    kind VARCHAR(16) NOT NULL,
    source VARCHAR(16) NOT NULL,
    body TEXT NOT NULL,
    author_id VARCHAR(32),
    author_name TEXT,
    author_role VARCHAR(16) NOT NULL,
    client_id VARCHAR(64),
    status VARCHAR(16) NOT NULL,
    reason TEXT,
    answered VARCHAR(24) NOT NULL,
    answered_by TEXT,
    pinned BOOLEAN NOT NULL,
    merged_into BIGINT,
    votes INTEGER NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
)
"""
INDEXES = (
    "CREATE INDEX IF NOT EXISTS messages_meeting ON messages (meeting_id, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_client_id ON messages (author_id, client_id)",
)
INSERT = (
    "INSERT INTO messages (meeting_id, parent_id, depth, kind, source, body, author_id,"
    " author_name, author_role, client_id, status, reason, answered, answered_by, pinned,"
    " merged_into, votes, created_at, updated_at)"
    " VALUES (?, NULL, 0, 'question', 'online', ?, ?, ?, 'citizen', ?, 'visible', NULL,"
    " 'unanswered', NULL, 0, NULL, 0, ?, ?)"
)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def one_commit_per_row(path: Path, seconds: float, body: int) -> dict[str, Any]:
    """Rows committed per second, one INSERT and one COMMIT (an fsync) per row."""
    _remove(path)
    latencies: list[float] = []
    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute(MESSAGES_TABLE)
        for statement in INDEXES:
            await db.execute(statement)
        await db.commit()
        started = time.monotonic()
        deadline = started + seconds
        n = 0
        while time.monotonic() < deadline and n < 10_000_000:
            n += 1
            t0 = time.monotonic()
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            await db.execute(
                INSERT,
                (
                    "raw",
                    publish_body("raw", n, body),
                    f"p_{n % 200}",
                    f"Citizen {n % 200}",
                    uuid.uuid4().hex,
                    now,
                    now,
                ),
            )
            await db.commit()
            latencies.append(time.monotonic() - t0)
        elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "rows": n,
        "seconds": elapsed,
        "rows_per_second": n / elapsed,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
    }


async def fetch_and_encode(path: Path, meeting_id: str, repeats: int) -> dict[str, Any]:
    """Seconds to SELECT a meeting's messages and encode them as a JSON array."""
    times: list[float] = []
    size = rows = 0
    async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as db:
        for _ in range(repeats):
            t0 = time.perf_counter()
            cursor = await db.execute(
                "SELECT * FROM messages WHERE meeting_id = ? ORDER BY id", (meeting_id,)
            )
            names = [d[0] for d in cursor.description]
            fetched = list(await cursor.fetchall())
            await cursor.close()
            encoded = orjson.dumps([dict(zip(names, row, strict=True)) for row in fetched])
            times.append(time.perf_counter() - t0)
            size, rows = len(encoded), len(fetched)
    times.sort()
    return {
        "seconds": {"p50": times[len(times) // 2], "min": times[0]},
        "bytes": size,
        "rows": rows,
    }
