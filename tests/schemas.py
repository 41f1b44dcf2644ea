"""Validation of everything the server sends against the JSON Schemas in schema/.

(Being written: the schemas and these validators come next.)
"""

from __future__ import annotations

from typing import Any


def validate_server_frame(frame: Any) -> None:
    """Raise if a WebSocket frame from the server does not match schema/."""


def validate_http(method: str, route: str, status: int, body: Any) -> None:
    """Raise if an HTTP JSON body from the server does not match schema/."""
