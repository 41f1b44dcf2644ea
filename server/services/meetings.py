"""Meetings: create, read, change, join; snapshots and replays of the log."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from typing import Any

import orjson

from server.domain import rules
from server.domain.errors import DomainError, ErrorCode, conflict, forbidden, invalid, not_found
from server.domain.models import (
    STAFF,
    Actor,
    EventKind,
    Meeting,
    MeetingSettings,
    Phase,
    Role,
)
from server.domain.views import PUBLIC_VIEWER, Viewer, project_event, project_rows
from server.services.context import Services, authenticate, check_can_see_meeting, hash_secret
from server.store import reads, repository
from server.store.writer import Tx

# Join codes avoid look-alikes (0/O, 1/I/L) so they can be read off a wall.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 6
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
LANGUAGES = ("da", "en")
_FOLD = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa"})


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def slugify(title: str) -> str:
    folded = title.lower().translate(_FOLD)
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:40].strip("-")
    return f"{slug or 'meeting'}-{secrets.token_hex(2)}"


def page_urls(services: Services, meeting: Meeting, keys: dict[str, str]) -> dict[str, str]:
    """Links to hand out; role keys travel in the fragment, never to server logs."""
    base = services.settings.public_url.rstrip("/")
    return {
        "citizen": f"{base}/m/{meeting.id}",
        "join": f"{base}/j/{meeting.code}",
        "moderator": f"{base}/m/{meeting.id}/moderator#key={keys['moderator']}",
        "speaker": f"{base}/m/{meeting.id}/speaker#key={keys['speaker']}",
        "screen": f"{base}/m/{meeting.id}/screen#key={keys['screen']}",
    }


def join_url(services: Services, meeting: Meeting) -> str:
    return f"{services.settings.public_url.rstrip('/')}/j/{meeting.code}"


# --- reading input ------------------------------------------------------------


def _check_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    return body


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    return value


def check_settings(value: Any, base: MeetingSettings) -> MeetingSettings:
    """Apply a partial settings object onto `base`, checking every field."""
    if value is None:
        return base
    if not isinstance(value, dict):
        raise invalid("settings must be an object")
    known = set(base.to_json())
    unknown = set(value) - known
    if unknown:
        raise invalid(f"unknown settings: {', '.join(sorted(unknown))}")
    merged = base.to_json() | value
    if merged["moderation"] not in ("pre", "post"):
        raise invalid("settings.moderation must be pre or post")
    for flag in ("anonymous", "voting", "public"):
        if not isinstance(merged[flag], bool):
            raise invalid(f"settings.{flag} must be true or false")
    for name, low, high in (
        ("max_body", 1, rules.MAX_BODY_CEILING),
        ("max_depth", 1, rules.MAX_DEPTH_CEILING),
    ):
        number = merged[name]
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
            raise invalid(f"settings.{name} must be a whole number from {low} to {high}")
    return MeetingSettings(**merged)


def _check_language(value: Any) -> str:
    if value not in LANGUAGES:
        raise invalid(f"language must be one of {', '.join(LANGUAGES)}")
    return str(value)


# --- use cases ----------------------------------------------------------------


async def create_meeting(services: Services, body: Any) -> dict[str, Any]:
    """Organiser: a new meeting in draft, with its role keys (shown only now)."""
    body = _check_object(body)
    title = rules.check_text(_opt_str(body, "title") or "", field="title", limit=rules.MAX_TITLE)
    basis = rules.check_text(
        _opt_str(body, "basis") or "", field="basis", limit=rules.MAX_BASIS, required=False
    )
    meeting_id = _opt_str(body, "id")
    if meeting_id is not None and not _SLUG.match(meeting_id):
        raise invalid("id must be 1-64 lowercase letters, digits and dashes")
    language = _check_language(body.get("language", "da"))
    settings = check_settings(body.get("settings"), MeetingSettings())
    phase = Phase(body["phase"]) if body.get("phase") in ("draft", "open", "live") else Phase.DRAFT
    if "phase" in body and body["phase"] not in ("draft", "open", "live"):
        raise invalid("a new meeting starts as draft, open or live")
    keys = {role: new_token() for role in ("moderator", "speaker", "screen")}

    def job(tx: Tx) -> Meeting:
        if meeting_id is not None:
            if repository.meeting_exists(tx.conn, meeting_id):
                raise conflict(f"a meeting {meeting_id!r} exists already")
            mid = meeting_id
        else:
            # A made-up id has a short random suffix (4 hex digits), so meetings
            # with one title can clash: draw again, as for the join code.
            mid = slugify(title)
            while repository.meeting_exists(tx.conn, mid):
                mid = slugify(title)
        code = new_code()
        while repository.code_taken(tx.conn, code):
            code = new_code()
        meeting = Meeting(mid, title, basis, phase, code, language, settings, None, tx.now)
        repository.insert_meeting(
            tx.conn, meeting, {r: hash_secret(k) for r, k in keys.items()}, tx.now
        )
        tx.meetings.pop(mid, None)
        tx.emit(mid, EventKind.MEETING_UPDATED, meeting.to_json())
        return meeting

    meeting = await services.writer.run(job)
    return (
        meeting.to_json()
        | {f"{r}_key": k for r, k in keys.items()}
        | {"urls": page_urls(services, meeting, keys)}
    )


async def rotate_keys(services: Services, meeting_id: str) -> dict[str, Any]:
    """New role keys for a meeting (the demo uses this at every start)."""
    keys = {role: new_token() for role in ("moderator", "speaker", "screen")}

    def job(tx: Tx) -> Meeting:
        meeting = tx.meeting(meeting_id)
        if meeting is None:
            raise not_found(f"no meeting {meeting_id!r}")
        repository.set_key_hashes(tx.conn, meeting_id, {r: hash_secret(k) for r, k in keys.items()})
        return meeting

    meeting = await services.writer.run(job)
    return (
        meeting.to_json()
        | {f"{r}_key": k for r, k in keys.items()}
        | {"urls": page_urls(services, meeting, keys)}
    )


async def load_visible_meeting(services: Services, meeting_id: str, actor: Actor | None) -> Meeting:
    """The meeting if this actor (None: anonymous reader) may see it."""
    async with services.read() as conn:
        meeting = await conn.run_sync(repository.load_meeting, meeting_id)
    if meeting is None:
        raise not_found(f"no meeting {meeting_id!r}")
    if actor is None:
        if meeting.phase is Phase.DRAFT:
            raise not_found(f"no meeting {meeting_id!r}")
    else:
        check_can_see_meeting(actor, meeting)
    return meeting


async def meeting_for_code(services: Services, code: str) -> dict[str, Any]:
    async with services.read() as conn:
        meeting_id = await conn.run_sync(repository.meeting_id_for_code, code.strip().upper())
        meeting = await conn.run_sync(repository.load_meeting, meeting_id) if meeting_id else None
    if meeting is None or meeting.phase is Phase.DRAFT:
        raise not_found("no meeting has that code")
    return {"id": meeting.id, "title": meeting.title, "phase": meeting.phase.value}


PATCHABLE = ("title", "basis", "settings", "language")


async def update_meeting(services: Services, actor: Actor, body: Any) -> dict[str, Any]:
    """Organiser or moderator: title, basis, language and settings."""
    body = _check_object(body)
    if actor.role not in STAFF:
        raise forbidden("only the organiser and moderators change a meeting")
    unknown = set(body) - set(PATCHABLE)
    if unknown:
        raise invalid(f"cannot change {', '.join(sorted(unknown))}")

    def job(tx: Tx) -> Meeting:
        meeting = tx.meeting(actor.meeting_id)
        if meeting is None:
            raise not_found(f"no meeting {actor.meeting_id!r}")
        if meeting.phase is Phase.ARCHIVED:
            raise DomainError(ErrorCode.CLOSED, "an archived meeting cannot be changed")
        values: dict[str, Any] = {}
        if "title" in body:
            values["title"] = rules.check_text(
                _opt_str(body, "title") or "", field="title", limit=rules.MAX_TITLE
            )
        if "basis" in body:
            values["basis"] = rules.check_text(
                _opt_str(body, "basis") or "", field="basis", limit=rules.MAX_BASIS, required=False
            )
        if "language" in body:
            values["language"] = _check_language(body["language"])
        if "settings" in body:
            values["settings"] = check_settings(body["settings"], meeting.settings)
        if not values:
            return meeting
        tx.update_meeting(meeting.id, **values)
        updated = replace(meeting, **values)
        tx.emit(meeting.id, EventKind.MEETING_UPDATED, updated.to_json())
        return updated

    meeting = await services.writer.run(job)
    return meeting.to_json()


async def join(services: Services, meeting_id: str, body: Any) -> dict[str, Any]:
    """A participant and its token: a citizen, or the role whose key is given."""
    body = _check_object(body)
    name = rules.check_name(_opt_str(body, "name"))
    key = _opt_str(body, "key")
    in_room = body.get("in_room", False)
    if not isinstance(in_room, bool):
        raise invalid("in_room must be true or false")
    unknown = set(body) - {"name", "key", "in_room"}
    if unknown:
        raise invalid(f"unknown fields: {', '.join(sorted(unknown))}")
    token = new_token()
    participant_id = "p_" + secrets.token_hex(8)

    def job(tx: Tx) -> Role:
        meeting = tx.meeting(meeting_id)
        if meeting is None:
            raise not_found(f"no meeting {meeting_id!r}")
        role = Role.CITIZEN
        if key:
            found = repository.role_for_key_hash(tx.conn, meeting_id, hash_secret(key))
            if found is None:
                raise DomainError(ErrorCode.UNAUTHORIZED, "that key does not open this meeting")
            role = found
        if role is Role.CITIZEN:
            if meeting.phase is Phase.DRAFT:
                raise not_found(f"no meeting {meeting_id!r}")
            if meeting.phase in (Phase.CLOSED, Phase.ARCHIVED):
                raise DomainError(ErrorCode.CLOSED, "the meeting is over; it can still be read")
        repository.insert_participant(
            tx.conn,
            participant_id=participant_id,
            meeting_id=meeting_id,
            role=role,
            name=name,
            in_room=in_room,
            token_hash=hash_secret(token),
            now=tx.now,
        )
        return role

    role = await services.writer.run(job)
    return {"participant_id": participant_id, "token": token, "role": role.value}


async def actor_for(services: Services, meeting_id: str, token: str | None) -> Actor | None:
    """Who a request is from: None for an anonymous reader of a public meeting."""
    if token is None:
        return None
    return await authenticate(services, meeting_id, token)


def viewer_for(actor: Actor | None) -> Viewer:
    if actor is None:
        return Viewer(Role.VIEWER)
    return Viewer(actor.role, actor.participant_id)


async def check_reader(services: Services, meeting_id: str, actor: Actor | None) -> Meeting:
    """The meeting, if this reader may read it now."""
    meeting = await load_visible_meeting(services, meeting_id, actor)
    if actor is None and not meeting.settings.public:
        raise DomainError(ErrorCode.UNAUTHORIZED, "this meeting is not public; join it first")
    return meeting


async def snapshot(services: Services, meeting_id: str, actor: Actor | None) -> dict[str, Any]:
    """The whole tree as this reader may see it, at one seq."""
    await check_reader(services, meeting_id, actor)
    return await read_snapshot(services, meeting_id, viewer_for(actor))


async def read_snapshot(services: Services, meeting_id: str, viewer: Viewer) -> dict[str, Any]:
    """`{"seq", "meeting", "messages", "presence"}` at one seq.

    `messages` may be ready-made JSON (`orjson.Fragment`): readers who see
    the public projection and have nothing of their own in the meeting (no
    message, no vote: so no `mine`, no `voted: true`) share one encoding per
    seq, which is what a hall of people joining at once asks for. Whether a
    reader has something of their own is read with the seq, for many readers
    in one query; only the others read the messages, in a read of their own.
    """
    if viewer.is_staff:
        read = await _read_snapshot(services, meeting_id, viewer, shareable=False)
        return _snapshot(services, read.meeting, project_rows(read.rows, viewer, read.voted))
    head = await services.snapshot_heads.get((meeting_id, viewer.participant_id))
    if head is None:
        raise not_found(f"no meeting {meeting_id!r}")
    meeting, personal = head
    cache = services.snapshots
    if personal:
        read = await _read_snapshot(services, meeting_id, viewer, shareable=True)
    else:
        encoded = cache.get(meeting_id, meeting.last_seq)
        if encoded is not None:
            return _snapshot(services, meeting, orjson.Fragment(encoded))
        # The first of a crowd computes the public projection; the others
        # wait for it, then find it.
        async with cache.lock(meeting_id):
            encoded = cache.get(meeting_id, meeting.last_seq)
            if encoded is not None:
                return _snapshot(services, meeting, orjson.Fragment(encoded))
            read = await _read_snapshot(services, meeting_id, viewer, shareable=True)
            if not read.personal:
                return _shared_snapshot(services, read)
    if not read.personal:  # nothing of their own any more (a vote taken back)
        return _shared_snapshot(services, read)
    return _snapshot(services, read.meeting, project_rows(read.rows, viewer, read.voted))


def _shared_snapshot(services: Services, read: reads.SnapshotRead) -> dict[str, Any]:
    """The public projection of `read`, encoded once and kept for its seq."""
    encoded = orjson.dumps(project_rows(read.rows, PUBLIC_VIEWER, set()))
    services.snapshots.put(read.meeting.id, read.meeting.last_seq, encoded)
    return _snapshot(services, read.meeting, orjson.Fragment(encoded))


async def _read_snapshot(
    services: Services, meeting_id: str, viewer: Viewer, *, shareable: bool
) -> reads.SnapshotRead:
    async with services.read() as conn:
        read = await conn.run_sync(
            reads.snapshot, meeting_id, viewer.participant_id, shareable=shareable
        )
    if read is None:
        raise not_found(f"no meeting {meeting_id!r}")
    return read


def _snapshot(services: Services, meeting: Meeting, messages: Any) -> dict[str, Any]:
    return {
        "seq": meeting.last_seq,
        "meeting": meeting.to_json(),
        "messages": messages,
        "presence": services.hub.presence(meeting.id),
    }


async def events_since(
    services: Services, meeting_id: str, actor: Actor | None, since: int, limit: int
) -> dict[str, Any]:
    """The events after `since` this reader may see, or `conflict` if gone."""
    await check_reader(services, meeting_id, actor)
    viewer = viewer_for(actor)
    replay = await read_replay(services, meeting_id, viewer, since, limit)
    if replay is None:
        raise conflict("since is outside the kept events; fetch a snapshot")
    seq, events, more = replay
    return {"seq": seq, "events": events, "more": more}


async def read_replay(
    services: Services, meeting_id: str, viewer: Viewer, since: int, limit: int
) -> tuple[int, list[dict[str, Any]], bool] | None:
    """(seq reached, event frames, more to come) or None if `since` is not served.

    From the recent events the hub keeps when `since` is among them (no
    database at all), else from the log; projected alike either way.
    """
    hub = services.hub
    found = hub.recent_events(meeting_id, since, limit)
    if found is None:
        await services.history.warm(meeting_id)
        found = hub.recent_events(meeting_id, since, limit)
    if found is None:
        async with services.read() as conn:
            tail = await conn.run_sync(
                reads.replay, meeting_id, since, limit, viewer.participant_id
            )
        if tail is None:
            raise not_found(f"no meeting {meeting_id!r}")
        if since > tail.last_seq or since < tail.first_seq - 1:
            return None
        upto = min(tail.last_seq, since + limit)
        found = (upto, tail.events, upto < tail.last_seq)
    upto, events, more = found
    who = viewer.participant_id
    frames = []
    for event in events:
        if event.recipient is not None and event.recipient != who:
            continue  # another person's own event (the log leaves these out too)
        data = project_event(event, viewer)
        if data is not None:
            frames.append(
                {"type": "event", "seq": event.seq, "kind": event.kind.value, "data": data}
            )
    return upto, frames, more
