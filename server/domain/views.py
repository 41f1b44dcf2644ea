"""What each reader may see of a message or an event. Pure functions.

A projection depends only on the stored record and on who reads it, never on
the present state of the database: that is what makes the events streamed
live equal to the events replayed later (Guarantee 4).

Three levels of seeing a message:
- staff (moderator, organiser): everything, with the author's participant id
  and the client id;
- its author: the whole message with the moderator's reason, marked `mine`;
- everybody else: visible messages whole; hidden, withdrawn and erased ones
  as a placeholder without body or name (so that replies keep their place);
  pending and rejected ones not at all.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from server.domain.models import STAFF, Event, EventKind, Role, Status

PLACEHOLDER_STATUSES = frozenset({Status.HIDDEN.value, Status.WITHDRAWN.value, Status.ERASED.value})
UNSEEN_STATUSES = frozenset({Status.PENDING.value, Status.REJECTED.value})


@dataclass(frozen=True)
class Viewer:
    role: Role
    participant_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF


# A reader who is neither staff nor the author of anything: the public view.
PUBLIC_VIEWER = Viewer(Role.VIEWER)


# The fields of a message record (`Message.to_record()`) that a projection
# reads, in the order of a row: a snapshot projects the tuples the database
# returns, without building a record per message first.
ROW_FIELDS = (
    "id",
    "parent_id",
    "depth",
    "kind",
    "source",
    "body",
    "author_id",
    "author_name",
    "author_role",
    "client_id",
    "status",
    "reason",
    "answered",
    "answered_by",
    "pinned",
    "merged_into",
    "votes",
    "created_at",
    "updated_at",
)
_AS_ROW = itemgetter(*ROW_FIELDS)
_ID = ROW_FIELDS.index("id")
_AUTHOR_ID = ROW_FIELDS.index("author_id")
_ERASED = Status.ERASED.value


def _audience(author_id: str | None, viewer: Viewer) -> Hashable:
    mine = viewer.participant_id is not None and viewer.participant_id == author_id
    if viewer.is_staff:
        return ("staff", mine)
    if mine:
        return "author"
    return "public"


def message_audience(record: dict[str, Any], viewer: Viewer) -> Hashable:
    """Readers with the same audience key see the same projection."""
    return _audience(record["author_id"], viewer)


def project_message(record: dict[str, Any], viewer: Viewer) -> dict[str, Any] | None:
    """The protocol's Message object for this reader, or None if unseen.

    `voted` is left out: it is the reader's own state and comes with
    snapshots and personal `votes.updated` events.
    """
    return _project(_AS_ROW(record), message_audience(record, viewer))


def project_rows(
    rows: Iterable[Sequence[Any]], viewer: Viewer, voted: set[int]
) -> list[dict[str, Any]]:
    """The messages of a snapshot as this reader sees them, with `voted`.

    `rows` hold the fields of ROW_FIELDS in that order.
    """
    pid = viewer.participant_id
    # A reader sees each message as its author or as anybody else.
    own, other = _audience(pid, viewer), _audience(None, viewer)
    out = []
    for row in rows:
        view = _project(row, own if pid is not None and row[_AUTHOR_ID] == pid else other)
        if view is not None:
            view["voted"] = row[_ID] in voted
            out.append(view)
    return out


def _project(row: Sequence[Any], audience: Hashable) -> dict[str, Any] | None:
    (
        message_id,
        parent_id,
        depth,
        kind,
        source,
        body,
        author_id,
        name,
        author_role,
        client_id,
        status,
        reason,
        answered,
        answered_by,
        pinned,
        merged_into,
        votes,
        created_at,
        updated_at,
    ) = row
    staff = isinstance(audience, tuple)
    mine = audience == "author" or (staff and audience[1])  # type: ignore[index]
    if not staff and not mine:
        if status in UNSEEN_STATUSES:
            return None
        reason = None
        if status in PLACEHOLDER_STATUSES:
            body, name = "", None
    if status == _ERASED:
        body, name = "", None
    author: dict[str, Any] = {"name": name, "role": author_role}
    out: dict[str, Any] = {
        "id": message_id,
        "parent_id": parent_id,
        "depth": depth,
        "kind": kind,
        "source": source,
        "body": body,
        "author": author,
        "mine": bool(mine),
        "status": status,
        "reason": reason,
        "answered": answered,
        "answered_by": answered_by,
        "pinned": bool(pinned),
        "merged_into": merged_into,
        "votes": votes,
        "created_at": created_at,
        "updated_at": updated_at,
    }
    if staff:
        author["participant_id"] = author_id
        out["client_id"] = client_id
    return out


_MESSAGE_EVENTS = (EventKind.MESSAGE_CREATED, EventKind.MESSAGE_UPDATED)


def event_audience(event: Event, viewer: Viewer) -> Hashable:
    kind = event.kind
    if kind in _MESSAGE_EVENTS:
        return message_audience(event.data, viewer)
    if kind is EventKind.VOTES_UPDATED:
        if event.recipient is not None:
            return "recipient" if viewer.participant_id == event.recipient else "other"
        if viewer.is_staff:
            return "staff"
        restricted = event.data.get("restricted")
        if restricted and viewer.participant_id in restricted.values():
            return ("author", viewer.participant_id)
        return "public"
    return "all"


def project_event(event: Event, viewer: Viewer) -> dict[str, Any] | None:
    """The `data` of the event frame this reader gets, or None for no frame."""
    return project_event_for(event, event_audience(event, viewer))


def project_event_for(event: Event, audience: Hashable) -> dict[str, Any] | None:
    kind = event.kind
    if kind in _MESSAGE_EVENTS:
        data = event.data
        if audience == "public" and data["status"] in UNSEEN_STATUSES:
            return None  # what a pre-moderation queue holds, for everybody else
        return _project(_AS_ROW(data), audience)
    if kind is EventKind.VOTES_UPDATED:
        return _project_votes(event.data, audience)
    return event.data


def _project_votes(data: dict[str, Any], audience: Hashable) -> dict[str, Any] | None:
    if audience == "other":
        return None
    counts: dict[str, int] = data["counts"]
    restricted: dict[str, str | None] = data.get("restricted") or {}
    if audience == "recipient":
        return {"counts": counts, "voted": data["voted"]}
    if restricted and audience != "staff":
        viewer_id = audience[1] if isinstance(audience, tuple) else None
        counts = {
            k: v
            for k, v in counts.items()
            if k not in restricted or (viewer_id is not None and restricted[k] == viewer_id)
        }
        if not counts:
            return None
    return {"counts": counts}
