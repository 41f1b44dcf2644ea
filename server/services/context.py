"""What every use case needs, built once by the app and passed down."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.domain.errors import DomainError, ErrorCode, not_found
from server.domain.models import STAFF, Actor, Meeting, Phase, Role
from server.domain.views import Viewer
from server.hub.hub import Hub
from server.metrics import Metrics
from server.services.limits import RateLimiter
from server.services.votes import VoteCoalescer
from server.settings import Settings
from server.store import repository
from server.store.writer import Writer


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

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction: one consistent view of the database."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    def is_admin(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(
            token.encode(), self.settings.admin_token.encode()
        )


def unauthorized(message: str = "missing or invalid token") -> DomainError:
    return DomainError(ErrorCode.UNAUTHORIZED, message)


async def authenticate(services: Services, meeting_id: str, token: str | None) -> Actor:
    """The actor a bearer token stands for in this meeting."""
    if token is None:
        raise unauthorized("a token is needed")
    if services.is_admin(token):
        async with services.read() as conn:
            if not await repository.meeting_exists(conn, meeting_id):
                raise not_found(f"no meeting {meeting_id!r}")
        return Actor(meeting_id, Role.ORGANISER)
    async with services.read() as conn:
        row = await repository.participant_by_token_hash(conn, hash_secret(token))
    if row is None or row.meeting_id != meeting_id or row.erased_at is not None:
        raise unauthorized()
    return Actor(meeting_id, Role(row.role), row.id, row.name, bool(row.in_room))


def viewer_of(actor: Actor) -> Viewer:
    return Viewer(actor.role, actor.participant_id)


def check_can_see_meeting(actor: Actor, meeting: Meeting) -> None:
    """Nobody but staff sees a draft meeting: to others it does not exist."""
    if meeting.phase is Phase.DRAFT and actor.role not in STAFF:
        raise not_found(f"no meeting {meeting.id!r}")
