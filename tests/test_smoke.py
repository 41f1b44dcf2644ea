from __future__ import annotations

from tests.support import Api, Meeting, client_id, connect


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


async def test_pipelined_commands_are_acked_in_the_order_sent(api: Api, meeting: Meeting) -> None:
    citizen = await meeting.citizen()
    async with connect(api.server, meeting.id, citizen["token"]) as sock:
        await sock.recv()
        refs = [f"pipe-{i}" for i in range(12)]
        for i, ref in enumerate(refs):
            await sock.send({"type": "post", "ref": ref, "body": f"question {i}",
                             "parent_id": None, "client_id": client_id()})
        acks = []
        while len(acks) < len(refs):
            frame = await sock.recv(10)
            if frame["type"] in ("ack", "error"):
                acks.append(frame)
        assert [a["ref"] for a in acks] == refs
        assert all(a["type"] == "ack" for a in acks)
        bodies = [a["result"]["message"]["body"] for a in acks]
        assert bodies == [f"question {i}" for i in range(12)]
