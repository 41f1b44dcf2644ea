"""The load generator's client reads what a server sends as websockets would.

A link cuts the final text frames out of what it reads itself and hands every
other frame to websockets (bench/wsclient.py). A peer on a real TCP socket
sends a scripted stream split at random points: events of every length
encoding, pings, a fragmented message with a ping among its fragments, a
snapshot larger than a link waits for, and a close. The client must see every
event once and in order, answer every ping and close cleanly.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import hashlib
import itertools
import random
from typing import Any

import orjson
import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import SERVER, Protocol, State

from bench.wsclient import CUT_TAIL_BYTES, Client, Item, Pool

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=False, extensions=[])


def _event(seq: int, pad: int) -> bytes:
    return orjson.dumps(
        {"type": "event", "seq": seq, "kind": "meeting.updated", "data": {"pad": "x" * pad}}
    )


def _script(rng: random.Random) -> tuple[list[bytes], list[int], list[bytes]]:
    """The frames after the handshake, the seqs they carry and the pings' payloads."""
    frames = [_frame(Opcode.TEXT, orjson.dumps({"type": "welcome", "seq": 0, "mode": "snapshot"}))]
    # Larger than a link waits for: websockets takes it, and the link cuts again after.
    big = "y" * (CUT_TAIL_BYTES + 5000)
    snapshot = {"type": "snapshot", "seq": 0, "messages": [], "pad": big}
    frames.append(_frame(Opcode.TEXT, orjson.dumps(snapshot)))
    seqs: list[int] = []
    pings: list[bytes] = []
    for seq in range(1, 301):
        shape = rng.randrange(6)
        if shape == 0:
            # Starts like a text frame: a link must not take it for one when
            # a read ends inside this ping.
            ping = b"\x81\x02{}" + f"keepalive {seq}".encode()
            frames.append(_frame(Opcode.PING, ping))
            pings.append(ping)
        if shape == 1:
            frames.append(_frame(Opcode.TEXT, _event(seq, 400)))  # a 16-bit length
        elif shape == 2:
            frames.append(_frame(Opcode.TEXT, _event(seq, 70_000)))  # a 64-bit length
        elif shape == 3:
            data = _event(seq, 10)
            ping = f"amid fragments {seq}".encode()
            frames.append(_frame(Opcode.TEXT, data[:7], fin=False))
            frames.append(_frame(Opcode.PING, ping))
            frames.append(_frame(Opcode.CONT, data[7:20], fin=False))
            frames.append(_frame(Opcode.CONT, data[20:]))
            pings.append(ping)
        else:
            frames.append(_frame(Opcode.TEXT, _event(seq, 0)))
        seqs.append(seq)
    frames.append(_frame(Opcode.CLOSE, Close(1000, "done").serialize()))
    return frames, seqs, pings


class _Peer:
    """A server on a bare TCP socket: it answers the handshake, sends the
    stream in random pieces and reads the client's frames with websockets."""

    def __init__(self, frames: list[bytes], rng: random.Random) -> None:
        self.stream = b"".join(frames)
        # Where each frame ends: most writes end at one, as a server's do.
        self.ends = list(itertools.accumulate(len(f) for f in frames))
        self.rng = rng
        self.received: list[Frame] = []
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
        )
        parser = Protocol(SERVER, state=State.OPEN, max_size=None)
        reading = asyncio.create_task(self._read(reader, parser))
        pos = 0
        while pos < len(self.stream):
            if self.rng.random() < 0.6:
                after = bisect.bisect_right(self.ends, pos)
                stop = self.ends[min(after + self.rng.randrange(3), len(self.ends) - 1)]
            else:
                stop = pos + self.rng.choice((1, 2, 3, 9, 50, 300, 4000, 70_000))
            writer.write(self.stream[pos:stop])
            await writer.drain()
            pos = stop
            if self.rng.random() < 0.3:
                await asyncio.sleep(0.001)
        await asyncio.wait_for(reading, 10)
        writer.close()
        self.done.set()

    async def _read(self, reader: asyncio.StreamReader, parser: Protocol) -> None:
        while not any(f.opcode is Opcode.CLOSE for f in self.received):
            data = await reader.read(65536)
            if not data:
                return
            parser.receive_data(data)
            self.received.extend(e for e in parser.events_received() if isinstance(e, Frame))


@pytest.mark.parametrize("seed", range(4))
async def test_a_stream_split_anywhere_reaches_the_client_whole_and_in_order(seed: int) -> None:
    rng = random.Random(seed)
    frames, seqs, pings = _script(rng)
    peer = _Peer(frames, rng)
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Pool("127.0.0.1", port, "m")
    pool.auto_resume = False
    client = Client(pool, 0, None)
    seen: list[int] = []

    def on_event(_client: Client, item: tuple[Any, ...], _now: float) -> None:
        assert item[0] == Item.OTHER_EVENT
        seen.append(item[1])

    client.on_event = on_event
    try:
        await client.connect(limit=10)
        await asyncio.wait_for(peer.done.wait(), 20)
        # The peer closed TCP after the closing handshake; the client hears of it next.
        for _ in range(200):
            if client.link is None:
                break
            await asyncio.sleep(0.01)
    finally:
        server.close()
    assert seen == seqs
    assert client.order_errors == 0
    assert client.last_seq == seqs[-1]
    assert pool.close_codes == {1000: 1}
    pongs = [f.data for f in peer.received if f.opcode is Opcode.PONG]
    assert pongs == pings
    assert peer.received[-1].opcode is Opcode.CLOSE
    texts = [orjson.loads(f.data) for f in peer.received if f.opcode is Opcode.TEXT]
    assert [t["type"] for t in texts] == ["hello"]
