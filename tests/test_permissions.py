"""Who may do what in which phase: every command x role x phase, against the real server.

The expected outcomes are written out below from docs/protocol.md (the
permission table, "role is checked first: forbidden; then phase: closed",
and "nobody but staff sees a draft meeting"). They are deliberately not
derived from the server's own tables, so that a change there shows up here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import (
    ADMIN_TOKEN,
    Api,
    ApiError,
    Meeting,
    ServerProcess,
    client_id,
    connect,
    new_meeting,
)

PHASES = ("draft", "open", "live", "closed", "archived")
ROLES = ("citizen", "moderator", "speaker", "screen", "organiser", "viewer")

# Outcomes: `ack`, `pong`, an error code, or `4401` (the viewer's socket is
# closed at hello: a draft meeting has no public view). Citizens cannot join
# a draft meeting at all, so their draft column is the join's `not_found`;
# speakers and screens hold keys but do not see a draft: `not_found`.
# `withdraw:other` is a withdraw of someone else's message (the author check
# comes after role and phase).
EXPECTED_TABLE = """
command          role       draft      open       live       closed     archived
ping             citizen    not_found  pong       pong       pong       pong
ping             moderator  pong       pong       pong       pong       pong
ping             speaker    pong       pong       pong       pong       pong
ping             screen     pong       pong       pong       pong       pong
ping             organiser  pong       pong       pong       pong       pong
ping             viewer     4401       pong       pong       pong       pong
post:topic       citizen    not_found  forbidden  forbidden  forbidden  forbidden
post:topic       moderator  ack        ack        ack        closed     closed
post:topic       speaker    not_found  forbidden  forbidden  forbidden  forbidden
post:topic       screen     not_found  forbidden  forbidden  forbidden  forbidden
post:topic       organiser  forbidden  forbidden  forbidden  forbidden  forbidden
post:topic       viewer     4401       forbidden  forbidden  forbidden  forbidden
post:question    citizen    not_found  ack        ack        closed     closed
post:question    moderator  ack        ack        ack        closed     closed
post:question    speaker    not_found  forbidden  forbidden  forbidden  forbidden
post:question    screen     not_found  forbidden  forbidden  forbidden  forbidden
post:question    organiser  forbidden  forbidden  forbidden  forbidden  forbidden
post:question    viewer     4401       forbidden  forbidden  forbidden  forbidden
post:comment     citizen    not_found  ack        ack        closed     closed
post:comment     moderator  ack        ack        ack        closed     closed
post:comment     speaker    not_found  forbidden  forbidden  forbidden  forbidden
post:comment     screen     not_found  forbidden  forbidden  forbidden  forbidden
post:comment     organiser  forbidden  forbidden  forbidden  forbidden  forbidden
post:comment     viewer     4401       forbidden  forbidden  forbidden  forbidden
post:answer      citizen    not_found  forbidden  forbidden  forbidden  forbidden
post:answer      moderator  closed     closed     ack        ack        closed
post:answer      speaker    not_found  closed     ack        ack        closed
post:answer      screen     not_found  forbidden  forbidden  forbidden  forbidden
post:answer      organiser  forbidden  forbidden  forbidden  forbidden  forbidden
post:answer      viewer     4401       forbidden  forbidden  forbidden  forbidden
vote             citizen    not_found  ack        ack        closed     closed
vote             moderator  closed     ack        ack        closed     closed
vote             speaker    not_found  ack        ack        closed     closed
vote             screen     not_found  forbidden  forbidden  forbidden  forbidden
vote             organiser  forbidden  forbidden  forbidden  forbidden  forbidden
vote             viewer     4401       forbidden  forbidden  forbidden  forbidden
withdraw:own     citizen    not_found  ack        ack        closed     closed
withdraw:own     moderator  ack        ack        ack        closed     closed
withdraw:own     speaker    not_found  ack        ack        closed     closed
withdraw:own     screen     not_found  forbidden  forbidden  forbidden  forbidden
withdraw:own     organiser  forbidden  forbidden  forbidden  forbidden  forbidden
withdraw:own     viewer     4401       forbidden  forbidden  forbidden  forbidden
withdraw:other   citizen    not_found  forbidden  forbidden  closed     closed
withdraw:other   moderator  forbidden  forbidden  forbidden  closed     closed
withdraw:other   speaker    not_found  forbidden  forbidden  closed     closed
withdraw:other   screen     not_found  forbidden  forbidden  forbidden  forbidden
withdraw:other   organiser  forbidden  forbidden  forbidden  forbidden  forbidden
withdraw:other   viewer     4401       forbidden  forbidden  forbidden  forbidden
moderate         citizen    not_found  forbidden  forbidden  forbidden  forbidden
moderate         moderator  ack        ack        ack        ack        ack
moderate         speaker    not_found  forbidden  forbidden  forbidden  forbidden
moderate         screen     not_found  forbidden  forbidden  forbidden  forbidden
moderate         organiser  forbidden  forbidden  forbidden  forbidden  forbidden
moderate         viewer     4401       forbidden  forbidden  forbidden  forbidden
answered         citizen    not_found  forbidden  forbidden  forbidden  forbidden
answered         moderator  closed     closed     ack        ack        closed
answered         speaker    not_found  closed     ack        ack        closed
answered         screen     not_found  forbidden  forbidden  forbidden  forbidden
answered         organiser  forbidden  forbidden  forbidden  forbidden  forbidden
answered         viewer     4401       forbidden  forbidden  forbidden  forbidden
merge            citizen    not_found  forbidden  forbidden  forbidden  forbidden
merge            moderator  ack        ack        ack        ack        closed
merge            speaker    not_found  forbidden  forbidden  forbidden  forbidden
merge            screen     not_found  forbidden  forbidden  forbidden  forbidden
merge            organiser  forbidden  forbidden  forbidden  forbidden  forbidden
merge            viewer     4401       forbidden  forbidden  forbidden  forbidden
spotlight        citizen    not_found  forbidden  forbidden  forbidden  forbidden
spotlight        moderator  closed     closed     ack        closed     closed
spotlight        speaker    not_found  forbidden  forbidden  forbidden  forbidden
spotlight        screen     not_found  forbidden  forbidden  forbidden  forbidden
spotlight        organiser  forbidden  forbidden  forbidden  forbidden  forbidden
spotlight        viewer     4401       forbidden  forbidden  forbidden  forbidden
floor            citizen    not_found  forbidden  forbidden  forbidden  forbidden
floor            moderator  closed     closed     ack        closed     closed
floor            speaker    not_found  forbidden  forbidden  forbidden  forbidden
floor            screen     not_found  forbidden  forbidden  forbidden  forbidden
floor            organiser  forbidden  forbidden  forbidden  forbidden  forbidden
floor            viewer     4401       forbidden  forbidden  forbidden  forbidden
phase            citizen    not_found  forbidden  forbidden  forbidden  forbidden
phase            moderator  ack        ack        ack        ack        closed
phase            speaker    not_found  forbidden  forbidden  forbidden  forbidden
phase            screen     not_found  forbidden  forbidden  forbidden  forbidden
phase            organiser  ack        ack        ack        ack        closed
phase            viewer     4401       forbidden  forbidden  forbidden  forbidden
"""


def _parse_table(text: str) -> dict[tuple[str, str, str], str]:
    lines = [line.split() for line in text.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    assert tuple(header[2:]) == PHASES
    table = {}
    for command, role, *outcomes in rows:
        assert len(outcomes) == len(PHASES), (command, role)
        for phase, outcome in zip(PHASES, outcomes, strict=True):
            table[(command, role, phase)] = outcome
    return table


EXPECTED = _parse_table(EXPECTED_TABLE)
COMMANDS = tuple(dict.fromkeys(command for command, _, _ in EXPECTED))
CELLS = [(c, r, p) for c in COMMANDS for r in ROLES for p in PHASES]
assert set(CELLS) == set(EXPECTED), "the table must cover every cell exactly once"

# How a meeting reaches each phase, after being prepared in draft and live.
ROUTE_FROM_LIVE = {"open": ["open"], "live": [], "closed": ["closed"],
                   "archived": ["closed", "archived"]}
# A legal move from each phase, for the `phase` command (none from archived).
PHASE_TARGET = {"draft": "open", "open": "live", "live": "open", "closed": "live",
                "archived": "closed"}


@dataclass
class PhaseMeeting:
    """A meeting in one phase, with a participant of each role and messages to act on."""

    meeting: Meeting
    phase: str
    tokens: dict[str, str | None]
    ids: dict[str, int] = field(default_factory=dict)
    own: dict[str, int] = field(default_factory=dict)


async def prepare(api: Api, phase: str, *, messages: bool = True) -> PhaseMeeting:
    """Create in draft, prepare, go live, let citizen and speaker write, move on."""
    m = await new_meeting(api, phase="draft", title=f"Permissions in {phase}")
    screen = await api.join(m.id, key=m.created["screen_key"])
    tokens: dict[str, str | None] = {
        "moderator": m.moderator["token"],
        "speaker": m.speaker["token"],
        "screen": screen["token"],
        "organiser": ADMIN_TOKEN,
        "viewer": None,
        "citizen": None,
    }
    pm = PhaseMeeting(m, phase, tokens)
    if messages:
        second = await api.join(m.id, key=m.created["moderator_key"], name="Second moderator")
        topic = await m.topic("Budget")
        pm.ids["topic"] = topic["id"]
        names = ("reply", "vote", "moderate", "answered", "merge_source", "merge_target",
                 "spotlight", "moderator_own")
        posted = await asyncio.gather(
            *(m.post(m.moderator, f"Question: {name}", topic["id"]) for name in names),
            m.post(second, "Question of another", topic["id"]),
        )
        pm.ids.update({name: message["id"] for name, message in zip(names, posted, strict=False)})
        pm.ids["other"] = posted[-1]["id"]
        pm.own["moderator"] = pm.ids["moderator_own"]
    if phase == "draft":
        return pm
    await m.run(m.moderator, "phase", phase="live")
    citizen = await m.citizen("Citizen")
    tokens["citizen"] = citizen["token"]
    if messages:
        mine, answer = await asyncio.gather(m.post(citizen, "My question", pm.ids["topic"]),
                                            m.post(m.speaker, "My answer", pm.ids["reply"]))
        pm.own["citizen"], pm.own["speaker"] = mine["id"], answer["id"]
    for step in ROUTE_FROM_LIVE[phase]:
        await m.run(m.moderator, "phase", phase=step)
    assert (await api.request("GET", f"/api/meetings/{m.id}", token=ADMIN_TOKEN,
                              route="/api/meetings/{id}"))["phase"] == phase
    return pm


def frame_for(command: str, role: str, pm: PhaseMeeting) -> dict[str, Any]:
    ids = pm.ids
    if command == "ping":
        return {"type": "ping"}
    if command.startswith("post:"):
        kind = command.split(":")[1]
        parent = {"topic": None, "question": ids["topic"], "comment": ids["reply"],
                  "answer": ids["reply"]}[kind]
        return {"type": "post", "kind": kind, "parent_id": parent, "body": f"A {kind}",
                "client_id": client_id()}
    if command == "vote":
        return {"type": "vote", "message_id": ids["vote"], "value": 1}
    if command == "withdraw:own":
        return {"type": "withdraw", "message_id": pm.own.get(role, ids["moderator_own"])}
    if command == "withdraw:other":
        return {"type": "withdraw", "message_id": ids["other"]}
    if command == "moderate":
        return {"type": "moderate", "message_id": ids["moderate"], "action": "pin"}
    if command == "answered":
        return {"type": "answered", "message_id": ids["answered"], "state": "answered_written"}
    if command == "merge":
        return {"type": "merge", "message_id": ids["merge_source"], "into": ids["merge_target"]}
    if command == "spotlight":
        return {"type": "spotlight", "message_id": ids["spotlight"]}
    if command == "floor":
        return {"type": "floor", "body": "Said in the hall", "parent_id": ids["topic"]}
    if command == "phase":
        return {"type": "phase", "phase": PHASE_TARGET[pm.phase]}
    raise AssertionError(command)


def outcome_of(reply: dict[str, Any]) -> str:
    if reply["type"] == "error":
        return str(reply["code"])
    return str(reply["type"])


async def attempt(api: Api, pm: PhaseMeeting, role: str, frame: dict[str, Any]) -> str:
    """Send one command as that role over HTTP; the outcome as it appears in the table."""
    token = pm.tokens[role]
    if token is None:
        # A citizen of a draft meeting: there is no way in to begin with.
        try:
            await pm.meeting.citizen()
        except ApiError as exc:
            return exc.code
        raise AssertionError("a citizen could join a draft meeting")
    try:
        reply = await api.command(pm.meeting.id, token, ref="cell", **frame)
    except ApiError as exc:
        assert exc.body["type"] == "error" and exc.body["code"] == exc.code, exc.body
        return exc.code
    return outcome_of(reply)


async def attempt_as_viewer(server: ServerProcess, pm: PhaseMeeting,
                            frames: list[dict[str, Any]]) -> list[str]:
    """Each command in turn over one socket opened without a token."""
    async with connect(server, pm.meeting.id, None, hello=False) as sock:
        await sock.send({"type": "hello", "token": None, "since": None})
        try:
            welcome = await sock.recv()
        except ConnectionClosed:
            return [str(sock.close_code)] * len(frames)
        assert welcome["type"] == "welcome" and welcome["role"] == "viewer", welcome
        return [outcome_of(await sock.command(**frame)) for frame in frames]


@pytest.fixture(scope="module")
async def phase_meetings(server: ServerProcess,
                         http_client: httpx.AsyncClient) -> AsyncIterator[dict[str, PhaseMeeting]]:
    api = Api(server, http_client)
    prepared = await asyncio.gather(*(prepare(api, phase) for phase in PHASES))
    yield dict(zip(PHASES, prepared, strict=True))


async def test_every_command_role_phase_cell_has_the_documented_outcome(
    api: Api, phase_meetings: dict[str, PhaseMeeting]
) -> None:
    # A successful phase move changes its meeting: each phase cell gets its own.
    phase_cells = [cell for cell in CELLS if cell[0] == "phase"]
    own = await asyncio.gather(*(prepare(api, phase, messages=False) for _, _, phase in phase_cells))
    meeting_of = {cell: pm for cell, pm in zip(phase_cells, own, strict=True)}
    for cell in CELLS:
        meeting_of.setdefault(cell, phase_meetings[cell[2]])
    observed: dict[tuple[str, str, str], str] = {}

    # The viewer first, one socket per meeting, before the others' acks make events.
    viewer_cells: dict[int, list[tuple[str, str, str]]] = {}
    for cell in CELLS:
        if cell[1] == "viewer":
            viewer_cells.setdefault(id(meeting_of[cell]), []).append(cell)

    async def run_viewer(cells: list[tuple[str, str, str]]) -> None:
        pm = meeting_of[cells[0]]
        frames = [frame_for(command, role, pm) for command, role, _ in cells]
        observed.update(zip(cells, await attempt_as_viewer(api.server, pm, frames), strict=True))

    await asyncio.gather(*(run_viewer(cells) for cells in viewer_cells.values()))

    limit = asyncio.Semaphore(8)

    async def run(cell: tuple[str, str, str]) -> None:
        command, role, _ = cell
        pm = meeting_of[cell]
        async with limit:
            observed[cell] = await attempt(api, pm, role, frame_for(command, role, pm))

    await asyncio.gather(*(run(cell) for cell in CELLS if cell[1] != "viewer"))
    wrong = [f"{c} as {r} in {p}: expected {EXPECTED[(c, r, p)]}, got {observed[(c, r, p)]}"
             for c, r, p in CELLS if observed[(c, r, p)] != EXPECTED[(c, r, p)]]
    assert not wrong, "\n".join(wrong)


# --- visibility ---------------------------------------------------------------------


async def test_citizen_never_sees_pending_messages_of_others(api: Api) -> None:
    m = await new_meeting(api, settings={"moderation": "pre"})
    alice = await m.citizen("Alice")
    bob = await m.citizen("Bob")
    topic = await m.topic()
    async with connect(api.server, m.id, bob["token"]) as bob_sock:
        await bob_sock.recv()  # snapshot
        pending = await m.post(alice, "Awaiting moderation", topic["id"])
        assert pending["status"] == "pending" and pending["mine"] is True
        marker = await m.topic("Marker after the pending question")
        await bob_sock.recv_until(
            lambda f: f["type"] == "event" and f["data"]["id"] == marker["id"])
        assert all(e["data"].get("id") != pending["id"] for e in bob_sock.events())

        bob_snapshot = await api.snapshot(m.id, bob["token"])
        assert pending["id"] not in [msg["id"] for msg in bob_snapshot["messages"]]
        viewer_snapshot = await api.snapshot(m.id)
        assert pending["id"] not in [msg["id"] for msg in viewer_snapshot["messages"]]
        for token in (bob["token"], None):
            log = await api.events(m.id, 0, token)
            assert all(e["data"].get("id") != pending["id"] for e in log["events"])

        alice_view = {msg["id"]: msg for msg in (await api.snapshot(m.id, alice["token"]))["messages"]}
        assert alice_view[pending["id"]]["status"] == "pending"
        assert alice_view[pending["id"]]["mine"] is True
        staff_view = {msg["id"]: msg for msg in (await api.snapshot(m.id, ADMIN_TOKEN))["messages"]}
        assert staff_view[pending["id"]]["body"] == "Awaiting moderation"

        # Once approved, it reaches Bob as an update (a client upserts).
        await m.run(m.moderator, "moderate", message_id=pending["id"], action="approve")
        event = await bob_sock.recv_until(
            lambda f: f["type"] == "event" and f["data"].get("id") == pending["id"])
        assert event["kind"] == "message.updated"
        assert event["data"]["status"] == "visible"
        assert event["data"]["body"] == "Awaiting moderation"


async def _ws_close_code(server: ServerProcess, meeting_id: str, token: str | None) -> int | str:
    async with connect(server, meeting_id, token, hello=False) as sock:
        await sock.send({"type": "hello", "token": token, "since": None})
        try:
            frame = await sock.recv()
        except ConnectionClosed:
            assert sock.close_code is not None
            return sock.close_code
        return str(frame["type"])


async def test_draft_meeting_is_seen_by_staff_only(api: Api) -> None:
    m = await new_meeting(api, phase="draft")
    screen = await api.join(m.id, key=m.created["screen_key"])
    code = m.created["code"]
    path = f"/api/meetings/{m.id}"
    outsiders = {"anonymous": None, "speaker": m.speaker["token"], "screen": screen["token"]}
    staff = {"moderator": m.moderator["token"], "organiser": ADMIN_TOKEN}

    for who, token in outsiders.items():
        for suffix, route in (("", "/api/meetings/{id}"), ("/snapshot", "/api/meetings/{id}/snapshot"),
                              ("/events?since=0", "/api/meetings/{id}/events")):
            body = await api.request("GET", path + suffix, token=token, route=route, expect=404)
            assert body["error"]["code"] == "not_found", (who, suffix)
    body = await api.request("GET", f"/api/meetings/by-code/{code}",
                             route="/api/meetings/by-code/{code}", expect=404)
    assert body["error"]["code"] == "not_found"
    with pytest.raises(ApiError) as refused:
        await m.citizen("Early bird")
    assert refused.value.code == "not_found"
    assert await _ws_close_code(api.server, m.id, None) == 4401
    assert await _ws_close_code(api.server, m.id, m.speaker["token"]) == 4403
    assert await _ws_close_code(api.server, m.id, screen["token"]) == 4403

    for token in staff.values():
        assert (await api.request("GET", path, token=token, route="/api/meetings/{id}"))["phase"] == "draft"
        assert (await api.snapshot(m.id, token))["meeting"]["id"] == m.id
        assert await _ws_close_code(api.server, m.id, token) == "welcome"

    # The same requests succeed for everyone once the meeting opens.
    await m.run(m.moderator, "phase", phase="open")
    assert (await api.request("GET", path, route="/api/meetings/{id}"))["phase"] == "open"
    found = await api.request("GET", f"/api/meetings/by-code/{code}", route="/api/meetings/by-code/{code}")
    assert found["id"] == m.id
    assert (await m.citizen("On time"))["role"] == "citizen"
    assert await _ws_close_code(api.server, m.id, None) == "welcome"
    assert await _ws_close_code(api.server, m.id, m.speaker["token"]) == "welcome"


async def test_closed_meeting_takes_no_citizen_posts_or_votes_but_a_follow_up_answer(api: Api) -> None:
    m = await new_meeting(api, phase="live")
    citizen = await m.citizen("Citizen")
    question = await m.post(citizen, "Will you answer later?")
    await m.run(m.moderator, "phase", phase="closed")

    for frame in ({"type": "post", "parent_id": None, "body": "Too late", "client_id": client_id()},
                  {"type": "post", "parent_id": question["id"], "body": "Me too", "client_id": client_id()},
                  {"type": "vote", "message_id": question["id"], "value": 1}):
        with pytest.raises(ApiError) as refused:
            await api.command(m.id, citizen["token"], **frame)
        assert refused.value.code == "closed"
        assert refused.value.status == 409

    answer = await m.post(m.speaker, "Yes: here is the written answer.", question["id"])
    assert answer["kind"] == "answer" and answer["status"] == "visible"
    snapshot = await api.snapshot(m.id, citizen["token"])
    by_id = {msg["id"]: msg for msg in snapshot["messages"]}
    assert by_id[answer["id"]]["body"] == "Yes: here is the written answer."
    assert by_id[question["id"]]["answered"] == "answered_written"
    assert by_id[question["id"]]["votes"] == 0
