"""Storage workloads: ingest (group commit under 200 posting clients, then
SIGKILL and a check that every acked post is on disk, against raw aiosqlite
committing one row at a time) and join (the snapshot of a 10,000-message
meeting against a raw SQL fetch and JSON encoding of the same rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect as ws_connect

from bench import raw
from bench.common import (
    HOST,
    Config,
    attempt,
    connect_group,
    counted,
    join_group,
    log,
    make_meeting,
    merged,
    summary,
)
from bench.fleet import Fleet
from bench.httpclient import HttpClient
from bench.procs import (
    CpuMeter,
    Window,
    summarize_profile,
    ting_server,
)
from bench.wsclient import Client, Pool

# --- phase: ingest ------------------------------------------------------------------


async def ingest_phase(fleet: Fleet, cfg: Config, admin: str) -> dict[str, Any]:
    """Ingest into the moderation queue (the row with targets), then shown to all.

    The first is a pre-moderated meeting: each post is stored, numbered, put
    in the queue of the moderator watching it live and acked to its author;
    this is what the write path holds. It runs in `cfg.ingest_rounds`
    rounds, each the raw baseline and then the server, back to back; the
    round with the median ratio is reported, all of them recorded. The
    second, reported for the record, is a post-moderated meeting: each post
    also goes out at once to every one of the posting clients, so it
    measures ingest and a fan-out of (posts/s times clients) deliveries
    together.
    """
    out: dict[str, Any] = {}
    rounds: list[dict[str, Any]] = []
    for i in range(cfg.ingest_rounds):
        label = f" (round {i + 1} of {cfg.ingest_rounds})" if cfg.ingest_rounds > 1 else ""
        log(f"ingest: raw aiosqlite, one commit per row{label}")
        one: dict[str, Any] = {}
        await attempt(
            one,
            "raw",
            raw.one_commit_per_row(cfg.data_dir / "raw.db", cfg.ingest_seconds, cfg.body),
        )
        await attempt(one, "ting", ingest_ting(fleet, cfg, admin, moderation="pre"))
        rounds.append(one)
    out.update(median_round(rounds))
    out["rounds"] = rounds
    log("ingest: every post shown to every posting client")
    await attempt(out, "ting_shown", ingest_ting(fleet, cfg, admin, moderation="post"))
    return out


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose server/raw ratio is the median (the lower one of an
    even count), with the acked and lost posts of all rounds added up."""
    done = [
        r
        for r in rounds
        if _succeeded(r.get("ting")) and _succeeded(r.get("raw")) and r["raw"]["rows_per_second"]
    ]
    if not done:
        return rounds[-1] if rounds else {}
    done.sort(key=lambda r: r["ting"]["posts_per_second"] / r["raw"]["rows_per_second"])
    chosen = done[(len(done) - 1) // 2]
    ting = dict(chosen["ting"])
    ting["all_rounds"] = {
        "acked": sum(r["ting"]["acked"] for r in done),
        "lost_after_sigkill": sum(r["ting"]["lost_after_sigkill"] for r in done),
        "ratios": [
            r["ting"]["posts_per_second"] / r["raw"]["rows_per_second"]
            for r in sorted(done, key=rounds.index)
        ],
    }
    return {"ting": ting, "raw": chosen["raw"]}


def _succeeded(result: Any) -> bool:
    return isinstance(result, dict) and "error" not in result


async def ingest_ting(fleet: Fleet, cfg: Config, admin: str, *, moderation: str) -> dict[str, Any]:
    db = cfg.data_dir / f"ingest-{moderation}.db"
    server = ting_server(db, admin, root=cfg.server_root)
    await server.start()
    out: dict[str, Any] = {"moderation": moderation}
    http = HttpClient(HOST, server.port)
    moderator: Client | None = None
    try:
        meeting_id, moderator_token = await make_meeting(
            http, admin, "Bench ingest", moderation=moderation
        )
        await http.close()
        # The moderator's console, live: every post reaches it.
        pool = Pool(HOST, server.port, meeting_id)
        pool.track_state = False
        pool.auto_resume = False
        moderator = Client(pool, -1, moderator_token)
        await moderator.connect()
        await join_group(fleet, "ingest", server.port, meeting_id, cfg.ingest_clients)
        await fleet.call("configure", group="ingest", track_state=False, auto_resume=False)
        out["connect"] = await connect_group(fleet, "ingest")
        # Once connected (welcome and snapshot are not replies).
        await fleet.call("configure", group="ingest", replies_only=True)
        log(f"ingest: {cfg.ingest_clients} clients posting for {cfg.ingest_seconds:g} s")
        meter = CpuMeter(server.pid)
        meter.start()
        profile = (
            cfg.profile_dir / f"profile-ting-ingest-{moderation}.txt" if cfg.profile_dir else None
        )
        if profile is not None:
            await server.start_profile(profile)
        # Clients post a little longer than the window; the server is killed
        # (SIGKILL) at its end with posts in flight: every ack must be on disk.
        posting = asyncio.create_task(
            fleet.call("ingest", group="ingest", seconds=cfg.ingest_seconds + 3, body_size=cfg.body)
        )
        started = time.monotonic()
        window = Window(fleet.pids)
        await asyncio.sleep(cfg.ingest_seconds)
        cpu = meter.between(started, time.monotonic())
        machine = window.end()
        await meter.stop()
        if profile is not None:
            await server.end_profile()
            profile.with_suffix(".top.txt").write_text(summarize_profile(profile))
        await server.kill()
        killed = time.monotonic()
        out["moderator"] = {"last_seq": moderator.last_seq, "order_errors": moderator.order_errors}
        results = await posting
        acked = [(int(a[0]), str(a[1])) for r in results for a in r["acked"]]
        window = killed - max(r["started"] for r in results)
        lost = _lost_posts(db, meeting_id, acked)
        out.update(
            {
                "clients": cfg.ingest_clients,
                "window_seconds": window,
                "acked": len(acked),
                "posts_per_second": len(acked) / window,
                "ack_latency_ms": {
                    k: (v * 1000 if k != "n" else v)
                    for k, v in summary(merged(results, "latencies")).items()
                },
                "errors": counted(results, "errors"),
                "lost_after_sigkill": lost,
                "server_cpu_share": cpu / max(1e-9, cfg.ingest_seconds),
                "machine": machine,
            }
        )
    finally:
        await fleet.call("close", group="ingest")
        if moderator is not None:
            moderator.close()
        await server.kill()
    return out


def _lost_posts(db: Path, meeting_id: str, acked: list[tuple[int, str]]) -> int:
    with contextlib.closing(sqlite3.connect(str(db), timeout=30)) as conn:
        stored = set(
            conn.execute("SELECT id, client_id FROM messages WHERE meeting_id = ?", (meeting_id,))
        )
    return sum(1 for a in acked if a not in stored)


# --- phase: join ------------------------------------------------------------------------


async def seed_meeting(port: int, meeting_id: str, token: str, count: int, seed: int) -> float:
    """`count` messages in a realistic tree (topics, questions, comments) over sockets."""
    rng = random.Random(seed)
    words = (
        "skole",
        "budget",
        "bus",
        "park",
        "school",
        "library",
        "road",
        "tax",
        "why",
        "when",
        "could",
        "the",
        "council",
        "plan",
        "children",
        "elderly",
        "housing",
        "?",
    )
    pool = Pool(HOST, port, meeting_id)
    pool.track_state = False
    pool.auto_resume = False
    sockets = [Client(pool, -100 - i, token) for i in range(32)]
    await asyncio.gather(*(c.connect(limit=30) for c in sockets))
    topics: list[int] = []
    questions: list[int] = []
    replies: list[tuple[int, int]] = []  # (id, depth)
    n_topics = max(1, count // 500)
    n_questions = max(1, count * 3 // 10)
    started = time.monotonic()

    async def post(client: Client, parent: int | None, kind: str | None) -> dict[str, Any]:
        body = " ".join(rng.choice(words) for _ in range(rng.randint(6, 60)))
        frame: dict[str, Any] = {
            "type": "post",
            "parent_id": parent,
            "body": body,
            "client_id": uuid.uuid4().hex,
        }
        if kind:
            frame["kind"] = kind
        reply = await asyncio.wait_for(client.command(frame), 60)
        if reply["type"] != "ack":
            raise RuntimeError(f"seeding failed: {reply}")
        return reply["result"]["message"]  # type: ignore[no-any-return]

    async def worker(client: Client, todo: list[int]) -> None:
        for i in todo:
            if i < n_topics:
                topics.append((await post(client, None, "topic"))["id"])
            elif i < n_topics + n_questions or not questions:
                parent = rng.choice(topics) if topics else None
                questions.append((await post(client, parent, "question"))["id"])
            else:
                if replies and rng.random() < 0.4:
                    parent, depth = rng.choice(replies)
                    if depth >= 4:
                        parent, depth = rng.choice(questions), 1
                else:
                    parent, depth = rng.choice(questions), 1
                message = await post(client, parent, "comment")
                replies.append((message["id"], depth + 1))

    try:
        # Topics first (one socket), then everything else spread over the sockets.
        await worker(sockets[0], list(range(n_topics)))
        await worker(sockets[0], [n_topics])
        rest = list(range(n_topics + 1, count))
        await asyncio.gather(*(worker(c, rest[i :: len(sockets)]) for i, c in enumerate(sockets)))
    finally:
        pool.closing = True
        for c in sockets:
            c.close()
    return time.monotonic() - started


async def join_phase(cfg: Config, admin: str) -> dict[str, Any]:
    db = cfg.data_dir / "join.db"
    server = ting_server(db, admin, root=cfg.server_root)
    await server.start()
    http = HttpClient(HOST, server.port, timeout=120)
    out: dict[str, Any] = {"messages": cfg.join_messages}
    try:
        meeting_id, moderator = await make_meeting(http, admin, "Bench join")
        log(f"join: seeding {cfg.join_messages} messages")
        out["seed_seconds"] = await seed_meeting(
            server.port, meeting_id, moderator, cfg.join_messages, cfg.seed
        )
        citizen = await http.json("POST", f"/api/meetings/{meeting_id}/join", {"name": "Late"})
        token = citizen["token"]
        times = http_join_times(http, meeting_id, token, cfg.join_repeats)
        await attempt(out, "http", times, server, cfg)
        ws_times = ws_join_times(server.port, meeting_id, token, cfg.join_repeats)
        await attempt(out, "ws", ws_times, server, cfg)
        await attempt(out, "raw", raw.fetch_and_encode(db, meeting_id, cfg.join_repeats))
    finally:
        await http.close()
        await server.stop()
    return out


async def http_join_times(
    http: HttpClient, meeting_id: str, token: str, repeats: int
) -> dict[str, Any]:
    """GET /snapshot, timed from the request to the last byte of the body."""
    path = f"/api/meetings/{meeting_id}/snapshot"
    times: list[float] = []
    body = b""
    for _ in range(repeats):
        t0 = time.perf_counter()
        status, body = await http.request("GET", path, token=token)
        times.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"snapshot failed: {status} {body[:200]!r}")
    count = len(orjson.loads(body)["messages"])
    return {"seconds": summary(times), "bytes": len(body), "messages": count}


async def ws_join_times(port: int, meeting_id: str, token: str, repeats: int) -> dict[str, Any]:
    """hello -> welcome -> snapshot over a socket, timed to the last byte."""
    url = f"ws://{HOST}:{port}/ws/meetings/{meeting_id}"
    times: list[float] = []
    failures: Counter[str] = Counter()
    size = 0
    for _ in range(repeats):
        try:
            async with ws_connect(url, compression=None, max_size=None, ping_interval=None) as ws:
                t0 = time.perf_counter()
                await ws.send(
                    orjson.dumps({"type": "hello", "token": token, "since": None}).decode()
                )
                welcome = orjson.loads(await asyncio.wait_for(ws.recv(decode=False), 30))
                assert welcome["type"] == "welcome", welcome
                frame = await asyncio.wait_for(ws.recv(decode=False), 60)
                times.append(time.perf_counter() - t0)
                size = len(frame)
        except Exception as exc:  # the failure is the measurement
            code = getattr(getattr(exc, "rcvd", None), "code", None)
            failures[f"{type(exc).__name__} {code or ''}".strip()] += 1
    return {"seconds": summary(times), "bytes": size, "failures": dict(failures)}
