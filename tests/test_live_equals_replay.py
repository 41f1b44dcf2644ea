"""Guarantee 4: for one token, the events streamed live are `GET /events?since=`.

Readers of every kind follow a pre-moderated meeting live while its
participants post, moderate, vote, merge, answer and move the spotlight, some
of it at once. Afterwards each reader's live stream, from the `seq` of its
welcome up to a marker, must be exactly what `GET /events?since=<welcome
seq>` answers for the same token: the same events, the same data, in the same
order. The stream is also replayed into a state that must equal a fresh
snapshot, so that the comparison cannot pass on two equally wrong streams.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.reducer import Follower, converge, following
from tests.support import ADMIN_TOKEN, Api, Meeting, client_id, new_meeting


async def replayed(api: Api, follower: Follower, upto: int) -> list[dict[str, Any]]:
    """`GET /events` from the follower's first welcome up to `upto`, page by page."""
    events: list[dict[str, Any]] = []
    since = follower.first_seq
    while True:
        page = await api.events(follower.meeting_id, since, token=follower.token, limit=7)
        events.extend(page["events"])
        if not page["more"]:
            break
        since = page["seq"]
    return [e for e in events if e["seq"] <= upto]


def streamed(follower: Follower, upto: int) -> list[dict[str, Any]]:
    return [e for e in follower.stream.events if e["seq"] <= upto]


def messages_about(events: list[dict[str, Any]], message_id: int) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"].startswith("message.") and e["data"]["id"] == message_id]


async def busy_meeting(api: Api, m: Meeting, alice: dict[str, Any], bob: dict[str, Any],
                       carl: dict[str, Any]) -> dict[str, int]:
    """A little of everything, some of it concurrent; returns the ids it made."""
    topic = await m.topic("Traffic")
    q1 = await m.post(alice, "Why no cycle lane?", topic["id"])
    q2 = await m.post(bob, "Who pays for it?", topic["id"])
    pending = await m.post(alice, "Still waiting for moderation", topic["id"])
    await m.run(m.moderator, "moderate", message_id=q1["id"], action="approve")
    await m.run(m.moderator, "moderate", message_id=q2["id"], action="reject",
                reason="Off topic")
    comment = await m.post(bob, "Agreed", q1["id"])
    await m.run(m.moderator, "moderate", message_id=comment["id"], action="approve")
    # Votes from several people at once: personal events at once, public
    # counts coalesced.
    await asyncio.gather(*(m.run(who, "vote", message_id=q1["id"], value=1)
                           for who in (alice, bob, carl, m.speaker)))
    q3 = await m.post(carl, "Why not a bus lane instead?", topic["id"])
    await m.run(m.moderator, "moderate", message_id=q3["id"], action="approve")
    await asyncio.gather(m.run(bob, "vote", message_id=q3["id"], value=1),
                         m.run(carl, "vote", message_id=q3["id"], value=1),
                         m.run(alice, "vote", message_id=q1["id"], value=0))
    await m.run(m.moderator, "merge", message_id=q3["id"], into=q1["id"])
    answer = await m.post(m.speaker, "It is in next year's plan.", q1["id"])
    await m.run(m.moderator, "moderate", message_id=comment["id"], action="hide",
                reason="Rude")
    await m.run(m.moderator, "moderate", message_id=q1["id"], action="pin")
    await m.run(m.moderator, "spotlight", message_id=q1["id"])
    await m.run(m.moderator, "phase", phase="open")  # clears the spotlight
    await m.run(m.moderator, "phase", phase="live")
    await m.run(m.moderator, "moderate", message_id=comment["id"], action="restore")
    await m.run(alice, "withdraw", message_id=pending["id"])
    return {"topic": topic["id"], "q1": q1["id"], "q2": q2["id"], "pending": pending["id"],
            "comment": comment["id"], "q3": q3["id"], "answer": answer["id"]}


async def test_live_events_equal_replayed_events_for_every_kind_of_reader(api: Api) -> None:
    m = await new_meeting(api, phase="live", settings={"moderation": "pre"})
    alice, bob, carl = [await m.citizen(name) for name in ("Alice", "Bob", "Carl")]
    readers = {
        "moderator": m.moderator["token"],
        "organiser": ADMIN_TOKEN,
        "speaker": m.speaker["token"],
        "alice": alice["token"],
        "bob": bob["token"],
        "viewer": None,
    }
    async with following(api.server, m.id, list(readers.values())) as connected:
        followers = dict(zip(readers, connected, strict=True))
        ids = await busy_meeting(api, m, alice, bob, carl)
        upto = await converge(api, m.id, connected)

    for name, follower in followers.items():
        assert streamed(follower, upto) == await replayed(api, follower, upto), name

    # The streams differ by reader, so equality above says something: the
    # author saw her question while it was pending, others did not.
    alice_q1 = messages_about(streamed(followers["alice"], upto), ids["q1"])
    assert alice_q1[0]["kind"] == "message.created"
    assert alice_q1[0]["data"]["status"] == "pending"
    for name in ("bob", "speaker", "viewer"):
        about = messages_about(streamed(followers[name], upto), ids["q1"])
        assert about[0]["kind"] == "message.updated", name
        assert about[0]["data"]["status"] == "visible", name
        # A post withdrawn before approval is never seen pending, only as
        # the withdrawn placeholder that keeps its place in the tree.
        about = messages_about(streamed(followers[name], upto), ids["pending"])
        assert [(e["data"]["status"], e["data"]["body"]) for e in about] == [("withdrawn", "")]
    assert messages_about(streamed(followers["bob"], upto), ids["q2"])[-1]["data"]["reason"] == (
        "Off topic"
    )
    assert messages_about(streamed(followers["alice"], upto), ids["q2"]) == []
    for name in ("moderator", "organiser"):
        about = messages_about(streamed(followers[name], upto), ids["pending"])
        assert [e["data"]["status"] for e in about] == ["pending", "withdrawn"], name
    personal = [e for e in streamed(followers["bob"], upto)
                if e["kind"] == "votes.updated" and "voted" in e["data"]]
    # Bob backed both questions, so the merge only takes back his vote on q3.
    assert [e["data"]["voted"] for e in personal] == [
        {str(ids["q1"]): True}, {str(ids["q3"]): True}, {str(ids["q3"]): False}
    ]


async def test_a_citizens_pending_posts_stream_live_only_to_them_and_staff_as_replayed(
    api: Api,
) -> None:
    m = await new_meeting(api, settings={"moderation": "pre"})
    author = await m.citizen("Dana")
    other = await m.citizen("Eli")
    topic = await m.topic()
    tokens = [author["token"], other["token"], m.moderator["token"], None]
    async with following(api.server, m.id, tokens) as followers:
        # Posts over the author's own socket and over HTTP, at once.
        via_socket = [followers[0].command("post", body=f"Socket {i}", parent_id=topic["id"],
                                           client_id=client_id()) for i in range(5)]
        via_http = [m.post(author, f"HTTP {i}", topic["id"]) for i in range(5)]
        replies, posted = await asyncio.gather(asyncio.gather(*via_socket),
                                               asyncio.gather(*via_http))
        assert all(r["type"] == "ack" for r in replies)
        upto = await converge(api, m.id, followers)
    pending_ids = {r["result"]["message"]["id"] for r in replies} | {p["id"] for p in posted}

    for follower in followers:
        assert streamed(follower, upto) == await replayed(api, follower, upto)
    seen = [{e["data"]["id"] for e in streamed(f, upto) if e["kind"] == "message.created"}
            for f in followers]
    assert seen[0] == pending_ids  # the author
    assert seen[1] == set()  # another citizen
    assert seen[2] == pending_ids  # staff
    assert seen[3] == set()  # a viewer without token
