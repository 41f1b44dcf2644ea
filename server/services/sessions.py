"""Opening a live session: hello, then replay or snapshot, then live events.

The order makes resume exact (Guarantee 3): the connection subscribes first
(live events are held), then reads at some seq N (replay after `since`, or a
snapshot), then queues what it read followed by the held events above N.
Nothing committed can fall between the two, and nothing is sent twice.

A hello costs at most one read transaction of its own, and often none: the
meeting and the token come from the caches (`services.caches`), and a resume
inside the recent events the hub keeps is answered from memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from server.domain.errors import DomainError, ErrorCode
from server.domain.models import STAFF, Actor, Phase
from server.hub.subscriber import Sink, Subscriber
from server.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHORIZED,
    Hello,
)
from server.services.context import Services, authenticate
from server.services.meetings import read_replay, read_snapshot, viewer_for

log = logging.getLogger("ting.sessions")


class SessionRefused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Session:
    actor: Actor | None
    subscriber: Subscriber


async def open_session(
    services: Services, meeting_id: str, hello: Hello, sink: Sink | None = None
) -> Session:
    try:
        return await _open(services, meeting_id, hello, sink)
    except SessionRefused:
        raise
    except Exception as exc:
        # One line, not a traceback per socket: under a storm the same failure
        # repeats thousands of times. Never the token, nor SQL parameters.
        cause = getattr(exc, "orig", None) or exc
        log.warning(
            "hello for meeting %s failed: %s: %s",
            meeting_id,
            type(exc).__name__,
            str(cause).splitlines()[0][:200] if str(cause) else "",
        )
        raise SessionRefused(CLOSE_INTERNAL_ERROR, "the session could not be opened") from None


async def _open(services: Services, meeting_id: str, hello: Hello, sink: Sink | None) -> Session:
    meeting = await services.meetings.get(meeting_id)
    if meeting is None:
        raise SessionRefused(CLOSE_NOT_FOUND, "no such meeting")
    actor: Actor | None = None
    if hello.token is None:
        if not meeting.settings.public or meeting.phase is Phase.DRAFT:
            raise SessionRefused(CLOSE_UNAUTHORIZED, "this meeting needs a token")
    else:
        try:
            actor = await authenticate(services, meeting_id, hello.token)
        except DomainError as exc:
            code = CLOSE_NOT_FOUND if exc.code is ErrorCode.NOT_FOUND else CLOSE_UNAUTHORIZED
            raise SessionRefused(code, exc.message) from None
        if meeting.phase is Phase.DRAFT and actor.role not in STAFF:
            raise SessionRefused(CLOSE_FORBIDDEN, "the meeting is not open yet")
    # Checked with no await before subscribing: an erasure that committed
    # while the token was read is seen here, and one that commits later
    # closes the subscription made now.
    pid = actor.participant_id if actor is not None else None
    if pid is not None and services.tokens.is_revoked(pid):
        raise SessionRefused(CLOSE_UNAUTHORIZED, "missing or invalid token")
    viewer = viewer_for(actor)
    sub = services.hub.subscribe(
        meeting_id,
        viewer,
        budget=services.settings.ws_queue_bytes,
        in_room=bool(actor and actor.in_room),
        sink=sink,
    )
    try:
        frames: list[bytes] = []
        replay = None
        if hello.since is not None:
            replay = await read_replay(
                services, meeting_id, viewer, hello.since, services.settings.replay_limit
            )
            if replay is not None and replay[2]:
                replay = None  # the gap is larger than a replay should be
        if replay is not None:
            seq, events, _ = replay
            mode = "replay"
            frames = [orjson.dumps(e) for e in events]
        else:
            snap = await read_snapshot(services, meeting_id, viewer)
            seq = snap["seq"]
            mode = "snapshot"
            frames = [orjson.dumps({"type": "snapshot", **snap})]
        welcome = {
            "type": "welcome",
            "seq": seq,
            "role": viewer.role.value,
            "participant_id": viewer.participant_id,
            "mode": mode,
        }
        services.hub.start_live(sub, seq, [orjson.dumps(welcome), *frames])
    except BaseException:
        services.hub.unsubscribe(sub)
        raise
    return Session(actor, sub)
