"""Command line: `serve`, `demo` and `meeting create`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from server.app import create_app
from server.endpoints.wsprotocol import TingWebSocketProtocol
from server.settings import ENVIRONMENT_VARIABLES, Settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )
    return settings


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY
    # only on sockets that say so, and without it a response written in two
    # parts (headers, then body) waits ~40 ms for the peer's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, *, seed_demo: bool = False) -> None:
    sock = _bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    if "TING_PUBLIC_URL" not in __import__("os").environ:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        settings = replace(settings, public_url=f"http://{shown}:{port}")
    app = create_app(settings, seed_demo=seed_demo)
    config = uvicorn.Config(
        app,
        ws=TingWebSocketProtocol,
        ws_max_size=settings.ws_max_frame,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        # No access log: it would write every visitor's IP address.
        access_log=False,
        log_level="warning",
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.05)
        if server.started:
            _tune_gc()
            sys.setswitchinterval(GIL_SWITCH_INTERVAL)
            _announce(settings, app.state, port)
        await serving

    asyncio.run(run())


# Seconds a thread waiting for the interpreter lock waits before it asks the
# running one to hand it over. Python's default, 5 ms, is what the writer's
# commit thread waited after each fsync while the event loop was busy reading
# commands: the batch's acks and the next batch waited with it. At 0.5 ms the
# ingest workload acked 16% more posts a second, with a lower p99 (README,
# Benchmarks); at most 2,000 hand-overs a second, and none while only the
# event loop's thread runs.
GIL_SWITCH_INTERVAL = 0.0005

# Allocations between young collections. Python's default, 700, makes a storm of
# thousands of connecting sockets (each some 80 objects) trigger full
# collections again and again, each a scan of every live connection.
GC_YOUNG_THRESHOLD = 50_000


def _tune_gc() -> None:
    """Keep the garbage collector off what lives as long as the process.

    What was built at start (modules, the app) is frozen out of every later
    collection, and young collections run less often, so that full ones are
    rarer too. Memory barely changes: reference counting still frees nearly
    everything at once; only garbage in cycles waits a little longer.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _announce(settings: Settings, state: Any, port: int) -> None:
    lines = [f"Ting listening on {settings.public_url} (port {port})"]
    if settings.admin_token_generated:
        lines.append(
            f"admin token (generated; set TING_ADMIN_TOKEN to keep one): {settings.admin_token}"
        )
    else:
        lines.append("admin token: from TING_ADMIN_TOKEN")
    demo = getattr(state, "demo", None)
    if demo:
        lines.append(f"demo meeting {demo['id']!r}, join code {demo['code']}:")
        for role, url in demo["urls"].items():
            lines.append(f"  {role:<9} {url}")
    print("\n".join(lines), flush=True)


async def _create_meeting(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    from server.services import meetings

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        return await meetings.create_meeting(app.state.services, body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Ting: real-time threaded discussion for hybrid civic meetings.",
        epilog="Environment: " + ", ".join(ENVIRONMENT_VARIABLES),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("serve", "run the server"), ("demo", "run the server with a demo meeting")):
        p = commands.add_parser(name, help=text)
        p.add_argument("--host", help="address to listen on (TING_HOST, default 127.0.0.1)")
        p.add_argument(
            "--port", type=int, help="port, 0 for any free one (TING_PORT, default 8000)"
        )
        p.add_argument(
            "--database-url", help="SQLAlchemy URL (TING_DATABASE_URL, default sqlite file ting.db)"
        )
    meeting = commands.add_parser("meeting", help="manage meetings")
    meeting_commands = meeting.add_subparsers(dest="meeting_command", required=True)
    create = meeting_commands.add_parser("create", help="create a meeting and print it as JSON")
    create.add_argument("--title", required=True)
    create.add_argument("--id", help="the meeting id (a slug); made from the title when left out")
    create.add_argument("--basis-file", type=Path, help="Markdown file with the basis text")
    create.add_argument("--language", choices=("da", "en"), default="da")
    create.add_argument("--phase", choices=("draft", "open", "live"), default="draft")
    create.add_argument("--moderation", choices=("pre", "post"), default="post")
    create.add_argument("--database-url", help="SQLAlchemy URL (TING_DATABASE_URL)")
    args = parser.parse_args(argv)

    settings = _settings(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("ting").setLevel(settings.log_level.upper())
    if args.command in ("serve", "demo"):
        serve(settings, seed_demo=args.command == "demo")
        return
    body: dict[str, Any] = {
        "title": args.title,
        "language": args.language,
        "phase": args.phase,
        "settings": {"moderation": args.moderation},
    }
    if args.id:
        body["id"] = args.id
    if args.basis_file:
        body["basis"] = args.basis_file.read_text(encoding="utf-8")
    try:
        created = asyncio.run(_create_meeting(settings, body))
    except Exception as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        sys.exit(2)
    sys.stdout.buffer.write(orjson.dumps(created, option=orjson.OPT_INDENT_2) + b"\n")
