from __future__ import annotations

from tests.support import Api, Meeting, connect


async def test_posted_question_reaches_another_citizen_live(api: Api, meeting: Meeting) -> None:
    alice = await meeting.citizen("Alice")
    bob = await meeting.citizen()
    topic = await meeting.topic("Schools")
    async with connect(api.server, meeting.id, bob["token"]) as sock:
        snapshot = await sock.recv()
        assert snapshot["type"] == "snapshot"
        assert [m["id"] for m in snapshot["messages"]] == [topic["id"]]
        question = await meeting.post(alice, "Why close the school?", topic["id"])
        event = await sock.recv_until(lambda f: f["type"] == "event")
        assert event["kind"] == "message.created"
        assert event["data"]["body"] == "Why close the school?"
        assert event["data"]["author"] == {"name": "Alice", "role": "citizen"}
        assert event["data"]["mine"] is False
        assert event["data"]["id"] == question["id"]
