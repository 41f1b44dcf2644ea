"""The command dispatcher both transports share (WebSocket frame and HTTP POST).

Each command is one job for the writer, a plain function run on the
writer's thread: it loads what it needs inside the transaction, checks it
with the domain rules, writes, and emits the events it causes. Every check
comes before the first write: the writer runs a batch without a savepoint
per job and counts on a refused command having written nothing. The ack is
returned only after the commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from server.domain import rules
from server.domain.errors import DomainError, ErrorCode, not_found
from server.domain.models import (
    Actor,
    Answered,
    EventKind,
    Kind,
    Meeting,
    Message,
    Phase,
    Role,
    Source,
    Status,
)
from server.domain.views import project_message
from server.protocol import (
    Command,
    Floor,
    MarkAnswered,
    Merge,
    Moderate,
    Ping,
    Post,
    SetPhase,
    Spotlight,
    Vote,
    Withdraw,
)
from server.services.context import Services, check_can_see_meeting, viewer_of
from server.services.votes import publish_counts
from server.store import repository
from server.store.writer import Tx

Result = dict[str, Any]

_UNANSWERED = Answered.UNANSWERED._value_


# Told a command's outcome once it has committed: (result, None) or (None, error).
Answer = Callable[[Result | None, BaseException | None], None]


async def dispatch(services: Services, actor: Actor, command: Command, transport: str) -> Result:
    """Run one command for an actor; returns the ack's result or raises DomainError."""
    if isinstance(command, Ping):
        _count(services, command.type_name, transport, time.perf_counter(), None)
        return {}
    future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()

    def answer(result: Result | None, error: BaseException | None) -> None:
        if future.done():
            return  # the caller went away; the command is done all the same
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or {})

    start(services, actor, command, transport, answer)
    return await future


def start(
    services: Services, actor: Actor, command: Command, transport: str, answer: Answer
) -> None:
    """Start one command (not a ping); `answer` gets its outcome once committed.

    Raises DomainError at once for what is refused before the writer (rate
    limits). Commands started one after another commit, and are answered, in
    that order: the writer takes its jobs in order. No task and no future is
    made for the command: the writer calls `answer` after the commit.
    """
    name = command.type_name
    started = time.perf_counter()
    try:
        _check_rate(services, actor, command)
        handler = _HANDLERS[type(command)]
    except DomainError as exc:
        _count_error(services, name, transport, exc)
        raise

    def done(result: Result | None, error: BaseException | None) -> None:
        try:
            _count(services, name, transport, started, error)
        finally:
            answer(result, error)

    services.writer.hand(_job(services, handler, actor, command), done)


def _count(
    services: Services, name: str, transport: str, started: float, error: BaseException | None
) -> None:
    if error is None:
        services.metrics.command_done(name, transport, time.perf_counter() - started)
    elif isinstance(error, DomainError):
        _count_error(services, name, transport, error)


def _count_error(services: Services, name: str, transport: str, exc: DomainError) -> None:
    services.metrics.command_failed(name, transport)
    services.metrics.errors.labels(exc.code.value).inc()


def _check_rate(services: Services, actor: Actor, command: Command) -> None:
    # Staff and speakers are not limited: they are few and accountable.
    if actor.role is not Role.CITIZEN or actor.participant_id is None:
        return
    if isinstance(command, Vote):
        limiter = services.vote_limiter
    elif isinstance(command, Post | Withdraw):
        limiter = services.post_limiter
    else:
        return
    if not limiter.allow(actor.participant_id):
        raise DomainError(ErrorCode.RATE_LIMITED, "too many in a short time; wait a moment")


Handler = Callable[[Services, Tx, Actor, Meeting, Any], Result]


def _job(
    services: Services, handler: Handler, actor: Actor, command: Command
) -> Callable[[Tx], Result]:
    def job(tx: Tx) -> Result:
        meeting = tx.meeting(actor.meeting_id)
        if meeting is None:
            raise not_found(f"no meeting {actor.meeting_id!r}")
        check_can_see_meeting(actor, meeting)
        rules.check_command(actor, meeting, command.type_name)
        return handler(services, tx, actor, meeting, command)

    return job


# --- helpers ----------------------------------------------------------------


def _message_for(tx: Tx, actor: Actor, meeting: Meeting, message_id: int) -> Message:
    """A message of this meeting that the actor may know exists."""
    message = repository.load_message(tx.conn, message_id)
    if message is None or message.meeting_id != meeting.id:
        raise not_found(f"no message {message_id}")
    if project_message(message.record, viewer_of(actor)) is None:
        raise not_found(f"no message {message_id}")
    return message


def _emit_message(tx: Tx, kind: EventKind, message: Message) -> None:
    tx.emit(message.meeting_id, kind, message.record, message_id=message.id)


def _message_result(actor: Actor, message: Message) -> Result:
    return {"message": project_message(message.record, viewer_of(actor))}


def _update(tx: Tx, message: Message, **values: Any) -> Message:
    updated = repository.update_message(tx.conn, message.id, updated_at=tx.now, **values)
    _emit_message(tx, EventKind.MESSAGE_UPDATED, updated)
    return updated


def _set_spotlight(tx: Tx, meeting: Meeting, message_id: int | None) -> None:
    tx.update_meeting(meeting.id, spotlight=message_id)
    tx.emit(meeting.id, EventKind.SPOTLIGHT_CHANGED, {"message_id": message_id})


def _leave_spotlight_if_gone(tx: Tx, meeting: Meeting, message: Message) -> None:
    if meeting.spotlight == message.id and not rules.stays_in_spotlight(message):
        _set_spotlight(tx, meeting, None)


def _insert(
    tx: Tx,
    actor: Actor,
    meeting: Meeting,
    *,
    parent: Message | None,
    depth: int,
    kind: Kind,
    body: str,
    client_id: str | None,
    source: Source,
    author_name: str | None,
    author_role: Role,
    status: Status,
) -> Message:
    parent_id = parent.id if parent else None
    author_id = actor.participant_id
    # As stored: enums as their strings (`_value_`; binding an enum costs the
    # driver an adapter lookup per value, and this runs for every post).
    new_id = repository.insert_message(
        tx.conn,
        {
            "meeting_id": meeting.id,
            "parent_id": parent_id,
            "depth": depth,
            "kind": kind._value_,
            "source": source._value_,
            "body": body,
            "author_id": author_id,
            "author_name": author_name,
            "author_role": author_role._value_,
            "client_id": client_id,
            "status": status._value_,
            "reason": None,
            "answered": _UNANSWERED,
            "answered_by": None,
            "pinned": False,
            "merged_into": None,
            "votes": 0,
            "created_at": tx.now,
            "updated_at": tx.now,
        },
    )
    if new_id is None:
        # Stored before under this client_id (a retry): the same message, nothing new.
        stored = _stored(tx, actor, client_id)
        assert stored is not None
        return stored
    message = Message(
        id=new_id,
        meeting_id=meeting.id,
        parent_id=parent_id,
        depth=depth,
        kind=kind,
        source=source,
        body=body,
        author_id=author_id,
        author_name=author_name,
        author_role=author_role,
        client_id=client_id,
        status=status,
        reason=None,
        answered=Answered.UNANSWERED,
        answered_by=None,
        pinned=False,
        merged_into=None,
        votes=0,
        created_at=tx.now,
        updated_at=tx.now,
    )
    _emit_message(tx, EventKind.MESSAGE_CREATED, message)
    answers_question = kind is Kind.ANSWER and parent is not None and parent.kind is Kind.QUESTION
    if answers_question and parent is not None and parent.answered is Answered.UNANSWERED:
        state = Answered.ORAL if source is Source.FLOOR else Answered.WRITTEN
        by = author_name or actor.name or author_role.value
        _update(tx, parent, answered=state, answered_by=by)
    return message


def _parent(tx: Tx, actor: Actor, meeting: Meeting, parent_id: int | None) -> Message | None:
    if parent_id is None:
        return None
    return _message_for(tx, actor, meeting, parent_id)


# --- handlers ----------------------------------------------------------------


def post(services: Services, tx: Tx, actor: Actor, meeting: Meeting, cmd: Post) -> Result:
    try:
        parent = _parent(tx, actor, meeting, cmd.parent_id)
        kind = rules.resolve_kind(actor, cmd.kind, parent)
        depth = rules.check_post(actor, meeting, kind, parent)
        body = rules.check_text(cmd.body, field="body", limit=meeting.settings.max_body)
    except DomainError:
        # A retry of a post stored earlier gets its ack, whatever changed since.
        stored = _stored(tx, actor, cmd.client_id)
        if stored is None:
            raise
        return _message_result(actor, stored)
    anonymous = meeting.settings.anonymous and actor.role is Role.CITIZEN
    message = _insert(
        tx,
        actor,
        meeting,
        parent=parent,
        depth=depth,
        kind=kind,
        body=body,
        client_id=cmd.client_id,
        source=Source.ONLINE,
        author_name=None if anonymous else actor.name,
        author_role=actor.role,
        status=rules.initial_status(actor, meeting),
    )
    return _message_result(actor, message)


def floor(services: Services, tx: Tx, actor: Actor, meeting: Meeting, cmd: Floor) -> Result:
    try:
        parent = _parent(tx, actor, meeting, cmd.parent_id)
        kind = cmd.kind or (
            Kind.QUESTION if parent is None or parent.kind is Kind.TOPIC else Kind.COMMENT
        )
        depth = rules.check_post(actor, meeting, kind, parent, floor=True)
        body = rules.check_text(cmd.body, field="body", limit=meeting.settings.max_body)
        speaker = rules.check_name(cmd.speaker_name)
    except DomainError:
        stored = _stored(tx, actor, cmd.client_id)
        if stored is None:
            raise
        return _message_result(actor, stored)
    message = _insert(
        tx,
        actor,
        meeting,
        parent=parent,
        depth=depth,
        kind=kind,
        body=body,
        client_id=cmd.client_id,
        source=Source.FLOOR,
        author_name=speaker,
        # Said in the hall by a citizen, unless it is an answer from the podium.
        author_role=Role.SPEAKER if kind is Kind.ANSWER else Role.CITIZEN,
        status=Status.VISIBLE,
    )
    return _message_result(actor, message)


def _stored(tx: Tx, actor: Actor, client_id: str | None) -> Message | None:
    """The message this author already stored under this client_id, if any."""
    if client_id is None or actor.participant_id is None:
        return None
    return repository.message_by_client_id(tx.conn, actor.participant_id, client_id)


def vote(services: Services, tx: Tx, actor: Actor, meeting: Meeting, cmd: Vote) -> Result:
    assert actor.participant_id is not None
    message = _message_for(tx, actor, meeting, cmd.message_id)
    if cmd.value:
        rules.check_votable(meeting, message)
        changed = repository.add_vote(tx.conn, meeting.id, message.id, actor.participant_id)
    else:
        changed = repository.remove_vote(tx.conn, message.id, actor.participant_id)
    count = repository.count_votes(tx.conn, [message.id])[message.id]
    if changed:
        key = str(message.id)
        tx.emit(
            meeting.id,
            EventKind.VOTES_UPDATED,
            {"counts": {key: count}, "voted": {key: bool(cmd.value)}},
            recipient=actor.participant_id,
        )
        tx.after_commit.append(lambda: services.votes.mark(meeting.id, message.id))
    return {"message_id": message.id, "votes": count, "voted": bool(cmd.value)}


def withdraw(services: Services, tx: Tx, actor: Actor, meeting: Meeting, cmd: Withdraw) -> Result:
    message = _message_for(tx, actor, meeting, cmd.message_id)
    rules.check_withdraw(actor, message)
    updated = _update(tx, message, status=Status.WITHDRAWN, pinned=False)
    _leave_spotlight_if_gone(tx, meeting, updated)
    return _message_result(actor, updated)


def moderate(services: Services, tx: Tx, actor: Actor, meeting: Meeting, cmd: Moderate) -> Result:
    message = _message_for(tx, actor, meeting, cmd.message_id)
    new_status = rules.check_moderate(cmd.action, message)
    reason = rules.check_reason(cmd.reason)
    if cmd.action in ("pin", "unpin"):
        updated = _update(tx, message, pinned=cmd.action == "pin")
    else:
        assert new_status is not None
        keep_reason = new_status in (Status.HIDDEN, Status.REJECTED)
        values: dict[str, Any] = {"status": new_status, "reason": reason if keep_reason else None}
        if new_status is Status.HIDDEN:
            values["pinned"] = False
        updated = _update(tx, message, **values)
    _leave_spotlight_if_gone(tx, meeting, updated)
    return _message_result(actor, updated)


def answered(
    services: Services, tx: Tx, actor: Actor, meeting: Meeting, cmd: MarkAnswered
) -> Result:
    message = _message_for(tx, actor, meeting, cmd.message_id)
    rules.check_answerable(message)
    by = rules.check_name(cmd.by)
    updated = _update(
        tx, message, answered=cmd.state, answered_by=rules.answered_by(cmd.state, by, actor)
    )
    return _message_result(actor, updated)


def merge(services: Services, tx: Tx, actor: Actor, meeting: Meeting, cmd: Merge) -> Result:
    source = _message_for(tx, actor, meeting, cmd.message_id)
    target = _message_for(tx, actor, meeting, cmd.into)
    rules.check_merge(source, target)
    source_voters = set(repository.voters(tx.conn, source.id))
    target_voters = set(repository.voters(tx.conn, target.id))
    repository.move_votes(tx.conn, source.id, target.id)
    counts = repository.count_votes(tx.conn, [source.id, target.id])
    updated = _update(tx, source, merged_into=target.id, pinned=False, votes=0)
    publish_counts(tx, meeting.id, counts)
    # Each person whose vote moved learns that they now back the target.
    for participant_id in sorted(source_voters):
        voted = {str(source.id): False, str(target.id): True}
        if participant_id in target_voters:
            voted = {str(source.id): False}
        tx.emit(
            meeting.id,
            EventKind.VOTES_UPDATED,
            {"counts": {str(target.id): counts[target.id], str(source.id): 0}, "voted": voted},
            recipient=participant_id,
        )
    _leave_spotlight_if_gone(tx, meeting, updated)
    return _message_result(actor, updated)


def spotlight(services: Services, tx: Tx, actor: Actor, meeting: Meeting, cmd: Spotlight) -> Result:
    if cmd.message_id is not None:
        message = _message_for(tx, actor, meeting, cmd.message_id)
        rules.check_spotlight(message)
    if meeting.spotlight != cmd.message_id:
        _set_spotlight(tx, meeting, cmd.message_id)
    return {"message_id": cmd.message_id}


def phase(services: Services, tx: Tx, actor: Actor, meeting: Meeting, cmd: SetPhase) -> Result:
    rules.check_phase_move(meeting.phase, cmd.phase)
    tx.update_meeting(meeting.id, phase=cmd.phase)
    if meeting.spotlight is not None and cmd.phase is not Phase.LIVE:
        # The big screen shows a spotlight only while the meeting is live.
        _set_spotlight(tx, meeting, None)
    updated = tx.meeting(meeting.id)
    assert updated is not None
    tx.emit(meeting.id, EventKind.MEETING_UPDATED, updated.to_json())
    return {"meeting": updated.to_json()}


_HANDLERS: dict[type[Command], Handler] = {
    Post: post,
    Floor: floor,
    Vote: vote,
    Withdraw: withdraw,
    Moderate: moderate,
    MarkAnswered: answered,
    Merge: merge,
    Spotlight: spotlight,
    SetPhase: phase,
}
