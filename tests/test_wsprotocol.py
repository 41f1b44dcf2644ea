"""The socket's own protocol: a paused connection, a silent peer, and shutdown.

An idle connection has no writer task and no queue (see hub/subscriber.py);
these check that what does queue while a client is not reading still arrives
complete and in order, that a peer that stops reading and answering pings is
dropped, and that a server going down says 1001.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection

from tests import schemas
from tests.support import (
    Api,
    ServerProcess,
    client_id,
    connect,
    new_meeting,
    tiny_window_socket,
)

# 100 posts of 4.5 KB fill the client's small receive buffer, the kernel's
# send buffer and uvicorn's 64 KiB write buffer, so that the server meets a
# paused transport and queues; well under the default 2 MiB queue budget.
BODY = "Why? " * 900
POSTS = 100


async def _slow_reader(server: ServerProcess, meeting_id: str, token: str) -> ClientConnection:
    """A client with a tiny receive window, live (welcome and snapshot read),
    that reads on only when told to."""
    conn = await tiny_window_socket(server, meeting_id, token)
    for expected in ("welcome", "snapshot"):
        frame = orjson.loads(await asyncio.wait_for(conn.recv(), 10))
        assert frame["type"] == expected, frame
    return conn


def _created(frames: list[dict[str, Any]]) -> list[int]:
    return [
        f["data"]["id"] for f in frames if f["type"] == "event" and f["kind"] == "message.created"
    ]


async def _frames(conn: ClientConnection, until_ids: set[int]) -> list[dict[str, Any]]:
    """Frames as handled, batches unwrapped, until those ids were created."""
    frames: list[dict[str, Any]] = []
    while not until_ids <= set(_created(frames)):
        frame = orjson.loads(await asyncio.wait_for(conn.recv(), 10))
        # Also holds that batches do not nest.
        schemas.validate_server_frame(frame)
        frames.extend(frame["frames"] if frame["type"] == "batch" else [frame])
    return frames


async def test_events_queued_while_a_client_is_not_reading_arrive_complete_and_in_order(
    api: Api,
) -> None:
    meeting = await new_meeting(api, settings={"max_body": 5000})
    topic = await meeting.topic()
    citizen = await meeting.citizen()
    conn = await _slow_reader(api.server, meeting.id, citizen["token"])
    try:
        posted = [
            (await meeting.post(meeting.moderator, BODY, topic["id"]))["id"] for _ in range(POSTS)
        ]
        frames = await _frames(conn, set(posted))
        assert _created(frames) == posted
        seqs = [f["seq"] for f in frames if f["type"] == "event"]
        assert seqs == sorted(set(seqs))
        # Caught up, the connection is live again: the next event comes at once.
        later = (await meeting.post(meeting.moderator, "And now?", topic["id"]))["id"]
        assert _created(await _frames(conn, {later})) == [later]
    finally:
        await conn.close()


async def test_a_client_that_stops_reading_and_answering_pings_is_dropped(
    make_server: Any, http_client: Any
) -> None:
    # Pings every second, unanswered after one: the keepalive fails while
    # the client's buffers are full, when its connection can no longer finish
    # closing by itself. Its session must end all the same.
    server: ServerProcess = make_server(TING_WS_PING_INTERVAL="1", TING_WS_PING_TIMEOUT="1")
    api = Api(server, http_client)
    meeting = await new_meeting(api, settings={"max_body": 5000})
    topic = await meeting.topic()
    laggard = await meeting.citizen()
    conn = await _slow_reader(server, meeting.id, laggard["token"])
    try:
        for _ in range(30):
            await meeting.post(meeting.moderator, BODY, topic["id"])
        for _ in range(100):
            if await _gauge(api, "ting_connections") == 0:
                break
            await asyncio.sleep(0.1)
        assert await _gauge(api, "ting_connections") == 0
    finally:
        conn.transport.abort()


async def _gauge(api: Api, name: str) -> float:
    text = (await api.client.get(api.server.url + "/metrics")).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_server_shutdown_closes_every_socket_with_1001(
    make_server: Any, http_client: Any
) -> None:
    server: ServerProcess = make_server()
    meeting = await new_meeting(Api(server, http_client))
    citizen = await meeting.citizen()
    async with (
        connect(server, meeting.id, citizen["token"]) as member,
        connect(server, meeting.id, None) as viewer,
    ):
        await asyncio.to_thread(server.stop)
        for sock in (member, viewer):
            await asyncio.wait_for(sock.conn.wait_closed(), 10)
            assert sock.close_code == 1001


async def test_commands_sent_in_one_burst_are_all_answered_in_the_order_sent(api: Api) -> None:
    # They arrive many to a read: the socket stops being read while its
    # commands wait for the app, and reads on once they are taken.
    meeting = await new_meeting(api)
    topic = await meeting.topic()
    count = 200
    async with connect(api.server, meeting.id, meeting.moderator["token"]) as sock:
        for i in range(count):
            await sock.send(
                {
                    "type": "post",
                    "ref": f"burst-{i}",
                    "body": f"burst {i}",
                    "parent_id": topic["id"],
                    "client_id": client_id(),
                }
            )
        replies = [
            await sock.recv_until(lambda f: f["type"] in ("ack", "error"), timeout=20)
            for _ in range(count)
        ]
    assert [r["type"] for r in replies] == ["ack"] * count
    assert [r["ref"] for r in replies] == [f"burst-{i}" for i in range(count)]
    bodies = [r["result"]["message"]["body"] for r in replies]
    assert bodies == [f"burst {i}" for i in range(count)]
    ids = [r["result"]["message"]["id"] for r in replies]
    assert ids == sorted(ids) and len(set(ids)) == count
