"""Minimal and unlinkable (Guarantee 10): what a citizen receives, what is stored.

A scripted meeting runs with every kind of change (pre-moderation with
pending, rejected and hidden messages, votes, a merge, a withdrawal, an
erasure, people coming and going) while an observer, an ordinary citizen,
records the raw text of every frame and HTTP body it receives. Nothing in it
may link a message to its author: no other participant's id or token, no
client id. The database is then searched byte by byte for IP addresses and
raw tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from tests import schemas
from tests.support import (
    ADMIN_TOKEN,
    Api,
    Meeting,
    ServerProcess,
    client_id,
    connect,
    new_meeting,
)

NAMED = "Bodil Bystrup"
REJECT_REASON = "Off topic for tonight"
HIDE_REASON = "Personal attack"
REJECTED_BODY = "Rejected: the mayor's home address is"
PENDING_BODY = "Still pending: who lives at number 12?"


@dataclass
class Observer:
    """A citizen that keeps the raw text of everything the server sends it."""

    api: Api
    meeting_id: str
    me: dict[str, Any]
    raw: list[str] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    # Where in `raw` what was fetched after the erasure starts.
    after_erasure: int = 0

    def received(self, text: str) -> None:
        self.raw.append(text)
        frame = orjson.loads(text)
        schemas.validate_server_frame(frame)
        self.frames.extend(frame["frames"] if frame["type"] == "batch" else [frame])

    async def get(self, path: str, *, token: bool = True) -> None:
        headers = {"authorization": f"Bearer {self.me['token']}"} if token else {}
        response = await self.api.client.get(self.api.server.url + path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        self.raw.append(response.text)

    async def command(self, **frame: Any) -> dict[str, Any]:
        response = await self.api.client.post(
            f"{self.api.server.url}/api/meetings/{self.meeting_id}/commands",
            headers={"authorization": f"Bearer {self.me['token']}"}, content=orjson.dumps(frame))
        self.raw.append(response.text)
        assert response.status_code == 200, response.text
        return orjson.loads(response.content)  # type: ignore[no-any-return]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "event" and f["kind"] == kind]

    @property
    def text(self) -> str:
        return "\n".join(self.raw)


@dataclass
class Script:
    """Everything the scripted meeting used that must stay with its owner."""

    meeting: Meeting
    observer: Observer
    anonymous: dict[str, Any]
    named: dict[str, Any]
    client_ids: list[str]

    def others(self) -> list[dict[str, Any]]:
        m = self.meeting
        return [self.anonymous, self.named, m.moderator, m.speaker]

    def secrets(self) -> dict[str, str]:
        found = {}
        for n, who in enumerate(self.others()):
            found[f"participant id {n} ({who['role']})"] = who["participant_id"]
            found[f"token {n} ({who['role']})"] = who["token"]
        for key in ("moderator_key", "speaker_key", "screen_key"):
            found[key] = self.meeting.created[key]
        found["admin token"] = ADMIN_TOKEN
        for n, cid in enumerate(self.client_ids):
            found[f"client id {n}"] = cid
        return found


async def _until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def recording(observer: Observer, server: ServerProcess) -> AsyncIterator[None]:
    async with connect(server, observer.meeting_id, None, hello=False) as sock:
        await sock.send({"type": "hello", "token": observer.me["token"], "since": None})

        async def record() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    observer.received(await sock.conn.recv())  # type: ignore[arg-type]

        task = asyncio.create_task(record())
        try:
            await _until(lambda: any(f["type"] == "snapshot" for f in observer.frames))
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_meeting(api: Api, *, anonymous: bool) -> Script:
    """A meeting from open to closed, with the observer recording throughout."""
    meeting = await new_meeting(api, settings={"moderation": "pre", "anonymous": anonymous})
    anon = await meeting.citizen()
    named = await meeting.citizen(NAMED, in_room=True)
    observer = Observer(api, meeting.id, await meeting.citizen("Olga"))
    client_ids: list[str] = []
    mod = meeting.moderator

    async def post(who: dict[str, Any], body: str, parent: int | None, **extra: Any) -> int:
        cid = client_id()
        client_ids.append(cid)
        ack = await meeting.run(who, "post", body=body, parent_id=parent, client_id=cid, **extra)
        return int(ack["result"]["message"]["id"])

    async def moderate(message_id: int, action: str, reason: str | None = None) -> None:
        await meeting.run(mod, "moderate", message_id=message_id, action=action, reason=reason)

    async with recording(observer, api.server):
        topic = await post(mod, "Traffic in the old town", None, kind="topic")
        # The anonymous citizen and the named one ask; the moderator lets them in.
        q1 = await post(anon, "Why is the bus lane closing?", topic)
        q2 = await post(named, "Can the market stay on Saturdays?", topic)
        for q in (q1, q2):
            await moderate(q, "approve")
        # A retry with the same client id stores nothing new.
        retry = await meeting.run(anon, "post", body="Why is the bus lane closing?",
                                  parent_id=topic, client_id=client_ids[1])
        assert retry["result"]["message"]["id"] == q1
        q3 = await post(anon, REJECTED_BODY, topic)
        await moderate(q3, "reject", REJECT_REASON)
        await post(named, PENDING_BODY, topic)
        c1 = await post(anon, "The market is a mess, honestly.", q2)
        await moderate(c1, "approve")
        await moderate(c1, "hide", HIDE_REASON)

        # Votes, from the others and from the observer itself.
        for who, q, value in ((anon, q2, 1), (named, q1, 1), (anon, q1, 1), (anon, q1, 0)):
            await meeting.run(who, "vote", message_id=q, value=value)
        for q in (q1, q2):
            await observer.command(type="vote", ref=f"o{q}", message_id=q, value=1)

        # A duplicate question, voted on, merged into the first.
        q5 = await post(anon, "Bus lane: why close it?", topic)
        await moderate(q5, "approve")
        for who in (anon, named):
            await meeting.run(who, "vote", message_id=q5, value=1)
        await meeting.run(mod, "merge", message_id=q5, into=q1)

        # A comment, shown and then withdrawn by its author.
        c2 = await post(named, "I take that back.", q1)
        await moderate(c2, "approve")
        await meeting.run(named, "withdraw", message_id=c2)
        own_cid = client_id()
        own = await observer.command(type="post", ref="mine", body="And the cycle path?",
                                     parent_id=topic, client_id=own_cid)
        client_ids.append(own_cid)
        await moderate(own["result"]["message"]["id"], "approve")

        # People come and go: presence counts change.
        for who in (anon, named):
            async with connect(api.server, meeting.id, who["token"]):
                await asyncio.sleep(0.3)

        # Live: spotlight, an answer, a floor remark.
        await meeting.run(mod, "phase", phase="live")
        await meeting.run(mod, "spotlight", message_id=q1)
        await post(meeting.speaker, "The lane stays until the new route is built.", q1)
        floor_cid = client_id()
        await meeting.run(mod, "floor", body="A resident asked about parking.",
                          speaker_name="Resident in the hall", client_id=floor_cid)
        client_ids.append(floor_cid)

        # The named citizen asks to be forgotten.
        erased = await api.request("DELETE", f"/api/meetings/{meeting.id}/participants/"
                                   f"{named['participant_id']}", token=ADMIN_TOKEN)
        assert erased["messages"] >= 3

        await meeting.run(mod, "phase", phase="closed")
        await _until(lambda: any(e["data"].get("phase") == "closed"
                                 for e in observer.events("meeting.updated")))
        await asyncio.sleep(0.5)  # coalesced counts and presence that are still due

    # What a citizen may fetch over HTTP, after the fact (and the erasure).
    observer.after_erasure = len(observer.raw)
    await observer.get(f"/api/meetings/{meeting.id}")
    await observer.get(f"/api/meetings/{meeting.id}/snapshot")
    await observer.get(f"/api/meetings/{meeting.id}/events?since=0")
    await observer.get(f"/api/meetings/{meeting.id}/snapshot", token=False)
    await observer.get(f"/api/meetings/{meeting.id}/events?since=0", token=False)
    for fmt in ("md", "csv", "json"):
        await observer.get(f"/api/meetings/{meeting.id}/export?format={fmt}")
    return Script(meeting, observer, anon, named, client_ids)


@pytest.mark.parametrize("anonymous", [False, True], ids=["named-meeting", "anonymous-meeting"])
async def test_another_citizen_receives_nothing_that_links_a_message_to_its_author(
    api: Api, anonymous: bool,
) -> None:
    script = await run_meeting(api, anonymous=anonymous)
    observer = script.observer
    text = observer.text
    # The recording is real: the events and bodies of the meeting are in it.
    # (Under pre-moderation a message appears to others as message.updated.)
    seen = {e["data"]["id"] for kind in ("message.created", "message.updated")
            for e in observer.events(kind)}
    assert len(seen) >= 8
    assert "Why is the bus lane closing?" in text

    leaks = {what: value for what, value in script.secrets().items() if value in text}
    assert not leaks, f"the observer received: {sorted(leaks)}"
    # Not even the field names that would carry them.
    assert '"client_id"' not in text
    assert '"recipient"' not in text and '"restricted"' not in text and '"author_id"' not in text
    assert text.count('"participant_id"') == 1  # its own, in the welcome
    assert observer.frames[0]["participant_id"] == observer.me["participant_id"]

    # What only the moderator and the author may see never reached it.
    for secret in (REJECT_REASON, HIDE_REASON, REJECTED_BODY, PENDING_BODY):
        assert secret not in text
    # Personal vote events: only its own two votes, no one else's.
    personal = [e for e in observer.events("votes.updated") if "voted" in e["data"]]
    assert len(personal) == 2
    # Presence is counts only.
    presence = [f for f in observer.frames if f["type"] == "presence"]
    assert len(presence) >= 2
    assert all(set(p) == {"type", "online", "in_room", "by_role"} for p in presence)
    # The erased citizen's name and texts are gone from what is served later,
    # the replayed event log included.
    later = "\n".join(observer.raw[observer.after_erasure:])
    assert "Can the market stay on Saturdays?" in text
    for gone in (NAMED, "Can the market stay on Saturdays?", "I take that back."):
        assert gone not in later
    assert "Why is the bus lane closing?" in later
    if anonymous:
        # Names are not kept at all in an anonymous meeting.
        assert NAMED not in text


async def test_no_ip_address_and_no_raw_token_is_stored(
    make_server: Callable[..., ServerProcess], http_client: httpx.AsyncClient,
) -> None:
    server = make_server()
    api = Api(server, http_client)
    script = await run_meeting(api, anonymous=False)

    def stored() -> dict[str, bytes]:
        """The database file and its companions (-wal, -shm), byte for byte."""
        return {p.name: p.read_bytes() for p in server.db_path.parent.iterdir()
                if p.name.startswith(server.db_path.name)}

    for when in ("running", "stopped"):
        files = stored()
        if when == "running":
            assert f"{server.db_path.name}-wal" in files  # the search covers the WAL too
        data = b"".join(files.values())
        assert b"127.0.0.1" not in data, when
        # The search looks at real data: bodies and token hashes are there.
        assert b"Why is the bus lane closing?" in data
        observer_token = script.observer.me["token"]
        assert hashlib.sha256(observer_token.encode()).hexdigest().encode() in data
        raw_tokens = {"observer token": observer_token} | {
            what: value for what, value in script.secrets().items()
            if what.startswith(("token", "moderator_key", "speaker_key", "screen_key", "admin"))
        }
        found = [what for what, token in raw_tokens.items() if token.encode() in data]
        assert not found, (when, found)
        if when == "running":
            server.stop()
