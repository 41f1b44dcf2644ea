"""The read path's memory never serves what stopped being true.

Hellos are answered from caches (meetings, tokens, the public snapshot) and
resumes from the recent events the hub keeps. Each test first makes the
server remember something, then changes it, and checks that the very next
reader sees the change: a phase, the public flag, an erased person's token
and texts, a reader's own posts and votes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from tests.reducer import Follower, converge, following, mark
from tests.support import (
    ADMIN_TOKEN,
    Api,
    ApiError,
    Meeting,
    ServerProcess,
    connect,
    new_meeting,
)


async def refused(server: ServerProcess, meeting_id: str, token: str | None) -> int | None:
    """Say hello and return the close code it is refused with."""
    async with connect(server, meeting_id, token, hello=False) as sock:
        await sock.send({"type": "hello", "token": token, "since": None})
        with pytest.raises(ConnectionClosed):
            await sock.recv()
        return sock.close_code


async def set_phase(m: Meeting, phase: str) -> None:
    await m.run(m.moderator, "phase", phase=phase)


async def test_the_next_hello_after_a_phase_change_sees_the_new_phase(api: Api) -> None:
    m = await new_meeting(api, phase="draft")
    # The speaker's key opens a draft meeting, but not its socket yet.
    assert await refused(api.server, m.id, m.speaker["token"]) == 4403
    await set_phase(m, "open")
    async with connect(api.server, m.id, m.speaker["token"]) as sock:
        assert sock.welcome is not None and sock.welcome["role"] == "speaker"


async def test_a_viewer_is_refused_as_soon_as_the_meeting_stops_being_public(
    api: Api, meeting: Meeting
) -> None:
    async with connect(api.server, meeting.id, None) as sock:
        assert sock.welcome is not None and sock.welcome["role"] == "viewer"
    route = "/api/meetings/{id}"
    await api.request("PATCH", f"/api/meetings/{meeting.id}", token=ADMIN_TOKEN,
                      json={"settings": {"public": False}}, route=route)
    assert await refused(api.server, meeting.id, None) == 4401
    await api.request("PATCH", f"/api/meetings/{meeting.id}", token=ADMIN_TOKEN,
                      json={"settings": {"public": True}}, route=route)
    async with connect(api.server, meeting.id, None) as sock:
        assert sock.welcome is not None and sock.welcome["role"] == "viewer"


async def test_an_erased_persons_token_is_refused_right_after_it_was_used(
    api: Api, meeting: Meeting
) -> None:
    person = await meeting.citizen("Someone")
    # Used over HTTP and over a socket: the server now knows the token.
    await meeting.post(person, "Hello there")
    async with connect(api.server, meeting.id, person["token"]) as sock:
        await api.request("DELETE", f"/api/meetings/{meeting.id}/participants/"
                          f"{person['participant_id']}", token=ADMIN_TOKEN,
                          route="/api/meetings/{id}/participants/{participant_id}")
        with pytest.raises(ConnectionClosed):
            while True:
                await sock.recv()
        assert sock.close_code == 4401
    assert await refused(api.server, meeting.id, person["token"]) == 4401
    with pytest.raises(ApiError) as error:
        await meeting.post(person, "Still here?")
    assert error.value.code == "unauthorized"
    # Nobody else is affected.
    async with connect(api.server, meeting.id, meeting.speaker["token"]) as sock:
        assert sock.welcome is not None


async def test_a_resume_after_an_erasure_replays_the_rewritten_log(api: Api) -> None:
    m = await new_meeting(api, phase="live")
    person = await m.citizen("Erased Person")
    reader = await m.citizen("Reader")
    async with following(api.server, m.id, [m.moderator["token"], reader["token"], None]) as (
        stay, leave, viewer
    ):
        # One resume first, so that the server keeps the recent events.
        await leave.disconnect()
        await m.topic()
        assert (await leave.connect())["mode"] == "replay"
        before = await mark(api, m.id, [stay, leave, viewer])
        await leave.disconnect()
        question = await m.post(person, "A text that must go")
        await m.run(m.speaker, "answered", message_id=question["id"], state="answered_oral")
        await m.run(person, "vote", message_id=question["id"], value=1)
        # The public snapshot at this seq is encoded once and kept.
        shared = await api.snapshot(m.id)
        assert "A text that must go" in orjson.dumps(shared).decode()
        await api.request("DELETE", f"/api/meetings/{m.id}/participants/"
                          f"{person['participant_id']}", token=ADMIN_TOKEN,
                          route="/api/meetings/{id}/participants/{participant_id}")
        welcome = await leave.connect()
        assert welcome["mode"] == "replay"
        upto = await converge(api, m.id, [stay, leave, viewer])
    replayed = [e for e in leave.stream.events if before < e["seq"] <= upto]
    page = await api.events(m.id, before, token=reader["token"])
    assert replayed == [e for e in page["events"] if e["seq"] <= upto]
    for text in ("A text that must go", "Erased Person"):
        assert text not in orjson.dumps(replayed).decode()
        assert text not in orjson.dumps(await api.snapshot(m.id)).decode()
        assert text not in orjson.dumps(await api.snapshot(m.id, reader["token"])).decode()


async def test_readers_with_nothing_of_their_own_share_a_snapshot_and_the_others_do_not(
    api: Api,
) -> None:
    m = await new_meeting(api, settings={"moderation": "pre"})
    author, voter, quiet = [await m.citizen(n) for n in ("Author", "Voter", "Quiet")]
    topic = await m.topic()
    question = await m.post(m.moderator, "Open question", topic["id"])
    pending = await m.post(author, "Waiting for moderation", topic["id"])
    await m.run(voter, "vote", message_id=question["id"], value=1)
    await asyncio.sleep(0.3)  # the coalesced count is published
    # The quiet citizen's snapshot is the public one, kept for this seq.
    for_quiet = await api.snapshot(m.id, quiet["token"])
    for_viewer = await api.snapshot(m.id)
    for_author = await api.snapshot(m.id, author["token"])
    for_voter = await api.snapshot(m.id, voter["token"])
    assert for_quiet["seq"] == for_viewer["seq"] == for_author["seq"] == for_voter["seq"]
    assert for_quiet["messages"] == for_viewer["messages"]
    assert pending["id"] not in {msg["id"] for msg in for_quiet["messages"]}
    mine = {msg["id"]: msg for msg in for_author["messages"]}[pending["id"]]
    assert (mine["mine"], mine["status"]) == (True, "pending")
    assert [msg["voted"] for msg in for_voter["messages"] if msg["id"] == question["id"]] == [True]
    assert not any(msg["voted"] for msg in for_quiet["messages"])
    # The moment the quiet one votes, their snapshot is their own.
    await m.run(quiet, "vote", message_id=question["id"], value=1)
    again = await api.snapshot(m.id, quiet["token"])
    assert [msg["voted"] for msg in again["messages"] if msg["id"] == question["id"]] == [True]
    assert not any(msg["voted"] for msg in (await api.snapshot(m.id))["messages"])


async def test_a_crowd_says_hello_at_once_and_resumes_at_once_after_a_restart(
    make_server: Any, http_client: Any
) -> None:
    server: ServerProcess = make_server()
    api = Api(server, http_client)
    m = await new_meeting(api, phase="live")
    crowd = [await m.citizen() for _ in range(300)]
    await m.topic("Before")
    followers = [Follower(server, m.id, who["token"]) for who in crowd]
    welcomes = await asyncio.gather(*(f.connect() for f in followers))
    assert {w["mode"] for w in welcomes} == {"snapshot"}
    try:
        await mark(api, m.id, followers)
        server.kill()
        await asyncio.gather(*(f.disconnect() for f in followers))
        server.start()
        await m.topic("After")
        welcomes = await asyncio.gather(*(f.connect() for f in followers))
        assert {w["mode"] for w in welcomes} == {"replay"}
        await m.topic("Live again")
        upto = await converge(api, m.id, followers)
        for follower in followers:
            assert [e["data"]["body"] for e in follower.stream.events
                    if e["kind"] == "message.created"] == ["After", "Live again"]
            assert follower.stream.position == upto
    finally:
        await asyncio.gather(*(f.disconnect() for f in followers))
    assert not any("Traceback" in line for line in server.output)
