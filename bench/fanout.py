"""Fan-out workloads on one set of connected clients per server.

- `baseline_phase`: the bare-websockets server: idle memory, 10/s fan-out, burst.
- `ting_phase`: the same on Ting, then the vote storm and the resume storm on
  the same connected clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    HOST,
    Config,
    Publisher,
    added,
    attempt,
    counted,
    join_group,
    log,
    make_meeting,
    measure_memory,
    merged,
    summary,
)
from bench.fleet import Fleet, split
from bench.httpclient import HttpClient
from bench.procs import (
    CpuMeter,
    ServerProcess,
    Window,
    baseline_server,
    summarize_profile,
    ting_server,
)
from bench.wsclient import FrameParser, state_digest


async def fanout(
    fleet: Fleet,
    group: str,
    publisher: Publisher,
    meter: CpuMeter,
    *,
    label: str,
    rate: float,
    seconds: float,
    body: int,
    drain_timeout: float,
) -> dict[str, Any]:
    """Publish at `rate` for `seconds`; wait until every client has every event."""
    tag = f"{label}{uuid.uuid4().hex[:6]}"
    count = max(1, round(rate * seconds))
    await fleet.call("counters", group=group, reset=True)
    await fleet.call("record", group=group, tag=tag)
    window = Window(fleet.pids)
    # Acks may lag far behind a burst the server cannot keep up with; wait for them.
    published = await publisher.publish(tag, rate, count, body, limit=2 * drain_timeout)
    expected = len(published["ids"])
    expected_sum = sum(published["indexes"])
    deadline = time.monotonic() + drain_timeout
    clients = 0
    complete = 0
    done_at = published["sent"]
    while True:
        progress = await fleet.call("progress", group=group, tag=tag, expected=expected)
        clients = sum(p["clients"] for p in progress)
        complete = sum(p["complete"] for p in progress)
        if complete >= clients or time.monotonic() > deadline:
            done_at = max([published["sent"], *(p["done_at"] for p in progress)])
            break
        await asyncio.sleep(0.1)
    ended = done_at if complete >= clients else time.monotonic()
    cpu = meter.between(published["started"], ended)
    machine = window.end()
    tallies = await fleet.call(
        "tally", group=group, tag=tag, expected=expected, expected_sum=expected_sum
    )
    counters = await fleet.call("counters", group=group)
    latencies = merged(tallies, "latencies")
    missing = added(tallies, "missing")
    deliveries = clients * expected - missing
    frames = added(counters, "frames")
    return {
        "tag": tag,
        "published": count,
        "acked": expected,
        "publish_errors": published["errors"],
        "publish_retries": published["retries"],
        "publisher_close_codes": published["close_codes"],
        "send_seconds": published["send_seconds"],
        "deliver_seconds": ended - published["started"],
        "clients": clients,
        "complete": complete,
        "exact": added(tallies, "exact"),
        "missing": missing,
        "order_errors": added(tallies, "order_errors"),
        "deliveries": deliveries,
        "server_cpu": cpu,
        "cpu_per_delivery_us": (cpu / deliveries * 1e6) if deliveries else float("nan"),
        "server_cpu_share": cpu / max(1e-9, ended - published["started"]),
        "latency_ms": {k: (v * 1000 if k != "n" else v) for k, v in summary(latencies).items()},
        "wire_frames": frames,
        "batch_frames": added(counters, "batches"),
        "events_per_wire_frame": added(counters, "events") / max(1, frames),
        "bytes_received": added(counters, "bytes"),
        "close_codes": counted(counters, "close_codes"),
        "connected_after": added(counters, "connected"),
        "machine": machine,
    }


async def steady_and_burst(
    out: dict[str, Any],
    fleet: Fleet,
    group: str,
    publisher: Publisher,
    meter: CpuMeter,
    server: ServerProcess,
    cfg: Config,
    *steady_for: str,
) -> None:
    """The 10/s workload (if a workload of `steady_for` is wanted), then the burst."""
    runs = []
    if cfg.wants(*steady_for):
        runs.append(("fanout", cfg.fanout_rate, cfg.fanout_seconds))
    if cfg.wants("burst"):
        runs.append(("burst", cfg.burst_rate, cfg.burst_seconds))
    for name, rate, seconds in runs:
        if name == "burst":
            await asyncio.sleep(1.0)  # after the steady run or the connects, a quiet second
        run = fanout(
            fleet,
            group,
            publisher,
            meter,
            label=f"{group[0]}{name[0]}",
            rate=rate,
            seconds=seconds,
            body=cfg.body,
            drain_timeout=cfg.drain_timeout,
        )
        await attempt(out, name, run, server, cfg)


# --- phase: the baseline server -------------------------------------------------


async def baseline_phase(fleet: Fleet, cfg: Config) -> dict[str, Any]:
    server = baseline_server()
    await server.start()
    meter = CpuMeter(server.pid)
    meter.start()
    out: dict[str, Any] = {}
    publisher = Publisher(server.port, "baseline", "baseline-publisher", cfg.publishers)
    try:
        sizes = split(cfg.clients, fleet.size)
        firsts = [sum(sizes[:i]) for i in range(fleet.size)]
        await fleet.call(
            "make",
            [{"count": n, "first_index": f} for n, f in zip(sizes, firsts, strict=True)],
            group="base",
            host=HOST,
            port=server.port,
            meeting_id="baseline",
            token="citizen",
        )
        await fleet.call("configure", group="base", track_state=False, auto_resume=False)
        log(f"baseline: {cfg.clients} clients connecting")
        await attempt(out, "memory", measure_memory(fleet, "base", server, cfg.settle), server, cfg)
        await publisher.connect()
        await steady_and_burst(
            out, fleet, "base", publisher, meter, server, cfg, "fanout", "latency"
        )
    finally:
        publisher.close()
        await fleet.call("close", group="base")
        await meter.stop()
        await server.stop()
    return out


# --- phase: Ting under fan-out, votes and resume ----------------------------------


async def ting_phase(fleet: Fleet, cfg: Config, admin: str) -> dict[str, Any]:
    db = cfg.data_dir / "fanout.db"
    server = ting_server(db, admin, root=cfg.server_root)
    await server.start()
    meter = CpuMeter(server.pid)
    meter.start()
    out: dict[str, Any] = {}
    http = HttpClient(HOST, server.port)
    publisher: Publisher | None = None
    try:
        meeting_id, moderator = await make_meeting(http, admin, "Bench town hall")
        log(f"ting: {cfg.clients} citizens joining")
        out["join"] = await join_group(fleet, "ting", server.port, meeting_id, cfg.clients)
        log(f"ting: {cfg.clients} clients connecting")
        await attempt(out, "memory", measure_memory(fleet, "ting", server, cfg.settle), server, cfg)
        publisher = Publisher(server.port, meeting_id, moderator, cfg.publishers)
        await publisher.connect()
        await steady_and_burst(
            out, fleet, "ting", publisher, meter, server, cfg, "fanout", "latency", "votes"
        )
        if cfg.wants("votes"):
            await asyncio.sleep(1.0)
            await attempt(out, "votes", vote_storm(fleet, "ting", cfg, publisher, db), server, cfg)
        publisher.close()
        publisher = None
        if cfg.wants("resume"):
            restarted: list[ServerProcess] = []
            await attempt(
                out,
                "resume",
                resume_storm(fleet, "ting", cfg, server, db, admin, meeting_id, meter, restarted),
            )
            if restarted:
                server = restarted[-1]
    finally:
        if publisher is not None:
            publisher.close()
        await fleet.call("configure", group="ting", auto_resume=False)
        await fleet.call("close", group="ting")
        await http.close()
        await meter.stop()
        await server.stop()
    return out


async def vote_storm(
    fleet: Fleet, group: str, cfg: Config, publisher: Publisher, db: Path
) -> dict[str, Any]:
    """Every client votes once within `vote_seconds`; counts must end exact."""
    published = await publisher.publish(
        f"tv{uuid.uuid4().hex[:6]}", 50.0, cfg.vote_questions, cfg.body
    )
    choices = published["ids"]
    if not choices:
        raise RuntimeError(f"no question to vote on: {published['errors']}")
    await asyncio.sleep(1.0)
    started = time.monotonic()
    results = await fleet.call(
        "vote",
        [{"seed": cfg.seed * 1000 + i} for i in range(fleet.size)],
        group=group,
        choices=choices,
        seconds=cfg.vote_seconds,
    )
    acked = added(results, "acked")
    expected: Counter[int] = Counter()
    for r in results:
        expected.update({int(k): v for k, v in r["by_choice"].items()})
    sent_last = max(r["sent_last"] for r in results)
    # Coalesced counts follow within an interval; give them a bounded while.
    deadline = time.monotonic() + 10.0
    while True:
        checks = await fleet.call("vote_check", group=group, expected=dict(expected))
        exact = added(checks, "exact")
        if exact >= cfg.clients or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    changed_at = merged(checks, "changed_at")
    settle = [max(0.0, t - sent_last) for t in changed_at]
    per_second = merged(checks, "per_second")
    stored = _stored_votes(db, choices)
    return {
        "clients": added(checks, "clients"),
        "acked": acked,
        "errors": counted(results, "errors"),
        "stored": stored,
        "storm_seconds": sent_last - started,
        "ack_latency_ms": {
            k: (v * 1000 if k != "n" else v)
            for k, v in summary(merged(results, "latencies")).items()
        },
        "exact_clients": exact,
        "own_vote_shown": added(checks, "own_vote_shown"),
        "exact_after_last_vote_s": summary(settle),
        "vote_frames_per_second_max": max(per_second) if len(per_second) else float("nan"),
    }


def _stored_votes(db: Path, message_ids: list[int]) -> int:
    if not message_ids:
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        marks = ",".join("?" * len(message_ids))
        row = conn.execute(
            f"SELECT count(*) FROM votes WHERE message_id IN ({marks})", message_ids
        ).fetchone()
    return int(row[0])


def _last_seq(db: Path, meeting_id: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        row = conn.execute("SELECT last_seq FROM meetings WHERE id = ?", (meeting_id,)).fetchone()
    return int(row[0])


async def snapshot_digest(port: int, meeting_id: str) -> tuple[int, str, int]:
    """(seq, digest, messages) of a fresh citizen's snapshot over HTTP."""
    http = HttpClient(HOST, port, timeout=60)
    try:
        joined = await http.json("POST", f"/api/meetings/{meeting_id}/join", {"name": "Checker"})
        snap = await http.json("GET", f"/api/meetings/{meeting_id}/snapshot", token=joined["token"])
    finally:
        await http.close()
    parser = FrameParser()
    items = parser.parse(orjson.dumps({"type": "snapshot", **snap}))
    messages = {m[0]: m[1] for m in items[0][2]}
    votes = {m[0]: m[2] for m in items[0][2]}
    return snap["seq"], state_digest(messages, votes), len(messages)


async def resume_storm(
    fleet: Fleet,
    group: str,
    cfg: Config,
    server: ServerProcess,
    db: Path,
    admin: str,
    meeting_id: str,
    meter: CpuMeter,
    restarted: list[ServerProcess],
) -> dict[str, Any]:
    """Restart the server under every client; all must resume and converge."""
    await fleet.call("configure", group=group, auto_resume=True, resume_seconds=180.0)
    port = server.port
    stopping = time.monotonic()
    await meter.stop()
    window = Window(fleet.pids)
    await server.stop()
    stopped = time.monotonic()
    expected_seq = _last_seq(db, meeting_id)
    server = ting_server(db, admin, port=port, root=cfg.server_root)
    restarted.append(server)
    try:
        return await _resume_on(
            fleet,
            group,
            cfg,
            server,
            db,
            meeting_id,
            meter,
            window,
            expected_seq,
            stopping,
            stopped,
        )
    except Exception as exc:
        exc.server = server  # type: ignore[attr-defined]
        raise


async def _resume_on(
    fleet: Fleet,
    group: str,
    cfg: Config,
    server: ServerProcess,
    db: Path,
    meeting_id: str,
    meter: CpuMeter,
    window: Window,
    expected_seq: int,
    stopping: float,
    stopped: float,
) -> dict[str, Any]:
    ready = await server.start()
    port = server.port
    if cfg.profile_dir is not None:
        await server.start_profile(cfg.profile_dir / "profile-ting-resume.txt")
    meter.pid = server.pid
    meter.start()
    deadline = ready + cfg.resume_timeout
    while True:
        status = await fleet.call(
            "resume_status",
            group=group,
            ready_at=ready,
            expected_seq=expected_seq,
            stopped_at=stopped,
        )
        converged = added(status, "converged")
        if converged >= cfg.clients or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    all_in = time.monotonic()
    machine = window.end()
    if cfg.profile_dir is not None:
        await server.end_profile()
        profile = cfg.profile_dir / "profile-ting-resume.txt"
        if profile.exists():
            profile.with_suffix(".top.txt").write_text(summarize_profile(profile))
    times = merged(status, "times")
    cpu = meter.between(ready, ready + max(times) if len(times) else all_in)
    # The server may still be struggling: ask for the reference snapshot a
    # bounded number of times before giving up on the state check.
    snap_seq, digest, n_messages = -1, "", 0
    digest_error = None
    for wait in (0.0, 1.0, 2.0, 4.0, 8.0):
        await asyncio.sleep(wait)
        try:
            snap_seq, digest, n_messages = await snapshot_digest(port, meeting_id)
        except Exception as exc:
            digest_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            digest_error = None
            break
    digests = await fleet.call("digests", group=group, since=stopped)
    by_digest: Counter[str] = Counter()
    for d in digests:
        by_digest.update(d["digests"])
    counters = await fleet.call("counters", group=group)
    return {
        "clients": cfg.clients,
        "shutdown_seconds": stopped - stopping,
        "restart_seconds": ready - stopped,
        "expected_seq": expected_seq,
        "snapshot_seq": snap_seq,
        "messages": n_messages,
        "converged": converged,
        "modes": counted(status, "modes"),
        "after_ready_s": summary(times),
        "try_to_converged_s": summary(merged(status, "served")),
        "state_equals_snapshot": by_digest.get(digest, 0) if digest else 0,
        "snapshot_error": digest_error,
        "server_tracebacks": server.tracebacks,
        "distinct_states": len(by_digest),
        "own_vote_shown": added(digests, "own_vote_shown"),
        "resynced_at_check": added(digests, "resynced"),
        "order_errors": added(counters, "order_errors"),
        "server_cpu": cpu,
        "machine": machine,
    }
