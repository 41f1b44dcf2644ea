"""Wire protocol v1: close codes, strict JSON, command parsing, frame encoding.

No I/O here. Everything a client sends passes `parse_json` and then
`parse_command` (or `parse_hello`), which give typed commands or raise a
`DomainError` with the code `invalid` and a message that says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from server.domain.errors import DomainError, ErrorCode, invalid
from server.domain.models import Answered, Kind, Phase

PROTOCOL_VERSION = 1

# Close codes (RFC 6455 private range 4000-4999 mirrors HTTP statuses).
CLOSE_GOING_AWAY = 1001  # the server shuts down; resume elsewhere
CLOSE_TOO_LARGE = 1009  # a frame over the limit (sent by the WebSocket layer)
CLOSE_INTERNAL_ERROR = 1011  # session not opened, or keepalive unanswered; reconnect
CLOSE_MALFORMED_HELLO = 4400
CLOSE_UNAUTHORIZED = 4401  # bad, missing, foreign or revoked token
CLOSE_FORBIDDEN = 4403  # the meeting is not open to this role now
CLOSE_NOT_FOUND = 4404
CLOSE_HELLO_TIMEOUT = 4408
CLOSE_TOO_SLOW = 4409  # outgoing budget exceeded; resume with `since`

# Deepest JSON nesting accepted; the deepest valid command nests 1 level.
MAX_JSON_DEPTH = 8
MAX_REF = 64
_CONTAINERS = (dict, list)

T = TypeVar("T")


def parse_json(raw: str | bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no lone surrogates, shallow nesting."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"malformed JSON: {exc}") from None
    _check_depth(value)
    return value


def _check_depth(value: Any) -> None:
    if isinstance(value, dict):
        # Nearly every command is one flat object: nothing to walk.
        for child in value.values():
            if isinstance(child, _CONTAINERS):
                break
        else:
            return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise invalid(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
        # Only containers go on the stack: a command is mostly flat.
        stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


# --- commands --------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    ref: str | None

    type_name = ""


@dataclass(frozen=True)
class Ping(Command):
    type_name = "ping"


@dataclass(frozen=True)
class Post(Command):
    parent_id: int | None
    body: str
    client_id: str
    kind: Kind | None
    type_name = "post"


@dataclass(frozen=True)
class Vote(Command):
    message_id: int
    value: int
    type_name = "vote"


@dataclass(frozen=True)
class Withdraw(Command):
    message_id: int
    type_name = "withdraw"


@dataclass(frozen=True)
class Moderate(Command):
    message_id: int
    action: str
    reason: str | None
    type_name = "moderate"


@dataclass(frozen=True)
class MarkAnswered(Command):
    message_id: int
    state: Answered
    by: str | None
    type_name = "answered"


@dataclass(frozen=True)
class Merge(Command):
    message_id: int
    into: int
    type_name = "merge"


@dataclass(frozen=True)
class Spotlight(Command):
    message_id: int | None
    type_name = "spotlight"


@dataclass(frozen=True)
class Floor(Command):
    body: str
    parent_id: int | None
    speaker_name: str | None
    kind: Kind | None
    client_id: str | None
    type_name = "floor"


@dataclass(frozen=True)
class SetPhase(Command):
    phase: Phase
    type_name = "phase"


@dataclass(frozen=True)
class Hello:
    token: str | None
    since: int | None


MODERATE_ACTIONS = ("approve", "reject", "hide", "restore", "pin", "unpin")
_KINDS = tuple(k.value for k in Kind)
_FLOOR_KINDS = (Kind.QUESTION.value, Kind.COMMENT.value, Kind.ANSWER.value)
_ANSWERED = tuple(a.value for a in Answered)
_PHASES = tuple(p.value for p in Phase)
COMMAND_TYPES = (
    "ping",
    "post",
    "vote",
    "withdraw",
    "moderate",
    "answered",
    "merge",
    "spotlight",
    "floor",
    "phase",
)


class _Fields:
    """Typed access to a command object, with errors that name the field."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj

    def _get(self, name: str, required: bool) -> Any:
        value = self.obj.get(name)
        if value is None and required:
            raise invalid(f"{name} is required")
        return value

    def integer(self, name: str, *, required: bool = True) -> int | None:
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(f"{name} must be an integer")
        if not 0 <= value < 2**53:
            raise invalid(f"{name} is out of range")
        return value

    def text(self, name: str, *, required: bool = True, limit: int | None = None) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(f"{name} must be a string")
        if limit is not None and len(value) > limit:
            raise DomainError(ErrorCode.TOO_LARGE, f"{name} is longer than {limit} characters")
        return value

    def choice(self, name: str, choices: tuple[str, ...], *, required: bool = True) -> str | None:
        value = self.text(name, required=required)
        if value is not None and value not in choices:
            raise invalid(f"{name} must be one of {', '.join(choices)}")
        return value


def _required(value: T | None) -> T:
    assert value is not None
    return value


# Bodies are checked against the meeting's own max_body later; this only
# stops absurd strings before any work is done on them.
_RAW_TEXT_LIMIT = 20_000


def parse_ref(obj: Any) -> str | None:
    if isinstance(obj, dict):
        ref = obj.get("ref")
        if isinstance(ref, str) and len(ref) <= MAX_REF:
            return ref
    return None


def parse_command(obj: Any) -> Command:
    """A typed command from a decoded frame, or `invalid`."""
    if not isinstance(obj, dict):
        raise invalid("a command is a JSON object")
    f = _Fields(obj)
    kind_name = f.text("type")
    ref = f.text("ref", required=False)
    if ref is not None and len(ref) > MAX_REF:
        raise invalid(f"ref is longer than {MAX_REF} characters")
    if kind_name == "ping":
        return Ping(ref)
    if kind_name == "post":
        kind = f.choice("kind", _KINDS, required=False)
        return Post(
            ref,
            parent_id=f.integer("parent_id", required=False),
            body=_required(f.text("body", limit=_RAW_TEXT_LIMIT)),
            client_id=_client_id(f, required=True) or "",
            kind=Kind(kind) if kind else None,
        )
    if kind_name == "vote":
        value = _required(f.integer("value"))
        if value not in (0, 1):
            raise invalid("value must be 1 (vote) or 0 (take the vote back)")
        return Vote(ref, message_id=_required(f.integer("message_id")), value=value)
    if kind_name == "withdraw":
        return Withdraw(ref, message_id=_required(f.integer("message_id")))
    if kind_name == "moderate":
        return Moderate(
            ref,
            message_id=_required(f.integer("message_id")),
            action=_required(f.choice("action", MODERATE_ACTIONS)),
            reason=f.text("reason", required=False, limit=_RAW_TEXT_LIMIT),
        )
    if kind_name == "answered":
        state: str = _required(f.choice("state", _ANSWERED))
        return MarkAnswered(
            ref,
            message_id=_required(f.integer("message_id")),
            state=Answered(state),
            by=f.text("by", required=False, limit=_RAW_TEXT_LIMIT),
        )
    if kind_name == "merge":
        return Merge(
            ref, message_id=_required(f.integer("message_id")), into=_required(f.integer("into"))
        )
    if kind_name == "spotlight":
        if "message_id" not in obj:
            raise invalid("message_id is required (null clears the spotlight)")
        return Spotlight(ref, message_id=f.integer("message_id", required=False))
    if kind_name == "floor":
        kind = f.choice("kind", _FLOOR_KINDS, required=False)
        return Floor(
            ref,
            body=_required(f.text("body", limit=_RAW_TEXT_LIMIT)),
            parent_id=f.integer("parent_id", required=False),
            speaker_name=f.text("speaker_name", required=False, limit=_RAW_TEXT_LIMIT),
            kind=Kind(kind) if kind else None,
            client_id=_client_id(f, required=False),
        )
    if kind_name == "phase":
        phase: str = _required(f.choice("phase", _PHASES))
        return SetPhase(ref, phase=Phase(phase))
    raise invalid(f"unknown command type {kind_name!r}")


def _client_id(f: _Fields, *, required: bool) -> str | None:
    value = f.text("client_id", required=required)
    if value is None:
        return None
    if not 1 <= len(value) <= 64 or not value.isprintable():
        raise invalid("client_id must be 1 to 64 printable characters")
    return value


def parse_hello(obj: Any) -> Hello:
    """The first frame; anything else is a malformed hello (close 4400)."""
    if not isinstance(obj, dict) or obj.get("type") != "hello":
        raise invalid("the first frame must be a hello")
    f = _Fields(obj)
    token = f.text("token", required=False, limit=512)
    since = f.integer("since", required=False)
    return Hello(token=token, since=since)


# --- frames the server sends -------------------------------------------------


def ack_frame(ref: str | None, result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ack", "ref": ref, "result": result}


def error_frame(ref: str | None, error: DomainError) -> dict[str, Any]:
    return {"type": "error", "ref": ref, "code": error.code.value, "message": error.message}


def pong_frame(ref: str | None) -> dict[str, Any]:
    return {"type": "pong", "ref": ref}


def event_frame(seq: int, kind: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "event", "seq": seq, "kind": kind, "data": data})


_BATCH_HEAD = b'{"type":"batch","frames":['
_BATCH_TAIL = b"]}"


def batch_frame(frames: list[bytes]) -> bytes:
    """Several encoded frames, none of them a batch, as one batch frame."""
    return _BATCH_HEAD + b",".join(frames) + _BATCH_TAIL


def rebatch(frames: list[bytes]) -> bytes:
    """Several encoded frames as one, without decoding them again.

    Batches do not nest (schema/frames/batch.json): one among `frames` (a
    burst the hub batched, queued for a slow connection) is spliced in.
    """
    items = [
        f[len(_BATCH_HEAD) : -len(_BATCH_TAIL)] if f.startswith(_BATCH_HEAD) else f for f in frames
    ]
    return batch_frame(items)


def ws_text_frame(payload: bytes) -> bytes:
    """A complete unmasked WebSocket text frame (RFC 6455 §5.2) around `payload`.

    Server frames are never masked, so the same bytes can be written to every
    connection that should receive this payload.
    """
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 1 << 16:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return header + payload
