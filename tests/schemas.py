"""Validation of everything the server sends against the JSON Schemas in schema/.

The schemas are read once, at import, into one `referencing` registry keyed by
their `$id` (the base URI plus the file's path under schema/), so that every
relative `$ref` resolves in memory. tests/support.py calls
`validate_server_frame` on every WebSocket frame and `validate_http` on every
JSON body the server sends; a mismatch raises an AssertionError that names the
schema, the path in the instance and the rule that failed.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
BASE_URI = "https://ting.example/schema/"

SERVER_FRAME = "frames/server-frame.json"
CLIENT_FRAME = "commands/client-frame.json"
HTTP_ERROR = "http/error.json"
COMMAND_ERROR = "http/command-error.json"


def _load() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted(SCHEMA_DIR.rglob("*.json")):
        name = path.relative_to(SCHEMA_DIR).as_posix()
        schema = json.loads(path.read_text(encoding="utf-8"))
        if schema.get("$id") != BASE_URI + name:
            raise AssertionError(f"schema/{name}: $id must be {BASE_URI + name!r}")
        schemas[name] = schema
    return schemas


SCHEMAS: dict[str, dict[str, Any]] = _load()
REGISTRY: Registry[Any] = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema, default_specification=DRAFT202012))
    for schema in SCHEMAS.values()
)


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    """A validator for a schema by its name under schema/, with an optional #fragment."""
    path = name.partition("#")[0]
    if path not in SCHEMAS:
        raise AssertionError(f"no schema {path!r} in schema/")
    return Draft202012Validator({"$ref": BASE_URI + name}, registry=REGISTRY)


def _locate(node: Any, pointer: str, out: dict[int, str]) -> None:
    if isinstance(node, dict):
        out[id(node)] = pointer
        for key, value in node.items():
            _locate(value, f"{pointer}/{key}", out)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _locate(value, f"{pointer}/{index}", out)


# Where each subschema object lives ("objects/message.json#/$defs/author"), so
# that an error names the rule that failed in the file that holds it.
_LOCATIONS: dict[int, str] = {}
for _name, _schema in SCHEMAS.items():
    _locate(_schema, f"{_name}#", _LOCATIONS)


def _describe(error: ValidationError) -> str:
    where = _LOCATIONS.get(id(error.schema))
    if where is None:
        rule = "/".join(str(part) for part in error.absolute_schema_path)
    else:
        rule = f"schema/{where}/{error.validator}"
    return f"at {error.json_path}: {error.message} (rule {rule})"


# Instances that passed, by schema and canonical JSON: one event reaches many
# sockets of a test as the same frame, and validating a message takes a few
# milliseconds. Only passes are kept (bounded, oldest first out).
_PASSED: dict[tuple[str, bytes], None] = {}
_PASSED_MAX = 20_000


def validate(name: str, instance: Any, what: str = "instance") -> None:
    """Raise AssertionError unless `instance` matches schema/`name`."""
    try:
        key = (name, orjson.dumps(instance, option=orjson.OPT_SORT_KEYS))
    except TypeError:  # not JSON at all: let the schema say so
        key = None
    if key is not None and key in _PASSED:
        return
    error = best_match(_validator(name).iter_errors(instance))
    if error is not None:
        raise AssertionError(f"{what} does not match schema/{name} {_describe(error)}")
    if key is not None:
        if len(_PASSED) >= _PASSED_MAX:
            del _PASSED[next(iter(_PASSED))]
        _PASSED[key] = None


def validate_server_frame(frame: Any) -> None:
    """Raise if a WebSocket frame from the server does not match schema/."""
    kind = frame.get("type") if isinstance(frame, dict) else None
    validate(SERVER_FRAME, frame, f"server frame {kind!r}")


def validate_command(obj: Any) -> None:
    """Raise if a client frame (a hello or one of the ten commands) does not match schema/."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    validate(CLIENT_FRAME, obj, f"client frame {kind!r}")


# --- HTTP ----------------------------------------------------------------------

# (method, route template, {status: schema of the JSON body}); in the server's
# route order, since `by-code/{code}` must win over `{id}/...`. A route with no
# JSON success body (QR code, metrics, Markdown/CSV export) still answers its
# errors in JSON.
HTTP_ROUTES: tuple[tuple[str, str, dict[int, str]], ...] = (
    ("POST", "/api/meetings", {201: "http/create-meeting.json"}),
    ("GET", "/api/meetings/by-code/{code}", {200: "http/by-code.json"}),
    ("GET", "/api/meetings/{id}", {200: "http/meeting.json"}),
    ("PATCH", "/api/meetings/{id}", {200: "http/meeting.json"}),
    ("POST", "/api/meetings/{id}/join", {201: "http/join.json"}),
    ("GET", "/api/meetings/{id}/snapshot", {200: "http/snapshot.json"}),
    ("GET", "/api/meetings/{id}/events", {200: "http/events.json"}),
    ("POST", "/api/meetings/{id}/commands", {200: "http/command-reply.json"}),
    ("GET", "/api/meetings/{id}/export", {200: "http/export.json"}),
    ("DELETE", "/api/meetings/{id}/participants/{participant_id}", {200: "http/erasure.json"}),
    ("GET", "/api/meetings/{id}/qr.svg", {}),
    ("GET", "/healthz", {200: "http/healthz.json"}),
    ("GET", "/metrics", {}),
)
COMMANDS_ROUTE = "/api/meetings/{id}/commands"


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]*\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


_ROUTE_PATTERNS = tuple((method, _pattern(t), t, bodies) for method, t, bodies in HTTP_ROUTES)


def route_for(method: str, route: str) -> tuple[str, dict[int, str]] | None:
    """The route template and body schemas for a template or a concrete path."""
    path = route.partition("?")[0]
    for route_method, pattern, template, bodies in _ROUTE_PATTERNS:
        if route_method == method.upper() and pattern.match(path):
            return template, bodies
    return None


def validate_http(method: str, route: str, status: int, body: Any) -> None:
    """Raise if an HTTP JSON body from the server does not match schema/.

    `route` is a template ("/api/meetings/{id}/join") or a concrete path.
    4xx bodies are the error body, except on /commands, where they are the
    error frame plus the error object; each status may carry only the error
    codes that docs/protocol.md maps to it.
    """
    found = route_for(method, route)
    what = f"{method.upper()} {route} -> {status}"
    if 400 <= status < 500:
        if found is not None and found[0] == COMMANDS_ROUTE:
            validate(COMMAND_ERROR, body, what)
            if body["error"] != {"code": body["code"], "message": body["message"]}:
                raise AssertionError(f"{what}: the error object differs from the error frame")
            body = {"error": body["error"]}
        else:
            validate(HTTP_ERROR, body, what)
        if str(status) not in SCHEMAS[HTTP_ERROR]["$defs"]:
            raise AssertionError(f"{what}: no error code is documented for HTTP status {status}")
        validate(f"{HTTP_ERROR}#/$defs/{status}", body, f"{what} (error code for the status)")
        return
    if found is None:
        raise AssertionError(f"{what}: no documented route sends this JSON body")
    template, bodies = found
    if status not in bodies:
        raise AssertionError(
            f"{what}: {method.upper()} {template} documents a JSON body only for "
            f"{sorted(bodies) or 'no status'}"
        )
    validate(bodies[status], body, what)
