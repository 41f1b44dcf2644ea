"""The command line: help, `meeting create` and `demo`, run as a person would run them."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support import ROOT, Api, ServerProcess


def clean_env() -> dict[str, str]:
    """The environment of someone who set nothing up for Ting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TING_")}


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=cwd or ROOT,
                          env=clean_env(), capture_output=True, text=True, timeout=60)


def test_help_lists_the_commands_and_their_options() -> None:
    expected = {
        (): ("serve", "demo", "meeting"),
        ("serve",): ("--host", "--port", "--database-url"),
        ("demo",): ("--host", "--port", "--database-url"),
        ("meeting", "create"): ("--title", "--id", "--phase", "--moderation", "--database-url"),
    }
    # Started together: each is mostly the interpreter importing the server.
    running = {
        args: subprocess.Popen([sys.executable, "-m", "server", *args, "--help"], cwd=ROOT,
                               env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        for args in expected
    }
    for args, process in running.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        for word in expected[args]:
            assert re.search(rf"(?<![\w-]){word}\b", out), (args, word)


async def test_meeting_create_prints_keys_and_links_and_the_server_serves_it(
    tmp_path: Path, http_client: httpx.AsyncClient
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    result = run_cli("meeting", "create", "--title", "Skolestruktur 2027",
                     "--database-url", database_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    created = orjson.loads(result.stdout)
    for key in ("moderator_key", "speaker_key", "screen_key"):
        assert isinstance(created[key], str) and len(created[key]) >= 16
    assert set(created["urls"]) >= {"citizen", "join", "moderator", "speaker", "screen"}
    assert created["urls"]["moderator"].endswith("#key=" + created["moderator_key"])
    assert created["urls"]["join"].endswith("/j/" + created["code"])
    assert (created["title"], created["phase"]) == ("Skolestruktur 2027", "draft")

    second = run_cli("meeting", "create", "--title", "Open hearing", "--id", "open-hearing",
                     "--phase", "open", "--moderation", "pre", "--database-url", database_url,
                     cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert orjson.loads(second.stdout)["id"] == "open-hearing"
    duplicate = run_cli("meeting", "create", "--title", "Again", "--id", "open-hearing",
                        "--database-url", database_url, cwd=tmp_path)
    assert duplicate.returncode != 0 and "open-hearing" in duplicate.stderr

    server = ServerProcess(tmp_path / "x.db").start()
    try:
        api = Api(server, http_client)
        roles = {}
        for role in ("moderator", "speaker", "screen"):
            joined = await api.join(created["id"], key=created[f"{role}_key"])
            roles[role] = joined
            assert joined["role"] == role
        meeting = await api.request("GET", f"/api/meetings/{created['id']}",
                                    token=roles["moderator"]["token"], route="/api/meetings/{id}")
        assert (meeting["title"], meeting["code"]) == ("Skolestruktur 2027", created["code"])
        hearing = await api.request("GET", "/api/meetings/open-hearing", route="/api/meetings/{id}")
        assert (hearing["phase"], hearing["settings"]["moderation"]) == ("open", "pre")
        citizen = await api.join("open-hearing", name="Early")
        ack = await api.command("open-hearing", citizen["token"], type="post", body="A question",
                                parent_id=None, client_id="cli-1")
        assert ack["result"]["message"]["status"] == "pending"
    finally:
        server.stop()


class Demo:
    """`python -m server demo` in a subprocess, its printed lines read as they come."""

    def __init__(self, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "demo", "--port", "0",
             "--database-url", f"sqlite+aiosqlite:///{cwd / 'demo.db'}"],
            cwd=cwd, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def read_until(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.seen)) from None
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    yield running
    running.stop()


async def test_demo_prints_the_links_and_admin_token_of_a_lively_meeting(
    demo: Demo, http_client: httpx.AsyncClient
) -> None:
    base = demo.read_until(r"Ting listening on (http://\S+) \(port (\d+)\)").group(1)
    token = demo.read_until(r"admin token\b.*:\s*(\S+)$").group(1)
    meeting_id, code = demo.read_until(r"demo meeting '([\w-]+)', join code (\w+)").groups()
    links = {}
    for role in ("citizen", "join", "moderator", "speaker", "screen"):
        links[role] = demo.read_until(rf"^\s+{role}\s+(\S+)$").group(1)
    assert all(link.startswith(base) for link in links.values())
    assert links["join"] == f"{base}/j/{code}"

    server = ServerProcess(Path("unused"), port=int(base.rsplit(":", 1)[1]))
    api = Api(server, http_client)
    assert (await api.request("GET", f"/api/meetings/by-code/{code}",
                              route="/api/meetings/by-code/{code}"))["id"] == meeting_id
    for role in ("moderator", "speaker", "screen"):
        key = links[role].split("#key=", 1)[1]
        assert (await api.join(meeting_id, key=key))["role"] == role
    page = await http_client.get(links["citizen"])
    assert page.status_code == 200

    snapshot: dict[str, Any] = await api.snapshot(meeting_id, token)
    assert snapshot["meeting"]["phase"] == "live"
    assert snapshot["meeting"]["basis"]
    messages = snapshot["messages"]
    topics = [m for m in messages if m["kind"] == "topic"]
    questions = [m for m in messages if m["kind"] == "question"]
    assert len(topics) == 3
    assert len(questions) >= 5
    assert {q["parent_id"] for q in questions} == {t["id"] for t in topics}
    assert sum(q["votes"] for q in questions) > 0
    floor = [q for q in questions if q["source"] == "floor"]
    assert len(floor) == 1
    assert any(m["kind"] == "answer" for m in messages)
    assert snapshot["meeting"]["spotlight"] in {q["id"] for q in questions}
    # uvicorn shuts down cleanly on SIGTERM and then ends with that signal.
    assert demo.stop() in (0, -signal.SIGTERM)
    rest = []
    while not demo.lines.empty():
        rest.append(demo.lines.get())
    assert "Traceback" not in "\n".join(demo.seen + rest)
