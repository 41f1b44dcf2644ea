"""The database schema, as SQLAlchemy Core tables.

Timestamps are ISO 8601 UTC strings (they sort and compare as text, and read
the same on SQLite and PostgreSQL). JSON is kept as text written by orjson.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

# One row per schema version applied; see migrations.py.
schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", String(32), nullable=False),
)

meetings = Table(
    "meetings",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("title", Text, nullable=False),
    Column("basis", Text, nullable=False),
    Column("phase", String(16), nullable=False),
    Column("code", String(16), nullable=False, unique=True),
    Column("language", String(8), nullable=False),
    Column("settings", Text, nullable=False),
    Column("spotlight", BigInteger, nullable=True),
    # The highest seq handed out; bumped in the same transaction as the event
    # it numbers, which also serialises writers of one meeting on PostgreSQL.
    Column("last_seq", BigInteger, nullable=False, default=0),
    # Events below first_seq have been pruned (retention); resume older -> snapshot.
    Column("first_seq", BigInteger, nullable=False, default=1),
    Column("moderator_key_hash", String(64), nullable=False),
    Column("speaker_key_hash", String(64), nullable=False),
    Column("screen_key_hash", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

participants = Table(
    "participants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("meeting_id", String(64), ForeignKey("meetings.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("name", Text, nullable=True),
    Column("in_room", Boolean, nullable=False, default=False),
    # sha256 of the bearer token; the token itself is never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", String(32), nullable=False),
    Column("erased_at", String(32), nullable=True),
)
Index("participants_meeting", participants.c.meeting_id)

messages = Table(
    "messages",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("meeting_id", String(64), ForeignKey("meetings.id"), nullable=False),
    Column("parent_id", BigInteger, ForeignKey("messages.id"), nullable=True),
    Column("depth", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("author_id", String(32), ForeignKey("participants.id"), nullable=True),
    Column("author_name", Text, nullable=True),
    Column("author_role", String(16), nullable=False),
    Column("client_id", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("answered", String(24), nullable=False),
    Column("answered_by", Text, nullable=True),
    Column("pinned", Boolean, nullable=False, default=False),
    Column("merged_into", BigInteger, ForeignKey("messages.id"), nullable=True),
    # Published count: what the last votes.updated event said.
    Column("votes", Integer, nullable=False, default=0),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)
Index("messages_meeting", messages.c.meeting_id, messages.c.id)
Index("messages_client_id", messages.c.author_id, messages.c.client_id, unique=True)

votes = Table(
    "votes",
    metadata,
    Column("message_id", BigInteger, ForeignKey("messages.id"), nullable=False),
    Column("participant_id", String(32), ForeignKey("participants.id"), nullable=False),
    Column("meeting_id", String(64), nullable=False),
    PrimaryKeyConstraint("message_id", "participant_id"),
)
Index("votes_participant", votes.c.participant_id)
Index("votes_meeting", votes.c.meeting_id)

events = Table(
    "events",
    metadata,
    Column("meeting_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message_id", BigInteger, nullable=True),
    # Set for a personal event that only one participant receives.
    Column("recipient", String(32), nullable=True),
    Column("data", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    PrimaryKeyConstraint("meeting_id", "seq"),
)
Index("events_message", events.c.message_id)
Index("events_recipient", events.c.recipient)
