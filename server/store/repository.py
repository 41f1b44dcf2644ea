"""Reads and writes of meetings, participants, messages, votes and events.

What the writer's jobs read and write, and the few reads elsewhere that need
domain objects; the read path of hellos, snapshots and replays is `reads`.
Each function takes an open connection (the caller owns the transaction) and
returns domain objects built straight from rows, with no ORM objects on the
way.

The functions are synchronous, one implementation of each query: the writer's
jobs call them directly on its thread (see `writer`), and async code calls
them on an `AsyncConnection` with `await conn.run_sync(repository.fn, ...)`
(SQLAlchemy runs the function in a greenlet that waits on the async driver
at each statement).

The statements of the hot paths (a post, a vote, loading a meeting or a
message) are built once, with bind parameters, and executed with a dict of
values: building a statement per call, values and all, costs SQLAlchemy about
0.5 ms of Python (cache key, bind parameters), five times the cost of
running it, and the writer's thread does it for every post.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from server.domain.models import (
    Answered,
    Event,
    EventKind,
    Kind,
    Meeting,
    MeetingSettings,
    Message,
    Phase,
    Role,
    Source,
    Status,
)
from server.store.database import note_write
from server.store.tables import events, meetings, messages, participants, votes

# --- meetings ----------------------------------------------------------------


def _meeting(row: Any) -> Meeting:
    return Meeting(
        id=row.id,
        title=row.title,
        basis=row.basis,
        phase=Phase(row.phase),
        code=row.code,
        language=row.language,
        settings=MeetingSettings(**orjson.loads(row.settings)),
        spotlight=row.spotlight,
        created_at=row.created_at,
        last_seq=row.last_seq,
    )


_MEETING_COLUMNS = (
    meetings.c.id,
    meetings.c.title,
    meetings.c.basis,
    meetings.c.phase,
    meetings.c.code,
    meetings.c.language,
    meetings.c.settings,
    meetings.c.spotlight,
    meetings.c.created_at,
    meetings.c.last_seq,
)


def insert_meeting(
    conn: Connection, meeting: Meeting, key_hashes: dict[str, str], now: str
) -> None:
    conn.execute(
        insert(meetings).values(
            id=meeting.id,
            title=meeting.title,
            basis=meeting.basis,
            phase=meeting.phase.value,
            code=meeting.code,
            language=meeting.language,
            settings=orjson.dumps(meeting.settings.to_json()).decode(),
            spotlight=None,
            last_seq=0,
            first_seq=1,
            moderator_key_hash=key_hashes["moderator"],
            speaker_key_hash=key_hashes["speaker"],
            screen_key_hash=key_hashes["screen"],
            created_at=now,
            updated_at=now,
        )
    )


_LOAD_MEETING = select(*_MEETING_COLUMNS).where(meetings.c.id == bindparam("meeting_id"))


def load_meeting(conn: Connection, meeting_id: str) -> Meeting | None:
    row = conn.execute(_LOAD_MEETING, {"meeting_id": meeting_id}).first()
    return _meeting(row) if row else None


def list_meetings(conn: Connection) -> list[Meeting]:
    rows = conn.execute(select(*_MEETING_COLUMNS).order_by(meetings.c.created_at))
    return [_meeting(r) for r in rows]


def meeting_id_for_code(conn: Connection, code: str) -> str | None:
    return conn.execute(select(meetings.c.id).where(meetings.c.code == code)).scalar()


def meeting_exists(conn: Connection, meeting_id: str) -> bool:
    row = conn.execute(select(meetings.c.id).where(meetings.c.id == meeting_id)).first()
    return row is not None


def code_taken(conn: Connection, code: str) -> bool:
    return meeting_id_for_code(conn, code) is not None


def role_for_key_hash(conn: Connection, meeting_id: str, key_hash: str) -> Role | None:
    row = conn.execute(
        select(
            meetings.c.moderator_key_hash,
            meetings.c.speaker_key_hash,
            meetings.c.screen_key_hash,
        ).where(meetings.c.id == meeting_id)
    ).first()
    if row is None:
        return None
    for role, stored in (
        (Role.MODERATOR, row.moderator_key_hash),
        (Role.SPEAKER, row.speaker_key_hash),
        (Role.SCREEN, row.screen_key_hash),
    ):
        if stored == key_hash:
            return role
    return None


def set_key_hashes(conn: Connection, meeting_id: str, key_hashes: dict[str, str]) -> None:
    conn.execute(
        update(meetings)
        .where(meetings.c.id == meeting_id)
        .values(
            moderator_key_hash=key_hashes["moderator"],
            speaker_key_hash=key_hashes["speaker"],
            screen_key_hash=key_hashes["screen"],
        )
    )


def update_meeting(conn: Connection, meeting_id: str, now: str, **values: Any) -> None:
    if "settings" in values:
        values["settings"] = orjson.dumps(values["settings"].to_json()).decode()
    if "phase" in values:
        values["phase"] = values["phase"].value
    conn.execute(
        update(meetings).where(meetings.c.id == meeting_id).values(updated_at=now, **values)
    )


_SEQ_BOUNDS = select(meetings.c.first_seq, meetings.c.last_seq).where(
    meetings.c.id == bindparam("meeting_id")
)


def seq_bounds(conn: Connection, meeting_id: str) -> tuple[int, int] | None:
    """(first kept seq, last seq) of a meeting."""
    row = conn.execute(_SEQ_BOUNDS, {"meeting_id": meeting_id}).first()
    return (row.first_seq, row.last_seq) if row else None


# --- participants ----------------------------------------------------------------


def insert_participant(
    conn: Connection,
    *,
    participant_id: str,
    meeting_id: str,
    role: Role,
    name: str | None,
    in_room: bool,
    token_hash: str,
    now: str,
) -> None:
    conn.execute(
        insert(participants).values(
            id=participant_id,
            meeting_id=meeting_id,
            role=role.value,
            name=name,
            in_room=in_room,
            token_hash=token_hash,
            created_at=now,
        )
    )


def participant_exists(conn: Connection, meeting_id: str, participant_id: str) -> bool:
    row = conn.execute(
        select(participants.c.id).where(
            and_(participants.c.id == participant_id, participants.c.meeting_id == meeting_id)
        )
    ).first()
    return row is not None


def participant_identity(conn: Connection, participant_id: str) -> Any | None:
    """The role and name of a participant (None if there is no such participant)."""
    return conn.execute(
        select(participants.c.role, participants.c.name).where(participants.c.id == participant_id)
    ).first()


def erase_participant(conn: Connection, participant_id: str, now: str, token_hash: str) -> None:
    # The token hash is replaced with a random one so that the old token no
    # longer authenticates and the column stays unique.
    conn.execute(
        update(participants)
        .where(participants.c.id == participant_id)
        .values(name=None, erased_at=now, token_hash=token_hash)
    )


# --- messages ----------------------------------------------------------------

_MESSAGE_COLUMNS = tuple(messages.c)


def _message(row: Any) -> Message:
    return Message(
        id=row.id,
        meeting_id=row.meeting_id,
        parent_id=row.parent_id,
        depth=row.depth,
        kind=Kind(row.kind),
        source=Source(row.source),
        body=row.body,
        author_id=row.author_id,
        author_name=row.author_name,
        author_role=Role(row.author_role),
        client_id=row.client_id,
        status=Status(row.status),
        reason=row.reason,
        answered=Answered(row.answered),
        answered_by=row.answered_by,
        pinned=bool(row.pinned),
        merged_into=row.merged_into,
        votes=row.votes,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Column values with enums as the strings they are stored as (`_value_`:
    the `.value` property is slow, and this runs for every post)."""
    return {k: (v._value_ if isinstance(v, Enum) else v) for k, v in values.items()}


class _Prepared:
    """A hot statement compiled once per dialect and run on the driver's cursor.

    Even with the statement built once, SQLAlchemy's `execute` costs some 40 µs
    of Python per call (cache lookup, parameter processing, result set-up):
    for the one statement every post runs, that was half the writer's time
    per post. The SQL is still SQLAlchemy's, compiled for the connection's
    dialect; the values go to the driver as they are (plain str, int, bool
    and None, which need no conversion) and the write is counted as
    SQLAlchemy's listener counts the others (`database.note_write`).
    """

    __slots__ = ("_compiled", "_keys", "_statements")

    def __init__(self, statements: dict[str, Any] | Any, keys: Sequence[str]) -> None:
        """`statements`: one per dialect name, or one for all."""
        self._statements = statements
        self._keys = list(keys)
        self._compiled: dict[tuple[str, str], tuple[str, list[str] | None]] = {}

    def _for(self, conn: Connection) -> tuple[str, list[str] | None]:
        dialect = conn.dialect
        # Drivers of one database differ in how parameters are written.
        key = (dialect.name, dialect.driver)
        compiled = self._compiled.get(key)
        if compiled is None:
            statement = self._statements
            if isinstance(statement, dict):
                statement = statement[dialect.name]
            c = statement.compile(dialect=dialect, column_keys=self._keys)
            compiled = (c.string, list(c.positiontup or ()) if c.positional else None)
            self._compiled[key] = compiled
        return compiled

    def first_row(self, conn: Connection, values: dict[str, Any]) -> Any:
        """Runs with `values` (one per key) in the connection's transaction; the first row."""
        sql, order = self._for(conn)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, [values[k] for k in order] if order is not None else values)
            row = cursor.fetchone()
        finally:
            cursor.close()
        note_write(conn)
        return row

    def insert_id(self, conn: Connection, values: dict[str, Any]) -> int | None:
        """Runs an INSERT that may do nothing; the new row's id, or None if it did nothing.

        On SQLite the id is the cursor's `lastrowid`: a RETURNING clause costs
        SQLite about as much again as the insert itself (its rows go through a
        temporary table), and this runs for every post. Elsewhere the
        statement returns the id.
        """
        if conn.dialect.name != "sqlite":
            row = self.first_row(conn, values)
            return None if row is None else int(row[0])
        sql, order = self._for(conn)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, [values[k] for k in order] if order is not None else values)
            new_id = cursor.lastrowid if cursor.rowcount == 1 else None
        finally:
            cursor.close()
        note_write(conn)
        return new_id

    def run_many(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Runs once per row (its values in the order of `keys`), as one
        executemany, in the connection's transaction."""
        sql, order = self._for(conn)
        params: Sequence[Any]
        if order is None:
            params = [dict(zip(self._keys, row, strict=True)) for row in rows]
        elif order == self._keys:
            params = rows
        else:
            index = [self._keys.index(k) for k in order]
            params = [[row[i] for i in index] for row in rows]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, params)
        finally:
            cursor.close()
        note_write(conn)


# Every column but the id; the unique index on (author, client_id) decides
# whether the row is new. SQLite learns the id from the cursor (`insert_id`).
_MESSAGE_VALUES = tuple(c.key for c in messages.c if c.key != "id")
_INSERT_MESSAGE = _Prepared(
    {
        "sqlite": sqlite_insert(messages).on_conflict_do_nothing(
            index_elements=[messages.c.author_id, messages.c.client_id]
        ),
        "postgresql": postgresql_insert(messages)
        .on_conflict_do_nothing(index_elements=[messages.c.author_id, messages.c.client_id])
        .returning(messages.c.id),
    },
    _MESSAGE_VALUES,
)


def insert_message(conn: Connection, values: dict[str, Any]) -> int | None:
    """Insert a message; its id, or None if its author already stored one with this client_id.

    `values`: every column but the id, as stored (enums as their strings).
    One statement for the common case: the unique index on (author, client_id)
    decides, so a retry that races its original is still stored once.
    """
    return _INSERT_MESSAGE.insert_id(conn, values)


_LOAD_MESSAGE = select(*_MESSAGE_COLUMNS).where(messages.c.id == bindparam("message_id"))


def load_message(conn: Connection, message_id: int) -> Message | None:
    row = conn.execute(_LOAD_MESSAGE, {"message_id": message_id}).first()
    return _message(row) if row else None


_MESSAGE_BY_CLIENT_ID = select(*_MESSAGE_COLUMNS).where(
    and_(
        messages.c.author_id == bindparam("author_id_"),
        messages.c.client_id == bindparam("client_id_"),
    )
)


def message_by_client_id(conn: Connection, author_id: str, client_id: str) -> Message | None:
    row = conn.execute(
        _MESSAGE_BY_CLIENT_ID, {"author_id_": author_id, "client_id_": client_id}
    ).first()
    return _message(row) if row else None


# The columns set come from the parameters (any but `message_id`).
_UPDATE_MESSAGE = (
    update(messages).where(messages.c.id == bindparam("message_id")).returning(*_MESSAGE_COLUMNS)
)


def update_message(conn: Connection, message_id: int, **values: Any) -> Message:
    result = conn.execute(_UPDATE_MESSAGE, {"message_id": message_id, **_plain(values)})
    return _message(result.one())


def list_messages(conn: Connection, meeting_id: str) -> list[Message]:
    rows = conn.execute(
        select(*_MESSAGE_COLUMNS).where(messages.c.meeting_id == meeting_id).order_by(messages.c.id)
    )
    return [_message(r) for r in rows]


def messages_by_author(conn: Connection, author_id: str) -> list[Message]:
    rows = conn.execute(
        select(*_MESSAGE_COLUMNS).where(messages.c.author_id == author_id).order_by(messages.c.id)
    )
    return [_message(r) for r in rows]


# --- votes ----------------------------------------------------------------


_ADD_VOTE = {
    dialect: upsert(votes).on_conflict_do_nothing(
        index_elements=[votes.c.message_id, votes.c.participant_id]
    )
    for dialect, upsert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


def add_vote(conn: Connection, meeting_id: str, message_id: int, participant_id: str) -> bool:
    """True when the vote is new (votes are a set: a repeat changes nothing)."""
    result = conn.execute(
        _ADD_VOTE[conn.dialect.name],
        {"message_id": message_id, "participant_id": participant_id, "meeting_id": meeting_id},
    )
    return bool(result.rowcount)


_REMOVE_VOTE = delete(votes).where(
    and_(
        votes.c.message_id == bindparam("message_id_"),
        votes.c.participant_id == bindparam("participant_id_"),
    )
)


def remove_vote(conn: Connection, message_id: int, participant_id: str) -> bool:
    result = conn.execute(
        _REMOVE_VOTE, {"message_id_": message_id, "participant_id_": participant_id}
    )
    return bool(result.rowcount)


_COUNT_VOTES = (
    select(votes.c.message_id, func.count())
    .where(votes.c.message_id.in_(bindparam("message_ids", expanding=True)))
    .group_by(votes.c.message_id)
)


def count_votes(conn: Connection, message_ids: Iterable[int]) -> dict[int, int]:
    ids = list(message_ids)
    counts = dict.fromkeys(ids, 0)
    if ids:
        rows = conn.execute(_COUNT_VOTES, {"message_ids": ids})
        counts.update({r[0]: r[1] for r in rows})
    return counts


def voters(conn: Connection, message_id: int) -> list[str]:
    rows = conn.execute(select(votes.c.participant_id).where(votes.c.message_id == message_id))
    return [r[0] for r in rows]


def move_votes(conn: Connection, source_id: int, target_id: int) -> None:
    """Votes on source go to target; a person who voted on both counts once.

    Two statements whatever the number of votes: the writer is shared, and a
    merge of a popular question must not hold up everybody's commands.
    """
    on_target = select(votes.c.participant_id).where(votes.c.message_id == target_id)
    conn.execute(
        update(votes)
        .where(and_(votes.c.message_id == source_id, votes.c.participant_id.not_in(on_target)))
        .values(message_id=target_id)
    )
    conn.execute(delete(votes).where(votes.c.message_id == source_id))


def delete_votes_of(conn: Connection, participant_id: str) -> list[int]:
    rows = conn.execute(select(votes.c.message_id).where(votes.c.participant_id == participant_id))
    ids = [r[0] for r in rows]
    conn.execute(delete(votes).where(votes.c.participant_id == participant_id))
    return ids


def stale_vote_counts(conn: Connection) -> dict[str, dict[int, int]]:
    """meeting -> {message: true count} where the published count is off."""
    true_count = select(func.count()).where(votes.c.message_id == messages.c.id).scalar_subquery()
    rows = conn.execute(
        select(messages.c.meeting_id, messages.c.id, true_count).where(
            messages.c.votes != true_count
        )
    )
    stale: dict[str, dict[int, int]] = {}
    for meeting_id, message_id, count in rows:
        stale.setdefault(meeting_id, {})[message_id] = count
    return stale


# --- events ----------------------------------------------------------------


_NEXT_SEQS = (
    update(meetings)
    .where(meetings.c.id == bindparam("meeting_id"))
    .values(last_seq=meetings.c.last_seq + bindparam("count"))
    .returning(meetings.c.last_seq)
)


def next_seqs(conn: Connection, meeting_id: str, count: int) -> int:
    """Reserve `count` seqs; returns the last. Locks the meeting row until commit."""
    result = conn.execute(_NEXT_SEQS, {"meeting_id": meeting_id, "count": count})
    return int(result.scalar_one())


_INSERT_EVENTS = _Prepared(
    insert(events),
    ("meeting_id", "seq", "kind", "message_id", "recipient", "data", "created_at"),
)


def insert_events(conn: Connection, rows: Sequence[Event], now: str) -> None:
    """All the rows in one executemany."""
    dumps = orjson.dumps
    _INSERT_EVENTS.run_many(
        conn,
        [
            (
                e.meeting_id,
                e.seq,
                e.kind._value_,
                e.message_id,
                e.recipient,
                dumps(e.data).decode(),
                now,
            )
            for e in rows
        ],
    )


def _event(row: Any) -> Event:
    return Event(
        meeting_id=row.meeting_id,
        seq=row.seq,
        kind=EventKind(row.kind),
        data=orjson.loads(row.data),
        message_id=row.message_id,
        recipient=row.recipient,
    )


def events_about(conn: Connection, message_ids: Sequence[int]) -> list[Event]:
    if not message_ids:
        return []
    rows = conn.execute(select(events).where(events.c.message_id.in_(list(message_ids))))
    return [_event(r) for r in rows]


def rewrite_event(conn: Connection, meeting_id: str, seq: int, data: dict[str, Any]) -> None:
    conn.execute(
        update(events)
        .where(and_(events.c.meeting_id == meeting_id, events.c.seq == seq))
        .values(data=orjson.dumps(data).decode())
    )


def delete_personal_events(conn: Connection, recipient: str) -> None:
    conn.execute(delete(events).where(events.c.recipient == recipient))


def prune_events(conn: Connection, meeting_id: str, keep: int) -> None:
    """Keep the last `keep` events of a meeting; older resumes get a snapshot."""
    bounds = seq_bounds(conn, meeting_id)
    if bounds is None:
        return
    first, last = bounds
    new_first = last - keep + 1
    if new_first <= first:
        return
    conn.execute(
        delete(events).where(and_(events.c.meeting_id == meeting_id, events.c.seq < new_first))
    )
    conn.execute(update(meetings).where(meetings.c.id == meeting_id).values(first_seq=new_first))
