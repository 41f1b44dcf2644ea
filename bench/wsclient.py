"""A protocol v1 client for load generation: hello, snapshot, events, commands, resume.

Each socket is an asyncio Protocol driving the `websockets` sans-I/O client
(handshake, framing, masking, ping replies, closing handshake), with no task
per connection: a frame is handled in the callback that reads it. That keeps
thousands of clients per process cheap enough that the generator is not the
bottleneck.

A client handles frames as a real one does: it unwraps `batch` frames in
order, applies `snapshot` and events to its state (messages, vote counts, its
own votes), checks that `seq` increases strictly, matches `ack`/`error` to the
`ref` of its commands, and resumes with `since` when the server closes it
(1001 going away, 4409 too slow) or the connection drops.

Frames fanned out to many sockets arrive as identical bytes, so one process
parses each distinct frame once (`FrameParser`); that is the generator saving
its own time, not the server's. For the same reason a link cuts the final
text frames (nearly all the server sends) out of what it reads itself, while
websockets' parser waits at a frame boundary, and hands websockets every
other frame whole (`Link._cut`): websockets' frame parser took more than half
of a client's time per frame.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from server.endpoints.wsprotocol import at_frame_start, frame_head

# Largest frame a client takes: a snapshot of a big meeting is one frame.
MAX_FRAME = 256 * 1024 * 1024
# Frames up to this size are cached by their bytes (fan-out sends the same bytes).
CACHE_FRAME_BYTES = 16 * 1024
# The first byte of a final text frame without extension bits (RFC 6455 §5.2),
# and the mask bit of the second, which a server never sets.
FINAL_TEXT = 0x81
MASKED = 0x80
# A text frame cut by a link waits for its rest up to this size; a larger one
# (a snapshot) goes to websockets, whose buffer does not copy it at every read.
CUT_TAIL_BYTES = 64 * 1024
CACHE_ENTRIES = 20_000
# Reconnect delays, one step further after each failed try, each jittered to
# half the step plus a random half: the same as the web client's connection.js,
# so that a resume storm is what a hall of phones would do.
BACKOFF_STEPS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
# Close codes after which the client resumes at once (4409: the server asks it to).
RESUME_AT_ONCE = frozenset({4409})
# The body of a message the bench publishes starts with this, then the run's
# tag, the publish index and the monotonic time it was sent (system-wide on Linux).
PUB_PREFIX = "bench:"


class Item:
    """Kinds of parsed frames (first element of each item tuple)."""

    MESSAGE = 0  # (MESSAGE, seq, message_id, content_key, votes, pub)
    VOTES = 1  # (VOTES, seq, counts, voted)
    OTHER_EVENT = 2  # (OTHER_EVENT, seq, kind)
    WELCOME = 3  # (WELCOME, seq, mode)
    SNAPSHOT = 4  # (SNAPSHOT, seq, messages)
    REPLY = 5  # (REPLY, ref, frame)
    EPHEMERAL = 6  # (EPHEMERAL, type)


def publish_body(tag: str, index: int, size: int) -> str:
    head = f"{PUB_PREFIX}{tag}:{index}:{time.monotonic():.6f}:"
    return head + "x" * max(0, size - len(head))


def content_key(message: dict[str, Any]) -> bytes:
    """A message as bytes without its vote count and the reader's own vote."""
    rest = {k: v for k, v in message.items() if k != "votes" and k != "voted"}
    return orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)


class FrameParser:
    """Wire frame bytes -> tuple of items; identical fan-out frames parsed once."""

    def __init__(self) -> None:
        self._cache: dict[bytes, tuple[tuple[Any, ...], ...]] = {}
        self._interned: dict[bytes, bytes] = {}

    def parse(self, raw: bytes) -> tuple[tuple[Any, ...], ...]:
        cached = self._cache.get(raw)
        if cached is not None:
            return cached
        obj = orjson.loads(raw)
        if obj.get("type") == "batch":
            items = tuple(self._item(inner) for inner in obj["frames"])
        else:
            items = (self._item(obj),)
        if len(raw) <= CACHE_FRAME_BYTES and all(i[0] <= Item.OTHER_EVENT for i in items):
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[raw] = items
        return items

    def intern(self, key: bytes) -> bytes:
        if len(self._interned) > 1_000_000:
            self._interned.clear()
        return self._interned.setdefault(key, key)

    def _message(self, data: dict[str, Any]) -> tuple[int, bytes, int]:
        return data["id"], self.intern(content_key(data)), data.get("votes", 0)

    def _item(self, f: dict[str, Any]) -> tuple[Any, ...]:
        kind = f.get("type")
        if kind == "event":
            ek = f["kind"]
            data = f["data"]
            if ek == "message.created" or ek == "message.updated":
                mid, key, votes = self._message(data)
                pub = None
                body = data.get("body") or ""
                if ek == "message.created" and body.startswith(PUB_PREFIX):
                    parts = body.split(":", 4)
                    if len(parts) >= 4:
                        pub = (parts[1], int(parts[2]), float(parts[3]))
                return (Item.MESSAGE, f["seq"], mid, key, votes, pub)
            if ek == "votes.updated":
                counts = tuple((int(k), v) for k, v in data["counts"].items())
                voted = data.get("voted")
                voted_t = tuple((int(k), bool(v)) for k, v in voted.items()) if voted else None
                return (Item.VOTES, f["seq"], counts, voted_t)
            return (Item.OTHER_EVENT, f["seq"], ek)
        if kind == "welcome":
            return (Item.WELCOME, f["seq"], f["mode"])
        if kind == "snapshot":
            messages = tuple((*self._message(m), bool(m.get("voted"))) for m in f["messages"])
            return (Item.SNAPSHOT, f["seq"], messages)
        if kind in ("ack", "error") or (kind == "pong" and f.get("ref") is not None):
            return (Item.REPLY, f.get("ref"), f)
        return (Item.EPHEMERAL, kind)


def state_digest(messages: dict[int, bytes], votes: dict[int, int]) -> str:
    """What a reader shows (votes included, its own vote left out), as a hash."""
    h = hashlib.sha1()
    for mid in sorted(messages):
        h.update(b"%d|%d|" % (mid, votes.get(mid, 0)))
        h.update(messages[mid])
    return h.hexdigest()


@dataclass
class Tally:
    """What the clients of one process saw of the bench's published messages."""

    tag: str = ""
    latencies: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]
    recording: bool = False


class Pool:
    """Shared by the clients of one process: where to connect and what to record."""

    def __init__(self, host: str, port: int, meeting_id: str) -> None:
        self.host = host
        self.port = port
        self.meeting_id = meeting_id
        self.url = f"ws://{host}:{port}/ws/meetings/{meeting_id}"
        self.parser = FrameParser()
        self.tally = Tally()
        self.track_state = True
        # Only replies (ack, error, pong) are parsed; events are counted. For
        # the ingest workload, whose posters receive every post: parsing that
        # fan-out took the generator 1.4 of the 2 cores, which is the
        # generator measuring itself, not the server.
        self.replies_only = False
        self.auto_resume = True
        self.resume_deadline = 0.0
        self.record_votes = False
        self.closing = False
        self.close_codes: Counter[int] = Counter()
        self.frames = 0
        self.batches = 0
        self.events = 0
        self.bytes = 0


class HandshakeFailed(Exception):
    pass


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


# Reconnect tasks, kept referenced until they end.
_background: set[asyncio.Task[None]] = set()


class Link(asyncio.Protocol):
    """One TCP connection of a client: the sans-I/O protocol and the transport."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ws = ClientProtocol(parse_uri(client.pool.url), max_size=MAX_FRAME)
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.fragments: list[bytes] = []
        self.close_code: int | None = None
        # Whether this link cuts frames itself (see `_cut`), and the start of
        # a frame it cut that the next read completes.
        self.cutting = False
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.ws.send_request(self.ws.connect())
        self._flush()

    def _flush(self) -> None:
        data = self.ws.data_to_send()
        if not data or self.transport is None:
            return
        out = b"".join(data)
        if out:
            self.transport.write(out)
        if data[-1] == b"" and self.transport.can_write_eof():
            self.transport.write_eof()

    def send(self, payload: bytes) -> None:
        if not self.open or self.transport is None or self.transport.is_closing():
            raise ConnectionError("not connected")
        self.ws.send_text(payload)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.cutting:
            data = self._cut(data)
            if not data:
                return
        ws = self.ws
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()
        now = time.monotonic()
        client = self.client
        for event in events:
            if isinstance(event, Frame):
                op = event.opcode
                if op is Opcode.TEXT or op is Opcode.BINARY:
                    if event.fin:
                        client.on_frame(bytes(event.data), now)
                    else:
                        self.fragments = [bytes(event.data)]
                elif op is Opcode.CONT:
                    self.fragments.append(bytes(event.data))
                    if event.fin:
                        raw, self.fragments = b"".join(self.fragments), []
                        client.on_frame(raw, now)
                elif op is Opcode.CLOSE:
                    rcvd = ws.close_rcvd
                    self.close_code = rcvd.code if rcvd is not None else 1005
                    self.open = False
            elif isinstance(event, Response):
                if ws.handshake_exc is not None:
                    client.on_handshake_failed(self, ws.handshake_exc)
                    if self.transport is not None:
                        self.transport.close()
                    return
                self.open = True
                client.on_open(self)
        if self.open and not self.fragments and ws.state is State.OPEN and at_frame_start(ws):
            self.cutting = True

    def _cut(self, data: bytes) -> bytes:
        """Hands the client the whole final text frames at the start of what
        came and keeps a last one that is not all here; returns the rest, from
        the first frame of another kind on, for websockets, which is at a frame
        boundary then (it waited at one, and was given nothing since)."""
        if self.tail:
            data = self.tail + data
            self.tail = b""
        end = len(data)
        pos = 0
        now = time.monotonic()
        client = self.client
        while self.open:
            found = frame_head(data, pos)
            if found is None:
                if pos < end and data[pos] == FINAL_TEXT:
                    self.tail = data[pos:]
                    return b""
                break
            if data[pos] != FINAL_TEXT or data[pos + 1] & MASKED:
                break
            head, size = found
            stop = head + size
            if stop > end:
                if size > CUT_TAIL_BYTES:
                    break
                self.tail = data[pos:]
                return b""
            client.on_frame(data[head:stop], now)
            pos = stop
        if pos == end:
            return b""
        self.cutting = False
        return data[pos:] if pos else data

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.client.on_lost(self, self.close_code if self.close_code is not None else 1006)

    def close(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.open:
            self.ws.send_close(1000)
            self._flush()
            self.open = False
            # The server closes TCP after the closing handshake; don't wait forever.
            asyncio.get_running_loop().call_later(2.0, self.transport.abort)
        else:
            self.transport.abort()


class Client:
    """One participant: token, state, the current link, and what it measured."""

    def __init__(self, pool: Pool, index: int, token: str | None) -> None:
        self.pool = pool
        self.index = index
        self.token = token
        self.link: Link | None = None
        # The link of the connect in progress, until it is welcomed or given up.
        self.attempt: Link | None = None
        self.last_seq = 0
        self.synced_once = False
        self.messages: dict[int, bytes] = {}
        self.votes: dict[int, int] = {}
        self.voted: set[int] = set()
        self.order_errors = 0
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._refs = 0
        self._synced: asyncio.Future[None] | None = None
        self._since: int | None = None
        self.welcome_seq: int | None = None
        self.welcome_at = 0.0
        self.sync_done_at = 0.0
        self.mode = ""
        self.connects = 0
        self.reconnecting = False
        # When the try that got the current connection started (for resume timing).
        self.attempt_at = 0.0
        # Per tag: [count, sum of indexes, time of the last one].
        self.tags: dict[str, list[float]] = {}
        self.vote_times: list[float] = []
        self.vote_changed_at = 0.0
        self.my_vote: int | None = None
        self.on_event: Callable[[Client, tuple[Any, ...], float], None] | None = None

    # --- connecting ---------------------------------------------------------

    async def connect(self, since: int | None = None, limit: float = 30.0) -> None:
        """Open a socket, say hello and wait for the welcome and the snapshot/replay."""
        loop = asyncio.get_running_loop()
        self._since = since
        self._synced = loop.create_future()
        # A try that timed out may still fail later; nobody waits for it then.
        self._synced.add_done_callback(_retrieve)
        self.attempt_at = time.monotonic()
        # Only this try's link may complete it: a link of an earlier try that
        # closes late must not fail this one (under a storm, closes are slow).
        link = self.attempt = Link(self)
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: link, self.pool.host, self.pool.port), limit
            )
            await asyncio.wait_for(asyncio.shield(self._synced), limit)
        except BaseException:
            link.close()
            raise
        finally:
            if self.attempt is link:
                self.attempt = None

    def on_open(self, link: Link) -> None:
        if link is not self.attempt:
            link.close()  # its try was given up before the handshake ended
            return
        self.link = link
        self.connects += 1
        hello = {"type": "hello", "token": self.token, "since": self._since}
        link.send(orjson.dumps(hello))

    def on_handshake_failed(self, link: Link, exc: Exception) -> None:
        if link is self.attempt and self._synced is not None and not self._synced.done():
            self._synced.set_exception(HandshakeFailed(str(exc)))

    def on_lost(self, link: Link, code: int) -> None:
        if link is not self.link:
            if link is self.attempt and self._synced is not None and not self._synced.done():
                self._synced.set_exception(ConnectionError(f"closed {code} before welcome"))
            return
        self.link = None
        self.pool.close_codes[code] += 1
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"closed {code}"))
        self.pending.clear()
        if self._synced is not None and not self._synced.done():
            self._synced.set_exception(ConnectionError(f"closed {code} before welcome"))
        pool = self.pool
        if pool.auto_resume and not pool.closing and not self.reconnecting:
            self.reconnecting = True
            task = asyncio.get_running_loop().create_task(self._resume(code))
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def _resume(self, code: int) -> None:
        """Reconnect with stepped backoff and jitter, resuming with since."""
        attempt = 0
        try:
            while not self.pool.closing and time.monotonic() < self.pool.resume_deadline:
                if not (attempt == 0 and code in RESUME_AT_ONCE):
                    step = BACKOFF_STEPS[min(attempt, len(BACKOFF_STEPS) - 1)]
                    await asyncio.sleep(step / 2 + random.random() * step / 2)
                attempt += 1
                since = self.last_seq if self.synced_once else None
                try:
                    await self.connect(since=since, limit=10.0)
                except (OSError, TimeoutError, HandshakeFailed, ConnectionError):
                    continue
                # The socket may have been closed between the welcome and this
                # line (a server going down sends both in one read); on_lost saw
                # `reconnecting` still set and left the retry to this loop.
                if self.link is not None:
                    return
        finally:
            self.reconnecting = False

    def close(self) -> None:
        if self.link is not None:
            self.link.close()

    # --- commands -------------------------------------------------------------

    def command(self, frame: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send a command; the future resolves with its ack, error or pong frame."""
        self._refs += 1
        ref = f"c{self.index}-{self._refs}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self.link is None:
            future.set_exception(ConnectionError("not connected"))
            return future
        self.pending[ref] = future
        try:
            self.link.send(orjson.dumps({**frame, "ref": ref}))
        except ConnectionError as exc:
            del self.pending[ref]
            future.set_exception(exc)
        return future

    # --- frames ---------------------------------------------------------------

    def on_frame(self, raw: bytes, now: float) -> None:
        pool = self.pool
        pool.frames += 1
        pool.bytes += len(raw)
        # Every reply carries "ref"; an event frame has no such key (a body
        # holding it would be escaped as \"ref\").
        if pool.replies_only and b'"ref"' not in raw:
            return
        items = pool.parser.parse(raw)
        if len(items) > 1 or raw.startswith(b'{"type":"batch"'):
            pool.batches += 1
        for item in items:
            kind = item[0]
            if kind <= Item.OTHER_EVENT:
                self._event(item, now)
            elif kind == Item.REPLY:
                future = self.pending.pop(item[1], None)
                if future is not None and not future.done():
                    future.set_result(item[2])
            elif kind == Item.WELCOME:
                self.welcome_seq = item[1]
                self.mode = item[2]
                self.welcome_at = self.sync_done_at = now
                if item[2] == "replay":
                    self._set_synced()
            elif kind == Item.SNAPSHOT:
                self.last_seq = item[1]
                if pool.track_state:
                    self.messages = {m[0]: m[1] for m in item[2]}
                    self.votes = {m[0]: m[2] for m in item[2]}
                    self.voted = {m[0] for m in item[2] if m[3]}
                self.sync_done_at = now
                self._set_synced()

    def _set_synced(self) -> None:
        self.synced_once = True
        if self._synced is not None and not self._synced.done():
            self._synced.set_result(None)

    def _event(self, item: tuple[Any, ...], now: float) -> None:
        pool = self.pool
        pool.events += 1
        seq = item[1]
        if seq <= self.last_seq:
            self.order_errors += 1
        self.last_seq = seq
        if self.welcome_seq is not None and seq <= self.welcome_seq:
            self.sync_done_at = now
        kind = item[0]
        if kind == Item.MESSAGE:
            if pool.track_state:
                self.messages[item[2]] = item[3]
                self.votes[item[2]] = item[4]
            pub = item[5]
            if pub is not None:
                tag = pub[0]
                entry = self.tags.get(tag)
                if entry is None:
                    entry = self.tags[tag] = [0, 0, 0.0]
                entry[0] += 1
                entry[1] += pub[1]
                entry[2] = now
                tally = pool.tally
                if tally.recording and tally.tag == tag:
                    tally.latencies.append(now - pub[2])
        elif kind == Item.VOTES:
            if pool.record_votes:
                self.vote_times.append(now)
                if any(self.votes.get(mid) != count for mid, count in item[2]):
                    self.vote_changed_at = now
            if pool.track_state:
                for mid, count in item[2]:
                    self.votes[mid] = count
                if item[3]:
                    for mid, voted in item[3]:
                        if voted:
                            self.voted.add(mid)
                        else:
                            self.voted.discard(mid)
        if self.on_event is not None:
            self.on_event(self, item, now)

    def digest(self) -> str:
        return state_digest(self.messages, self.votes)
