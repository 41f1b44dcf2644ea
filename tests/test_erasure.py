"""Erasure of one person's personal data: from the tree, the event log and the database file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import ADMIN_TOKEN, Api, ApiError, ServerProcess, connect, new_meeting

# Distinctive text that occurs nowhere else, so that a byte search means something.
NAME = "Quirinius Vandermolen"
BODY = "Zebracorn marmalade question 7431"
REPLY = "Zebracorn follow-up comment 9152"
REASON = "Zebracorn hidden reason 6620"
NEIGHBOUR_REPLY = "A neighbour's reply that stays"


def file_bytes(server: ServerProcess) -> dict[str, bytes]:
    """The database file and its write-ahead log, as they are on disk now."""
    found = {}
    for suffix in ("", "-wal"):
        path = Path(str(server.db_path) + suffix)
        if path.exists():
            found[path.name] = path.read_bytes()
    return found


async def erase(api: Api, meeting_id: str, participant_id: str, token: str | None = ADMIN_TOKEN,
                expect: int | None = None) -> Any:
    return await api.request("DELETE", f"/api/meetings/{meeting_id}/participants/{participant_id}",
                             token=token, route="/api/meetings/{id}/participants/{participant_id}",
                             expect=expect)


async def test_erasure_removes_name_votes_and_bodies_everywhere(
    make_server: Any, http_client: Any
) -> None:
    server: ServerProcess = make_server()
    api = Api(server, http_client)
    m = await new_meeting(api, phase="live")
    person = await m.citizen(NAME)
    neighbour = await m.citizen("Neighbour")
    topic = await m.topic()
    question = await m.post(person, BODY, topic["id"])
    neighbours_question = await m.post(neighbour, "The neighbour asks", topic["id"])
    comment = await m.post(person, REPLY, neighbours_question["id"])
    hidden = await m.post(person, BODY + " (hidden)", topic["id"])
    await m.run(m.moderator, "moderate", message_id=hidden["id"], action="hide", reason=REASON)
    reply = await m.post(neighbour, NEIGHBOUR_REPLY, question["id"])
    await m.run(person, "vote", message_id=neighbours_question["id"], value=1)
    await m.run(neighbour, "vote", message_id=neighbours_question["id"], value=1)
    await m.run(m.moderator, "spotlight", message_id=question["id"])
    before = b"".join(file_bytes(server).values())
    assert BODY.encode() in before and NAME.encode() in before  # the search can find them

    async with connect(server, m.id, person["token"]) as person_sock, \
            connect(server, m.id, neighbour["token"]) as neighbour_sock:
        for token, code in ((None, "unauthorized"), (m.moderator["token"], None),
                            (neighbour["token"], None)):
            with pytest.raises(ApiError) as refused:
                await erase(api, m.id, person["participant_id"], token)
            assert refused.value.code in ((code,) if code else ("unauthorized", "forbidden"))
        result = await erase(api, m.id, person["participant_id"], expect=200)
        assert result == {"participant_id": person["participant_id"], "messages": 3, "votes": 1}

        # Their open socket is closed with 4401.
        with pytest.raises(ConnectionClosed):
            while True:
                await person_sock.recv(timeout=5)
        assert person_sock.close_code == 4401
        event = await neighbour_sock.recv_until(
            lambda f: f["type"] == "event" and f["data"].get("id") == question["id"]
            and f["data"].get("status") == "erased")
        assert (event["data"]["body"], event["data"]["author"]["name"]) == ("", None)

    # Their token stops working, over HTTP and WebSocket.
    with pytest.raises(ApiError) as refused:
        await api.snapshot(m.id, person["token"])
    assert refused.value.code == "unauthorized"
    with pytest.raises(ApiError) as refused:
        await m.post(person, "Still here?")
    assert refused.value.code == "unauthorized"
    async with connect(server, m.id, person["token"], hello=False) as sock:
        await sock.send({"type": "hello", "token": person["token"], "since": None})
        with pytest.raises(ConnectionClosed):
            await sock.recv()
        assert sock.close_code == 4401

    # The tree: placeholders where their messages were; replies of others stay.
    for token in (ADMIN_TOKEN, neighbour["token"], None):
        snapshot = await api.snapshot(m.id, token)
        seen = {msg["id"]: msg for msg in snapshot["messages"]}
        for own in (question, comment, hidden):
            assert seen[own["id"]]["status"] == "erased"
            assert (seen[own["id"]]["body"], seen[own["id"]]["author"]["name"]) == ("", None)
            assert seen[own["id"]]["reason"] is None
        assert seen[reply["id"]]["body"] == NEIGHBOUR_REPLY
        assert seen[reply["id"]]["parent_id"] == question["id"]
        assert seen[neighbours_question["id"]]["body"] == "The neighbour asks"
        assert snapshot["meeting"]["spotlight"] is None
    vote = await m.run(neighbour, "vote", message_id=neighbours_question["id"], value=1)
    assert vote["result"]["votes"] == 1  # the erased person's vote is gone

    # The event log, as staff reads it, holds no copy of the name or the texts.
    log = await api.events(m.id, 0, ADMIN_TOKEN)
    dumped = orjson.dumps(log).decode()
    for secret in (NAME, BODY, REPLY, REASON):
        assert secret not in dumped, secret
    assert NEIGHBOUR_REPLY in dumped

    # Nor does the database file or its write-ahead log, while the server runs.
    files = file_bytes(server)
    assert any(name.endswith(".db") for name in files)
    for name, content in files.items():
        for secret in (NAME, BODY, REPLY, REASON):
            assert secret.encode() not in content, (name, secret)
    server.stop()
    for name, content in file_bytes(server).items():
        for secret in (NAME, BODY, REPLY, REASON):
            assert secret.encode() not in content, (name, secret)


async def test_erasure_of_a_speaker_removes_their_name_from_answered_questions(
    make_server: Any, http_client: Any
) -> None:
    server: ServerProcess = make_server()
    api = Api(server, http_client)
    m = await new_meeting(api, phase="live")
    speaker = await api.join(m.id, key=m.created["speaker_key"], name=NAME)
    citizen = await m.citizen("Asker")
    question = await m.post(citizen, "Will the library stay open?")
    answer = await m.post(speaker, BODY, question["id"])
    marked = (await m.run(speaker, "answered", message_id=question["id"],
                          state="answered_oral"))["result"]["message"]
    assert marked["answered_by"] == NAME

    result = await erase(api, m.id, speaker["participant_id"], expect=200)
    assert result["messages"] == 1
    seen = {msg["id"]: msg for msg in (await api.snapshot(m.id, ADMIN_TOKEN))["messages"]}
    assert seen[answer["id"]]["status"] == "erased"
    assert seen[question["id"]]["body"] == "Will the library stay open?"
    assert seen[question["id"]]["answered"] == "answered_oral"
    assert seen[question["id"]]["answered_by"] != NAME
    dumped = orjson.dumps(await api.events(m.id, 0, ADMIN_TOKEN)).decode()
    assert NAME not in dumped and BODY not in dumped
    for name, content in file_bytes(server).items():
        assert NAME.encode() not in content, name
        assert BODY.encode() not in content, name


async def test_erasure_of_an_unknown_participant_is_not_found(api: Api) -> None:
    m = await new_meeting(api)
    other = await new_meeting(api)
    stranger = await other.citizen("Stranger")
    for participant_id in ("p_0000000000000000", stranger["participant_id"]):
        body = await erase(api, m.id, participant_id, expect=404)
        assert body["error"]["code"] == "not_found"
    # The stranger in the other meeting was not touched.
    assert (await api.snapshot(other.id, stranger["token"]))["meeting"]["id"] == other.id
