"""The baseline: a minimal server on the bare `websockets` library.

It speaks just enough of protocol v1 for the load generator's clients to be
the same code against both servers: it accepts the same `hello`, answers with
a `welcome` and a `snapshot` (or a replay after `since`), answers `ping`, and
turns each `post` into a `message.created` event shaped and sized like
Ting's, encoded once and pushed to every subscriber with
`websockets.broadcast`; the poster gets an `ack`. No persistence, no roles,
no rate limits: the practical limit for Python fan-out on the machine.

Run: `python bench/baseline_server.py --port 0`; it prints its port when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
from datetime import UTC, datetime
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve

# The same limits and keepalive as Ting's defaults, so that both do the same.
MAX_FRAME = 64 * 1024
PING_INTERVAL = 20.0
PING_TIMEOUT = 20.0
HELLO_TIMEOUT = 5.0
BACKLOG = 2048


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Baseline:
    def __init__(self) -> None:
        self.subscribers: set[ServerConnection] = set()
        self.seq = 0
        self.next_id = 1
        self.messages: list[dict[str, Any]] = []
        self.events: list[bytes] = []  # the frame of seq n is events[n - 1]

    async def handler(self, ws: ServerConnection) -> None:
        if not ws.request or not ws.request.path.startswith("/ws/meetings/"):
            await ws.close(4404, "no such meeting")
            return
        try:
            raw = await asyncio.wait_for(ws.recv(), HELLO_TIMEOUT)
            hello = orjson.loads(raw)
        except TimeoutError:
            await ws.close(4408, "no hello in time")
            return
        except orjson.JSONDecodeError:
            await ws.close(4400, "malformed hello")
            return
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            await ws.close(4400, "the first frame must be a hello")
            return
        self._start(ws, hello.get("since"))
        try:
            async for raw in ws:
                self._command(ws, raw)
        finally:
            self.subscribers.discard(ws)

    def _start(self, ws: ServerConnection, since: Any) -> None:
        """Welcome, then replay or snapshot, then subscribe, with no await between."""
        replay = isinstance(since, int) and 0 <= since <= self.seq
        welcome = {
            "type": "welcome",
            "seq": self.seq,
            "role": "citizen",
            "participant_id": None,
            "mode": "replay" if replay else "snapshot",
        }
        broadcast([ws], orjson.dumps(welcome), text=True)
        if replay:
            for frame in self.events[since:]:
                broadcast([ws], frame, text=True)
        else:
            snapshot = {
                "type": "snapshot",
                "seq": self.seq,
                "meeting": {"id": "baseline", "title": "Baseline", "phase": "live"},
                "messages": self.messages,
                "presence": {"online": len(self.subscribers) + 1, "in_room": 0, "by_role": {}},
            }
            broadcast([ws], orjson.dumps(snapshot), text=True)
        self.subscribers.add(ws)

    def _command(self, ws: ServerConnection, raw: str | bytes) -> None:
        try:
            cmd = orjson.loads(raw)
        except orjson.JSONDecodeError:
            cmd = None
        if not isinstance(cmd, dict):
            reply: dict[str, Any] = {
                "type": "error",
                "ref": None,
                "code": "invalid",
                "message": "a command is a JSON object",
            }
        elif cmd.get("type") == "ping":
            reply = {"type": "pong", "ref": cmd.get("ref")}
        elif cmd.get("type") == "post" and isinstance(cmd.get("body"), str):
            reply = {"type": "ack", "ref": cmd.get("ref"), "result": {"message": self._post(cmd)}}
        else:
            reply = {
                "type": "error",
                "ref": cmd.get("ref"),
                "code": "invalid",
                "message": "the baseline knows ping and post",
            }
        broadcast([ws], orjson.dumps(reply), text=True)

    def _post(self, cmd: dict[str, Any]) -> dict[str, Any]:
        now = now_iso()
        message = {
            "id": self.next_id,
            "parent_id": cmd.get("parent_id"),
            "depth": 0,
            "kind": "question",
            "source": "online",
            "body": cmd["body"].strip(),
            "author": {"name": "Moderator", "role": "moderator"},
            "mine": False,
            "status": "visible",
            "reason": None,
            "answered": "unanswered",
            "answered_by": None,
            "pinned": False,
            "merged_into": None,
            "votes": 0,
            "created_at": now,
            "updated_at": now,
        }
        self.next_id += 1
        self.seq += 1
        frame = orjson.dumps(
            {"type": "event", "seq": self.seq, "kind": "message.created", "data": message}
        )
        self.messages.append(message)
        self.events.append(frame)
        # Encoded once; websockets frames it for each connection and writes it.
        broadcast(self.subscribers, frame, text=True)
        return message


async def main(port: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    baseline = Baseline()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        baseline.handler,
        "127.0.0.1",
        port,
        compression=None,
        max_size=MAX_FRAME,
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        backlog=BACKLOG,
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"Baseline listening on 127.0.0.1 (port {bound})", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
