"""Who may do what, in which phase, to which message. Pure functions.

Each `check_*` raises a `DomainError` or returns what it checked (cleaned).
The permission table here is the one documented in docs/protocol.md.
"""

from __future__ import annotations

import re
import unicodedata

from server.domain.errors import DomainError, ErrorCode, closed, conflict, forbidden, invalid
from server.domain.models import (
    STAFF,
    Actor,
    Answered,
    Kind,
    Meeting,
    Message,
    Phase,
    Role,
    Status,
)

P = Phase
ALL_PHASES = frozenset(Phase)
WRITABLE = frozenset({P.DRAFT, P.OPEN, P.LIVE})
CITIZEN_PHASES = frozenset({P.OPEN, P.LIVE})
ANSWER_PHASES = frozenset({P.LIVE, P.CLOSED})

# Roles allowed to send each command (beyond that, the phase decides).
COMMAND_ROLES: dict[str, frozenset[Role]] = {
    "ping": frozenset(Role),
    "post": frozenset({Role.CITIZEN, Role.SPEAKER, Role.MODERATOR}),
    "vote": frozenset({Role.CITIZEN, Role.SPEAKER, Role.MODERATOR}),
    "withdraw": frozenset({Role.CITIZEN, Role.SPEAKER, Role.MODERATOR}),
    "moderate": frozenset({Role.MODERATOR}),
    "answered": frozenset({Role.MODERATOR, Role.SPEAKER}),
    "merge": frozenset({Role.MODERATOR}),
    "spotlight": frozenset({Role.MODERATOR}),
    "floor": frozenset({Role.MODERATOR}),
    "phase": frozenset({Role.MODERATOR, Role.ORGANISER}),
}

# Phases in which each command is accepted (for `post`, see POST_PHASES).
COMMAND_PHASES: dict[str, frozenset[Phase]] = {
    "ping": ALL_PHASES,
    "post": ALL_PHASES,
    "vote": CITIZEN_PHASES,
    "withdraw": WRITABLE,
    "moderate": ALL_PHASES,
    "answered": ANSWER_PHASES,
    "merge": frozenset({P.DRAFT, P.OPEN, P.LIVE, P.CLOSED}),
    "spotlight": frozenset({P.LIVE}),
    "floor": frozenset({P.LIVE}),
    "phase": frozenset({P.DRAFT, P.OPEN, P.LIVE, P.CLOSED}),
}

# (role, kind) -> phases in which that role may post that kind.
POST_PHASES: dict[tuple[Role, Kind], frozenset[Phase]] = {
    (Role.CITIZEN, Kind.QUESTION): CITIZEN_PHASES,
    (Role.CITIZEN, Kind.COMMENT): CITIZEN_PHASES,
    (Role.SPEAKER, Kind.ANSWER): ANSWER_PHASES,
    (Role.MODERATOR, Kind.TOPIC): WRITABLE,
    (Role.MODERATOR, Kind.QUESTION): WRITABLE,
    (Role.MODERATOR, Kind.COMMENT): WRITABLE,
    (Role.MODERATOR, Kind.ANSWER): ANSWER_PHASES,
}

# Forward through the course of a meeting, and one step back from live and
# closed so that a premature click can be undone. Archived is final.
PHASE_MOVES: dict[Phase, frozenset[Phase]] = {
    P.DRAFT: frozenset({P.OPEN, P.LIVE}),
    P.OPEN: frozenset({P.LIVE, P.CLOSED}),
    P.LIVE: frozenset({P.OPEN, P.CLOSED}),
    P.CLOSED: frozenset({P.LIVE, P.ARCHIVED}),
    P.ARCHIVED: frozenset(),
}

# moderate action -> (statuses it applies to, resulting status or None)
MODERATE_ACTIONS: dict[str, tuple[frozenset[Status], Status | None]] = {
    "approve": (frozenset({Status.PENDING, Status.REJECTED}), Status.VISIBLE),
    "reject": (frozenset({Status.PENDING}), Status.REJECTED),
    "hide": (frozenset({Status.VISIBLE}), Status.HIDDEN),
    "restore": (frozenset({Status.HIDDEN}), Status.VISIBLE),
    "pin": (frozenset({Status.VISIBLE}), None),
    "unpin": (frozenset({Status.VISIBLE, Status.HIDDEN}), None),
}

MAX_NAME = 60
MAX_REASON = 500
MAX_TITLE = 200
MAX_BASIS = 50_000
MAX_CLIENT_ID = 64
# Hard ceiling for a meeting's max_body setting: a message is a question, not
# an essay, and every message is sent to thousands of phones.
MAX_BODY_CEILING = 5_000
MAX_DEPTH_CEILING = 8

# C0/C1 control characters other than tab and newline have no place in text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def check_command(actor: Actor, meeting: Meeting, command: str) -> None:
    """Role first (forbidden), then phase (closed)."""
    if actor.role not in COMMAND_ROLES[command]:
        raise forbidden(f"a {actor.role.value} may not {command}")
    if meeting.phase not in COMMAND_PHASES[command]:
        raise closed(f"{command} is not possible while the meeting is {meeting.phase.value}")


def check_text(value: str, *, field: str, limit: int, required: bool = True) -> str:
    """Normalise line ends, strip, refuse control characters and overlong text."""
    text = value
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        # (ASCII is NFC already; this runs for every post.)
        text = unicodedata.normalize("NFC", text)
    text = text.strip()
    if _CONTROL.search(text):
        raise invalid(f"{field} contains control characters")
    if required and not text:
        raise invalid(f"{field} is empty")
    if len(text) > limit:
        raise DomainError(
            ErrorCode.TOO_LARGE, f"{field} has {len(text)} characters; the limit is {limit}"
        )
    return text


def check_name(value: str | None) -> str | None:
    if value is None:
        return None
    name = check_text(value, field="name", limit=MAX_NAME, required=False)
    if "\n" in name or "\t" in name:
        raise invalid("name must be one line")
    return name or None


def check_reason(value: str | None) -> str | None:
    if value is None:
        return None
    return check_text(value, field="reason", limit=MAX_REASON, required=False) or None


def resolve_kind(actor: Actor, requested: Kind | None, parent: Message | None) -> Kind:
    """The kind a post gets: as asked, or the natural one for its place."""
    if requested is not None:
        return requested
    if actor.role is Role.SPEAKER:
        return Kind.ANSWER
    if parent is None or parent.kind is Kind.TOPIC:
        return Kind.QUESTION
    return Kind.COMMENT


def check_post(
    actor: Actor, meeting: Meeting, kind: Kind, parent: Message | None, *, floor: bool = False
) -> int:
    """Check a post's place in the tree; returns its depth."""
    if not floor:
        phases = POST_PHASES.get((actor.role, kind))
        if phases is None:
            raise forbidden(f"a {actor.role.value} may not post a {kind.value}")
        if meeting.phase not in phases:
            raise closed(
                f"a {kind.value} cannot be posted while the meeting is {meeting.phase.value}"
            )
    if kind is Kind.TOPIC:
        if parent is not None:
            raise invalid("a topic cannot have a parent")
        return 0
    if parent is None:
        if kind is not Kind.QUESTION:
            raise invalid(f"a {kind.value} needs a parent_id")
        return 0
    if parent.meeting_id != meeting.id:
        raise invalid("parent_id belongs to another meeting")
    if kind is Kind.QUESTION and parent.kind is not Kind.TOPIC:
        raise invalid("a question goes under a topic or at the top")
    if kind in (Kind.COMMENT, Kind.ANSWER) and parent.kind is Kind.TOPIC:
        raise invalid(f"a {kind.value} replies to a question, not to a topic")
    if parent.merged_into is not None:
        raise conflict(f"message {parent.id} was merged into {parent.merged_into}")
    if not can_reply_to(actor, parent):
        raise invalid(f"message {parent.id} cannot be replied to")
    depth = parent.depth + 1
    if depth > meeting.settings.max_depth:
        raise invalid(f"replies nest at most {meeting.settings.max_depth} levels deep")
    return depth


def can_reply_to(actor: Actor, parent: Message) -> bool:
    if parent.status is Status.VISIBLE:
        return True
    # Staff may prepare replies under a pending question they are about to approve.
    return actor.role in STAFF and parent.status is Status.PENDING


def initial_status(actor: Actor, meeting: Meeting) -> Status:
    if actor.role is Role.CITIZEN and meeting.settings.moderation == "pre":
        return Status.PENDING
    return Status.VISIBLE


def check_votable(meeting: Meeting, message: Message) -> None:
    if not meeting.settings.voting:
        raise forbidden("voting is off in this meeting")
    if message.kind is not Kind.QUESTION:
        raise invalid("only questions can be voted on")
    if message.merged_into is not None:
        raise conflict(f"message {message.id} was merged into {message.merged_into}")
    if message.status is not Status.VISIBLE:
        raise conflict(f"message {message.id} is {message.status.value}")


def check_withdraw(actor: Actor, message: Message) -> None:
    if message.author_id is None or message.author_id != actor.participant_id:
        raise forbidden("only its author can withdraw a message")
    if message.status in (Status.WITHDRAWN, Status.ERASED):
        raise conflict(f"message {message.id} is already {message.status.value}")


def check_moderate(action: str, message: Message) -> Status | None:
    if action not in MODERATE_ACTIONS:
        raise invalid(f"unknown moderate action {action!r}")
    allowed, result = MODERATE_ACTIONS[action]
    if message.status not in allowed:
        raise conflict(f"cannot {action} a message that is {message.status.value}")
    if action == "pin" and message.pinned:
        raise conflict("already pinned")
    if action == "unpin" and not message.pinned:
        raise conflict("not pinned")
    return result


def check_answerable(message: Message) -> None:
    if message.kind is not Kind.QUESTION:
        raise invalid("only questions are answered")
    if message.status not in (Status.VISIBLE, Status.HIDDEN):
        raise conflict(f"message {message.id} is {message.status.value}")


def answered_by(state: Answered, by: str | None, actor: Actor) -> str | None:
    if state is Answered.UNANSWERED:
        return None
    return by or actor.name or actor.role.value


def check_merge(source: Message, target: Message) -> None:
    if source.id == target.id:
        raise invalid("a message cannot be merged into itself")
    if source.meeting_id != target.meeting_id:
        raise invalid("both messages must belong to the meeting")
    if source.kind is not Kind.QUESTION or target.kind is not Kind.QUESTION:
        raise invalid("only questions are merged")
    if source.merged_into is not None:
        raise conflict(f"message {source.id} is already merged")
    if target.merged_into is not None:
        raise conflict(f"message {target.id} is itself merged into {target.merged_into}")
    if target.status is not Status.VISIBLE:
        raise conflict(f"message {target.id} is {target.status.value}; merge into a visible one")
    if source.status not in (Status.VISIBLE, Status.PENDING, Status.HIDDEN):
        raise conflict(f"message {source.id} is {source.status.value}")


def check_spotlight(message: Message) -> None:
    if message.kind is Kind.TOPIC:
        raise invalid("a topic cannot be put in the spotlight")
    if message.status is not Status.VISIBLE or message.merged_into is not None:
        raise conflict(f"message {message.id} is not visible")


def check_phase_move(current: Phase, target: Phase) -> None:
    if target == current:
        raise conflict(f"the meeting is already {current.value}")
    if target not in PHASE_MOVES[current]:
        raise conflict(f"a meeting cannot move from {current.value} to {target.value}")


def stays_in_spotlight(message: Message) -> bool:
    return message.status is Status.VISIBLE and message.merged_into is None
