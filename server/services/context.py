"""What every use case needs, built once by the app and passed down."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.domain.errors import DomainError, ErrorCode, not_found
from server.domain.models import STAFF, Actor, Meeting, Phase, Role
from server.domain.views import Viewer
from server.hub.hub import Hub
from server.metrics import Metrics
from server.protocol import CLOSE_UNAUTHORIZED
from server.services.caches import (
    BatchLoader,
    HistoryWarmer,
    MeetingCache,
    SnapshotCache,
    TokenCache,
)
from server.services.limits import RateLimiter
from server.services.votes import VoteCoalescer
from server.settings import Settings
from server.store import reads, repository
from server.store.reads import Participant, Tail
from server.store.writer import Writer

# A snapshot's head, looked up in batches: (meeting id, participant id or
# None) -> (the meeting at the seq read, whether they have something of their own).
HeadKey = tuple[str, str | None]
HeadValue = tuple[Meeting, bool]
# Reads at once when the pool does not say its size (it always does for the
# QueuePool that create_engine makes).
DEFAULT_READERS = 8


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    writer: Writer
    hub: Hub
    metrics: Metrics
    post_limiter: RateLimiter
    vote_limiter: RateLimiter
    votes: VoteCoalescer
    meetings: MeetingCache = field(init=False)
    tokens: TokenCache = field(init=False)
    snapshots: SnapshotCache = field(init=False)
    snapshot_heads: BatchLoader[HeadKey, HeadValue] = field(init=False)
    history: HistoryWarmer = field(init=False)
    _readers: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.meetings = MeetingCache(self.hub, self._load_meeting)
        self.tokens = TokenCache(self._load_tokens)
        self.snapshots = SnapshotCache()
        self.snapshot_heads = BatchLoader(self._load_heads)
        self.history = HistoryWarmer(self.hub, self._load_recent)
        # As many reads at once as the pool keeps connections: a storm of
        # hellos then waits its turn here instead of timing out in the pool
        # (30 s) with the overflow connections thrashing.
        size = getattr(self.engine.pool, "size", None)
        self._readers = asyncio.Semaphore(size() if callable(size) else DEFAULT_READERS)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction: one consistent view of the database."""
        async with self._readers, self.engine.connect() as conn, conn.begin():
            yield conn

    async def _load_meeting(self, meeting_id: str) -> Meeting | None:
        async with self.read() as conn:
            return await conn.run_sync(repository.load_meeting, meeting_id)

    async def _load_tokens(self, hashes: list[str]) -> dict[str, Participant]:
        async with self.read() as conn:
            return await conn.run_sync(reads.participants_by_token_hashes, hashes)

    async def _load_heads(self, keys: list[HeadKey]) -> dict[HeadKey, HeadValue]:
        asked: dict[str, list[str]] = {}
        for meeting_id, participant_id in keys:
            ids = asked.setdefault(meeting_id, [])
            if participant_id is not None:
                ids.append(participant_id)
        async with self.read() as conn:
            heads = await conn.run_sync(reads.snapshot_heads, asked)
        return {
            (meeting_id, pid): (head.meeting, pid in head.personal)
            for meeting_id, pid in keys
            if (head := heads.get(meeting_id)) is not None
        }

    async def _load_recent(self, meeting_id: str, count: int) -> Tail | None:
        async with self.read() as conn:
            return await conn.run_sync(reads.recent_events, meeting_id, count)

    def is_admin(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(
            token.encode(), self.settings.admin_token.encode()
        )

    def revoke_participant(self, meeting_id: str, participant_id: str, reason: str) -> None:
        """After an erasure commits: their token stops working here at once, the
        copies of the rewritten event log kept in memory go, and their sockets
        close with 4401."""
        self.tokens.revoke(participant_id)
        self.snapshots.forget(meeting_id)
        self.hub.forget_history(meeting_id)
        self.hub.close_participant(meeting_id, participant_id, CLOSE_UNAUTHORIZED, reason)


def unauthorized(message: str = "missing or invalid token") -> DomainError:
    return DomainError(ErrorCode.UNAUTHORIZED, message)


async def authenticate(services: Services, meeting_id: str, token: str | None) -> Actor:
    """The actor a bearer token stands for in this meeting."""
    if token is None:
        raise unauthorized("a token is needed")
    if services.is_admin(token):
        if await services.meetings.get(meeting_id) is None:
            raise not_found(f"no meeting {meeting_id!r}")
        return Actor(meeting_id, Role.ORGANISER)
    participant = await services.tokens.find(hash_secret(token))
    if participant is None or participant.meeting_id != meeting_id:
        raise unauthorized()
    return Actor(
        meeting_id, participant.role, participant.id, participant.name, participant.in_room
    )


def viewer_of(actor: Actor) -> Viewer:
    return Viewer(actor.role, actor.participant_id)


def check_can_see_meeting(actor: Actor, meeting: Meeting) -> None:
    """Nobody but staff sees a draft meeting: to others it does not exist."""
    if meeting.phase is Phase.DRAFT and actor.role not in STAFF:
        raise not_found(f"no meeting {meeting.id!r}")
