"""What the workloads share: the run's settings, the moderator who publishes,
joining and connecting clients, progress lines, and small statistics."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fleet import Fleet, split
from bench.httpclient import HttpClient
from bench.procs import (
    ServerProcess,
    rss_bytes,
    summarize_profile,
)
from bench.wsclient import Client, Pool, publish_body

HOST = "127.0.0.1"


@dataclass
class Config:
    clients: int = 5000
    workers: int = 4
    body: int = 300
    fanout_rate: float = 10.0
    fanout_seconds: float = 20.0
    burst_rate: float = 100.0
    burst_seconds: float = 10.0
    # Bounds on waiting for a server (or the generator) that falls behind.
    drain_timeout: float = 90.0
    resume_timeout: float = 60.0
    vote_seconds: float = 10.0
    vote_questions: int = 10
    ingest_clients: int = 200
    ingest_seconds: float = 10.0
    # Ingest is measured in rounds, each the raw baseline and then the server,
    # and the median round is reported: the baseline waits on the disk, the
    # server on the CPU, and on a shared machine either drifts by tens of
    # percent within a minute.
    ingest_rounds: int = 3
    join_messages: int = 10_000
    join_repeats: int = 7
    publishers: int = 4
    settle: float = 3.0
    workloads: tuple[str, ...] = ("memory", "fanout", "burst", "votes", "resume", "ingest", "join")
    data_dir: Path = Path(".")
    profile_dir: Path | None = None
    server_root: Path | None = None
    seed: int = 1

    def wants(self, *names: str) -> bool:
        return any(n in self.workloads for n in names)


def percentile(values: list[float] | array, q: float) -> float:  # type: ignore[type-arg]
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not len(values):
        return float("nan")
    ordered = [float(v) for v in sorted(values)]
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def merged(results: list[dict[str, Any]], key: str) -> array:  # type: ignore[type-arg]
    out = array("d")
    for r in results:
        out.frombytes(r[key])
    return out


def summary(values: list[float] | array) -> dict[str, float]:  # type: ignore[type-arg]
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if len(values) else float("nan"),
    }


def added(results: list[dict[str, Any]], key: str) -> int:
    return sum(int(r[key]) for r in results)


def counted(results: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for r in results:
        total.update({str(k): v for k, v in r[key].items()})
    return dict(total)


_T0 = time.monotonic()


def log(message: str) -> None:
    """Progress on stderr, so that a long run shows where it is."""
    print(f"[{time.monotonic() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)


async def attempt(
    out: dict[str, Any],
    name: str,
    work: Awaitable[Any],
    server: ServerProcess | None = None,
    cfg: Config | None = None,
) -> Any:
    """Run one workload; a failure is recorded in the results, not fatal to the run.

    With `cfg.profile_dir`, py-spy samples `server` for the workload's duration.
    """
    label = f"{server.label} {name}" if server is not None else name
    log(f"{label} ...")
    profile = None
    if server is not None and cfg is not None and cfg.profile_dir is not None:
        profile = cfg.profile_dir / f"profile-{server.label}-{name}.txt"
        await server.start_profile(profile)
    try:
        result = await work
    except Exception as exc:
        log(f"{label} failed: {type(exc).__name__}: {exc}")
        out[name] = {"error": f"{type(exc).__name__}: {str(exc)[-2000:]}"}
        source = getattr(exc, "server", None) or server
        if source is not None:
            out[name]["server_output"] = "".join(list(source.output)[-40:])
        return None
    finally:
        if profile is not None and server is not None:
            await server.end_profile()
            if profile.exists():
                summary_path = profile.with_suffix(".top.txt")
                summary_path.write_text(summarize_profile(profile))
    out[name] = result
    return result


# --- the publisher ------------------------------------------------------------


class Publisher:
    """A moderator on a few sockets posting top-level questions on a schedule.

    Open loop: post i is sent at start + i/rate whatever the acks do, so a slow
    server shows up as latency, not as a slower schedule. Several sockets,
    because a server may handle one socket's commands one after another.
    """

    def __init__(self, port: int, meeting_id: str, token: str | None, sockets: int) -> None:
        self.pool = Pool(HOST, port, meeting_id)
        self.pool.track_state = False
        # A moderator's page resumes too; a publisher that lost a socket goes on.
        self.pool.auto_resume = True
        self.pool.resume_deadline = time.monotonic() + 3600
        self.clients = [Client(self.pool, -1 - i, token) for i in range(max(1, sockets))]
        self.retries = 0

    async def connect(self) -> None:
        await asyncio.gather(*(c.connect(limit=30) for c in self.clients))

    def close(self) -> None:
        self.pool.closing = True
        for c in self.clients:
            c.close()

    async def _socket(self, i: int) -> Client:
        """Socket i (round robin), or any connected one, waiting a bounded while."""
        for _ in range(100):
            for k in range(len(self.clients)):
                client = self.clients[(i + k) % len(self.clients)]
                if client.link is not None and client.link.open:
                    return client
            await asyncio.sleep(0.05)
        return self.clients[i % len(self.clients)]

    async def publish(
        self, tag: str, rate: float, count: int, body: int, limit: float = 60.0
    ) -> dict[str, Any]:
        """Post `count` questions at `rate`; each is retried with its client_id
        (stored once by the server) if its socket drops, as a page's outbox does."""
        started = time.monotonic()
        deadline = started + count / rate + limit
        tasks = []
        for i in range(count):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = {
                "type": "post",
                "parent_id": None,
                "kind": "question",
                "client_id": uuid.uuid4().hex,
                "body": publish_body(tag, i, body),
            }
            first = (await self._socket(i)).command(frame)
            tasks.append(asyncio.create_task(self._until_acked(i, frame, first, deadline)))
        sent = time.monotonic()
        replies = await asyncio.gather(*tasks)
        ids: list[int] = []
        indexes: list[int] = []
        errors: Counter[str] = Counter()
        for i, (reply, error) in enumerate(replies):
            if reply is None:
                errors[error] += 1
            elif reply["type"] != "ack":
                errors[reply.get("code", "error")] += 1
            else:
                ids.append(reply["result"]["message"]["id"])
                indexes.append(i)
        return {
            "started": started,
            "sent": sent,
            "acked_at": time.monotonic(),
            "ids": ids,
            "indexes": indexes,
            "errors": dict(errors),
            "retries": self.retries,
            "close_codes": dict(self.pool.close_codes),
            "send_seconds": sent - started,
        }

    async def _until_acked(
        self,
        i: int,
        frame: dict[str, Any],
        first: asyncio.Future[dict[str, Any]],
        deadline: float,
    ) -> tuple[dict[str, Any] | None, str]:
        future = first
        for _attempt in range(5):
            try:
                return await asyncio.wait_for(future, max(0.1, deadline - time.monotonic())), ""
            except TimeoutError:
                return None, "no ack"
            except ConnectionError:
                if time.monotonic() >= deadline:
                    return None, "no ack"
                self.retries += 1
                future = (await self._socket(i + 1)).command(frame)
        return None, "ConnectionError"


# --- shared steps ---------------------------------------------------------------


async def connect_group(fleet: Fleet, group: str, concurrency: int = 32) -> dict[str, Any]:
    results = await fleet.call("connect", group=group, concurrency=concurrency, limit=180.0)
    durations = merged(results, "durations")
    return {
        "ok": added(results, "ok"),
        "failed": added(results, "failed"),
        "errors": counted(results, "errors"),
        "seconds": max(r["seconds"] for r in results),
        "handshake_to_snapshot": summary(durations),
    }


async def measure_memory(
    fleet: Fleet, group: str, server: ServerProcess, settle: float
) -> dict[str, Any]:
    """RSS of the server before and after the clients connect, per connection."""
    before = rss_bytes(server.pid)
    connected = await connect_group(fleet, group)
    await asyncio.sleep(settle)
    after = rss_bytes(server.pid)
    n = max(1, connected["ok"])
    return {
        "connect": connected,
        "rss_before": before,
        "rss_after": after,
        "per_connection": (after - before) / n,
    }


async def make_meeting(
    http: HttpClient, admin: str, title: str, moderation: str = "post"
) -> tuple[str, str]:
    """A live, public meeting (post-moderated unless told) and a moderator token for it."""
    created = await http.json(
        "POST",
        "/api/meetings",
        {"title": title, "phase": "live", "settings": {"moderation": moderation, "public": True}},
        token=admin,
    )
    moderator = await http.json(
        "POST",
        f"/api/meetings/{created['id']}/join",
        {"key": created["moderator_key"], "name": "Moderator"},
    )
    return created["id"], moderator["token"]


async def join_group(
    fleet: Fleet, group: str, port: int, meeting_id: str, count: int
) -> dict[str, Any]:
    sizes = split(count, fleet.size)
    firsts = [sum(sizes[:i]) for i in range(fleet.size)]
    per_worker = [{"count": n, "first_index": f} for n, f in zip(sizes, firsts, strict=True)]
    results = await fleet.call(
        "join", per_worker, group=group, host=HOST, port=port, meeting_id=meeting_id
    )
    return {"joined": added(results, "joined"), "seconds": max(r["seconds"] for r in results)}
