"""The queries of the read path: hellos, snapshots and replays.

Sync functions of a `Connection`, run inside one read transaction with
`await conn.run_sync(reads.fn, ...)`: the statements of one function then
cost one switch into the worker greenlet instead of one per `await`.

They return plain values built straight from row tuples. A snapshot reads
thousands of messages, and building a `Message` with five enums per row was
most of its cost; the view rules (`domain.views.project_rows`) project the
rows as they come.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Select, bindparam, exists, select

from server.domain.models import Event, EventKind, Meeting, Role
from server.domain.views import ROW_FIELDS
from server.store import repository
from server.store.tables import events, messages, participants, votes

# Keys looked up in one query. SQLite's historical limit on bound parameters
# is 999: stay well below it.
MAX_BATCH = 500

_ROW_COLUMNS = tuple(messages.c[name] for name in ROW_FIELDS)


@dataclass(frozen=True)
class Participant:
    """What a bearer token stands for: one participant of one meeting."""

    id: str
    meeting_id: str
    role: Role
    name: str | None
    in_room: bool


@dataclass(frozen=True)
class Head:
    """A meeting at the seq of a read (`meeting.last_seq`), and which of the
    participants asked about have something of their own in it (a message
    or a vote): only readers without may share the public projection."""

    meeting: Meeting
    personal: frozenset[str]


@dataclass(frozen=True)
class SnapshotRead:
    """What a snapshot is made of, read in one transaction at `meeting.last_seq`."""

    meeting: Meeting
    # Whether the reader has something of their own (asked only for readers
    # who could otherwise share the public projection).
    personal: bool
    # Every message as a row of `views.ROW_FIELDS`.
    rows: Sequence[Sequence[Any]]
    # What the reader voted for, unless they share the public projection.
    voted: set[int]


@dataclass(frozen=True)
class Tail:
    """Events of a meeting's log, with its bounds when they were read: the
    first seq still kept (retention) and the last seq committed."""

    first_seq: int
    last_seq: int
    events: list[Event]


# Statements are built once: SQLAlchemy then finds each compiled in its cache
# by the statement's own memoized key instead of rebuilding and hashing the
# expression on every hello.
_PARTICIPANTS = select(
    participants.c.token_hash,
    participants.c.id,
    participants.c.meeting_id,
    participants.c.role,
    participants.c.name,
    participants.c.in_room,
).where(
    participants.c.token_hash.in_(bindparam("hashes", expanding=True)),
    participants.c.erased_at.is_(None),
)
_PERSONAL = select(
    exists().where(messages.c.author_id == bindparam("participant_id"))
    | exists().where(votes.c.participant_id == bindparam("participant_id"))
)
_AUTHORS = (
    select(messages.c.author_id)
    .where(messages.c.author_id.in_(bindparam("ids", expanding=True)))
    .distinct()
)
_VOTERS = (
    select(votes.c.participant_id)
    .where(votes.c.participant_id.in_(bindparam("ids", expanding=True)))
    .distinct()
)
_MESSAGE_ROWS = (
    select(*_ROW_COLUMNS)
    .where(messages.c.meeting_id == bindparam("meeting_id"))
    .order_by(messages.c.id)
)
_VOTED = select(votes.c.message_id).where(
    votes.c.meeting_id == bindparam("meeting_id"),
    votes.c.participant_id == bindparam("participant_id"),
)
_ALL_EVENTS = (
    select(events.c.seq, events.c.kind, events.c.data, events.c.message_id, events.c.recipient)
    .where(
        events.c.meeting_id == bindparam("meeting_id"),
        events.c.seq > bindparam("after"),
        events.c.seq <= bindparam("upto"),
    )
    .order_by(events.c.seq)
)
# Personal events of others left out (`who` NULL: every personal event).
_EVENTS_FOR = _ALL_EVENTS.where(
    events.c.recipient.is_(None) | (events.c.recipient == bindparam("who"))
)


def participants_by_token_hashes(conn: Connection, hashes: list[str]) -> dict[str, Participant]:
    """The participants, not erased, whose tokens hash to these (at most MAX_BATCH)."""
    rows = conn.execute(_PARTICIPANTS, {"hashes": hashes})
    return {
        token_hash: Participant(pid, meeting_id, Role(role), name, bool(in_room))
        for token_hash, pid, meeting_id, role, name, in_room in rows
    }


def snapshot_heads(conn: Connection, asked: Mapping[str, Collection[str]]) -> dict[str, Head]:
    """Per meeting, its head for the participants asked about (MAX_BATCH in all);
    meetings that do not exist are left out."""
    out = {}
    for meeting_id, participant_ids in asked.items():
        meeting = repository.load_meeting(conn, meeting_id)
        if meeting is None:
            continue
        personal: set[str] = set()
        if participant_ids:
            ids = {"ids": list(participant_ids)}
            personal.update(r[0] for r in conn.execute(_AUTHORS, ids))
            personal.update(r[0] for r in conn.execute(_VOTERS, ids))
        out[meeting_id] = Head(meeting, frozenset(personal))
    return out


def snapshot(
    conn: Connection, meeting_id: str, participant_id: str | None, *, shareable: bool
) -> SnapshotRead | None:
    """The meeting and its messages; for a `shareable` reader (not staff)
    whether they have something of their own, and their votes if so."""
    meeting = repository.load_meeting(conn, meeting_id)
    if meeting is None:
        return None
    personal = False
    if shareable and participant_id is not None:
        personal = bool(conn.execute(_PERSONAL, {"participant_id": participant_id}).scalar())
    rows = message_rows(conn, meeting_id)
    voted: set[int] = set()
    if participant_id is not None and (personal or not shareable):
        voted = voted_ids(conn, meeting_id, participant_id)
    return SnapshotRead(meeting, personal, rows, voted)


def message_rows(conn: Connection, meeting_id: str) -> Sequence[Sequence[Any]]:
    """Every message of a meeting as a row of `views.ROW_FIELDS`, by id."""
    return conn.execute(_MESSAGE_ROWS, {"meeting_id": meeting_id}).all()


def voted_ids(conn: Connection, meeting_id: str, participant_id: str) -> set[int]:
    rows = conn.execute(_VOTED, {"meeting_id": meeting_id, "participant_id": participant_id})
    return {r[0] for r in rows}


def _events(
    conn: Connection, statement: Select[Any], meeting_id: str, **values: Any
) -> list[Event]:
    rows = conn.execute(statement, {"meeting_id": meeting_id, **values})
    return [
        Event(meeting_id, seq, EventKind(kind), orjson.loads(data), message_id, who_gets)
        for seq, kind, data, message_id, who_gets in rows
    ]


def replay(
    conn: Connection, meeting_id: str, after: int, limit: int, recipient: str | None
) -> Tail | None:
    """Events in (after, after + limit] for `recipient` (personal events of others
    left out), with the meeting's bounds; None if there is no such meeting."""
    bounds = repository.seq_bounds(conn, meeting_id)
    if bounds is None:
        return None
    first, last = bounds
    if after > last or after < first - 1:
        return Tail(first, last, [])
    upto = min(last, after + limit)
    found = _events(conn, _EVENTS_FOR, meeting_id, after=after, upto=upto, who=recipient)
    return Tail(first, last, found)


def recent_after(first_seq: int, last_seq: int, count: int) -> int:
    """The seq after which the last `count` seqs of a log begin."""
    return max(first_seq - 1, last_seq - count)


def recent_events(conn: Connection, meeting_id: str, count: int) -> Tail | None:
    """Everybody's events among the last `count` seqs of a meeting's log."""
    bounds = repository.seq_bounds(conn, meeting_id)
    if bounds is None:
        return None
    first, last = bounds
    after = recent_after(first, last, count)
    return Tail(first, last, _events(conn, _ALL_EVENTS, meeting_id, after=after, upto=last))
