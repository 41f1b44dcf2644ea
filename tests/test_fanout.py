"""Fan-out under load: encode once per audience, bounded queues, coalesced votes.

These run on a server of their own, so that its metrics count only what the
tests here do, with a small outgoing budget per connection (so that a stuck
client overflows after a few hundred kilobytes rather than 2 MiB) and the
default vote interval (0.25 s) rather than the quicker one of the other tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import (
    Api,
    ServerProcess,
    Socket,
    client_id,
    connect,
    new_meeting,
    tiny_window_socket,
)

QUEUE_BYTES = 256 * 1024
VOTE_INTERVAL = 0.25
# "Promptly": every event reaches a reader that keeps up within this many
# seconds of its ack, however stuck another reader is. Generous on purpose.
PROMPT = 2.0


@pytest.fixture(scope="module")
def fanout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("fanout") / "ting.db",
        env={"TING_WS_QUEUE_BYTES": str(QUEUE_BYTES), "TING_VOTE_INTERVAL": str(VOTE_INTERVAL)},
    ).start()
    yield proc
    proc.stop()


@pytest.fixture
def fapi(fanout_server: ServerProcess, http_client: httpx.AsyncClient) -> Api:
    return Api(fanout_server, http_client)


async def scrape(api: Api, name: str, labels: str = "") -> float:
    """One sample of the server's /metrics (0 when the series does not exist yet)."""
    text = (await api.client.get(api.server.url + "/metrics")).text
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def frame_counters(api: Api) -> tuple[int, int]:
    encoded = await scrape(api, "ting_frames_encoded_total")
    queued = await scrape(api, "ting_frames_queued_total")
    return int(encoded), int(queued)


@dataclass
class Reader:
    """A client that keeps reading, noting when each frame arrived."""

    sock: Socket
    arrivals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    # When the message.created of each message id arrived.
    created: dict[int, float] = field(default_factory=dict)

    async def run(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await self.sock.recv(timeout=3600)
                now = time.monotonic()
                self.arrivals.append((now, frame))
                if frame["type"] == "event" and frame["kind"] == "message.created":
                    self.created[frame["data"]["id"]] = now

    def latest_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, frame in self.public_vote_frames():
            counts |= frame["data"]["counts"]
        return counts

    def public_vote_frames(self) -> list[tuple[float, dict[str, Any]]]:
        return [(at, f) for at, f in self.arrivals
                if f["type"] == "event" and f["kind"] == "votes.updated" and "voted" not in f["data"]]


@contextlib.asynccontextmanager
async def reading(sockets: list[Socket]) -> AsyncIterator[list[Reader]]:
    readers = [Reader(sock) for sock in sockets]
    tasks = [asyncio.create_task(r.run()) for r in readers]
    try:
        yield readers
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def wait_for(predicate: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_one_public_event_is_encoded_once_per_audience_and_queued_per_connection(
    fapi: Api,
) -> None:
    meeting = await new_meeting(fapi)
    topic = await meeting.topic()
    author = await meeting.citizen("Author")
    citizens = [await meeting.citizen() for _ in range(40)]
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connect(fapi.server, meeting.id, c["token"]))
                   for c in citizens]
        for sock in sockets:
            assert (await sock.recv())["type"] == "snapshot"
        readers = await stack.enter_async_context(reading(sockets))

        before = await frame_counters(fapi)
        question = await meeting.post(author, "Who pays for the new bridge?", topic["id"])
        await wait_for(lambda: all(question["id"] in r.created for r in readers))
        encoded, queued = (a - b for a, b in zip(await frame_counters(fapi), before, strict=True))
        # Forty readers share one view of the question: one encoding, forty copies.
        assert queued == 40
        assert encoded == 1

        # The author and a moderator see it differently (mine / staff fields):
        # one more encoding for each of those audiences, not one per socket.
        sockets.append(await stack.enter_async_context(
            connect(fapi.server, meeting.id, author["token"])))
        sockets.append(await stack.enter_async_context(
            connect(fapi.server, meeting.id, meeting.moderator["token"])))
        for sock in sockets[-2:]:
            assert (await sock.recv())["type"] == "snapshot"
        readers += await stack.enter_async_context(reading(sockets[-2:]))
        before = await frame_counters(fapi)
        await meeting.run(meeting.moderator, "moderate", message_id=question["id"], action="pin")
        await wait_for(lambda: all(
            any(f.get("kind") == "message.updated" for _, f in r.arrivals) for r in readers))
        encoded, queued = (a - b for a, b in zip(await frame_counters(fapi), before, strict=True))
        assert queued == 42
        assert encoded == 3  # public, the author, staff


async def test_client_that_stops_reading_is_closed_with_4409_while_others_get_every_event_promptly(
    fapi: Api,
) -> None:
    meeting = await new_meeting(fapi, settings={"max_body": 5000})
    topic = await meeting.topic()
    laggard = await meeting.citizen("Laggard")
    citizen = await meeting.citizen()
    stuck = await tiny_window_socket(fapi.server, meeting.id, laggard["token"])
    closes_before = await scrape(fapi, "ting_socket_closes_total", '{code="4409"}')
    acked: dict[int, float] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            sockets = [
                await stack.enter_async_context(connect(fapi.server, meeting.id, token))
                for token in (citizen["token"], None, meeting.moderator["token"])
            ]
            readers = await stack.enter_async_context(reading(sockets))

            async def post(n: int) -> None:
                async def one() -> None:
                    message = await meeting.post(meeting.moderator, "Why? " * 900, topic["id"])
                    acked[message["id"]] = time.monotonic()
                await asyncio.gather(*(one() for _ in range(n)))

            # 4.5 KB posts until the server gives up on the stuck client
            # (its budget is 256 KiB).
            while await scrape(fapi, "ting_socket_closes_total", '{code="4409"}') == closes_before:
                assert len(acked) < 2000, "the stuck client was never dropped"
                await post(8)

            # When the stuck client reads at last, it finds what fitted in the
            # buffers and then the close frame: 4409 (resume with since).
            received = 0
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(stuck.recv(), 10)
                    received += 1
            assert stuck.close_code == 4409
            assert received < 2 + len(acked)  # welcome and snapshot, then not every post

            # The readers that keep up had every event, each soon after its ack.
            await post(8)
            await wait_for(lambda: all(r.created.keys() >= acked.keys() for r in readers), 10)
            for reader in readers:
                delays = [reader.created[m] - at for m, at in acked.items()]
                assert max(delays) < PROMPT, f"an event took {max(delays):.1f} s"
    finally:
        stuck.transport.abort()


async def test_vote_storm_reaches_each_client_as_a_few_count_frames_per_second_with_exact_totals(
    fapi: Api,
) -> None:
    meeting = await new_meeting(fapi)
    topic = await meeting.topic()
    questions = [(await meeting.post(meeting.moderator, f"Question {i}?", topic["id"]))["id"]
                 for i in range(4)]
    voters = [await meeting.citizen() for _ in range(24)]
    watchers = [await meeting.citizen() for _ in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        voter_socks = [await stack.enter_async_context(connect(fapi.server, meeting.id, v["token"]))
                       for v in voters]
        watcher_socks = [
            await stack.enter_async_context(connect(fapi.server, meeting.id, token))
            for token in [*(w["token"] for w in watchers), None]
        ]
        for sock in [*voter_socks, *watcher_socks]:
            assert (await sock.recv())["type"] == "snapshot"
        readers = await stack.enter_async_context(reading(watcher_socks))

        # Every voter flips its vote on every question, again and again,
        # without waiting for acks in between. Votes are a set: what counts
        # in the end is each voter's last value per question.
        rounds = 4
        plan = [[(q, (r + who + q) % 2) for r in range(rounds) for q in questions]
                for who in range(len(voters))]

        async def storm(sock: Socket, votes: list[tuple[int, int]]) -> None:
            for n, (q, value) in enumerate(votes):
                await sock.send({"type": "vote", "ref": f"v{n}", "message_id": q, "value": value})
            for n in range(len(votes)):
                reply = await sock.recv_until(lambda f, ref=f"v{n}": f.get("ref") == ref, 30)
                assert reply["type"] == "ack", reply

        started = time.monotonic()
        await asyncio.gather(*(storm(s, votes) for s, votes in zip(voter_socks, plan, strict=True)))
        storm_seconds = time.monotonic() - started
        expected = {str(q): sum(dict(votes)[q] for votes in plan) for q in questions}
        await wait_for(lambda: all(r.latest_counts() == expected for r in readers), 5)

    votes = sum(len(p) for p in plan)
    # One public frame per interval at most, and one more after the storm.
    allowed = storm_seconds / VOTE_INTERVAL + 2
    assert votes > 5 * allowed, "the storm was too slow to show anything"
    for reader in readers:
        frames = [at for at, _ in reader.public_vote_frames() if at >= started]
        assert len(frames) <= allowed, (len(frames), votes, storm_seconds)
    snapshot = await fapi.snapshot(meeting.id, meeting.moderator["token"])
    assert {str(m["id"]): m["votes"] for m in snapshot["messages"]
            if m["kind"] == "question"} == expected


async def test_in_a_burst_authors_get_their_post_with_its_ack_and_everyone_every_event_once(
    fapi: Api,
) -> None:
    # Posts sent back to back commit faster than the hub's batch window: their
    # events wait to go out together, except to their authors, who get what is
    # pending at once, ahead of the ack in the same write.
    meeting = await new_meeting(fapi)
    topic = await meeting.topic()
    authors = [await meeting.citizen(f"Author {i}") for i in range(4)]
    watcher = await meeting.citizen("Watcher")
    tokens = [a["token"] for a in authors] + [watcher["token"], meeting.moderator["token"]]
    per_author = 8
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(connect(fapi.server, meeting.id, token))
                   for token in tokens]
        for sock in sockets:
            assert (await sock.recv())["type"] == "snapshot"
        posting = sockets[: len(authors)]
        for n in range(per_author):
            # A few milliseconds apart: one commit each, all within the window.
            for i, sock in enumerate(posting):
                await sock.send({"type": "post", "ref": f"a{i}-{n}", "body": f"Post {n} of {i}",
                                 "parent_id": topic["id"], "client_id": client_id()})
            await asyncio.sleep(0.002)

        async def acks(sock: Socket) -> list[dict[str, Any]]:
            return [await sock.recv_until(lambda f: f["type"] in ("ack", "error"))
                    for _ in range(per_author)]

        replies = await asyncio.gather(*(acks(sock) for sock in posting))
        for sock, answered in zip(posting, replies, strict=True):
            for reply in answered:
                assert reply["type"] == "ack", reply
                mine = reply["result"]["message"]["id"]
                handled = sock.frames[: sock.frames.index(reply)]
                # Handled before the ack: the author's own post, in the thread.
                assert any(f["type"] == "event" and f["kind"] == "message.created"
                           and f["data"]["id"] == mine for f in handled), mine
        last = max(r["result"]["message"]["id"] for answered in replies for r in answered)

        def is_last(f: dict[str, Any]) -> bool:
            return f["type"] == "event" and f["kind"] == "message.created" and f["data"]["id"] == last

        for sock, token in zip(sockets, tokens, strict=True):
            if not any(is_last(f) for f in sock.frames):
                await sock.recv_until(is_last)
            live = [(f["seq"], f["kind"], f["data"]) for f in sock.events()]
            logged = (await fapi.events(meeting.id, 0, token=token))["events"]
            # Every event once, in order, as the log has it for this reader.
            assert live == [(e["seq"], e["kind"], e["data"]) for e in logged
                            if e["seq"] >= live[0][0]]
