"""The load generator's processes: each runs thousands of clients on one asyncio loop.

The runner drives them by RPC over a pipe (`Fleet.call`): join participants,
connect, record a workload, vote, post, report. Clients live in named groups
so that one set of processes serves every workload of a run. Every loop here
is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import random
import threading
import time
import traceback
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.httpclient import HttpPool
from bench.procs import raise_open_files
from bench.wsclient import Client, HandshakeFailed, Pool, publish_body


def split(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class WorkerError(Exception):
    pass


class Fleet:
    """Client processes started with `spawn` (no state inherited from the runner)."""

    def __init__(self, workers: int) -> None:
        self.size = max(1, workers)
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._ids = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for index in range(self.size):
            parent, child = self._ctx.Pipe()
            proc = self._ctx.Process(
                target=worker_main, args=(child, index), name=f"bench-client-{index}", daemon=True
            )
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)
            loop.add_reader(parent.fileno(), self._readable, parent)
        await self.call("ping")

    def _readable(self, conn: Connection) -> None:
        try:
            while conn.poll():
                req_id, ok, result = conn.recv()
                future = self._futures.pop(req_id, None)
                if future is None or future.done():
                    continue
                if ok:
                    future.set_result(result)
                else:
                    future.set_exception(WorkerError(result))
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            for future in self._futures.values():
                if not future.done():
                    future.set_exception(WorkerError("a client process died"))

    async def call(
        self, method: str, per_worker: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[Any]:
        """Run `method` in every process (kwargs, plus per_worker[i] for process i)."""
        loop = asyncio.get_running_loop()
        futures = []
        for index, conn in enumerate(self._conns):
            self._ids += 1
            future: asyncio.Future[Any] = loop.create_future()
            self._futures[self._ids] = future
            args = kwargs | (per_worker[index] if per_worker else {})
            conn.send((self._ids, method, args))
            futures.append(future)
        return list(await asyncio.gather(*futures))

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(conn.fileno())
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send((0, "stop", {}))
        for proc in self._procs:
            await loop.run_in_executor(None, proc.join, 10)
            if proc.is_alive():
                proc.kill()
                await loop.run_in_executor(None, proc.join, 5)
        for conn in self._conns:
            conn.close()
        self._procs.clear()
        self._conns.clear()


def worker_main(conn: Connection, index: int) -> None:
    raise_open_files()
    # Thousands of long-lived acyclic objects: collect rarely, so that the
    # generator's pauses do not show up as server latency.
    gc.set_threshold(100_000, 50, 1000)
    try:
        import uvloop  # the `bench` extra: a cheaper loop for thousands of sockets
    except ImportError:
        asyncio.run(Worker(conn, index).serve())
    else:
        uvloop.run(Worker(conn, index).serve())


@dataclass
class Group:
    pool: Pool
    clients: list[Client] = field(default_factory=list)


def _times(values: list[float] | array) -> bytes:  # type: ignore[type-arg]
    return array("d", values).tobytes()


class Worker:
    def __init__(self, conn: Connection, index: int) -> None:
        self.conn = conn
        self.index = index
        self.groups: dict[str, Group] = {}
        self._stopped: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        # The pipe is read by a thread: an event loop watching the fd would
        # make it non-blocking (uvloop does), and a large reply would then fail.
        loop = asyncio.get_running_loop()
        self._stopped = loop.create_future()
        reader = threading.Thread(target=self._read_pipe, args=(loop,), daemon=True)
        reader.start()
        await self._stopped
        for group in self.groups.values():
            group.pool.closing = True
            for client in group.clients:
                client.close()
        await asyncio.sleep(0.2)

    def _read_pipe(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                message = (0, "stop", {})
            loop.call_soon_threadsafe(self._dispatch, message)
            if message[1] == "stop":
                return

    def _dispatch(self, message: tuple[int, str, dict[str, Any]]) -> None:
        req_id, method, kwargs = message
        if method == "stop":
            assert self._stopped is not None
            if not self._stopped.done():
                self._stopped.set_result(None)
            return
        task = asyncio.get_running_loop().create_task(self._run(req_id, method, kwargs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, req_id: int, method: str, kwargs: dict[str, Any]) -> None:
        try:
            result = await getattr(self, "rpc_" + method)(**kwargs)
        except Exception:
            self.conn.send(
                (req_id, False, f"client process {self.index}: {traceback.format_exc()}")
            )
        else:
            self.conn.send((req_id, True, result))

    # --- setting up -----------------------------------------------------------

    async def rpc_ping(self) -> int:
        return self.index

    async def rpc_join(
        self,
        group: str,
        host: str,
        port: int,
        meeting_id: str,
        count: int,
        first_index: int,
        concurrency: int = 8,
        in_room_share: float = 0.3,
    ) -> dict[str, Any]:
        """Join `count` citizens over HTTP, as the page does before its socket."""
        pool = Pool(host, port, meeting_id)
        http = HttpPool(host, port, size=concurrency)
        sem = asyncio.Semaphore(concurrency)
        rng = random.Random(first_index)
        started = time.monotonic()

        async def one(i: int) -> Client:
            async with sem:
                body = {"name": f"Citizen {i}", "in_room": rng.random() < in_room_share}
                joined = await http.json("POST", f"/api/meetings/{meeting_id}/join", body)
            return Client(pool, i, joined["token"])

        try:
            clients = await asyncio.gather(*(one(first_index + k) for k in range(count)))
        finally:
            await http.close()
        self.groups[group] = Group(pool, list(clients))
        return {"joined": len(clients), "seconds": time.monotonic() - started}

    async def rpc_make(
        self,
        group: str,
        host: str,
        port: int,
        meeting_id: str,
        count: int,
        first_index: int,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Clients with a given token (the baseline takes any)."""
        pool = Pool(host, port, meeting_id)
        clients = [Client(pool, first_index + k, token) for k in range(count)]
        self.groups[group] = Group(pool, clients)
        return {"joined": len(clients), "seconds": 0.0}

    async def rpc_configure(self, group: str, **options: Any) -> None:
        pool = self.groups[group].pool
        for name, value in options.items():
            if name == "resume_seconds":
                pool.resume_deadline = time.monotonic() + value
            else:
                assert hasattr(pool, name), name
                setattr(pool, name, value)

    async def rpc_connect(
        self, group: str, concurrency: int = 64, limit: float = 60.0
    ) -> dict[str, Any]:
        """Connect every client: handshake, hello, welcome, snapshot."""
        g = self.groups[group]
        sem = asyncio.Semaphore(concurrency)
        errors: Counter[str] = Counter()
        durations: list[float] = []
        deadline = time.monotonic() + limit
        started = time.monotonic()

        async def one(client: Client) -> None:
            async with sem:
                for _attempt in range(5):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        errors["timeout"] += 1
                        return
                    t0 = time.monotonic()
                    try:
                        await client.connect(limit=min(left, 30.0))
                    except (OSError, TimeoutError, HandshakeFailed, ConnectionError) as exc:
                        errors[type(exc).__name__] += 1
                        await asyncio.sleep(0.2 * random.random())
                        continue
                    durations.append(time.monotonic() - t0)
                    return

        await asyncio.gather(*(one(c) for c in g.clients))
        gc.collect()
        gc.freeze()
        return {
            "ok": len(durations),
            "failed": len(g.clients) - len(durations),
            "errors": dict(errors),
            "seconds": time.monotonic() - started,
            "durations": _times(durations),
        }

    async def rpc_close(self, group: str) -> None:
        g = self.groups.pop(group, None)
        if g is None:
            return
        g.pool.closing = True
        for client in g.clients:
            client.close()
        deadline = time.monotonic() + 5
        while any(c.link is not None for c in g.clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        gc.unfreeze()

    # --- reading what the clients saw ----------------------------------------

    async def rpc_counters(self, group: str, reset: bool = False) -> dict[str, Any]:
        g = self.groups[group]
        pool = g.pool
        out = {
            "clients": len(g.clients),
            "connected": sum(1 for c in g.clients if c.link is not None and c.link.open),
            "frames": pool.frames,
            "batches": pool.batches,
            "events": pool.events,
            "bytes": pool.bytes,
            "close_codes": dict(pool.close_codes),
            "order_errors": sum(c.order_errors for c in g.clients),
            "connects": sum(c.connects for c in g.clients),
        }
        if reset:
            pool.frames = pool.batches = pool.events = pool.bytes = 0
            pool.close_codes.clear()
        return out

    async def rpc_record(self, group: str, tag: str) -> None:
        """Record the latency of every published message with this tag."""
        tally = self.groups[group].pool.tally
        tally.tag = tag
        tally.latencies = array("d")
        tally.recording = True

    async def rpc_progress(self, group: str, tag: str, expected: int) -> dict[str, Any]:
        clients = self.groups[group].clients
        complete = 0
        lowest = expected
        done_at = 0.0
        for c in clients:
            entry = c.tags.get(tag)
            got = int(entry[0]) if entry else 0
            lowest = min(lowest, got)
            if got >= expected:
                complete += 1
                done_at = max(done_at, entry[2] if entry else 0.0)
        return {"clients": len(clients), "complete": complete, "lowest": lowest, "done_at": done_at}

    async def rpc_tally(
        self, group: str, tag: str, expected: int, expected_sum: int
    ) -> dict[str, Any]:
        """Per-client delivery of a tag: all of it, each once, in order."""
        g = self.groups[group]
        g.pool.tally.recording = False
        complete = exact = 0
        missing = 0
        for c in g.clients:
            entry = c.tags.get(tag)
            got = int(entry[0]) if entry else 0
            missing += max(0, expected - got)
            if got == expected:
                complete += 1
                if entry and int(entry[1]) == expected_sum:
                    exact += 1
        return {
            "clients": len(g.clients),
            "complete": complete,
            "exact": exact,
            "missing": missing,
            "order_errors": sum(c.order_errors for c in g.clients),
            "latencies": g.pool.tally.latencies.tobytes(),
        }

    # --- votes ----------------------------------------------------------------

    async def rpc_vote(
        self, group: str, choices: list[int], seconds: float, seed: int
    ) -> dict[str, Any]:
        """Each client votes once for one of `choices`, at a random moment."""
        g = self.groups[group]
        g.pool.record_votes = True
        for c in g.clients:
            c.vote_times = []
            c.vote_changed_at = 0.0
        rng = random.Random(seed)
        started = time.monotonic()
        errors: Counter[str] = Counter()
        by_choice: Counter[int] = Counter()
        latencies: list[float] = []
        sent_last = 0.0

        async def one(client: Client, at: float, choice: int) -> None:
            nonlocal sent_last
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            t0 = time.monotonic()
            sent_last = max(sent_last, t0)
            client.my_vote = choice
            try:
                reply = await asyncio.wait_for(
                    client.command({"type": "vote", "message_id": choice, "value": 1}), 30
                )
            except (ConnectionError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                return
            if reply["type"] != "ack" or not reply["result"]["voted"]:
                errors[reply.get("code", reply["type"])] += 1
                return
            latencies.append(time.monotonic() - t0)
            by_choice[choice] += 1

        await asyncio.gather(
            *(one(c, rng.uniform(0, seconds), choices[c.index % len(choices)]) for c in g.clients)
        )
        return {
            "acked": len(latencies),
            "errors": dict(errors),
            "by_choice": dict(by_choice),
            "latencies": _times(latencies),
            "sent_last": sent_last,
        }

    async def rpc_vote_check(
        self, group: str, expected: dict[int, int], window: float = 1.0
    ) -> dict[str, Any]:
        """Exact final counts, own vote shown, and vote frames per second per client."""
        g = self.groups[group]
        g.pool.record_votes = False
        exact = own = 0
        changed_at: list[float] = []
        per_second: list[float] = []
        for c in g.clients:
            if all(c.votes.get(mid) == n for mid, n in expected.items()):
                exact += 1
            if c.my_vote is not None and c.voted == {c.my_vote}:
                own += 1
            changed_at.append(c.vote_changed_at)
            times = c.vote_times
            most = 0
            lo = 0
            for hi, t in enumerate(times):
                while t - times[lo] >= window:
                    lo += 1
                most = max(most, hi - lo + 1)
            per_second.append(most)
        return {
            "clients": len(g.clients),
            "exact": exact,
            "own_vote_shown": own,
            "changed_at": _times(changed_at),
            "per_second": _times(per_second),
        }

    # --- resume -----------------------------------------------------------------

    async def rpc_resume_status(
        self, group: str, ready_at: float, expected_seq: int, stopped_at: float
    ) -> dict[str, Any]:
        g = self.groups[group]
        times: list[float] = []
        served: list[float] = []
        modes: Counter[str] = Counter()
        for c in g.clients:
            # The new server listens a little before it says so (the line the
            # bench waits for): a client welcomed in between counts, at 0 s.
            if c.link is None or c.welcome_at < stopped_at:
                continue
            modes[c.mode] += 1
            if c.last_seq >= expected_seq or (c.welcome_seq or 0) >= expected_seq:
                done = max(c.welcome_at, c.sync_done_at)
                times.append(max(0.0, done - ready_at))
                # The server's part: from the try that succeeded to converged.
                served.append(max(0.0, done - max(c.attempt_at, ready_at)))
        return {
            "clients": len(g.clients),
            "converged": len(times),
            "modes": dict(modes),
            "times": _times(times),
            "served": _times(served),
        }

    async def rpc_digests(self, group: str, since: float = 0.0) -> dict[str, Any]:
        """State digests of the clients that (re)synced at or after `since`."""
        g = self.groups[group]
        fresh = [c for c in g.clients if c.link is not None and c.welcome_at >= since]
        digests = Counter(c.digest() for c in fresh)
        own = sum(1 for c in fresh if c.my_vote is None or c.voted == {c.my_vote})
        return {"digests": dict(digests), "own_vote_shown": own, "resynced": len(fresh)}

    # --- ingest -----------------------------------------------------------------

    async def rpc_ingest(
        self, group: str, seconds: float, body_size: int, parent_id: int | None = None
    ) -> dict[str, Any]:
        """Each client posts, waits for the ack, posts again, until time is up."""
        g = self.groups[group]
        deadline = time.monotonic() + seconds
        latencies: list[float] = []
        acked: list[tuple[int, str]] = []
        errors: Counter[str] = Counter()

        async def one(client: Client) -> None:
            n = 0
            while time.monotonic() < deadline and n < 1_000_000:
                n += 1
                cid = uuid.uuid4().hex
                t0 = time.monotonic()
                frame = {
                    "type": "post",
                    "parent_id": parent_id,
                    "client_id": cid,
                    "body": publish_body("ingest", n, body_size),
                }
                try:
                    reply = await asyncio.wait_for(client.command(frame), 30)
                except (ConnectionError, TimeoutError) as exc:
                    errors[type(exc).__name__] += 1
                    return
                if reply["type"] != "ack":
                    errors[reply.get("code", reply["type"])] += 1
                    continue
                latencies.append(time.monotonic() - t0)
                acked.append((reply["result"]["message"]["id"], cid))

        started = time.monotonic()
        await asyncio.gather(*(one(c) for c in g.clients))
        return {
            "acked": acked,
            "errors": dict(errors),
            "latencies": _times(latencies),
            "started": started,
            "ended": time.monotonic(),
        }
