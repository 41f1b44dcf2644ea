"""uvicorn's sans-I/O `websockets` protocol, with the changes Ting needs.

1. The hub writes ready-made frames straight to the transport (`ting_write`)
   and closes a connection itself (`ting_close`, for 4409, 4401 and 1001),
   so that an idle connection needs no task of its own besides uvicorn's.
2. Closing a client that stopped reading (4409) must not wait for its send
   buffer to drain, since it never will: the close frame is queued at once
   and the connection is dropped if the peer does not take it in time.
3. On shutdown, clients are told 1001 (going away: resume elsewhere), which
   is what the protocol promises, rather than uvicorn's 1012.
4. Memory per idle connection (thousands of them in one process): the
   receive queue and the writable flag are small slotted objects instead of
   an asyncio.Queue and an asyncio.Event (~5 KB of empty deques between
   them), and the handshake's request and response are let go once accepted.
5. A failed keepalive ends the app's session too: uvicorn only closes the
   transport, which never finishes for a peer that stopped reading with data
   still buffered, and the session would wait on it for good.
6. Work per command. Once a session is open, each message is handed to
   the app's handler in the callback that parsed it (`ting_receive_with`),
   not through the receive queue and a task switch per message. And system
   calls: A send to a loopback or LAN socket costs about
   as much as everything else the server does for a small frame, so while a
   connection has commands to be answered, what one turn of the event loop
   writes to it (the events of a commit and the acks they answer) goes out
   in one write, at the end of the turn; a connection that only reads gets
   each frame written at once, as before. And
   uvicorn pauses reading after every message until the app has taken it
   (two epoll_ctl calls per command); Ting's reader takes each message at
   once, so reading pauses only when several wait.
7. Parsing. Once a session is open, most of what a client sends is small
   text frames, whole and unfragmented (commands). The `websockets` parser
   costs some 9 µs of Python for each (a chain of generators per frame),
   more than everything Ting does with a command before the writer. So
   while `websockets` waits for the first byte of a frame, Ting cuts the
   frames of a read itself: each complete, masked, final text frame goes to
   the app's handler at once. From the first other frame of the read on
   (control frames, fragments, binary, bad UTF-8, anything malformed, too
   large or incomplete), the rest of the read goes to `websockets`, which
   parses it as it would have all along.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from starlette.types import Message
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

from server.protocol import CLOSE_GOING_AWAY

# How long a stuck peer gets to read its close frame before the TCP
# connection is dropped and its buffers are freed.
STUCK_PEER_TIMEOUT = 10.0

# Messages waiting for the app before the socket stops being read (point 6).
INBOX_LIMIT = 8


class _Inbox:
    """The messages for the app (connect, receive, disconnect), in order.

    Stands in for uvicorn's asyncio.Queue, of which it uses `put_nowait`,
    `get` and `empty`. It rarely holds more than one message: the reader
    takes each at once, and the socket stops being read at INBOX_LIMIT.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Message] = []
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Message) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def take_messages(self) -> list[Message]:
        """Removes and returns the `websocket.receive` messages, in order."""
        taken = [m for m in self._items if m["type"] == "websocket.receive"]
        if taken:
            self._items = [m for m in self._items if m["type"] != "websocket.receive"]
        return taken

    async def get(self) -> Message:
        while not self._items:
            # Cancelled while waiting (the hello timeout), nothing is lost:
            # a message stays in the list until a `get` returns it.
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class _Writable:
    """Whether the transport takes writes (it is not paused), and a wait for it.

    Stands in for uvicorn's asyncio.Event (`set`, `clear`, `is_set`, `wait`),
    holding waiters only while somebody waits.
    """

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class _Flusher:
    """Writes out, at the end of a turn of the loop, what connections took in it."""

    __slots__ = ("_loop", "_waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: list[TingWebSocketProtocol] = []

    def add(self, protocol: TingWebSocketProtocol) -> None:
        if not self._waiting:
            self._loop.call_soon(self._flush)
        self._waiting.append(protocol)

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        for protocol in waiting:
            protocol.ting_flush()


_FLUSHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = (
    weakref.WeakKeyDictionary()
)


def _flusher(loop: asyncio.AbstractEventLoop) -> _Flusher:
    flusher = _FLUSHERS.get(loop)
    if flusher is None:
        flusher = _FLUSHERS[loop] = _Flusher(loop)
    return flusher


# The first byte of a final text frame without extension bits (RFC 6455 §5.2).
_FINAL_TEXT = 0x81
_MASKED = 0x80
# websockets' parser waits for the next frame inside these (see `at_frame_start`).
_PARSE_CODE = Protocol.parse.__code__
_AT_EOF_CODE = StreamReader.at_eof.__code__


def frame_head(data: bytes, pos: int) -> tuple[int, int] | None:
    """The frame at `pos`: where what follows its length starts (the mask key
    of a client's frame, the payload of a server's) and its payload's length;
    None while its header is not all in `data` (RFC 6455 §5.2). The load
    generator's client (bench/wsclient.py) cuts the server's frames with it."""
    end = len(data)
    if end - pos < 2:
        return None
    size = data[pos + 1] & 0x7F
    if size < 126:
        return pos + 2, size
    head = pos + (4 if size == 126 else 10)
    if head > end:
        return None
    return head, int.from_bytes(data[pos + 2 : head], "big")


def at_frame_start(conn: Any) -> bool:
    """Whether websockets' parser waits for the first byte of a frame, with
    none buffered. False when in doubt (another version of it): then it
    parses everything, as it would without the gate. The load generator's
    client (bench/wsclient.py) asks the same of its `ClientProtocol`."""
    if conn.reader.buffer:
        return False
    chain: list[Any] = []
    gen = getattr(conn, "parser", None)
    while gen is not None and len(chain) < 8:
        chain.append(gen)
        gen = getattr(gen, "gi_yieldfrom", None)
    return (
        len(chain) >= 2 and chain[-1].gi_code is _AT_EOF_CODE and chain[-2].gi_code is _PARSE_CODE
    )


class TingWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Duck-typed replacements (see the module docstring, point 4).
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Writable()  # type: ignore[assignment]
        # Frames taken in this turn of the loop, written at its end (point 6),
        # while the app has commands of this connection to answer.
        self._out: list[bytes] | None = None
        self.ting_answers_due = False
        self._flusher = _flusher(self.loop)
        # The app's handler of messages, once it has one (point 6).
        self._receiver: Callable[[str | bytes], None] | None = None
        # Whether Ting cuts the incoming frames itself (point 7): only while
        # websockets' parser is known to wait for the first byte of a frame.
        self._gated = False

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"]["ting.sink"] = self

    # --- the Sink of server/hub/subscriber.py ---

    def _open(self) -> bool:
        return (
            self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
            and not self.transport.is_closing()
        )

    def ting_write(self, data: bytes) -> bool:
        """Writes `data` if it goes out without waiting; False (nothing written) if not."""
        # The hub calls this for every connection of a meeting per event: one
        # call, with the checks of `_open` inline.
        if (
            self.writable.is_set()
            and self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
            and not self.transport.is_closing()
        ):
            out = self._out
            if out is not None:
                out.append(data)
            elif self.ting_answers_due:
                # An ack is on its way (see point 6): this waits for it.
                self._out = [data]
                self._flusher.add(self)
            else:
                self.transport.write(data)
            return True
        return False

    def ting_flush(self) -> None:
        """Writes what `ting_write` took, in one call; before anything else goes out."""
        out = self._out
        if out is None:
            return
        self._out = None
        # It was open when they were taken; only these can have changed since.
        if not self.close_sent and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    async def ting_wait_writable(self) -> bool:
        """Until a write goes out without waiting (True) or the connection closes (False)."""
        while self._open():
            if self._out is not None:
                # What this turn took goes out first (the flush is scheduled
                # ahead of this task); then the transport says if it takes more.
                await asyncio.sleep(0)
                continue
            if self.writable.is_set():
                return True
            await self.writable.wait()
        return False

    def ting_close(self, code: int, reason: str) -> None:
        """Closes the connection with `code` now; the app's receive gets the disconnect.

        Also when it is closing already (the peer's close, a failed keepalive):
        the app's reader must end either way.
        """
        if self.disconnected or not self.handshake_complete or self.initial_response is not None:
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if self._open() and self.conn.state is State.OPEN:
            self.ting_flush()
            self.conn.send_close(code, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            if self.writable.is_set():
                # As uvicorn does: read on, for the peer's answering close frame.
                if self.read_paused:
                    self.read_paused = False
                    self.transport.resume_reading()
                self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)
                return
        # The peer stopped reading, or the connection was closing already and
        # has not finished: either way it may never drain, and would hold the
        # connection and its buffers for good. It gets a while, then it is dropped.
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.close_timer = self.loop.call_later(STUCK_PEER_TIMEOUT, self.transport.abort)

    def ting_receive_with(self, receiver: Callable[[str | bytes], None]) -> None:
        """From now on, each message goes to `receiver` as soon as it is read.

        Messages already waiting go to it first, in order; a disconnect stays
        for the app's `receive`, which is then all it gets.
        """
        self._receiver = receiver
        inbox: _Inbox = self.queue  # type: ignore[assignment]
        for message in inbox.take_messages():
            text = message.get("text")
            receiver(text if text is not None else message.get("bytes") or b"")
        if self.read_paused and inbox.empty():
            self.read_paused = False
            self.transport.resume_reading()

    # --- uvicorn's protocol ---

    def data_received(self, data: bytes) -> None:
        if not self._gated:
            if not self._gate_opens():
                super().data_received(data)
                return
            self._gated = True
        self._cut_frames(data)

    def _gate_opens(self) -> bool:
        """Whether Ting can cut the frames from here on (point 7)."""
        conn = self.conn
        return (
            self._receiver is not None
            and not self.close_sent
            and not self.frames
            and conn.state is State.OPEN
            and not conn.extensions
            and conn.current_size is None
            and at_frame_start(conn)
        )

    def _cut_frames(self, data: bytes) -> None:
        """The whole final text frames at the start of `data` to the app's
        handler; from the first other frame (or part of one) on, all of it to
        websockets, which is then no longer at a frame boundary for sure: the
        gate closes, to open again on a later read once it is."""
        conn = self.conn
        limit = conn.max_message_size
        end = len(data)
        pos = 0
        while (found := frame_head(data, pos)) is not None:
            receiver = self._receiver
            if (
                data[pos] != _FINAL_TEXT
                or not data[pos + 1] & _MASKED
                or receiver is None
                or self.close_sent
                or conn.state is not State.OPEN
            ):
                break
            head, size = found
            stop = head + 4 + size
            if stop > end or (limit is not None and size > limit):
                break  # incomplete (websockets waits for the rest) or too large (1009)
            payload = apply_mask(data[head + 4 : stop], data[head : head + 4])
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                break  # websockets' and uvicorn's own path closes with 1007
            pos = stop
            receiver(text)
        if pos < end:
            self._gated = False
            super().data_received(data[pos:] if pos else data)

    def send_receive_event_to_app(self) -> None:
        receiver = self._receiver
        if receiver is not None and not self.close_sent:
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            if self.curr_msg_data_type != "text":
                self.frames = []
                receiver(bytes(data))
                return
            try:
                text = data.decode()
            except UnicodeDecodeError:
                if self.conn.state is not State.OPEN:
                    # The peer's close came in the same read: uvicorn's path
                    # would try to send a 1007 on a closing connection, which
                    # websockets refuses with an exception; it closes anyway.
                    self.frames = []
                    return
                # Otherwise uvicorn's own path closes with 1007.
            else:
                self.frames = []
                receiver(text)
                return
        # uvicorn pauses reading after each message (see point 6); marked as
        # paused, it does not, and reading pauses here once INBOX_LIMIT wait.
        # `receive` resumes it when the app has taken them all, as in uvicorn.
        paused = self.read_paused
        self.read_paused = True
        super().send_receive_event_to_app()
        self.read_paused = paused
        if not paused and len(self.queue) >= INBOX_LIMIT:  # type: ignore[arg-type]
            self.read_paused = True
            self.transport.pause_reading()

    async def send(self, message: Any) -> None:
        self.ting_flush()
        if message["type"] == "websocket.close" and self._open():
            # After the handshake, every close takes the same path as the hub's.
            self.ting_close(message.get("code", 1000), message.get("reason") or "")
            return
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Never read again; a few KB of headers per connection otherwise.
            del self.request
            del self.response

    def keepalive_timeout(self) -> None:
        failed = not self.close_sent and not self.transport.is_closing()
        super().keepalive_timeout()
        if failed:
            # See the module docstring, point 5.
            self.queue.put_nowait({"type": "websocket.disconnect", "code": 1011})
            self.close_timer = self.loop.call_later(STUCK_PEER_TIMEOUT, self.transport.abort)

    def shutdown(self) -> None:
        if self._open():
            self.ting_flush()
            self.stop_keepalive()
            self.queue.put_nowait({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})
            self.conn.send_close(CLOSE_GOING_AWAY, "server going away")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.transport.close()
            return
        super().shutdown()
