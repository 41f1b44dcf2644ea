"""Guarantee 5: retries are single.

A `post` repeated with the same `client_id` (one after another, at once over
several sockets and HTTP, or after a restart) is stored once and every reply
is the same ack with the same message; votes are a set, so a thousand copies
of one vote arriving together leave one vote.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.reducer import Follower, following
from tests.support import ADMIN_TOKEN, Api, Meeting, ServerProcess, client_id, connect, new_meeting


async def stored_with(api: Api, meeting_id: str, key: str) -> list[dict[str, Any]]:
    """The messages with this client_id, as staff see them."""
    snapshot = await api.snapshot(meeting_id, ADMIN_TOKEN)
    return [m for m in snapshot["messages"] if m["client_id"] == key]


async def created_events(api: Api, meeting_id: str, message_id: int) -> list[dict[str, Any]]:
    page = await api.events(meeting_id, 0, token=ADMIN_TOKEN)
    return [e for e in page["events"]
            if e["kind"] == "message.created" and e["data"]["id"] == message_id]


async def test_a_post_repeated_one_after_another_is_stored_once(api: Api,
                                                                 meeting: Meeting) -> None:
    citizen = await meeting.citizen("Ida")
    key = client_id()
    frame: dict[str, Any] = {"type": "post", "body": "Is the pool staying open?",
                             "parent_id": None, "client_id": key}
    async with following(api.server, meeting.id, [citizen["token"]]) as (reader,):
        replies = []
        for _ in range(3):
            replies.append(await reader.command(**frame))
            replies.append(await api.command(meeting.id, citizen["token"], **frame))
    messages = [r["result"]["message"] for r in replies]
    assert all(r["type"] == "ack" for r in replies)
    assert all(m == messages[0] for m in messages)
    [stored] = await stored_with(api, meeting.id, key)
    assert stored["id"] == messages[0]["id"]
    assert len(await created_events(api, meeting.id, stored["id"])) == 1


async def test_a_post_repeated_at_once_over_sockets_and_http_is_stored_once(
    api: Api, meeting: Meeting
) -> None:
    citizen = await meeting.citizen("Jon")
    key = client_id()
    frame: dict[str, Any] = {"type": "post", "body": "What about the bridge?",
                             "parent_id": None, "client_id": key}
    async with following(api.server, meeting.id, [citizen["token"]] * 4) as sockets:
        replies = await asyncio.gather(
            *(s.command(**frame) for s in sockets for _ in range(3)),
            *(api.command(meeting.id, citizen["token"], **frame) for _ in range(12)),
        )
    assert all(r["type"] == "ack" for r in replies)
    ids = {r["result"]["message"]["id"] for r in replies}
    assert len(ids) == 1
    [stored] = await stored_with(api, meeting.id, key)
    assert stored["id"] in ids
    assert len(await created_events(api, meeting.id, stored["id"])) == 1


async def test_the_same_client_id_from_two_people_makes_two_posts(api: Api,
                                                                 meeting: Meeting) -> None:
    """The key is per participant: one person's retry never swallows another's post."""
    ann, ben = await meeting.citizen("Ann"), await meeting.citizen("Ben")
    key = client_id()
    first, second = await asyncio.gather(
        *(api.command(meeting.id, who["token"], type="post", body="Same words",
                      parent_id=None, client_id=key) for who in (ann, ben))
    )
    assert first["result"]["message"]["id"] != second["result"]["message"]["id"]
    assert len(await stored_with(api, meeting.id, key)) == 2


async def test_a_post_retried_after_a_restart_returns_the_stored_message(
    make_server: Any, http_client: Any
) -> None:
    server: ServerProcess = make_server()
    api = Api(server, http_client)
    m = await new_meeting(api)
    citizen = await m.citizen("Kim")
    key = client_id()
    frame: dict[str, Any] = {"type": "post", "body": "Will the buses run at night?",
                             "parent_id": None, "client_id": key}
    before = await api.command(m.id, citizen["token"], **frame)
    server.kill()
    server.start()
    async with connect(server, m.id, citizen["token"]) as sock:
        over_socket = await sock.command(**frame)
    over_http = await api.command(m.id, citizen["token"], **frame)
    assert over_socket["result"] == before["result"] == over_http["result"]
    [stored] = await stored_with(api, m.id, key)
    assert stored["id"] == before["result"]["message"]["id"]
    assert len(await created_events(api, m.id, stored["id"])) == 1


async def test_a_thousand_duplicate_votes_at_once_leave_one_vote(api: Api,
                                                                 meeting: Meeting) -> None:
    voter = await meeting.citizen("Lea")
    other = await meeting.citizen("Mo")
    question = await meeting.post(other, "Should the market move?")
    vote = {"type": "vote", "message_id": question["id"], "value": 1}
    sockets_count, per_socket, over_http = 4, 125, 500

    async def pipelined(follower: Follower) -> list[dict[str, Any]]:
        return await asyncio.gather(*(follower.command(**vote, within=60)
                                      for _ in range(per_socket)))

    async with following(api.server, meeting.id, [voter["token"]] * sockets_count) as sockets:
        limit = asyncio.Semaphore(50)

        async def one_over_http() -> dict[str, Any]:
            async with limit:
                return await api.command(meeting.id, voter["token"], **vote)

        results = await asyncio.gather(
            *(pipelined(s) for s in sockets),
            *(one_over_http() for _ in range(over_http)),
        )
    replies = [r for group in results[:sockets_count] for r in group] + list(
        results[sockets_count:])
    assert len(replies) == 1000
    assert all(r["type"] == "ack" for r in replies), {r["type"] for r in replies}
    assert {orjson.dumps(r["result"]) for r in replies} == {
        orjson.dumps({"message_id": question["id"], "votes": 1, "voted": True})
    }
    # One personal event for the one change; the 999 others changed nothing.
    page = await api.events(meeting.id, 0, token=voter["token"])
    personal = [e for e in page["events"] if e["kind"] == "votes.updated" and "voted" in e["data"]]
    assert [e["data"] for e in personal] == [
        {"counts": {str(question["id"]): 1}, "voted": {str(question["id"]): True}}
    ]
    # And the published count settles at one.
    for _ in range(200):
        snapshot = await api.snapshot(meeting.id, voter["token"])
        [seen] = [m for m in snapshot["messages"] if m["id"] == question["id"]]
        if seen["votes"] == 1:
            break
        await asyncio.sleep(0.05)
    assert seen == seen | {"votes": 1, "voted": True}
    # Taking it back once takes it away, however many times it was given.
    undo = await api.command(meeting.id, voter["token"], type="vote",
                             message_id=question["id"], value=0)
    assert undo["result"] == {"message_id": question["id"], "votes": 0, "voted": False}
