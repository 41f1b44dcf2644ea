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

from collections.abc import Hashable
from dataclasses import dataclass
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


def message_audience(record: dict[str, Any], viewer: Viewer) -> Hashable:
    """Readers with the same audience key see the same projection."""
    mine = viewer.participant_id is not None and viewer.participant_id == record["author_id"]
    if viewer.is_staff:
        return ("staff", mine)
    if mine:
        return "author"
    return "public"


def project_message(record: dict[str, Any], viewer: Viewer) -> dict[str, Any] | None:
    """The protocol's Message object for this reader, or None if unseen.

    `voted` is left out: it is the reader's own state and comes with
    snapshots and personal `votes.updated` events.
    """
    return _project(record, message_audience(record, viewer))


def _project(record: dict[str, Any], audience: Hashable) -> dict[str, Any] | None:
    status = record["status"]
    staff = isinstance(audience, tuple)
    mine = audience == "author" or (staff and audience[1])  # type: ignore[index]
    body = record["body"]
    name = record["author_name"]
    reason = record["reason"]
    if not staff and not mine:
        if status in UNSEEN_STATUSES:
            return None
        reason = None
        if status in PLACEHOLDER_STATUSES:
            body, name = "", None
    if status == Status.ERASED.value:
        body, name = "", None
    author: dict[str, Any] = {"name": name, "role": record["author_role"]}
    out: dict[str, Any] = {
        "id": record["id"],
        "parent_id": record["parent_id"],
        "depth": record["depth"],
        "kind": record["kind"],
        "source": record["source"],
        "body": body,
        "author": author,
        "mine": bool(mine),
        "status": status,
        "reason": reason,
        "answered": record["answered"],
        "answered_by": record["answered_by"],
        "pinned": record["pinned"],
        "merged_into": record["merged_into"],
        "votes": record["votes"],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
    }
    if staff:
        author["participant_id"] = record["author_id"]
        out["client_id"] = record["client_id"]
    return out


def event_audience(event: Event, viewer: Viewer) -> Hashable:
    kind = event.kind
    if kind in (EventKind.MESSAGE_CREATED, EventKind.MESSAGE_UPDATED):
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
    if kind in (EventKind.MESSAGE_CREATED, EventKind.MESSAGE_UPDATED):
        return _project(event.data, audience)
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
