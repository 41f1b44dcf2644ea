"""The socket's own protocol: a paused connection, a silent peer, shutdown, and frames.

An idle connection has no writer task and no queue (see hub/subscriber.py);
these check that what does queue while a client is not reading still arrives
complete and in order, that a peer that stops reading and answering pings is
dropped, that a server going down says 1001, and that the frames the server
cuts itself are handled exactly as websockets would: split anywhere, among
control frames and fragments.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import re
import socket
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import CLIENT, Protocol, State

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


# --- the server's own frame cutting (endpoints/wsprotocol.py, point 7) ------


class _RawClient:
    """A WebSocket client on a bare TCP socket: the test decides where the
    byte stream is split, and reads frames with websockets' own parser."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = Protocol(CLIENT, state=State.OPEN, max_size=None)

    @classmethod
    async def open(cls, server: ServerProcess, meeting_id: str) -> _RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws/meetings/{meeting_id} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def frame(self, opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
        return Frame(opcode, data, fin=fin).serialize(mask=True, extensions=[])

    def text(self, obj: Any) -> bytes:
        return self.frame(Opcode.TEXT, orjson.dumps(obj))

    async def send_split(self, stream: bytes, rng: random.Random) -> None:
        """The stream in pieces of 1 to 300 bytes, each its own TCP segment."""
        pos = 0
        while pos < len(stream):
            step = rng.randint(1, 300)
            self.writer.write(stream[pos : pos + step])
            await self.writer.drain()
            pos += step
            await asyncio.sleep(0.001)

    async def frames(self, count: int) -> list[Frame]:
        got: list[Frame] = []
        while len(got) < count:
            data = await asyncio.wait_for(self.reader.read(65536), 10)
            if not data:
                break
            self.parser.receive_data(data)
            got.extend(e for e in self.parser.events_received() if isinstance(e, Frame))
        return got

    def close(self) -> None:
        self.writer.close()


async def test_frames_split_anywhere_and_mixed_with_control_frames_are_handled_in_order(
    api: Api,
) -> None:
    meeting = await new_meeting(api)
    rng = random.Random(4)
    client = await _RawClient.open(api.server, meeting.id)
    try:
        client.writer.write(client.text({"type": "hello", "token": None, "since": None}))
        welcome, snapshot = await client.frames(2)
        assert orjson.loads(welcome.data)["type"] == "welcome"
        assert orjson.loads(snapshot.data)["type"] == "snapshot"
        stream = b""
        expected: list[tuple[str, str]] = []
        pings = 0
        for i in range(120):
            ref = f"r{i}"
            shape = i % 6
            if shape == 0:
                # A ping control frame between two commands.
                stream += client.frame(Opcode.PING, f"keepalive {i}".encode())
                pings += 1
            if shape == 1:
                # Over 125 bytes: a 16-bit length.
                stream += client.text({"type": "ping", "ref": ref, "pad": "x" * 400})
                expected.append(("pong", ref))
            elif shape == 2:
                # A viewer may not post: an error, with its ref.
                stream += client.text({"type": "post", "ref": ref, "body": "?"})
                expected.append(("error", ref))
            elif shape == 3:
                # One message in three fragments, a ping control frame among them.
                data = orjson.dumps({"type": "ping", "ref": ref})
                stream += client.frame(Opcode.TEXT, data[:5], fin=False)
                stream += client.frame(Opcode.PING, b"amid fragments")
                stream += client.frame(Opcode.CONT, data[5:9], fin=False)
                stream += client.frame(Opcode.CONT, data[9:])
                pings += 1
                expected.append(("pong", ref))
            elif shape == 4:
                stream += client.frame(Opcode.TEXT, b"{not json")
                expected.append(("error", None))  # malformed: no ref to echo
            else:
                stream += client.text({"type": "ping", "ref": ref})
                expected.append(("pong", ref))
        await client.send_split(stream, rng)
        frames = await client.frames(len(expected) + pings)
    finally:
        client.close()
    texts = [orjson.loads(f.data) for f in frames if f.opcode is Opcode.TEXT]
    texts = [t for t in texts if t["type"] in ("pong", "error")]
    assert [(t["type"], t.get("ref")) for t in texts] == expected
    for t in texts:
        schemas.validate_server_frame(t)
    control = [f for f in frames if f.opcode is Opcode.PONG]
    assert len(control) == pings


async def test_a_bad_utf8_frame_after_good_ones_closes_with_1007_after_answering_them(
    api: Api,
) -> None:
    meeting = await new_meeting(api)
    client = await _RawClient.open(api.server, meeting.id)
    try:
        client.writer.write(client.text({"type": "hello", "token": None, "since": None}))
        await client.frames(2)
        stream = b"".join(client.text({"type": "ping", "ref": f"ok{i}"}) for i in range(3))
        stream += client.frame(Opcode.TEXT, b'{"type": "ping", "ref": "\xff"}')
        stream += client.text({"type": "ping", "ref": "after"})
        client.writer.write(stream)
        frames = await client.frames(4)
    finally:
        client.close()
    texts = [orjson.loads(f.data) for f in frames if f.opcode is Opcode.TEXT]
    assert [t["ref"] for t in texts] == ["ok0", "ok1", "ok2"]
    closes = [f for f in frames if f.opcode is Opcode.CLOSE]
    assert closes and Close.parse(closes[0].data).code == 1007
