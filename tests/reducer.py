"""A client's view of a meeting, rebuilt the way every client rebuilds it.

This mirrors what a client does with the stream (web/js/state.js does the
same in the browser): take a snapshot, then apply the events in order. Messages
are upserted by id; `message.created` and `message.updated` carry no `voted`,
so the value the client already had is kept; `votes.updated` sets counts and,
when it is the reader's own event, the reader's `voted` marks;
`spotlight.changed` and `meeting.updated` set the meeting.

The tests compare such a state with a fresh `GET /snapshot` for the same
token: a client that applied every event it may see, and no other, in seq
order, must end where a client that just arrived starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets

from tests import schemas
from tests.support import ADMIN_TOKEN, Api, ServerProcess, Socket, connect

_refs = itertools.count(1)


@dataclass
class ClientState:
    """What one reader knows: the meeting and its messages, up to `seq`."""

    seq: int
    meeting: dict[str, Any]
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> ClientState:
        return cls(
            seq=snapshot["seq"],
            meeting=copy.deepcopy(snapshot["meeting"]),
            messages={m["id"]: copy.deepcopy(m) for m in snapshot["messages"]},
        )

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one event frame; its seq must be above everything applied."""
        assert event["type"] == "event", event
        assert event["seq"] > self.seq, f"event {event['seq']} after {self.seq}: out of order"
        self.seq = event["seq"]
        kind, data = event["kind"], event["data"]
        if kind in ("message.created", "message.updated"):
            old = self.messages.get(data["id"])
            message = copy.deepcopy(data)
            message.setdefault("voted", old["voted"] if old is not None else False)
            self.messages[data["id"]] = message
        elif kind == "votes.updated":
            # A count of a message this reader does not have would tell it
            # about a message it may not see (or it missed that message).
            for key, count in data["counts"].items():
                assert int(key) in self.messages, f"votes of unknown message {key}"
                self.messages[int(key)]["votes"] = count
            for key, voted in data.get("voted", {}).items():
                assert int(key) in self.messages, f"voted on unknown message {key}"
                self.messages[int(key)]["voted"] = voted
        elif kind == "spotlight.changed":
            self.meeting["spotlight"] = data["message_id"]
        elif kind == "meeting.updated":
            self.meeting = copy.deepcopy(data)
        else:
            raise AssertionError(f"unknown event kind {kind!r}")

    def view(self) -> dict[str, Any]:
        """What a fresh snapshot of the same reader shows, in comparable form."""
        return {"meeting": self.meeting, "messages": self.messages}


def snapshot_view(snapshot: dict[str, Any]) -> dict[str, Any]:
    return ClientState.from_snapshot(snapshot).view()


@dataclass
class Stream:
    """Everything one reader was sent, over any number of connections.

    `items` holds the snapshots and events in the order they were handled, so
    that the state at any seq can be rebuilt (`state_at`).
    """

    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def position(self) -> int | None:
        """The `since` to resume with: the seq of the last snapshot or event handled.

        Not the welcome's seq: that is where the connection *will* have
        brought the reader once its replay has arrived, and a connection cut
        during the replay would otherwise skip the rest of it.
        """
        return int(self.items[-1]["seq"]) if self.items else None

    def handle(self, frame: dict[str, Any]) -> None:
        """Take one frame off the wire; frames other than these are ignored."""
        kind = frame["type"]
        last = self.position
        if kind == "snapshot":
            assert last is None or frame["seq"] >= last, "a snapshot went back in time"
            self.items.append(frame)
        elif kind == "event":
            assert last is not None, "an event before any snapshot"
            assert frame["seq"] > last, f"event {frame['seq']} after {last}: repeated or out of order"
            self.items.append(frame)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [item for item in self.items if item["type"] == "event"]

    def state_at(self, seq: int) -> ClientState:
        """The reader's state after everything it was sent up to `seq`."""
        state: ClientState | None = None
        for item in self.items:
            if item["seq"] > seq:
                break
            if item["type"] == "snapshot":
                state = ClientState.from_snapshot(item)
            else:
                assert state is not None
                state.apply(item)
        assert state is not None, f"nothing received up to seq {seq}"
        return state


@functools.lru_cache(maxsize=4096)
def _check_frame(raw: str | bytes) -> None:
    """Validate a frame against schema/, once per distinct frame.

    The server sends the same bytes to every reader of one audience, and a
    schema check costs far more than the rest of handling a frame.
    """
    schemas.validate_server_frame(orjson.loads(raw))


class Follower:
    """One reader that follows a meeting over a socket, as a client does.

    It keeps one `Stream` across connections: `connect()` says hello with
    `since` set to where the reader got to (None the first time, for a
    snapshot), a reader task feeds every frame to the stream, and commands
    sent through `command()` get their replies. `disconnect()` drops the
    connection at once; frames still in flight are lost, as on a real network.
    """

    def __init__(self, server: ServerProcess, meeting_id: str, token: str | None) -> None:
        self.server = server
        self.meeting_id = meeting_id
        self.token = token
        self.stream = Stream()
        self.welcomes: list[dict[str, Any]] = []
        self._socket: Socket | None = None
        self._exit: contextlib.AsyncExitStack | None = None
        self._reader: asyncio.Task[None] | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._progress = asyncio.Event()
        self._failure: BaseException | None = None

    @property
    def connected(self) -> bool:
        return self._socket is not None

    @property
    def who(self) -> str:
        """The reader's role and participant id, for messages."""
        welcome = self.welcomes[0] if self.welcomes else {}
        return f"{welcome.get('role')} {welcome.get('participant_id') or ''}".strip()

    @property
    def first_seq(self) -> int:
        """The seq of the first welcome: everything after it was streamed."""
        return int(self.welcomes[0]["seq"])

    async def connect(self) -> dict[str, Any]:
        """Open a connection; resume from the stream's position if it has one."""
        assert self._socket is None, "already connected"
        since = self.stream.position
        self._exit = contextlib.AsyncExitStack()
        self._socket = await self._exit.enter_async_context(
            connect(self.server, self.meeting_id, self.token, since)
        )
        welcome = self._socket.welcome
        assert welcome is not None
        self.welcomes.append(welcome)
        self.stream.handle(welcome)
        self._reader = asyncio.create_task(self._read(self._socket))
        return welcome

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._exit is not None:
            with contextlib.suppress(Exception):
                await self._exit.aclose()
            self._exit = None
        self._socket = None
        for future in self._replies.values():
            future.cancel()
        self._replies.clear()

    async def _read(self, sock: Socket) -> None:
        try:
            # The welcome may have come in a batch: the frames after it first.
            while sock._pending:
                self._take([await sock.recv()])
            while True:
                raw = await sock.conn.recv()
                _check_frame(raw)
                frame = orjson.loads(raw)
                self._take(frame["frames"] if frame["type"] == "batch" else [frame])
        except websockets.ConnectionClosed:
            pass
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._failure = exc
            raise
        finally:
            self._progress.set()

    def _take(self, frames: list[dict[str, Any]]) -> None:
        for inner in frames:
            ref = inner.get("ref")
            if inner["type"] in ("ack", "error", "pong") and ref in self._replies:
                self._replies.pop(ref).set_result(inner)
            else:
                self.stream.handle(inner)
        self._progress.set()

    async def command(self, type: str, within: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Send a command on this connection; its ack or error frame."""
        assert self._socket is not None, "not connected"
        ref = f"f{next(_refs)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[ref] = future
        await self._socket.send({"type": type, "ref": ref, **fields})
        return await asyncio.wait_for(future, within)

    async def wait_for(self, seq: int, within: float = 10.0) -> None:
        """Wait until the reader has been brought up to `seq`."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            self._progress.clear()
            self.check()
            if (self.stream.position or 0) >= seq:
                return
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0 or self._reader is None or self._reader.done():
                raise AssertionError(
                    f"reader stopped at seq {self.stream.position}, expected {seq}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)

    def check(self) -> None:
        """Raise what the reader task met (a frame out of order, say)."""
        if self._failure is not None:
            raise self._failure


async def mark(api: Api, meeting_id: str, followers: list[Follower]) -> int:
    """Change the title to a fresh marker and wait until every follower has it.

    Every reader receives `meeting.updated`, so once a follower is at the
    marker's seq it has everything that was committed before it. Returns that
    seq.
    """
    title = f"Marker {next(_refs)}"
    await api.request("PATCH", f"/api/meetings/{meeting_id}", token=ADMIN_TOKEN,
                      json={"title": title}, route="/api/meetings/{id}")
    seq, since = None, 0
    while seq is None:
        page = await api.events(meeting_id, since, token=ADMIN_TOKEN)
        for event in page["events"]:
            if event["kind"] == "meeting.updated" and event["data"]["title"] == title:
                seq = event["seq"]
        if not page["more"]:
            break
        since = page["seq"]
    assert seq is not None, "the marker is not in the log"
    for follower in followers:
        await follower.wait_for(seq)
    return int(seq)


async def converge(api: Api, meeting_id: str, followers: list[Follower],
                   within: float = 10.0) -> int:
    """Check that every follower's state equals a fresh snapshot of its token.

    Each snapshot is taken at some seq N; a marker after it brings every
    follower past N, and the follower's state rebuilt up to N must equal the
    snapshot. Vote counts are published a moment after the votes (coalesced),
    so until then a voter's own count may be ahead of the published one: the
    check is repeated until it holds or `within` seconds have passed. Returns
    the marker's seq.
    """
    deadline = asyncio.get_running_loop().time() + within
    while True:
        await asyncio.sleep(0.15)
        snapshots = [await api.snapshot(meeting_id, f.token) for f in followers]
        upto = await mark(api, meeting_id, followers)
        differ = [
            (f.who, f.stream.state_at(s["seq"]).view(), snapshot_view(s))
            for f, s in zip(followers, snapshots, strict=True)
            if f.stream.state_at(s["seq"]).view() != snapshot_view(s)
        ]
        if not differ:
            return upto
        if asyncio.get_running_loop().time() > deadline:
            who, state, fresh = differ[0]
            assert state == fresh, f"the state of the {who} is not a fresh snapshot"


@contextlib.asynccontextmanager
async def following(
    server: ServerProcess, meeting_id: str, tokens: list[str | None]
) -> AsyncIterator[list[Follower]]:
    """Followers for these tokens, connected (first time: snapshot) and closed after."""
    followers = [Follower(server, meeting_id, token) for token in tokens]
    try:
        for follower in followers:
            welcome = await follower.connect()
            assert welcome["mode"] == "snapshot", welcome
            await follower.wait_for(welcome["seq"])
        yield followers
    finally:
        for follower in followers:
            await follower.disconnect()
