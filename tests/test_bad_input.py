"""Hostile and broken input, against the real server, over both transports.

Every case gets its documented error or close code, changes nothing in the
database (a staff snapshot, seq included, is the same before and after), and
a bystander connected all the while can still post and sees its post arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import Api, Meeting, ServerProcess, Socket, client_id, connect, new_meeting

# `{Q}` in a raw frame stands for the id of a visible question the offender
# could vote on or reply to, so that the one thing wrong with each frame is
# the thing its case is about. In `vote()` and `post()`, QID puts it there.
QID = object()


@dataclass(frozen=True)
class Bad:
    name: str
    raw: bytes
    code: str = "invalid"


def bad(name: str, raw: str | bytes, code: str = "invalid") -> Bad:
    return Bad(name, raw.encode() if isinstance(raw, str) else raw, code)


def _frame(obj: dict[str, Any]) -> str:
    text = orjson.dumps(obj, default=lambda o: "@QID@" if o is QID else None).decode()
    return text.replace('"@QID@"', "{Q}")


def vote(**fields: Any) -> str:
    return _frame({"type": "vote", "ref": "r", **fields})


def post(**fields: Any) -> str:
    frame = {"type": "post", "ref": "r", "parent_id": QID, "body": "Fine text", "client_id": "c1"}
    return _frame({**frame, **fields})


COMMAND_CASES = [
    # Not JSON, or JSON that is not a command.
    bad("truncated", '{"type": "vote", "message_id": {Q}, '),
    bad("trailing garbage", '{"type": "ping", "ref": "r"} x'),
    bad("not json", "hello there"),
    bad("single quotes", "{'type': 'ping'}"),
    bad("byte order mark", b'\xef\xbb\xbf{"type": "ping"}'),
    bad("top-level array", '[{"type": "ping"}]'),
    bad("top-level string", '"ping"'),
    bad("top-level null", "null"),
    bad("empty object", "{}"),
    # Numbers JSON does not have.
    bad("NaN", '{"type": "vote", "ref": "r", "message_id": {Q}, "value": NaN}'),
    bad("Infinity", '{"type": "vote", "ref": "r", "message_id": Infinity, "value": 1}'),
    bad("-Infinity", '{"type": "vote", "ref": "r", "message_id": -Infinity, "value": 1}'),
    bad("overflow to infinity", '{"type": "vote", "ref": "r", "message_id": 1e999, "value": 1}'),
    # Lone surrogates, escaped and as raw (CESU-8) bytes, and other bad UTF-8.
    bad("lone high surrogate escape", post(body="@").replace("@", "\\ud800")),
    bad("lone low surrogate escape", post(body="@").replace("@", "\\udc00")),
    bad("reversed surrogate pair", post(body="@").replace("@", "\\udc00\\ud800")),
    bad("surrogate escape in a key", '{"type": "ping", "\\ud800": 1}'),
    bad("lone surrogate raw bytes", post(body="@").encode().replace(b"@", b"\xed\xa0\x80")),
    bad("invalid utf-8 byte", post(body="@").encode().replace(b"@", b"\xff")),
    bad("overlong utf-8", post(body="@").encode().replace(b"@", b"\xc0\xaf")),
    # Nesting: a little too deep, and absurdly deep.
    bad("nested 9 levels", '{"type": "ping", "x": [[[[[[[[1]]]]]]]]}'),
    bad("nested 20000 levels", '{"type": "ping", "x": ' + "[" * 20000 + "]" * 20000 + "}"),
    # Commands that do not exist.
    bad("unknown type", '{"type": "explode", "ref": "r"}'),
    bad("type missing", '{"ref": "r", "message_id": {Q}, "value": 1}'),
    bad("type null", '{"type": null, "ref": "r"}'),
    bad("type is a number", '{"type": 7, "ref": "r"}'),
    bad("type in other case", '{"type": "VOTE", "ref": "r", "message_id": {Q}, "value": 1}'),
    # Missing fields.
    bad("post without body", post(body=None)),
    bad("post without client_id", post(client_id=None)),
    bad("vote without message_id", vote(value=1)),
    bad("vote without value", vote(message_id=QID)),
    bad("moderate without action", '{"type": "moderate", "ref": "r", "message_id": {Q}}'),
    bad("merge without into", '{"type": "merge", "ref": "r", "message_id": {Q}}'),
    bad("spotlight without message_id", '{"type": "spotlight", "ref": "r"}'),
    # Ill-typed fields.
    bad("bool for int", vote(message_id=True, value=1)),
    bad("bool for vote value", vote(message_id=QID, value=True)),
    bad("string for int", vote(message_id="{Q}", value=1)),
    bad("float for int", '{"type": "vote", "ref": "r", "message_id": {Q}.0, "value": 1}'),
    bad("negative id", vote(message_id=-1, value=1)),
    bad("id beyond 2^53", vote(message_id=2**53, value=1)),
    bad("id beyond 2^64", '{"type": "vote", "ref": "r", "message_id": 18446744073709551616, "value": 1}'),
    bad("vote value 2", vote(message_id=QID, value=2)),
    bad("object for int", vote(message_id={"id": 1}, value=1)),
    bad("number for body", post(body=42)),
    bad("list for body", post(body=["Fine text"])),
    bad("string for parent_id", post(parent_id="{Q}")),
    bad("number for client_id", post(client_id=7)),
    bad("empty client_id", post(client_id="")),
    bad("client_id of 65 characters", post(client_id="c" * 65)),
    bad("client_id with a newline", post(client_id="c\n1")),
    bad("unknown kind", post(kind="speech")),
    bad("unknown moderate action", '{"type": "moderate", "ref": "r", "message_id": {Q}, "action": "delete"}'),
    bad("unknown phase", '{"type": "phase", "ref": "r", "phase": "party"}'),
    bad("number for ref", '{"type": "ping", "ref": 5}'),
    bad("ref of 65 characters", '{"type": "ping", "ref": "' + "r" * 65 + '"}'),
    # Texts.
    bad("empty body", post(body="")),
    bad("blank body", post(body=" \n\t ")),
    bad("control character in body", post(body="bell \u0007 here")),
    bad("nul in body", post(body="nul \u0000 here")),
    bad("body over max_body", post(body="x" * 1001), "too_large"),
    bad("body of 30000 characters", post(body="x" * 30_000), "too_large"),
]


def raw_for(case: Bad, question_id: int) -> bytes:
    return case.raw.replace(b"{Q}", str(question_id).encode())


def ref_of(raw: bytes) -> str | None:
    """The ref the reply must echo: only when the frame parses and has a fitting one."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    ref = obj.get("ref") if isinstance(obj, dict) else None
    return ref if isinstance(ref, str) and len(ref) <= 64 else None


@dataclass
class Arena:
    """A meeting with a question, an offender, and a bystander online throughout."""

    api: Api
    meeting: Meeting
    question_id: int
    offender: dict[str, Any]
    bystander: dict[str, Any]
    bystander_sock: Socket
    before: dict[str, Any]

    async def staff_view(self) -> dict[str, Any]:
        """The database as staff see it: presence is live state, not stored."""
        snap = await self.api.snapshot(self.meeting.id, self.meeting.moderator["token"])
        del snap["presence"]
        return snap

    async def check_nothing_changed_and_bystander_works(self) -> None:
        assert await self.staff_view() == self.before
        body = f"Still here {client_id()}"
        sock = self.bystander_sock
        await sock.send({"type": "post", "ref": body, "parent_id": self.question_id,
                         "body": body, "client_id": client_id()})
        got: dict[str, dict[str, Any]] = {}

        def note(f: dict[str, Any]) -> bool:
            if f.get("ref") == body:
                got["reply"] = f
            if f["type"] == "event" and f["data"].get("body") == body:
                got["event"] = f
            return len(got) == 2

        await sock.recv_until(note)
        assert got["reply"]["type"] == "ack", got["reply"]
        event = got["event"]
        assert event["kind"] == "message.created"
        assert event["seq"] == self.before["seq"] + 1


@pytest.fixture
async def arena(api: Api) -> AsyncIterator[Arena]:
    """A meeting of its own per case, so that its snapshot stays small."""
    meeting = await new_meeting(api)
    question = await meeting.post(meeting.moderator, "Is the bridge safe?")
    offender = await meeting.citizen("Offender")
    bystander = await meeting.citizen("Bystander")
    async with connect(api.server, meeting.id, bystander["token"]) as sock:
        assert (await sock.recv())["type"] == "snapshot"
        arena = Arena(api, meeting, question["id"], offender, bystander, sock, {})
        arena.before = await arena.staff_view()
        yield arena


@pytest.mark.parametrize("case", COMMAND_CASES, ids=lambda c: c.name)
async def test_bad_command_gets_its_error_over_websocket_and_http_and_changes_nothing(
    arena: Arena, case: Bad
) -> None:
    raw = raw_for(case, arena.question_id)
    # Over the socket; the socket stays usable after the error.
    async with connect(arena.api.server, arena.meeting.id, arena.offender["token"]) as sock:
        assert (await sock.recv())["type"] == "snapshot"
        try:
            text: str | None = raw.decode()
        except UnicodeDecodeError:
            text = None
        # Text frames must be UTF-8 (RFC 6455); bad bytes come as a binary frame.
        await sock.send(text if text is not None else raw)
        error = await sock.recv_until(lambda f: f["type"] in ("error", "ack", "pong"))
        assert error["type"] == "error", error
        assert error["code"] == case.code, error
        assert error["ref"] == ref_of(raw)
        assert (await sock.command("ping"))["type"] == "pong"
    await arena.check_nothing_changed_and_bystander_works()

    # The same bytes as the body of POST /commands.
    arena.before = await arena.staff_view()  # now with the bystander's post
    status = {"invalid": 400, "too_large": 413}[case.code]
    body = await arena.api.request(
        "POST", f"/api/meetings/{arena.meeting.id}/commands", token=arena.offender["token"],
        content=raw, route="/api/meetings/{id}/commands", expect=status)
    assert body["error"]["code"] == case.code
    assert (body["type"], body["code"], body["ref"]) == ("error", case.code, ref_of(raw))
    await arena.check_nothing_changed_and_bystander_works()


async def test_the_frames_the_cases_break_are_fine_as_they_are(arena: Arena) -> None:
    """The control: each case differs from one of these in one thing only."""
    async with connect(arena.api.server, arena.meeting.id, arena.offender["token"]) as sock:
        for frame in (post(), vote(message_id=QID, value=1), '{"type": "ping", "ref": "r"}'):
            await sock.send(frame.replace("{Q}", str(arena.question_id)))
            reply = await sock.recv_until(lambda f: f.get("ref") == "r")
            assert reply["type"] in ("ack", "pong"), reply


async def _post_raw(arena: Arena, token: str | None, content: Any) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return await arena.api.client.post(
        f"{arena.api.server.url}/api/meetings/{arena.meeting.id}/commands",
        headers=headers, content=content)


async def test_http_body_over_the_limit_is_too_large_whether_declared_or_streamed(
    arena: Arena,
) -> None:
    # 300 KiB of otherwise fine JSON, over the 256 KiB limit on request bodies.
    huge = post(body="x" * 300 * 1024).replace("{Q}", str(arena.question_id)).encode()

    async def streamed() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 16 * 1024):
            yield huge[start:start + 16 * 1024]

    for content in (huge, streamed()):
        response = await _post_raw(arena, arena.offender["token"], content)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"
    await arena.check_nothing_changed_and_bystander_works()


async def test_http_empty_body_is_invalid(arena: Arena) -> None:
    response = await _post_raw(arena, arena.offender["token"], b"")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    await arena.check_nothing_changed_and_bystander_works()


async def test_http_command_with_forged_or_foreign_token_is_unauthorized(arena: Arena) -> None:
    other = await new_meeting(arena.api)
    foreign = await other.citizen("Elsewhere")
    good = post().replace("{Q}", str(arena.question_id)).encode()
    for token in ("forged-" + arena.offender["token"][7:], foreign["token"],
                  other.moderator["token"]):
        response = await _post_raw(arena, token, good)
        assert response.status_code == 401, token
        assert response.json()["error"]["code"] == "unauthorized"
    response = await _post_raw(arena, None, good)
    assert response.status_code == 401
    await arena.check_nothing_changed_and_bystander_works()


# --- the WebSocket connection itself ---------------------------------------


async def closed_with(sock: Socket, within: float = 10.0) -> int | None:
    """Read until the server closes; the close code it sent."""
    try:
        while True:
            await asyncio.wait_for(sock.conn.recv(), within)
    except ConnectionClosed:
        pass
    return sock.close_code


async def test_frame_over_64_kib_closes_with_1009_and_one_just_under_is_read(arena: Arena) -> None:
    async with connect(arena.api.server, arena.meeting.id, arena.offender["token"]) as sock:
        assert (await sock.recv())["type"] == "snapshot"
        # Just under 64 KiB: an ordinary frame, with a body too long for a post.
        under = post(body="x" * 63 * 1024).replace("{Q}", str(arena.question_id))
        assert len(under.encode()) < 64 * 1024
        await sock.send(under)
        error = await sock.recv_until(lambda f: f["type"] == "error")
        assert (error["code"], error["ref"]) == ("too_large", "r")
        # Just over: the frame size alone counts, and the socket is closed.
        await sock.send(post(body="x" * 64 * 1024).replace("{Q}", str(arena.question_id)))
        assert await closed_with(sock) == 1009
    async with connect(arena.api.server, arena.meeting.id, None, hello=False) as sock:
        await sock.send('{"type": "hello", "token": null, "pad": "' + "x" * 70_000 + '"}')
        assert await closed_with(sock) == 1009
    await arena.check_nothing_changed_and_bystander_works()


async def test_invalid_utf8_in_a_text_frame_closes_with_1007(arena: Arena) -> None:
    # RFC 6455 section 8.1: the WebSocket layer fails a text frame that is
    # not UTF-8 with 1007 before the server ever parses it.
    raw = post(body="@").replace("{Q}", str(arena.question_id)).encode().replace(b"@", b"\xed\xa0\x80")
    async with connect(arena.api.server, arena.meeting.id, arena.offender["token"]) as sock:
        assert (await sock.recv())["type"] == "snapshot"
        await sock.conn.send(raw, text=True)
        assert await closed_with(sock) == 1007
    await arena.check_nothing_changed_and_bystander_works()


MALFORMED_HELLOS = [
    ("not json", "hello"),
    ("truncated", '{"type": "hello", "token": null'),
    ("a command first", '{"type": "ping", "ref": "r"}'),
    ("wrong type", '{"type": "helo", "token": null, "since": null}'),
    ("no type", '{"token": null, "since": null}'),
    ("array", '[{"type": "hello"}]'),
    ("token is a number", '{"type": "hello", "token": 12345, "since": null}'),
    ("token is an object", '{"type": "hello", "token": {"t": "x"}, "since": null}'),
    ("token over 512 characters", '{"type": "hello", "token": "' + "t" * 600 + '", "since": null}'),
    ("since is a string", '{"type": "hello", "token": null, "since": "3"}'),
    ("since is a bool", '{"type": "hello", "token": null, "since": true}'),
    ("since is negative", '{"type": "hello", "token": null, "since": -1}'),
    ("since is a float", '{"type": "hello", "token": null, "since": 1.5}'),
    ("since is NaN", '{"type": "hello", "token": null, "since": NaN}'),
    ("lone surrogate token", '{"type": "hello", "token": "\\ud800", "since": null}'),
    ("nested too deep", '{"type": "hello", "token": null, "x": [[[[[[[[[1]]]]]]]]]}'),
]


@pytest.mark.parametrize(("name", "hello"), MALFORMED_HELLOS, ids=[n for n, _ in MALFORMED_HELLOS])
async def test_malformed_hello_closes_with_4400(arena: Arena, name: str, hello: str) -> None:
    async with connect(arena.api.server, arena.meeting.id, None, hello=False) as sock:
        await sock.send(hello)
        assert await closed_with(sock) == 4400
    await arena.check_nothing_changed_and_bystander_works()


async def test_hello_as_binary_lone_surrogate_bytes_closes_with_4400(arena: Arena) -> None:
    async with connect(arena.api.server, arena.meeting.id, None, hello=False) as sock:
        await sock.send(b'{"type": "hello", "token": "\xed\xa0\x80", "since": null}')
        assert await closed_with(sock) == 4400
    await arena.check_nothing_changed_and_bystander_works()


async def _hello_closes_with(arena: Arena, meeting_id: str, token: str | None) -> int | None:
    async with connect(arena.api.server, meeting_id, None, hello=False) as sock:
        await sock.send({"type": "hello", "token": token, "since": None})
        return await closed_with(sock)


async def test_forged_token_closes_with_4401(arena: Arena) -> None:
    real = arena.offender["token"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    assert await _hello_closes_with(arena, arena.meeting.id, forged) == 4401
    assert await _hello_closes_with(arena, arena.meeting.id, "") == 4401
    await arena.check_nothing_changed_and_bystander_works()


async def test_another_meetings_token_closes_with_4401(arena: Arena) -> None:
    other = await new_meeting(arena.api)
    foreign = await other.citizen("Elsewhere")
    assert await _hello_closes_with(arena, arena.meeting.id, foreign["token"]) == 4401
    assert await _hello_closes_with(arena, arena.meeting.id, other.moderator["token"]) == 4401
    await arena.check_nothing_changed_and_bystander_works()


async def test_no_token_on_a_private_meeting_closes_with_4401_and_unknown_meeting_with_4404(
    arena: Arena,
) -> None:
    private = await new_meeting(arena.api, settings={"public": False})
    assert await _hello_closes_with(arena, private.id, None) == 4401
    assert await _hello_closes_with(arena, "no-such-meeting", arena.offender["token"]) == 4404
    await arena.check_nothing_changed_and_bystander_works()


async def test_no_hello_within_the_default_5_seconds_closes_with_4408(arena: Arena) -> None:
    async with connect(arena.api.server, arena.meeting.id, None, hello=False) as sock:
        started = time.monotonic()
        code = await closed_with(sock, within=15)
        waited = time.monotonic() - started
    assert code == 4408
    assert 4.5 <= waited < 15
    await arena.check_nothing_changed_and_bystander_works()


async def test_no_hello_within_a_configured_timeout_closes_with_4408(
    make_server: Callable[..., ServerProcess], http_client: httpx.AsyncClient,
) -> None:
    server = make_server(TING_HELLO_TIMEOUT="1")
    api = Api(server, http_client)
    meeting = await new_meeting(api)
    question = await meeting.post(meeting.moderator, "Is the bridge safe?")
    bystander = await meeting.citizen()
    async with connect(server, meeting.id, bystander["token"]) as sock:
        assert (await sock.recv())["type"] == "snapshot"
        arena = Arena(api, meeting, question["id"], {}, bystander, sock, {})
        arena.before = await arena.staff_view()
        async with connect(server, meeting.id, None, hello=False) as silent:
            # A ping is a frame, but not a hello: it does not keep the socket open.
            await silent.conn.ping()
            assert await closed_with(silent, within=10) == 4408
        # The bystander, past its hello long enough, is not timed out.
        await asyncio.sleep(0.5)
        await arena.check_nothing_changed_and_bystander_works()


async def test_foreign_origin_is_refused_in_the_handshake_with_403(arena: Arena) -> None:
    url = f"{arena.api.server.ws_url}/ws/meetings/{arena.meeting.id}"
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(url, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    # The same handshake from the server's own origin is accepted.
    own = arena.api.server.url
    async with websockets.connect(url, origin=own) as conn:
        await conn.send(orjson.dumps({"type": "hello", "token": None, "since": None}).decode())
        assert orjson.loads(await conn.recv())["type"] == "welcome"
    await arena.check_nothing_changed_and_bystander_works()
