"""Reads and writes of meetings, participants, messages, votes and events.

Each function takes an open connection (the caller owns the transaction) and
returns domain objects built straight from rows, with no ORM objects on the
way: the hot paths (snapshot, replay, post) read thousands of rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

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


async def insert_meeting(
    conn: AsyncConnection, meeting: Meeting, key_hashes: dict[str, str], now: str
) -> None:
    await conn.execute(
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


async def load_meeting(conn: AsyncConnection, meeting_id: str) -> Meeting | None:
    row = (await conn.execute(select(*_MEETING_COLUMNS).where(meetings.c.id == meeting_id))).first()
    return _meeting(row) if row else None


async def list_meetings(conn: AsyncConnection) -> list[Meeting]:
    rows = await conn.execute(select(*_MEETING_COLUMNS).order_by(meetings.c.created_at))
    return [_meeting(r) for r in rows]


async def meeting_id_for_code(conn: AsyncConnection, code: str) -> str | None:
    return (await conn.execute(select(meetings.c.id).where(meetings.c.code == code))).scalar()


async def meeting_exists(conn: AsyncConnection, meeting_id: str) -> bool:
    return (
        await conn.execute(select(meetings.c.id).where(meetings.c.id == meeting_id))
    ).first() is not None


async def code_taken(conn: AsyncConnection, code: str) -> bool:
    return (await meeting_id_for_code(conn, code)) is not None


async def role_for_key_hash(conn: AsyncConnection, meeting_id: str, key_hash: str) -> Role | None:
    row = (
        await conn.execute(
            select(
                meetings.c.moderator_key_hash,
                meetings.c.speaker_key_hash,
                meetings.c.screen_key_hash,
            ).where(meetings.c.id == meeting_id)
        )
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


async def set_key_hashes(
    conn: AsyncConnection, meeting_id: str, key_hashes: dict[str, str]
) -> None:
    await conn.execute(
        update(meetings)
        .where(meetings.c.id == meeting_id)
        .values(
            moderator_key_hash=key_hashes["moderator"],
            speaker_key_hash=key_hashes["speaker"],
            screen_key_hash=key_hashes["screen"],
        )
    )


async def update_meeting(conn: AsyncConnection, meeting_id: str, now: str, **values: Any) -> None:
    if "settings" in values:
        values["settings"] = orjson.dumps(values["settings"].to_json()).decode()
    if "phase" in values:
        values["phase"] = values["phase"].value
    await conn.execute(
        update(meetings).where(meetings.c.id == meeting_id).values(updated_at=now, **values)
    )


async def seq_bounds(conn: AsyncConnection, meeting_id: str) -> tuple[int, int] | None:
    """(first kept seq, last seq) of a meeting."""
    row = (
        await conn.execute(
            select(meetings.c.first_seq, meetings.c.last_seq).where(meetings.c.id == meeting_id)
        )
    ).first()
    return (row.first_seq, row.last_seq) if row else None


# --- participants ----------------------------------------------------------------


async def insert_participant(
    conn: AsyncConnection,
    *,
    participant_id: str,
    meeting_id: str,
    role: Role,
    name: str | None,
    in_room: bool,
    token_hash: str,
    now: str,
) -> None:
    await conn.execute(
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


async def participant_by_token_hash(conn: AsyncConnection, token_hash: str) -> Any | None:
    return (
        await conn.execute(
            select(
                participants.c.id,
                participants.c.meeting_id,
                participants.c.role,
                participants.c.name,
                participants.c.in_room,
                participants.c.erased_at,
            ).where(participants.c.token_hash == token_hash)
        )
    ).first()


async def participant_exists(conn: AsyncConnection, meeting_id: str, participant_id: str) -> bool:
    row = (
        await conn.execute(
            select(participants.c.id).where(
                and_(participants.c.id == participant_id, participants.c.meeting_id == meeting_id)
            )
        )
    ).first()
    return row is not None


async def participant_identity(conn: AsyncConnection, participant_id: str) -> Any | None:
    """The role and name of a participant (None if there is no such participant)."""
    return (
        await conn.execute(
            select(participants.c.role, participants.c.name).where(
                participants.c.id == participant_id
            )
        )
    ).first()


async def erase_participant(
    conn: AsyncConnection, participant_id: str, now: str, token_hash: str
) -> None:
    # The token hash is replaced with a random one so that the old token no
    # longer authenticates and the column stays unique.
    await conn.execute(
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


async def insert_message(conn: AsyncConnection, **values: Any) -> Message | None:
    """Insert a message; None if its author already stored one with this client_id.

    One statement for the common case: the unique index on (author, client_id)
    decides, so a retry that races its original is still stored once.
    """
    values = {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()}
    upsert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (
        upsert(messages)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[messages.c.author_id, messages.c.client_id])
        .returning(*_MESSAGE_COLUMNS)
    )
    row = (await conn.execute(statement)).first()
    return _message(row) if row else None


async def load_message(conn: AsyncConnection, message_id: int) -> Message | None:
    row = (await conn.execute(select(*_MESSAGE_COLUMNS).where(messages.c.id == message_id))).first()
    return _message(row) if row else None


async def message_by_client_id(
    conn: AsyncConnection, author_id: str, client_id: str
) -> Message | None:
    row = (
        await conn.execute(
            select(*_MESSAGE_COLUMNS).where(
                and_(messages.c.author_id == author_id, messages.c.client_id == client_id)
            )
        )
    ).first()
    return _message(row) if row else None


async def update_message(conn: AsyncConnection, message_id: int, **values: Any) -> Message:
    values = {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()}
    result = await conn.execute(
        update(messages)
        .where(messages.c.id == message_id)
        .values(**values)
        .returning(*_MESSAGE_COLUMNS)
    )
    return _message(result.one())


async def list_messages(conn: AsyncConnection, meeting_id: str) -> list[Message]:
    rows = await conn.execute(
        select(*_MESSAGE_COLUMNS).where(messages.c.meeting_id == meeting_id).order_by(messages.c.id)
    )
    return [_message(r) for r in rows]


async def messages_by_author(conn: AsyncConnection, author_id: str) -> list[Message]:
    rows = await conn.execute(
        select(*_MESSAGE_COLUMNS).where(messages.c.author_id == author_id).order_by(messages.c.id)
    )
    return [_message(r) for r in rows]


# --- votes ----------------------------------------------------------------


async def add_vote(
    conn: AsyncConnection, meeting_id: str, message_id: int, participant_id: str
) -> bool:
    """True when the vote is new (votes are a set: a repeat changes nothing)."""
    upsert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    result = await conn.execute(
        upsert(votes)
        .values(message_id=message_id, participant_id=participant_id, meeting_id=meeting_id)
        .on_conflict_do_nothing(index_elements=[votes.c.message_id, votes.c.participant_id])
    )
    return bool(result.rowcount)


async def remove_vote(conn: AsyncConnection, message_id: int, participant_id: str) -> bool:
    result = await conn.execute(
        delete(votes).where(
            and_(votes.c.message_id == message_id, votes.c.participant_id == participant_id)
        )
    )
    return bool(result.rowcount)


async def count_votes(conn: AsyncConnection, message_ids: Iterable[int]) -> dict[int, int]:
    ids = list(message_ids)
    counts = dict.fromkeys(ids, 0)
    if ids:
        rows = await conn.execute(
            select(votes.c.message_id, func.count())
            .where(votes.c.message_id.in_(ids))
            .group_by(votes.c.message_id)
        )
        counts.update({r[0]: r[1] for r in rows})
    return counts


async def voters(conn: AsyncConnection, message_id: int) -> list[str]:
    rows = await conn.execute(
        select(votes.c.participant_id).where(votes.c.message_id == message_id)
    )
    return [r[0] for r in rows]


async def voted_ids(conn: AsyncConnection, meeting_id: str, participant_id: str) -> set[int]:
    rows = await conn.execute(
        select(votes.c.message_id).where(
            and_(votes.c.meeting_id == meeting_id, votes.c.participant_id == participant_id)
        )
    )
    return {r[0] for r in rows}


async def move_votes(conn: AsyncConnection, source_id: int, target_id: int) -> None:
    """Votes on source go to target; a person who voted on both counts once.

    Two statements whatever the number of votes: the writer is shared, and a
    merge of a popular question must not hold up everybody's commands.
    """
    on_target = select(votes.c.participant_id).where(votes.c.message_id == target_id)
    await conn.execute(
        update(votes)
        .where(and_(votes.c.message_id == source_id, votes.c.participant_id.not_in(on_target)))
        .values(message_id=target_id)
    )
    await conn.execute(delete(votes).where(votes.c.message_id == source_id))


async def delete_votes_of(conn: AsyncConnection, participant_id: str) -> list[int]:
    rows = await conn.execute(
        select(votes.c.message_id).where(votes.c.participant_id == participant_id)
    )
    ids = [r[0] for r in rows]
    await conn.execute(delete(votes).where(votes.c.participant_id == participant_id))
    return ids


async def stale_vote_counts(conn: AsyncConnection) -> dict[str, dict[int, int]]:
    """meeting -> {message: true count} where the published count is off."""
    true_count = select(func.count()).where(votes.c.message_id == messages.c.id).scalar_subquery()
    rows = await conn.execute(
        select(messages.c.meeting_id, messages.c.id, true_count).where(
            messages.c.votes != true_count
        )
    )
    stale: dict[str, dict[int, int]] = {}
    for meeting_id, message_id, count in rows:
        stale.setdefault(meeting_id, {})[message_id] = count
    return stale


# --- events ----------------------------------------------------------------


async def next_seqs(conn: AsyncConnection, meeting_id: str, count: int) -> int:
    """Reserve `count` seqs; returns the last. Locks the meeting row until commit."""
    result = await conn.execute(
        update(meetings)
        .where(meetings.c.id == meeting_id)
        .values(last_seq=meetings.c.last_seq + count)
        .returning(meetings.c.last_seq)
    )
    return int(result.scalar_one())


async def insert_events(conn: AsyncConnection, rows: Sequence[Event], now: str) -> None:
    await conn.execute(
        insert(events),
        [
            {
                "meeting_id": e.meeting_id,
                "seq": e.seq,
                "kind": e.kind.value,
                "message_id": e.message_id,
                "recipient": e.recipient,
                "data": orjson.dumps(e.data).decode(),
                "created_at": now,
            }
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


async def list_events(
    conn: AsyncConnection, meeting_id: str, after: int, upto: int, recipient: str | None
) -> list[Event]:
    """Events in (after, upto], leaving out personal events of others."""
    who: ColumnElement[bool] = events.c.recipient.is_(None)
    if recipient is not None:
        who = who | (events.c.recipient == recipient)
    rows = await conn.execute(
        select(events)
        .where(
            and_(events.c.meeting_id == meeting_id, events.c.seq > after, events.c.seq <= upto, who)
        )
        .order_by(events.c.seq)
    )
    return [_event(r) for r in rows]


async def events_about(conn: AsyncConnection, message_ids: Sequence[int]) -> list[Event]:
    if not message_ids:
        return []
    rows = await conn.execute(select(events).where(events.c.message_id.in_(list(message_ids))))
    return [_event(r) for r in rows]


async def rewrite_event(
    conn: AsyncConnection, meeting_id: str, seq: int, data: dict[str, Any]
) -> None:
    await conn.execute(
        update(events)
        .where(and_(events.c.meeting_id == meeting_id, events.c.seq == seq))
        .values(data=orjson.dumps(data).decode())
    )


async def delete_personal_events(conn: AsyncConnection, recipient: str) -> None:
    await conn.execute(delete(events).where(events.c.recipient == recipient))


async def prune_events(conn: AsyncConnection, meeting_id: str, keep: int) -> None:
    """Keep the last `keep` events of a meeting; older resumes get a snapshot."""
    bounds = await seq_bounds(conn, meeting_id)
    if bounds is None:
        return
    first, last = bounds
    new_first = last - keep + 1
    if new_first <= first:
        return
    await conn.execute(
        delete(events).where(and_(events.c.meeting_id == meeting_id, events.c.seq < new_first))
    )
    await conn.execute(
        update(meetings).where(meetings.c.id == meeting_id).values(first_seq=new_first)
    )
