"""The JSON Schemas in schema/: valid, in sync with the code and the docs, able to fail.

The last test drives every command against the real server; tests/support.py
validates every frame and JSON body it receives against these schemas.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets
from jsonschema import Draft202012Validator

from server import protocol
from server.domain.errors import HTTP_STATUS, ErrorCode
from server.domain.models import Answered, EventKind, Kind, Phase, Role, Source, Status
from server.services.meetings import LANGUAGES
from tests import schemas
from tests.schemas import SCHEMAS, validate, validate_command, validate_http, validate_server_frame
from tests.support import ADMIN_TOKEN, Api, Meeting, Socket, client_id, connect

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
COMMON = SCHEMAS["common.json"]["$defs"]
CLOSE_CODES = {name: value for name, value in vars(protocol).items() if name.startswith("CLOSE_")}
NOT_COMMANDS = {"command.json", "client-frame.json", "hello.json"}


# --- the schemas themselves -----------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = SCHEMAS[name]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == schemas.BASE_URI + name
    Draft202012Validator.check_schema(schema)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_ref_resolves(name: str) -> None:
    resolver = schemas.REGISTRY.resolver(base_uri=SCHEMAS[name]["$id"])
    for ref in _refs(SCHEMAS[name]):
        resolver.lookup(ref)  # raises on a missing file or pointer


# --- in sync with the code and the docs ----------------------------------------------


def _documented(word: str) -> bool:
    return f"`{word}`" in DOCS


def test_event_kinds_match_the_code_and_are_documented() -> None:
    kinds = {k.value for k in EventKind}
    assert set(COMMON["event_kind"]["enum"]) == kinds
    event = SCHEMAS["frames/event.json"]
    dispatched = set()
    for rule in event["allOf"]:
        kind = rule["if"]["properties"]["kind"]
        dispatched |= set(kind.get("enum", [kind.get("const")]))
    assert dispatched == kinds, "every event kind chooses its data schema"
    assert [k for k in sorted(kinds) if not _documented(k)] == []


def test_commands_match_the_code_and_are_documented() -> None:
    files = {
        name.removeprefix("commands/").removesuffix(".json"): schema
        for name, schema in SCHEMAS.items()
        if name.startswith("commands/") and name.removeprefix("commands/") not in NOT_COMMANDS
    }
    assert set(files) == set(protocol.COMMAND_TYPES)
    for name, schema in files.items():
        assert schema["properties"]["type"] == {"const": name}
    assert SCHEMAS["commands/command.json"]["properties"]["type"]["enum"] == list(
        protocol.COMMAND_TYPES
    )
    assert [c for c in protocol.COMMAND_TYPES if not _documented(c)] == []


def test_error_codes_match_the_code_and_are_documented() -> None:
    assert COMMON["error_code"]["enum"] == [c.value for c in ErrorCode]
    assert [c.value for c in ErrorCode if not _documented(c.value)] == []


def test_error_statuses_match_the_code() -> None:
    by_status: dict[str, set[str]] = {}
    for code, status in HTTP_STATUS.items():
        by_status.setdefault(str(status), set()).add(code.value)
    documented = {}
    for status, rule in SCHEMAS["http/error.json"]["$defs"].items():
        code = rule["properties"]["error"]["properties"]["code"]
        documented[status] = set(code.get("enum", [code.get("const")]))
    assert documented == by_status


def test_close_codes_match_the_code_and_are_documented() -> None:
    in_schema = {rule["const"] for rule in SCHEMAS["frames/close.json"]["oneOf"]}
    assert in_schema == set(CLOSE_CODES.values())
    undocumented = [n for n, c in CLOSE_CODES.items() if not re.search(rf"\b{c}\b", DOCS)]
    assert undocumented == []


@pytest.mark.parametrize(
    ("definition", "values"),
    [
        ("phase", [p.value for p in Phase]),
        ("role", [r.value for r in Role]),
        ("kind", [k.value for k in Kind]),
        ("source", [s.value for s in Source]),
        ("status", [s.value for s in Status]),
        ("answered", [a.value for a in Answered]),
        ("moderate_action", list(protocol.MODERATE_ACTIONS)),
        ("language", list(LANGUAGES)),
    ],
)
def test_vocabulary_matches_the_code(definition: str, values: list[str]) -> None:
    assert COMMON[definition]["enum"] == values


def test_docs_say_where_the_schemas_are() -> None:
    section = DOCS.split("## Schemas", 1)[1].split("\n## ", 1)[0]
    for directory in ("objects", "commands", "frames", "http"):
        assert f"schema/{directory}/" in section
    assert "tests/schemas.py" in section


# --- examples: what must pass and what must not -----------------------------------

NOW = "2026-03-01T18:30:00.125Z"
MEETING: dict[str, Any] = {
    "id": "budget-2027",
    "title": "Budget 2027",
    "basis": "The **proposal**.",
    "phase": "live",
    "code": "K7Q2PD",
    "language": "da",
    "settings": {
        "moderation": "post",
        "anonymous": False,
        "max_body": 1000,
        "max_depth": 4,
        "voting": True,
        "public": True,
    },
    "spotlight": None,
    "created_at": NOW,
}
MESSAGE: dict[str, Any] = {
    "id": 12,
    "parent_id": 3,
    "depth": 1,
    "kind": "question",
    "source": "online",
    "body": "Why close the school?",
    "author": {"name": "Alice", "role": "citizen"},
    "mine": False,
    "status": "visible",
    "reason": None,
    "answered": "unanswered",
    "answered_by": None,
    "pinned": False,
    "merged_into": None,
    "votes": 4,
    "created_at": NOW,
    "updated_at": NOW,
}
STAFF_MESSAGE = MESSAGE | {
    "author": {"name": "Alice", "role": "citizen", "participant_id": "p_0123456789abcdef"},
    "client_id": "c-1",
    "status": "hidden",
    "reason": "Off topic",
}
PRESENCE = {"online": 3, "in_room": 1, "by_role": {"citizen": 2, "moderator": 1}}


def event(kind: str, data: dict[str, Any], seq: int = 7) -> dict[str, Any]:
    return {"type": "event", "seq": seq, "kind": kind, "data": data}


VALID_FRAMES: dict[str, dict[str, Any]] = {
    "welcome": {
        "type": "welcome",
        "seq": 0,
        "role": "citizen",
        "participant_id": "p_1",
        "mode": "snapshot",
    },
    "welcome of a viewer": {
        "type": "welcome",
        "seq": 9,
        "role": "viewer",
        "participant_id": None,
        "mode": "replay",
    },
    "welcome of the organiser": {
        "type": "welcome",
        "seq": 9,
        "role": "organiser",
        "participant_id": None,
        "mode": "replay",
    },
    "snapshot": {
        "type": "snapshot",
        "seq": 7,
        "meeting": MEETING,
        "messages": [MESSAGE | {"voted": True}],
        "presence": PRESENCE,
    },
    "message.created": event("message.created", MESSAGE),
    "message.updated, staff view": event("message.updated", STAFF_MESSAGE),
    "message.updated, placeholder": event(
        "message.updated",
        MESSAGE | {"status": "withdrawn", "body": "", "author": {"name": None, "role": "citizen"}},
    ),
    "message.updated, erased": event(
        "message.updated",
        MESSAGE
        | {
            "status": "erased",
            "body": "",
            "mine": True,
            "author": {"name": None, "role": "citizen"},
        },
    ),
    "message.created, floor answer": event(
        "message.created",
        MESSAGE
        | {
            "kind": "answer",
            "source": "floor",
            "parent_id": 12,
            "depth": 2,
            "author": {"name": "The mayor", "role": "speaker"},
        },
    ),
    "message.created, topic": event(
        "message.created",
        MESSAGE
        | {
            "kind": "topic",
            "parent_id": None,
            "depth": 0,
            "author": {"name": "Moderator", "role": "moderator"},
        },
    ),
    "votes.updated, public": event("votes.updated", {"counts": {"12": 5, "14": 0}}),
    "votes.updated, personal": event("votes.updated", {"counts": {"12": 5}, "voted": {"12": True}}),
    "spotlight.changed": event("spotlight.changed", {"message_id": 12}),
    "spotlight.changed to none": event("spotlight.changed", {"message_id": None}),
    "meeting.updated": event("meeting.updated", MEETING),
    "batch": {
        "type": "batch",
        "frames": [
            {
                "type": "welcome",
                "seq": 8,
                "role": "moderator",
                "participant_id": "p_2",
                "mode": "replay",
            },
            event("message.created", MESSAGE, seq=8),
        ],
    },
    "presence": {"type": "presence", **PRESENCE},
    "pong": {"type": "pong", "ref": None},
    "ack of post": {"type": "ack", "ref": "r1", "result": {"message": MESSAGE}},
    "ack of vote": {
        "type": "ack",
        "ref": "r2",
        "result": {"message_id": 12, "votes": 5, "voted": True},
    },
    "ack of spotlight": {"type": "ack", "ref": None, "result": {"message_id": None}},
    "ack of phase": {"type": "ack", "ref": "r3", "result": {"meeting": MEETING}},
    "error": {"type": "error", "ref": "r4", "code": "closed", "message": "not while closed"},
}


@pytest.mark.parametrize("name", list(VALID_FRAMES))
def test_example_frame_validates(name: str) -> None:
    validate_server_frame(VALID_FRAMES[name])


def _with(frame: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `frame` with the value at a dotted path replaced (or added)."""
    out = copy.deepcopy(frame)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return out


def _without(frame: dict[str, Any], path: str) -> dict[str, Any]:
    out = copy.deepcopy(frame)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[part]
    del node[last]
    return out


CREATED = VALID_FRAMES["message.created"]
STAFF_EVENT = VALID_FRAMES["message.updated, staff view"]
INVALID_FRAMES: dict[str, tuple[Any, str]] = {
    # name: (frame, where the error must point: the JSON path of the failure)
    "voted in an event message": (_with(CREATED, "data.voted", True), r"\$\.data"),
    "a snapshot message without voted": (
        _with(VALID_FRAMES["snapshot"], "messages", [MESSAGE]),
        r"\$\.messages\[0\]",
    ),
    "participant_id without client_id": (
        _without(
            _with(_with(STAFF_EVENT, "data.status", "visible"), "data.reason", None),
            "data.client_id",
        ),
        r"\$\.data\.author",
    ),
    "client_id without participant_id": (
        _with(CREATED, "data.client_id", "c-1"),
        r"\$\.data\.author",
    ),
    "a pending message to a stranger": (
        _with(CREATED, "data.status", "pending"),
        r"\$\.data\.mine",
    ),
    "a reason to a stranger": (_with(CREATED, "data.reason", "Off topic"), r"\$\.data\.reason"),
    "a hidden body to a stranger": (_with(CREATED, "data.status", "hidden"), r"\$\.data\.body"),
    "an erased message with its body": (
        _with(STAFF_EVENT, "data.status", "erased"),
        r"\$\.data\.(body|reason|client_id|author)",
    ),
    "a message id as a string": (_with(CREATED, "data.id", "12"), r"\$\.data\.id"),
    "a timestamp without a time zone": (
        _with(CREATED, "data.created_at", "2026-03-01T18:30:00"),
        r"\$\.data\.created_at",
    ),
    "a date that is not a timestamp": (
        _with(VALID_FRAMES["meeting.updated"], "data.created_at", "1 March 2026"),
        r"\$\.data\.created_at",
    ),
    "an unknown message status": (_with(CREATED, "data.status", "deleted"), r"\$\.data\.status"),
    "a top-level message below depth 0": (
        _with(CREATED, "data.parent_id", None),
        r"\$\.data\.depth",
    ),
    "answered by nobody": (
        _with(CREATED, "data.answered", "answered_oral"),
        r"\$\.data\.answered_by",
    ),
    "a merged message keeping votes": (_with(CREATED, "data.merged_into", 14), r"\$\.data\.votes"),
    "an unknown event kind": (_with(CREATED, "kind", "message.deleted"), r"\$\.kind"),
    "event seq 0": (_with(CREATED, "seq", 0), r"\$\.seq"),
    "a message where the meeting belongs": (
        _with(VALID_FRAMES["meeting.updated"], "data", MESSAGE),
        r"\$\.data",
    ),
    "an unknown setting": (
        _with(VALID_FRAMES["meeting.updated"], "data.settings.colour", "red"),
        r"\$\.data\.settings",
    ),
    "an unknown phase": (
        _with(VALID_FRAMES["meeting.updated"], "data.phase", "paused"),
        r"\$\.data\.phase",
    ),
    "who voted, leaked in votes.updated": (
        _with(VALID_FRAMES["votes.updated, public"], "data.restricted", {"12": "p_1"}),
        r"\$\.data",
    ),
    "a vote count keyed by a non-id": (
        _with(VALID_FRAMES["votes.updated, public"], "data.counts", {"twelve": 1}),
        r"\$\.data\.counts",
    ),
    "a spotlight without message_id": (
        _with(VALID_FRAMES["spotlight.changed"], "data", {}),
        r"\$\.data",
    ),
    "a batch in a batch": (
        _with(VALID_FRAMES["batch"], "frames.1", VALID_FRAMES["batch"]),
        r"\$\.frames\[1\]\.type",
    ),
    "an empty batch": (_with(VALID_FRAMES["batch"], "frames", []), r"\$\.frames"),
    "a welcome with an unknown role": (
        _with(VALID_FRAMES["welcome"], "role", "admin"),
        r"\$\.role",
    ),
    "a viewer with a participant id": (
        _with(VALID_FRAMES["welcome of a viewer"], "participant_id", "p_1"),
        r"\$\.participant_id",
    ),
    "a welcome in an unknown mode": (
        _with(VALID_FRAMES["welcome"], "mode", "partial"),
        r"\$\.mode",
    ),
    "names in presence": (_with(VALID_FRAMES["presence"], "by_role", {"Alice": 1}), r"\$\.by_role"),
    "a seq on presence": (_with(VALID_FRAMES["presence"], "seq", 3), r"\$"),
    "an ack without a result": (_with(VALID_FRAMES["ack of post"], "result", {}), r"\$\.result"),
    "a vote ack without voted": (
        _without(VALID_FRAMES["ack of vote"], "result.voted"),
        r"\$\.result",
    ),
    "an ack with voted on its message": (
        _with(VALID_FRAMES["ack of post"], "result.message.voted", True),
        r"\$\.result\.message",
    ),
    "an unknown error code": (_with(VALID_FRAMES["error"], "code", "oops"), r"\$\.code"),
    "a ref longer than 64": (_with(VALID_FRAMES["pong"], "ref", "r" * 65), r"\$\.ref"),
    "an unknown frame type": ({"type": "hello", "token": None, "since": None}, r"\$\.type"),
    "not an object": ([], r"\$"),
}


@pytest.mark.parametrize("name", list(INVALID_FRAMES))
def test_wrong_frame_is_rejected_naming_schema_and_path(name: str) -> None:
    frame, path = INVALID_FRAMES[name]
    with pytest.raises(AssertionError) as failure:
        validate_server_frame(frame)
    message = str(failure.value)
    assert "schema/frames/server-frame.json" in message
    assert re.search(rf"at {path}[:.\[]", message), message
    assert re.search(r"\(rule schema/[a-z/-]+\.json#", message), message


VALID_COMMANDS: list[dict[str, Any]] = [
    {"type": "hello", "token": None, "since": None},
    {"type": "hello", "token": "t" * 43, "since": 120},
    {"type": "ping", "ref": "r1"},
    {"type": "ping"},
    {
        "type": "post",
        "ref": "r2",
        "parent_id": None,
        "body": "A topic",
        "client_id": "c1",
        "kind": "topic",
    },
    {"type": "post", "parent_id": 3, "body": "Why?", "client_id": "c2"},
    {"type": "vote", "ref": "r3", "message_id": 12, "value": 1},
    {"type": "vote", "message_id": 12, "value": 0},
    {"type": "withdraw", "message_id": 12},
    {"type": "moderate", "message_id": 12, "action": "hide", "reason": "Off topic"},
    {"type": "moderate", "message_id": 12, "action": "pin"},
    {"type": "answered", "message_id": 12, "state": "answered_oral", "by": "The mayor"},
    {"type": "merge", "message_id": 12, "into": 14},
    {"type": "spotlight", "message_id": None},
    {"type": "floor", "body": "Said in the hall", "speaker_name": "A neighbour"},
    {"type": "floor", "body": "An answer", "parent_id": 12, "kind": "answer", "client_id": "f1"},
    {"type": "phase", "phase": "closed"},
]


@pytest.mark.parametrize("command", VALID_COMMANDS, ids=lambda c: str(c["type"]))
def test_example_command_validates(command: dict[str, Any]) -> None:
    validate_command(command)


INVALID_COMMANDS: dict[str, tuple[dict[str, Any], str]] = {
    "an unknown type": ({"type": "shout"}, r"\$\.type"),
    "a vote of 2": ({"type": "vote", "message_id": 12, "value": 2}, r"\$\.value"),
    "a post without client_id": ({"type": "post", "parent_id": None, "body": "Hi"}, r"\$"),
    "an empty body": (
        {"type": "post", "parent_id": None, "body": "", "client_id": "c"},
        r"\$\.body",
    ),
    "a message id as a string": ({"type": "withdraw", "message_id": "12"}, r"\$\.message_id"),
    "an unknown moderate action": (
        {"type": "moderate", "message_id": 1, "action": "delete"},
        r"\$\.action",
    ),
    "a field of another command": ({"type": "ping", "message_id": 1}, r"\$"),
    "a ref longer than 64": ({"type": "ping", "ref": "r" * 65}, r"\$\.ref"),
    "a spotlight without message_id": ({"type": "spotlight"}, r"\$"),
    "a topic from the floor": ({"type": "floor", "body": "x", "kind": "topic"}, r"\$\.kind"),
    "a hello without since": ({"type": "hello", "token": None}, r"\$"),
    "a phase that does not exist": ({"type": "phase", "phase": "paused"}, r"\$\.phase"),
}


@pytest.mark.parametrize("name", list(INVALID_COMMANDS))
def test_wrong_command_is_rejected(name: str) -> None:
    command, path = INVALID_COMMANDS[name]
    with pytest.raises(AssertionError, match=r"schema/commands/client-frame\.json") as failure:
        validate_command(command)
    assert re.search(rf"at {path}[:.\[]", str(failure.value)), str(failure.value)


CREATED_MEETING = MEETING | {
    "moderator_key": "m" * 43,
    "speaker_key": "s" * 43,
    "screen_key": "k" * 43,
    "urls": {
        "citizen": "http://127.0.0.1:8000/m/budget-2027",
        "join": "http://127.0.0.1:8000/j/K7Q2PD",
        "moderator": "http://127.0.0.1:8000/m/budget-2027/moderator#key=" + "m" * 43,
        "speaker": "http://127.0.0.1:8000/m/budget-2027/speaker#key=" + "s" * 43,
        "screen": "http://127.0.0.1:8000/m/budget-2027/screen#key=" + "k" * 43,
    },
}
ERROR_BODY = {"error": {"code": "not_found", "message": "no meeting 'x'"}}
COMMAND_ERROR = {
    "type": "error",
    "ref": "c",
    "code": "closed",
    "message": "not now",
    "error": {"code": "closed", "message": "not now"},
}
VALID_HTTP: list[tuple[str, str, int, Any]] = [
    ("POST", "/api/meetings", 201, CREATED_MEETING),
    ("GET", "/api/meetings/budget-2027", 200, MEETING),
    ("PATCH", "/api/meetings/{id}", 200, MEETING),
    (
        "GET",
        "/api/meetings/by-code/K7Q2PD",
        200,
        {"id": "budget-2027", "title": "B", "phase": "open"},
    ),
    (
        "POST",
        "/api/meetings/budget-2027/join",
        201,
        {"participant_id": "p_1", "token": "t" * 43, "role": "citizen"},
    ),
    ("GET", "/api/meetings/{id}/snapshot", 200, _without(VALID_FRAMES["snapshot"], "type")),
    (
        "GET",
        "/api/meetings/budget-2027/events?since=3&limit=10",
        200,
        {"seq": 9, "events": [CREATED, VALID_FRAMES["votes.updated, public"]], "more": False},
    ),
    ("POST", "/api/meetings/{id}/commands", 200, VALID_FRAMES["ack of vote"]),
    ("POST", "/api/meetings/budget-2027/commands", 200, {"type": "pong", "ref": "p"}),
    ("POST", "/api/meetings/budget-2027/commands", 409, COMMAND_ERROR),
    (
        "GET",
        "/api/meetings/budget-2027/export?format=json",
        200,
        {
            "meeting": MEETING,
            "exported_at": NOW,
            "topics": [{"topic": None, "questions": [MESSAGE | {"answers": [], "comments": []}]}],
        },
    ),
    (
        "DELETE",
        "/api/meetings/budget-2027/participants/p_1",
        200,
        {"participant_id": "p_1", "messages": 2, "votes": 0},
    ),
    ("GET", "/healthz", 200, {"status": "ok", "connections": 0}),
    ("GET", "/api/meetings/nope", 404, ERROR_BODY),
    ("GET", "/api/meetings/x/qr.svg", 404, ERROR_BODY),
]


@pytest.mark.parametrize(
    ("method", "route", "status", "body"),
    VALID_HTTP,
    ids=[f"{m} {r} {s}" for m, r, s, _ in VALID_HTTP],
)
def test_example_http_body_validates(method: str, route: str, status: int, body: Any) -> None:
    validate_http(method, route, status, body)


INVALID_HTTP: dict[str, tuple[tuple[str, str, int, Any], str]] = {
    "created answered with 200": (("POST", "/api/meetings", 200, CREATED_MEETING), "201"),
    "a role key outside the fragment": (
        (
            "POST",
            "/api/meetings",
            201,
            _with(CREATED_MEETING, "urls.moderator", "http://h/m/x/moderator?key=" + "m" * 43),
        ),
        r"\$\.urls\.moderator",
    ),
    "a join as organiser": (
        (
            "POST",
            "/api/meetings/x/join",
            201,
            {"participant_id": "p_1", "token": "t" * 43, "role": "organiser"},
        ),
        r"\$\.role",
    ),
    "a draft found by code": (
        ("GET", "/api/meetings/by-code/ABCDEF", 200, {"id": "x", "title": "T", "phase": "draft"}),
        r"\$\.phase",
    ),
    "an events page of messages": (
        (
            "GET",
            "/api/meetings/x/events?since=0",
            200,
            {"seq": 1, "events": [MESSAGE], "more": False},
        ),
        r"\$\.events\[0\]",
    ),
    "an error code that does not fit the status": (
        ("GET", "/api/meetings/x", 409, {"error": {"code": "invalid", "message": "m"}}),
        r"\$\.error\.code",
    ),
    "an error body without the error object": (
        ("GET", "/api/meetings/x", 404, {"code": "not_found", "message": "m"}),
        r"\$",
    ),
    "a status with no error code": (
        ("GET", "/api/meetings/x", 418, {"error": {"code": "invalid", "message": "m"}}),
        "418",
    ),
    "a command error without the error object": (
        ("POST", "/api/meetings/x/commands", 409, _without(COMMAND_ERROR, "error")),
        r"\$",
    ),
    "a command error whose two codes differ": (
        (
            "POST",
            "/api/meetings/x/commands",
            409,
            _with(COMMAND_ERROR, "error", {"code": "conflict", "message": "not now"}),
        ),
        "differs",
    ),
    "a JSON body on a route that has none": (("GET", "/metrics", 200, {}), "documents"),
    "an unknown route": (("GET", "/api/everything", 200, {}), "no documented route"),
}


@pytest.mark.parametrize("name", list(INVALID_HTTP))
def test_wrong_http_body_is_rejected(name: str) -> None:
    (method, route, status, body), expected = INVALID_HTTP[name]
    with pytest.raises(AssertionError) as failure:
        validate_http(method, route, status, body)
    message = str(failure.value)
    assert f"{method} {route} -> {status}" in message
    assert re.search(expected, message), message


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/api/meetings/by-code/K7Q2PD", "/api/meetings/by-code/{code}"),
        ("GET", "/api/meetings/by-code", "/api/meetings/{id}"),
        ("POST", "/api/meetings/a-b/join", "/api/meetings/{id}/join"),
        ("GET", "/api/meetings/a/events?since=0&limit=5", "/api/meetings/{id}/events"),
        (
            "DELETE",
            "/api/meetings/a/participants/p_1",
            "/api/meetings/{id}/participants/{participant_id}",
        ),
        ("POST", "/api/meetings/{meeting_id}/commands", "/api/meetings/{id}/commands"),
    ],
)
def test_concrete_paths_map_to_route_templates(method: str, path: str, template: str) -> None:
    found = schemas.route_for(method, path)
    assert found is not None and found[0] == template


def test_ack_results_are_told_apart_by_command() -> None:
    validate("frames/ack.json#/$defs/vote_result", {"message_id": 1, "votes": 0, "voted": False})
    with pytest.raises(AssertionError, match="vote_result"):
        validate("frames/ack.json#/$defs/vote_result", {"message_id": 1})


# --- the real server ------------------------------------------------------------

# The ack result each command gets (docs/protocol.md, "Ack results").
RESULT_OF = {
    "post": "message_result",
    "floor": "message_result",
    "withdraw": "message_result",
    "moderate": "message_result",
    "answered": "message_result",
    "merge": "message_result",
    "vote": "vote_result",
    "spotlight": "spotlight_result",
    "phase": "phase_result",
}


async def send(sock: Socket, type: str, expect: str = "ack", **fields: Any) -> dict[str, Any]:
    """A command that is itself checked against schema/commands, and its reply."""
    validate_command({"type": type, "ref": "r", **fields})
    reply = await sock.command(type, **fields)
    if type == "ping":
        assert reply["type"] == "pong", reply
    elif expect == "ack":
        assert reply["type"] == "ack", reply
        validate(f"frames/ack.json#/$defs/{RESULT_OF[type]}", reply["result"], f"ack of {type}")
    else:
        assert reply["type"] == "error" and reply["code"] == expect, reply
    return reply


async def seen(sock: Socket, predicate: Any) -> None:
    """Wait until the socket has received a frame that matches (or had one already)."""
    if not any(predicate(f) for f in sock.frames):
        await sock.recv_until(predicate)


async def test_every_command_and_every_frame_of_the_real_server_match_the_schemas(
    api: Api, meeting: Meeting
) -> None:
    server = api.server
    mid = meeting.id
    alice = await meeting.citizen("Alice", in_room=True)
    bob = await meeting.citizen("Bob")
    async with contextlib.AsyncExitStack() as stack:

        async def open_socket(token: str | None) -> Socket:
            return await stack.enter_async_context(connect(server, mid, token))

        mod = await open_socket(meeting.moderator["token"])
        speaker = await open_socket(meeting.speaker["token"])
        cit = await open_socket(alice["token"])
        viewer = await open_socket(None)
        organiser = await open_socket(ADMIN_TOKEN)
        sockets = (mod, speaker, cit, viewer, organiser)
        raw = await websockets.connect(f"{server.ws_url}/ws/meetings/{mid}", compression=None)
        stack.push_async_callback(raw.close)
        await raw.send(orjson.dumps({"type": "hello", "token": None, "since": None}).decode())
        raw_reader = asyncio.create_task(read_raw(raw))
        assert viewer.welcome is not None and viewer.welcome["participant_id"] is None
        assert organiser.welcome is not None and organiser.welcome["role"] == "organiser"

        # open: ping, topics and questions, votes
        assert (await send(cit, "ping"))["type"] == "pong"
        topic = (
            await send(
                mod, "post", parent_id=None, body="Schools", client_id=client_id(), kind="topic"
            )
        )["result"]["message"]
        q1 = (
            await send(
                cit, "post", parent_id=topic["id"], body="Why close it?", client_id=client_id()
            )
        )["result"]["message"]
        q2 = await meeting.post(bob, "Why now?", topic["id"])
        comment = (
            await send(cit, "post", parent_id=q1["id"], body="Indeed.", client_id=client_id())
        )["result"]["message"]
        await send(cit, "vote", message_id=q2["id"], value=1)
        await send(mod, "vote", message_id=q1["id"], value=1)
        await seen(viewer, lambda f: f["type"] == "event" and f["kind"] == "votes.updated")

        # live: answers, floor, answered, spotlight, moderation, merge, withdraw
        await send(mod, "phase", phase="live")
        await send(speaker, "post", parent_id=q1["id"], body="We must save.", client_id=client_id())
        await send(mod, "answered", message_id=q1["id"], state="answered_oral", by="The mayor")
        floor = (
            await send(
                mod,
                "floor",
                body="And the buses?",
                parent_id=topic["id"],
                speaker_name="A neighbour",
            )
        )["result"]["message"]
        await send(mod, "floor", body="They stay.", parent_id=floor["id"], kind="answer")
        await send(mod, "spotlight", message_id=q1["id"])
        await send(mod, "moderate", message_id=comment["id"], action="hide", reason="Off topic")
        await send(mod, "moderate", message_id=comment["id"], action="restore")
        await send(mod, "moderate", message_id=q1["id"], action="pin")
        await send(mod, "merge", message_id=q2["id"], into=q1["id"])
        await send(cit, "withdraw", message_id=comment["id"])
        await send(mod, "spotlight", message_id=None)

        # pre-moderation: a pending post, seen by its author and staff only
        await api.request(
            "PATCH",
            f"/api/meetings/{mid}",
            token=meeting.moderator["token"],
            json={"settings": {"moderation": "pre"}},
        )
        pending = (
            await send(cit, "post", parent_id=topic["id"], body="Pending?", client_id=client_id())
        )["result"]["message"]
        assert pending["status"] == "pending" and pending["mine"] is True
        await send(mod, "moderate", message_id=pending["id"], action="reject", reason="Duplicate")
        await send(mod, "moderate", message_id=pending["id"], action="approve")

        # errors, over the socket and over HTTP
        await send(viewer, "vote", expect="forbidden", message_id=q1["id"], value=1)
        await send(cit, "moderate", expect="forbidden", message_id=q1["id"], action="hide")
        await send(mod, "withdraw", expect="not_found", message_id=10**9)
        await send(mod, "moderate", expect="conflict", message_id=q1["id"], action="restore")
        await cit.send({"type": "post", "ref": "bad", "body": 5})
        await cit.recv_until(lambda f: f.get("ref") == "bad" and f["code"] == "invalid")
        await api.request(
            "POST",
            f"/api/meetings/{mid}/commands",
            token=alice["token"],
            json={"type": "phase", "ref": "h", "phase": "closed"},
            expect=403,
        )
        assert (await meeting.run(alice, "ping"))["type"] == "pong"

        # the HTTP reads
        for token in (None, alice["token"], meeting.moderator["token"], ADMIN_TOKEN):
            await api.request("GET", f"/api/meetings/{mid}", token=token)
            await api.snapshot(mid, token)
            await api.events(mid, 0, token)
        await api.request("GET", f"/api/meetings/by-code/{meeting.created['code']}")
        await api.request("GET", "/healthz")
        await api.request("GET", "/api/meetings/no-such-meeting", expect=404)
        await api.request("GET", f"/api/meetings/{mid}/events?since=x", expect=400)
        await api.request("GET", f"/api/meetings/{mid}/snapshot", token="wrong", expect=401)

        # erasure, then the end of the meeting and its minutes
        await api.request(
            "DELETE", f"/api/meetings/{mid}/participants/{bob['participant_id']}", token=ADMIN_TOKEN
        )
        await seen(mod, lambda f: f["type"] == "event" and f["data"].get("status") == "erased")
        await send(organiser, "phase", phase="closed")
        await api.request("GET", f"/api/meetings/{mid}/export?format=json")
        await send(mod, "phase", phase="archived")
        await api.request(
            "GET", f"/api/meetings/{mid}/export?format=json", token=meeting.moderator["token"]
        )
        for sock in sockets:
            await seen(
                sock,
                lambda f: (
                    f["type"] == "event"
                    and f["kind"] == "meeting.updated"
                    and f["data"]["phase"] == "archived"
                ),
            )
        await seen(viewer, lambda f: f["type"] == "presence")

        frames = [f for sock in sockets for f in sock.frames]
        types = {f["type"] for f in frames}
        assert types >= {"welcome", "snapshot", "event", "presence", "pong", "ack", "error"}, types
        kinds = {f["kind"] for f in frames if f["type"] == "event"}
        assert kinds == {k.value for k in EventKind}, kinds
        votes = [f["data"] for f in frames if f["type"] == "event" and f["kind"] == "votes.updated"]
        assert any("voted" in v for v in votes) and any("voted" not in v for v in votes)
        staff_views = [f for f in mod.events() if f["kind"].startswith("message.")]
        assert all("client_id" in f["data"] for f in staff_views)
        assert not any(
            "client_id" in f["data"] for f in viewer.events() if f["kind"].startswith("message.")
        )

    # Resuming from 0 replays the whole log, every frame of it valid too.
    async with connect(server, mid, meeting.moderator["token"], since=0) as sock:
        assert sock.welcome is not None and sock.welcome["mode"] == "replay"
        last = sock.welcome["seq"]
        await seen(sock, lambda f: f["type"] == "event" and f["seq"] == last)
    # The server wraps the events of a burst (a merge commits several at once)
    # in batch frames; the raw reader saw them before any unwrapping.
    await raw.close()
    raw_types = await raw_reader
    assert "batch" in raw_types, raw_types


async def read_raw(ws: Any) -> list[str]:
    """Validate every frame of a raw socket until it closes; the types seen."""
    types = []
    with contextlib.suppress(websockets.ConnectionClosed):
        async for message in ws:
            frame = orjson.loads(message)
            validate_server_frame(frame)
            types.append(frame["type"])
    return types
