"""Guarantee 3: a resume is exact (the missed events, none lost, none repeated)
or explicit (a snapshot), never a partial replay presented as complete.

The property test at the end drives random interleavings of commands by
several people together with disconnects and resumes, and holds every
reader's rebuilt state to a fresh snapshot of the same token.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reducer import Follower, converge, following, mark
from tests.support import (
    ADMIN_TOKEN,
    Api,
    ApiError,
    Meeting,
    ServerProcess,
    client_id,
    connect,
    new_meeting,
)


async def replay_of(api: Api, follower: Follower, since: int, upto: int) -> list[dict[str, Any]]:
    page = await api.events(follower.meeting_id, since, token=follower.token)
    assert not page["more"]
    return [e for e in page["events"] if e["seq"] <= upto]


def received(follower: Follower, upto: int) -> list[dict[str, Any]]:
    """The events the follower got up to `upto` (the socket may have more)."""
    return [e for e in follower.stream.events if e["seq"] <= upto]


async def moderated_meeting(api: Api) -> tuple[Meeting, dict[str, Any], dict[str, Any]]:
    m = await new_meeting(api, phase="live", settings={"moderation": "pre"})
    return m, await m.citizen("Alice"), await m.citizen("Bob")


async def miss_some_events(m: Meeting, alice: dict[str, Any], bob: dict[str, Any]) -> None:
    """What happens while the readers are away: something for every audience."""
    topic = await m.topic("Parking")
    shown = await m.post(alice, "Will the square stay free of cars?", topic["id"])
    hidden_to_others = await m.post(alice, "Awaiting moderation", topic["id"])
    refused = await m.post(bob, "Refused", topic["id"])
    await m.run(m.moderator, "moderate", message_id=shown["id"], action="approve")
    await m.run(m.moderator, "moderate", message_id=refused["id"], action="reject")
    await m.run(bob, "vote", message_id=shown["id"], value=1)
    await m.post(m.speaker, "Yes, from May.", shown["id"])
    await m.run(m.moderator, "spotlight", message_id=shown["id"])
    await m.run(alice, "withdraw", message_id=hidden_to_others["id"])


async def test_resume_replays_exactly_the_missed_events_each_role_may_see(api: Api) -> None:
    m, alice, bob = await moderated_meeting(api)
    tokens = [m.moderator["token"], ADMIN_TOKEN, m.speaker["token"], alice["token"],
              bob["token"], None]
    # Twins: one reader per token stays connected throughout, the other
    # leaves and resumes. The resumed one must get what the twin got live.
    async with (
        following(api.server, m.id, tokens) as stay,
        following(api.server, m.id, tokens) as leave,
    ):
        await m.topic("Before")
        before = await mark(api, m.id, stay + leave)
        for follower in leave:
            await follower.disconnect()
        await miss_some_events(m, alice, bob)
        for follower in leave:
            welcome = await follower.connect()
            assert welcome["mode"] == "replay"
            assert welcome["seq"] > before
        upto = await converge(api, m.id, stay + leave)

    for twin, resumed in zip(stay, leave, strict=True):
        missed = [e for e in twin.stream.events if before < e["seq"] <= upto]
        got = [e for e in resumed.stream.events if before < e["seq"] <= upto]
        assert got == missed, resumed.who
        assert got == await replay_of(api, resumed, before, upto)
    # What one missed depends on who one is: staff, the author of the pending
    # posts, the author of the rejected one, and everybody else (the speaker
    # and the viewer) each got a different replay.
    replays = {tuple(e["seq"] for e in r.stream.events if before < e["seq"] < upto)
               for r in leave}
    assert len(replays) == 4


async def test_resume_with_nothing_missed_replays_nothing(api: Api) -> None:
    m, alice, _ = await moderated_meeting(api)
    async with following(api.server, m.id, [alice["token"]]) as (reader,):
        await m.topic()
        at = await mark(api, m.id, [reader])
        await reader.disconnect()
        # Events alice may not see happen meanwhile: they leave a gap, no frame.
        other = await m.citizen()
        await m.post(other, "Pending, not for alice")
        welcome = await reader.connect()
        assert welcome["mode"] == "replay"
        assert welcome["seq"] > at
        count = len(reader.stream.events)
        upto = await mark(api, m.id, [reader])
        assert [e["seq"] for e in received(reader, upto)[count:]] == [upto]


async def test_resume_after_a_restart_loses_and_repeats_nothing(make_server: Any,
                                                               http_client: Any) -> None:
    server: ServerProcess = make_server()
    api = Api(server, http_client)
    m, alice, bob = await moderated_meeting(api)
    tokens = [m.moderator["token"], alice["token"], bob["token"], None]
    async with following(server, m.id, tokens) as readers:
        await m.topic("Before the restart")
        before = await mark(api, m.id, readers)
        await miss_some_events(m, alice, bob)
        # SIGKILL: whatever the readers had not received yet is lost on the
        # wire; the acknowledged commands are in the database.
        server.kill()
        for follower in readers:
            await follower.disconnect()
        server.start()
        for follower in readers:
            welcome = await follower.connect()
            assert welcome["mode"] == "replay"
        await m.post(alice, "After the restart")
        upto = await converge(api, m.id, readers)

    for follower in readers:
        got = [e for e in follower.stream.events if before < e["seq"] <= upto]
        assert got == await replay_of(api, follower, before, upto), follower.who


async def test_resumes_and_first_connects_amid_a_stream_of_commands_lose_and_repeat_nothing(
    api: Api, meeting: Meeting
) -> None:
    """Events committed while a connection reads its replay or snapshot are
    held and sent after it: none may fall between the two, none come twice."""
    posters = [await meeting.citizen(f"Poster {i}") for i in range(3)]
    resumer = Follower(api.server, meeting.id, meeting.moderator["token"])
    newcomers: list[Follower] = []
    stop = asyncio.Event()

    async def keep_posting(who: dict[str, Any]) -> None:
        while not stop.is_set():
            await meeting.post(who, "Another one")

    await resumer.connect()
    streams = [asyncio.create_task(keep_posting(who)) for who in posters]
    try:
        for i in range(12):
            await resumer.wait_for((resumer.stream.position or 0) + 1)
            await resumer.disconnect()
            assert (await resumer.connect())["mode"] == "replay"
            if i % 3 == 0:
                newcomer = Follower(api.server, meeting.id, posters[0]["token"])
                newcomers.append(newcomer)
                assert (await newcomer.connect())["mode"] == "snapshot"
        stop.set()
        await asyncio.gather(*streams)
        upto = await converge(api, meeting.id, [resumer, *newcomers])
    finally:
        stop.set()
        await asyncio.gather(*streams, return_exceptions=True)
        for follower in (resumer, *newcomers):
            await follower.disconnect()
    for follower in (resumer, *newcomers):
        page = await api.events(meeting.id, follower.first_seq, token=follower.token)
        assert [e for e in page["events"] if e["seq"] <= upto] == received(follower, upto)


async def test_since_ahead_of_the_log_gets_an_explicit_snapshot(api: Api,
                                                                meeting: Meeting) -> None:
    citizen = await meeting.citizen()
    await meeting.topic()
    last = (await api.snapshot(meeting.id, citizen["token"]))["seq"]
    # A client that remembers a future: a since this server never reached.
    async with connect(api.server, meeting.id, citizen["token"], since=last + 50) as sock:
        assert sock.welcome is not None
        assert sock.welcome["mode"] == "snapshot"
        assert sock.welcome["seq"] == last
        snapshot = await sock.recv()
        assert snapshot["type"] == "snapshot"
        assert snapshot["seq"] == last
        assert [m["kind"] for m in snapshot["messages"]] == ["topic"]
    with_events = await api.request(
        "GET", f"/api/meetings/{meeting.id}/events?since={last + 50}", token=citizen["token"],
        route="/api/meetings/{id}/events", expect=409)
    assert with_events["error"]["code"] == "conflict"


async def test_since_further_back_than_the_replay_limit_gets_an_explicit_snapshot(
    make_server: Any, http_client: Any
) -> None:
    server: ServerProcess = make_server(TING_REPLAY_LIMIT="5")
    api = Api(server, http_client)
    m = await new_meeting(api)
    async with following(server, m.id, [m.moderator["token"]]) as (reader,):
        first = reader.stream.position
        assert first is not None
        await reader.disconnect()
        for i in range(6):
            await m.topic(f"Topic {i}")
        welcome = await reader.connect()
        assert welcome["mode"] == "snapshot"
        assert welcome["seq"] - first > 5
        await reader.wait_for(welcome["seq"])
        [snapshot] = [item for item in reader.stream.items if item["type"] == "snapshot"][1:]
        assert snapshot["seq"] == welcome["seq"]
        assert len(snapshot["messages"]) == 6


async def test_since_older_than_the_kept_events_gets_an_explicit_snapshot(
    make_server: Any, http_client: Any
) -> None:
    retention = 10_000
    server: ServerProcess = make_server(TING_EVENT_RETENTION=str(retention))
    api = Api(server, http_client)
    m = await new_meeting(api)
    async with following(server, m.id, [m.moderator["token"]]) as (reader,):
        await reader.disconnect()
        since = reader.stream.position
        assert since is not None
        await fill_the_log(api, m, since + retention + 100)
        # Pruning is housekeeping that runs every few seconds: wait for it.
        for _ in range(400):
            try:
                await api.events(m.id, since, token=m.moderator["token"], limit=1)
            except ApiError as exc:
                assert exc.code == "conflict"
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the events before the kept ones are still replayed")
        welcome = await reader.connect()
        assert welcome["mode"] == "snapshot"
        last = welcome["seq"]
        await reader.wait_for(last)
        [snapshot] = [item for item in reader.stream.items if item["type"] == "snapshot"][1:]
        assert snapshot["seq"] == last
    # The last `retention` events are kept: from there, a replay is served.
    assert last - since > retention
    kept = await api.events(m.id, last - retention, token=m.moderator["token"], limit=1)
    assert kept["seq"] == last - retention + 1


async def fill_the_log(api: Api, m: Meeting, upto: int) -> None:
    """Commit events until the meeting's log passes seq `upto`, cheaply.

    A merge sends every person whose vote moved a personal event. So many
    people vote on one question once, and then it is merged into a new
    question, that one into the next, and so on: each merge moves all the
    votes again, two commands for a couple of hundred events.
    """
    voters = await asyncio.gather(*(m.citizen() for _ in range(300)))
    question = await m.post(m.moderator, "Merged on and on")
    await asyncio.gather(*(m.run(v, "vote", message_id=question["id"], value=1) for v in voters))
    reached = (await api.snapshot(m.id, ADMIN_TOKEN))["seq"]
    while reached <= upto:
        into = await m.post(m.moderator, "Merged on and on")
        await m.run(m.moderator, "merge", message_id=question["id"], into=into["id"])
        question = into
        # The post, then the merge: the merged question's update, the
        # published counts and one personal event per moved vote.
        reached += 1 + 2 + len(voters)


async def test_vote_counts_of_a_hidden_question_keep_every_reader_in_step(api: Api,
                                                                          meeting: Meeting) -> None:
    """Everybody sees a hidden question's placeholder with its votes, so
    everybody must hear when those votes change (or its snapshot would
    contradict what it was told)."""
    ann, ben = await meeting.citizen("Ann"), await meeting.citizen("Ben")
    question = await meeting.post(ann, "Can the library open on Sundays?")
    tokens = [ann["token"], ben["token"], meeting.speaker["token"], None]
    async with following(api.server, meeting.id, tokens) as readers:
        await meeting.run(ben, "vote", message_id=question["id"], value=1)
        await meeting.run(meeting.speaker, "vote", message_id=question["id"], value=1)
        for reader in readers:  # the public count has reached everybody
            await wait_until(lambda r=reader: r.stream.state_at(r.stream.position or 0)
                             .messages[question["id"]]["votes"] == 2)
        await meeting.run(meeting.moderator, "moderate", message_id=question["id"],
                          action="hide")
        await meeting.run(ben, "vote", message_id=question["id"], value=0)
        await converge(api, meeting.id, readers)
    viewer = await api.snapshot(meeting.id)
    assert [m["votes"] for m in viewer["messages"] if m["id"] == question["id"]] == [1]


async def wait_until(condition: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# --- the property -------------------------------------------------------------

ACTIONS = ("approve", "reject", "hide", "restore", "pin", "unpin")
ANSWERED = ("unanswered", "answered_written", "answered_oral")
# Refusals are part of the game (a vote on a hidden question, a reply to a
# topic...), but only these: anything else is a failure.
EXPECTED_REFUSALS = {"conflict", "forbidden", "closed", "not_found", "invalid"}

# People: 0 moderator, 1 speaker, 2-4 citizens. Readers add 5, a viewer.
PEOPLE = 5
READERS = 6

step = st.one_of(
    st.tuples(st.just("post"), st.integers(0, PEOPLE - 1), st.integers(0, 30),
              st.integers(0, 3)),
    st.tuples(st.sampled_from(["vote", "unvote"]), st.integers(1, PEOPLE - 1),
              st.integers(0, 30), st.just(0)),
    st.tuples(st.just("moderate"), st.just(0), st.integers(0, 30),
              st.integers(0, len(ACTIONS) - 1)),
    st.tuples(st.just("withdraw"), st.integers(0, PEOPLE - 1), st.integers(0, 30), st.just(0)),
    st.tuples(st.just("merge"), st.just(0), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.just("spotlight"), st.just(0), st.integers(0, 30), st.integers(0, 4)),
    st.tuples(st.just("answered"), st.integers(0, 1), st.integers(0, 30),
              st.integers(0, len(ANSWERED) - 1)),
    st.tuples(st.just("phase"), st.just(0), st.just(0), st.integers(0, 1)),
    st.tuples(st.sampled_from(["disconnect", "reconnect"]), st.just(0),
              st.integers(0, READERS - 1), st.just(0)),
)


Step = tuple[str, int, int, int]


@dataclass
class World:
    """The meeting under test and what the test knows of it."""

    api: Api
    meeting: Meeting
    people: list[dict[str, Any]]
    readers: list[Follower]
    ids: list[int]

    def pick(self, n: int) -> int:
        return self.ids[n % len(self.ids)]

    async def send(self, who: int, type: str, **fields: Any) -> dict[str, Any] | None:
        """Over the person's socket when it is connected, else over HTTP."""
        reader = self.readers[who]
        if reader.connected:
            reply = await reader.command(type, **fields)
            if reply["type"] == "error":
                assert reply["code"] in EXPECTED_REFUSALS, reply
                return None
            return reply["result"]  # type: ignore[no-any-return]
        try:
            ack = await self.api.command(self.meeting.id, self.people[who]["token"],
                                         type=type, **fields)
        except ApiError as exc:
            assert exc.code in EXPECTED_REFUSALS, exc.body
            return None
        return ack["result"]  # type: ignore[no-any-return]

    async def play(self, name: str, who: int, a: int, b: int) -> None:
        if name == "post":
            parent = None if a % 4 == 0 else self.pick(a)
            fields: dict[str, Any] = {"body": f"Post {len(self.ids)}", "parent_id": parent,
                                      "client_id": client_id()}
            if who == 0 and b == 0:
                fields |= {"kind": "topic", "parent_id": None}
            result = await self.send(who, "post", **fields)
            if result is not None:
                self.ids.append(result["message"]["id"])
        elif name in ("vote", "unvote"):
            await self.send(who, "vote", message_id=self.pick(a), value=int(name == "vote"))
        elif name == "moderate":
            await self.send(0, "moderate", message_id=self.pick(a), action=ACTIONS[b],
                            reason="Because")
        elif name == "withdraw":
            await self.send(who, "withdraw", message_id=self.pick(a))
        elif name == "merge":
            await self.send(0, "merge", message_id=self.pick(a), into=self.pick(b))
        elif name == "spotlight":
            await self.send(0, "spotlight", message_id=None if b == 0 else self.pick(a))
        elif name == "answered":
            await self.send(who, "answered", message_id=self.pick(a), state=ANSWERED[b])
        elif name == "phase":
            await self.send(0, "phase", phase=("live", "open")[b])
        elif name == "disconnect":
            await self.readers[a].disconnect()
        elif name == "reconnect" and not self.readers[a].connected:
            welcome = await self.readers[a].connect()
            assert welcome["mode"] == "replay", welcome

    async def play_all(self, steps: list[tuple[Step, bool]]) -> None:
        """Play the steps; a step marked `together` runs at once with the one before.

        A disconnect always runs alone (it would cut the replies to commands
        in flight on its socket); a reconnect may run amid commands, which is
        where a resume could lose or repeat an event.
        """
        groups: list[list[Step]] = []
        for one, together in steps:
            alone = one[0] == "disconnect"
            if together and not alone and groups and groups[-1][0][0] != "disconnect":
                if one[0] == "reconnect" and one in groups[-1]:
                    continue  # one follower connects once at a time
                groups[-1].append(one)
            else:
                groups.append([one])
        for group in groups:
            await asyncio.gather(*(self.play(*one) for one in group))


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(step, st.booleans()), min_size=5, max_size=30))
async def test_every_reader_rebuilds_a_fresh_snapshot_whatever_happens(
    api: Api, steps: list[tuple[Step, bool]]
) -> None:
    m = await new_meeting(api, phase="live", settings={"moderation": "pre"})
    citizens = [await m.citizen(name) for name in ("Ann", "Ben", None)]
    people = [m.moderator, m.speaker, *citizens]
    tokens: list[str | None] = [p["token"] for p in people] + [None]
    topic = await m.topic("Housing")
    question = await m.post(citizens[0], "How many new homes?", topic["id"])
    await m.run(m.moderator, "moderate", message_id=question["id"], action="approve")
    async with following(api.server, m.id, tokens) as readers:
        world = World(api, m, people, readers, [topic["id"], question["id"]])
        await world.play_all(steps)
        for reader in readers:
            if not reader.connected:
                assert (await reader.connect())["mode"] == "replay"
        upto = await converge(api, m.id, readers)
    for reader in readers:
        page = await api.events(m.id, reader.first_seq, token=reader.token)
        assert [e for e in page["events"] if e["seq"] <= upto] == received(reader, upto)
