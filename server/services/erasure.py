"""Erasure of one person's personal data, on request (GDPR art. 17).

Their name goes, their votes go, the bodies of their messages go (the
messages stay as placeholders so that replies of others keep their place),
every copy in the event log is rewritten, their personal events are deleted,
their token stops working and their live sockets are closed. Then the
database file itself is purged of the old pages.
"""

from __future__ import annotations

import secrets
from typing import Any

from server.domain.errors import not_found
from server.domain.models import EventKind, Kind, Source, Status
from server.services.context import Services, hash_secret
from server.services.votes import publish_counts
from server.store import repository
from server.store.database import purge_file_copies
from server.store.writer import Tx

SCRUBBED_FIELDS = {"body": "", "author_name": None, "client_id": None, "reason": None}
# Logged copies say what the message is now, so that a replay never shows an
# empty message as if it were still visible.
LOGGED_COPY = SCRUBBED_FIELDS | {"status": "erased", "pinned": False}


async def erase(services: Services, meeting_id: str, participant_id: str) -> dict[str, Any]:
    def job(tx: Tx) -> dict[str, Any]:
        if not repository.participant_exists(tx.conn, meeting_id, participant_id):
            raise not_found(f"no participant {participant_id!r} in this meeting")
        meeting = tx.meeting(meeting_id)
        assert meeting is not None
        # What they wrote themselves. Topics and what a moderator logged from
        # the floor are the meeting's record, not the moderator's own words.
        own = [
            m
            for m in repository.messages_by_author(tx.conn, participant_id)
            if m.source is Source.ONLINE and m.kind is not Kind.TOPIC
        ]
        for message in own:
            repository.update_message(
                tx.conn,
                message.id,
                status=Status.ERASED,
                pinned=False,
                updated_at=tx.now,
                **SCRUBBED_FIELDS,
            )
            if meeting.spotlight == message.id:
                tx.update_meeting(meeting_id, spotlight=None)
                tx.emit(meeting_id, EventKind.SPOTLIGHT_CHANGED, {"message_id": None})
        # Rewrite every logged copy before logging the erasure itself.
        for event in repository.events_about(tx.conn, [m.id for m in own]):
            is_message = event.kind in (EventKind.MESSAGE_CREATED, EventKind.MESSAGE_UPDATED)
            if is_message and event.data.get("author_id") == participant_id:
                repository.rewrite_event(
                    tx.conn, event.meeting_id, event.seq, event.data | LOGGED_COPY
                )
        for message in own:
            updated = repository.load_message(tx.conn, message.id)
            assert updated is not None
            tx.emit(
                meeting_id, EventKind.MESSAGE_UPDATED, updated.to_record(), message_id=updated.id
            )
        identity = repository.participant_identity(tx.conn, participant_id)
        if identity is not None and identity.name:
            _forget_answerer(tx, meeting_id, identity.name, identity.role)
        voted_on = repository.delete_votes_of(tx.conn, participant_id)
        repository.delete_personal_events(tx.conn, participant_id)
        if voted_on:
            publish_counts(tx, meeting_id, repository.count_votes(tx.conn, voted_on))
        repository.erase_participant(
            tx.conn, participant_id, tx.now, hash_secret(secrets.token_urlsafe(32))
        )
        tx.after_commit.append(
            lambda: services.revoke_participant(meeting_id, participant_id, "personal data erased")
        )
        return {"participant_id": participant_id, "messages": len(own), "votes": len(voted_on)}

    result = await services.writer.run(job, heavy=True)
    if services.settings.is_sqlite:
        await services.writer.maintain(purge_file_copies)
    return result


def _forget_answerer(tx: Tx, meeting_id: str, name: str, role: str) -> None:
    """Their name also stands as `answered_by` on the questions they answered.

    It gives way to their role (what an answer by someone without a name
    shows), on the question and in every logged copy of it.
    """
    questions = [
        m for m in repository.list_messages(tx.conn, meeting_id) if m.kind is Kind.QUESTION
    ]
    for event in repository.events_about(tx.conn, [m.id for m in questions]):
        if event.data.get("answered_by") == name:
            repository.rewrite_event(
                tx.conn, event.meeting_id, event.seq, event.data | {"answered_by": role}
            )
    for message in questions:
        if message.answered_by == name:
            updated = repository.update_message(
                tx.conn, message.id, answered_by=role, updated_at=tx.now
            )
            tx.emit(
                meeting_id, EventKind.MESSAGE_UPDATED, updated.to_record(), message_id=updated.id
            )
