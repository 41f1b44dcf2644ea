from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Api, Meeting, ServerProcess, new_meeting


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that need no special settings or restarts."""
    proc = ServerProcess(tmp_path_factory.mktemp("server") / "ting.db").start()
    yield proc
    proc.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Start servers of one's own (own settings, kill and restart)."""
    started: list[ServerProcess] = []

    def make(**env: str) -> ServerProcess:
        proc = ServerProcess(tmp_path / f"ting-{len(started)}.db", env=env).start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client


@pytest.fixture
def api(server: ServerProcess, http_client: httpx.AsyncClient) -> Api:
    return Api(server, http_client)


@pytest.fixture
async def meeting(api: Api) -> Meeting:
    """A fresh meeting in phase open, post-moderated, public."""
    return await new_meeting(api)
