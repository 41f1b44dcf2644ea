"""Typed settings, built once from the environment and passed down explicitly.

Every setting is documented in the README's "Configuration" table; a test keeps
the two in sync.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///ting.db"


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told from outside."""

    database_url: str = DEFAULT_DATABASE_URL
    # Bearer token of the organiser (municipal admin); generated when unset.
    admin_token: str = ""
    admin_token_generated: bool = False
    # Base URL used in the links and the QR code handed out to people.
    public_url: str = "http://127.0.0.1:8000"
    # Origins allowed to open a WebSocket besides the public URL's own.
    allowed_origins: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    # Largest incoming WebSocket frame; commands are small, so 64 KiB is ample
    # and keeps a hostile client far below the ASGI server's 16 MiB default.
    ws_max_frame: int = 64 * 1024
    # Bytes queued for one socket before it counts as too slow (close 4409).
    ws_queue_bytes: int = 2 * 1024 * 1024
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    hello_timeout: float = 5.0
    # Largest HTTP request body (a basis text of 50,000 characters fits).
    http_max_body: int = 256 * 1024
    # How often coalesced vote counts are published: at most 4 a second, which
    # with the voter's own confirmation keeps a phone at 5 vote frames a second at most.
    vote_interval: float = 0.3
    # How often presence counts are pushed when they changed.
    presence_interval: float = 1.0
    # Resume gaps larger than this are answered with a snapshot instead.
    replay_limit: int = 10_000
    # Events kept per meeting for replay; 0 keeps all of them.
    event_retention: int = 0
    # Commands a writer transaction may group before it commits, for one fsync:
    # 256 took the writer alone from ~3,800 to ~4,600 posts/s over 64.
    writer_batch: int = 256
    # Citizens' token buckets: burst size and refill per second.
    post_burst: int = 5
    post_rate: float = 0.2
    vote_burst: int = 30
    vote_rate: float = 3.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `TING_*` variables; keyword overrides win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, kind in _ENV_FIELDS.items():
            raw = env.get("TING_" + name.upper())
            if raw is None:
                continue
            if kind is bool:
                values[name] = _bool(raw)
            elif kind is tuple:
                values[name] = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
            else:
                values[name] = kind(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if not settings.admin_token:
            settings = replace(
                settings, admin_token=secrets.token_urlsafe(24), admin_token_generated=True
            )
        if settings.event_retention and settings.event_retention < 10_000:
            raise ValueError("TING_EVENT_RETENTION must be 0 (keep all) or at least 10000")
        return settings

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


_ENV_FIELDS: dict[str, type] = {
    "database_url": str,
    "admin_token": str,
    "public_url": str,
    "allowed_origins": tuple,
    "host": str,
    "port": int,
    "ws_max_frame": int,
    "ws_queue_bytes": int,
    "ws_ping_interval": float,
    "ws_ping_timeout": float,
    "hello_timeout": float,
    "http_max_body": int,
    "vote_interval": float,
    "presence_interval": float,
    "replay_limit": int,
    "event_retention": int,
    "writer_batch": int,
    "post_burst": int,
    "post_rate": float,
    "vote_burst": int,
    "vote_rate": float,
    "log_level": str,
}

ENVIRONMENT_VARIABLES = tuple("TING_" + name.upper() for name in _ENV_FIELDS)
