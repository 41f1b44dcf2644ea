"""The message tree: nesting, kinds, statuses, answers, merge, withdraw, floor, spotlight.

Each test drives the real server over HTTP and WebSocket and reads the
result the way a reader does: from acks, snapshots and live events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support import ADMIN_TOKEN, Api, ApiError, Meeting, connect, new_meeting


async def view(api: Api, m: Meeting, token: str | None) -> dict[int, dict[str, Any]]:
    """The tree as that reader's snapshot shows it, by message id."""
    snapshot = await api.snapshot(m.id, token)
    return {msg["id"]: msg for msg in snapshot["messages"]}


async def refused(call: Awaitable[Any]) -> str:
    with pytest.raises(ApiError) as error:
        await call
    return error.value.code


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Vote counts are coalesced: wait (up to 3 s) for the published value."""
    async with asyncio.timeout(3):
        while not await check():
            await asyncio.sleep(0.05)


def is_event_about(message_id: int) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] == "event" and f["data"].get("id") == message_id


# --- nesting and kinds -------------------------------------------------------------


async def test_replies_nest_up_to_max_depth_and_deeper_is_invalid(api: Api) -> None:
    m = await new_meeting(api, phase="live", settings={"max_depth": 2})
    citizen = await m.citizen()
    topic = await m.topic()
    question = await m.post(citizen, "Level one", topic["id"])
    comment = await m.post(citizen, "Level two", question["id"])
    assert (topic["depth"], question["depth"], comment["depth"]) == (0, 1, 2)
    assert await refused(m.post(citizen, "Level three", comment["id"])) == "invalid"
    assert await refused(m.post(m.speaker, "An answer too deep", comment["id"])) == "invalid"

    top_question = await m.post(citizen, "At the top")
    reply = await m.post(citizen, "Reply", top_question["id"])
    reply_to_reply = await m.post(citizen, "Reply to the reply", reply["id"])
    assert (top_question["depth"], reply["depth"], reply_to_reply["depth"]) == (0, 1, 2)
    assert reply_to_reply["parent_id"] == reply["id"]
    assert await refused(m.post(citizen, "Too deep", reply_to_reply["id"])) == "invalid"
    # Nothing refused was stored.
    bodies = {msg["body"] for msg in (await view(api, m, ADMIN_TOKEN)).values()}
    assert not bodies & {"Level three", "An answer too deep", "Too deep"}


async def test_default_depth_is_four_levels_below_a_topic(api: Api, meeting: Meeting) -> None:
    citizen = await meeting.citizen()
    parent = await meeting.topic()
    for depth in range(1, 5):
        parent = await meeting.post(citizen, f"Depth {depth}", parent["id"])
        assert parent["depth"] == depth
    assert await refused(meeting.post(citizen, "Depth 5", parent["id"])) == "invalid"


async def test_kind_defaults_to_the_natural_kind_for_the_place(api: Api, meeting: Meeting) -> None:
    citizen = await meeting.citizen()
    topic = await meeting.topic()
    assert topic["kind"] == "topic" and topic["parent_id"] is None
    at_top = await meeting.post(citizen, "At the top")
    under_topic = await meeting.post(citizen, "Under the topic", topic["id"])
    reply = await meeting.post(citizen, "A reply", under_topic["id"])
    deeper = await meeting.post(citizen, "Deeper", reply["id"])
    staff_reply = await meeting.post(meeting.moderator, "Staff reply", under_topic["id"])
    assert [m["kind"] for m in (at_top, under_topic, reply, deeper, staff_reply)] == [
        "question", "question", "comment", "comment", "comment"]
    await meeting.run(meeting.moderator, "phase", phase="live")
    answer = await meeting.post(meeting.speaker, "The speaker's reply", reply["id"])
    assert answer["kind"] == "answer" and answer["author"]["role"] == "speaker"
    for message in (at_top, under_topic, reply, deeper):
        assert message["source"] == "online" and message["status"] == "visible"
        assert message["answered"] == "unanswered" and message["answered_by"] is None
        assert message["pinned"] is False and message["merged_into"] is None
        assert message["votes"] == 0 and message["mine"] is True
        assert message["author"] == {"name": None, "role": "citizen"}


async def test_the_tree_keeps_each_kind_in_its_place(api: Api, meeting: Meeting) -> None:
    citizen = await meeting.citizen()
    topic = await meeting.topic()
    question = await meeting.post(citizen, "Question", topic["id"])
    comment = await meeting.post(citizen, "Comment", question["id"])
    mod = meeting.moderator
    assert await refused(meeting.post(mod, "Subtopic", topic["id"], kind="topic")) == "invalid"
    assert await refused(meeting.post(citizen, "Q under Q", question["id"], kind="question")) == "invalid"
    assert await refused(meeting.post(citizen, "Q under C", comment["id"], kind="question")) == "invalid"
    assert await refused(meeting.post(citizen, "C under topic", topic["id"], kind="comment")) == "invalid"
    assert await refused(meeting.post(citizen, "Orphan comment", None, kind="comment")) == "invalid"
    assert await refused(meeting.post(citizen, "No such parent", 10**9)) == "not_found"
    await meeting.run(mod, "phase", phase="live")
    assert await refused(meeting.post(meeting.speaker, "A under topic", topic["id"])) == "invalid"
    assert await refused(meeting.post(meeting.speaker, "Orphan answer")) == "invalid"
    answer = await meeting.post(meeting.speaker, "Answer to a comment", comment["id"])
    assert answer["parent_id"] == comment["id"] and answer["depth"] == 3
    reply_to_answer = await meeting.post(citizen, "Thanks", answer["id"])
    assert reply_to_answer["kind"] == "comment" and reply_to_answer["depth"] == 4


# --- statuses ------------------------------------------------------------------------


async def test_moderation_moves_between_statuses_and_refuses_other_moves(api: Api) -> None:
    m = await new_meeting(api, settings={"moderation": "pre"})
    citizen = await m.citizen("Author")
    mod = m.moderator

    async def act(message: dict[str, Any], action: str, reason: str | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"message_id": message["id"], "action": action}
        if reason is not None:
            fields["reason"] = reason
        return (await m.run(mod, "moderate", **fields))["result"]["message"]  # type: ignore[no-any-return]

    async def conflict(message: dict[str, Any], action: str) -> None:
        code = await refused(m.run(mod, "moderate", message_id=message["id"], action=action))
        assert code == "conflict", (message["status"], action)

    first = await m.post(citizen, "First")
    assert first["status"] == "pending"
    for action in ("hide", "restore", "pin", "unpin"):
        await conflict(first, action)
    rejected = await act(first, "reject", "Off topic")
    assert (rejected["status"], rejected["reason"]) == ("rejected", "Off topic")
    for action in ("reject", "hide", "restore", "pin"):
        await conflict(rejected, action)
    approved = await act(rejected, "approve")
    assert (approved["status"], approved["reason"]) == ("visible", None)
    for action in ("approve", "reject", "restore", "unpin"):
        await conflict(approved, action)

    pinned = await act(approved, "pin")
    assert pinned["pinned"] is True
    await conflict(pinned, "pin")
    unpinned = await act(pinned, "unpin")
    assert unpinned["pinned"] is False
    await act(unpinned, "pin")
    hidden = await act(unpinned, "hide", "Personal attack")
    assert (hidden["status"], hidden["reason"], hidden["pinned"]) == ("hidden", "Personal attack", False)
    for action in ("approve", "reject", "hide", "pin"):
        await conflict(hidden, action)
    restored = await act(hidden, "restore")
    assert (restored["status"], restored["reason"]) == ("visible", None)

    second = await m.post(citizen, "Second")
    assert (await act(second, "approve"))["status"] == "visible"
    withdrawn = (await m.run(citizen, "withdraw", message_id=second["id"]))["result"]["message"]
    for action in ("approve", "reject", "hide", "restore", "pin"):
        await conflict(withdrawn, action)
    assert await refused(m.run(mod, "moderate", message_id=10**9, action="hide")) == "not_found"


async def test_pre_moderation_shows_a_question_only_to_author_and_staff_until_approved(
    api: Api,
) -> None:
    m = await new_meeting(api, settings={"moderation": "pre"})
    author = await m.citizen("Author")
    other = await m.citizen("Other")
    topic = await m.topic()
    async with connect(api.server, m.id, author["token"]) as author_sock, \
            connect(api.server, m.id, other["token"]) as other_sock, \
            connect(api.server, m.id, m.speaker["token"]) as speaker_sock, \
            connect(api.server, m.id, m.moderator["token"]) as mod_sock:
        question = await m.post(author, "Please consider the bus route", topic["id"])
        assert question["status"] == "pending"
        created = await author_sock.recv_until(is_event_about(question["id"]))
        assert created["kind"] == "message.created" and created["data"]["status"] == "pending"
        assert created["data"]["mine"] is True
        staff_copy = await mod_sock.recv_until(is_event_about(question["id"]))
        assert staff_copy["data"]["author"]["participant_id"] == author["participant_id"]
        marker = await m.topic("Marker")
        for sock in (other_sock, speaker_sock):
            await sock.recv_until(is_event_about(marker["id"]))
            assert all(e["data"].get("id") != question["id"] for e in sock.events())
        assert question["id"] not in await view(api, m, other["token"])
        assert question["id"] not in await view(api, m, m.speaker["token"])
        assert question["id"] not in await view(api, m, None)
        assert (await view(api, m, author["token"]))[question["id"]]["status"] == "pending"
        assert (await view(api, m, m.moderator["token"]))[question["id"]]["status"] == "pending"
        # A staff reply may be prepared under it; citizens cannot reply to it.
        assert await refused(m.post(other, "Me too", question["id"])) == "not_found"
        await m.post(m.moderator, "We will take this up", question["id"])

        await m.run(m.moderator, "moderate", message_id=question["id"], action="approve")
        for sock in (other_sock, speaker_sock):
            event = await sock.recv_until(is_event_about(question["id"]))
            assert event["kind"] == "message.updated"
            assert event["data"]["status"] == "visible"
            assert event["data"]["body"] == "Please consider the bus route"
        assert (await view(api, m, other["token"]))[question["id"]]["status"] == "visible"


async def test_rejected_or_hidden_message_shows_its_author_the_reason_and_nobody_else(
    api: Api,
) -> None:
    m = await new_meeting(api, settings={"moderation": "pre"})
    author = await m.citizen("Author")
    other = await m.citizen("Other")
    rejected = await m.post(author, "Rejected text")
    hidden = await m.post(author, "Hidden text")
    await m.run(m.moderator, "moderate", message_id=hidden["id"], action="approve")
    reply = await m.post(other, "A reply that stays", hidden["id"])
    await m.run(m.moderator, "moderate", message_id=reply["id"], action="approve")
    async with connect(api.server, m.id, other["token"]) as other_sock, \
            connect(api.server, m.id, author["token"]) as author_sock:
        await m.run(m.moderator, "moderate", message_id=rejected["id"], action="reject",
                    reason="Not about the budget")
        await m.run(m.moderator, "moderate", message_id=hidden["id"], action="hide",
                    reason="Names a person")

        mine = await view(api, m, author["token"])
        assert (mine[rejected["id"]]["status"], mine[rejected["id"]]["reason"]) == (
            "rejected", "Not about the budget")
        assert (mine[hidden["id"]]["status"], mine[hidden["id"]]["reason"]) == (
            "hidden", "Names a person")
        assert mine[hidden["id"]]["body"] == "Hidden text"
        event = await author_sock.recv_until(is_event_about(hidden["id"]))
        assert event["data"]["reason"] == "Names a person"

        for token in (other["token"], m.speaker["token"], None):
            theirs = await view(api, m, token)
            assert rejected["id"] not in theirs
            placeholder = theirs[hidden["id"]]
            assert placeholder["status"] == "hidden"
            assert (placeholder["body"], placeholder["author"]["name"], placeholder["reason"]) == (
                "", None, None)
            assert theirs[reply["id"]]["body"] == "A reply that stays"
        event = await other_sock.recv_until(is_event_about(hidden["id"]))
        assert (event["data"]["body"], event["data"]["reason"]) == ("", None)
        assert event["data"]["author"]["name"] is None
        assert all(e["data"].get("id") != rejected["id"] for e in other_sock.events())
        staff = await view(api, m, ADMIN_TOKEN)
        assert staff[hidden["id"]]["reason"] == "Names a person"
        assert staff[rejected["id"]]["body"] == "Rejected text"


# --- answers ---------------------------------------------------------------------


async def test_answered_state_records_who_answered(api: Api) -> None:
    m = await new_meeting(api, phase="live")
    citizen = await m.citizen("Asker")
    written = await m.post(citizen, "Answered in writing?")
    answer = await m.post(m.speaker, "Yes, in writing.", written["id"])
    assert answer["kind"] == "answer"
    after = (await view(api, m, citizen["token"]))[written["id"]]
    assert (after["answered"], after["answered_by"]) == ("answered_written", "Speaker")
    # A second answer leaves the first answerer on record.
    second = await api.join(m.id, key=m.created["speaker_key"], name="Deputy")
    await m.post(second, "And a note from me.", written["id"])
    assert (await view(api, m, None))[written["id"]]["answered_by"] == "Speaker"

    oral = await m.post(citizen, "Answered orally?")
    marked = (await m.run(m.moderator, "answered", message_id=oral["id"], state="answered_oral",
                          by="Mayor Hansen"))["result"]["message"]
    assert (marked["answered"], marked["answered_by"]) == ("answered_oral", "Mayor Hansen")
    by_self = (await m.run(m.speaker, "answered", message_id=oral["id"],
                           state="answered_written"))["result"]["message"]
    assert (by_self["answered"], by_self["answered_by"]) == ("answered_written", "Speaker")
    cleared = (await m.run(m.moderator, "answered", message_id=oral["id"],
                           state="unanswered"))["result"]["message"]
    assert (cleared["answered"], cleared["answered_by"]) == ("unanswered", None)

    comment = await m.post(citizen, "A comment", oral["id"])
    assert await refused(m.run(m.moderator, "answered", message_id=comment["id"],
                               state="answered_oral")) == "invalid"


# --- merge -------------------------------------------------------------------------


async def test_merge_moves_votes_to_the_target_and_counts_a_double_voter_once(api: Api) -> None:
    m = await new_meeting(api)
    only_source, both, only_target = [await m.citizen(n) for n in ("S", "B", "T")]
    target = await m.post(only_target, "How much will the school cost?")
    source = await m.post(only_source, "What does the school cost?")
    for voter, ids in ((only_source, [source]), (both, [source, target]), (only_target, [target])):
        for message in ids:
            await m.run(voter, "vote", message_id=message["id"], value=1)
    async with connect(api.server, m.id, only_source["token"]) as source_sock, \
            connect(api.server, m.id, both["token"]) as both_sock:
        merged = (await m.run(m.moderator, "merge", message_id=source["id"],
                              into=target["id"]))["result"]["message"]
        assert merged["id"] == source["id"]
        assert (merged["merged_into"], merged["votes"]) == (target["id"], 0)

        moved = await source_sock.recv_until(
            lambda f: f["type"] == "event" and f["kind"] == "votes.updated" and "voted" in f["data"])
        assert moved["data"]["voted"] == {str(source["id"]): False, str(target["id"]): True}
        assert moved["data"]["counts"][str(target["id"])] == 3
        kept = await both_sock.recv_until(
            lambda f: f["type"] == "event" and f["kind"] == "votes.updated" and "voted" in f["data"])
        assert kept["data"]["voted"].get(str(source["id"])) is False
        assert kept["data"]["voted"].get(str(target["id"]), True) is True

    async def target_has_three() -> bool:
        return bool((await view(api, m, None))[target["id"]]["votes"] == 3)

    await eventually(target_has_three)
    for voter in (only_source, both, only_target):
        theirs = await view(api, m, voter["token"])
        assert theirs[target["id"]]["voted"] is True, voter["participant_id"]
        assert theirs[target["id"]]["votes"] == 3
        assert theirs[source["id"]]["voted"] is False
        assert theirs[source["id"]]["votes"] == 0
        assert theirs[source["id"]]["merged_into"] == target["id"]
    # The double voter holds one vote on the target; taking it back leaves two.
    ack = await m.run(both, "vote", message_id=target["id"], value=0)
    assert ack["result"] == {"message_id": target["id"], "votes": 2, "voted": False}


async def test_merge_refuses_what_cannot_be_merged(api: Api, meeting: Meeting) -> None:
    citizen = await meeting.citizen()
    mod = meeting.moderator
    a = await meeting.post(citizen, "A")
    b = await meeting.post(citizen, "B")
    c = await meeting.post(citizen, "C")
    comment = await meeting.post(citizen, "A comment", a["id"])
    assert await refused(meeting.run(mod, "merge", message_id=a["id"], into=a["id"])) == "invalid"
    assert await refused(meeting.run(mod, "merge", message_id=comment["id"], into=b["id"])) == "invalid"
    await meeting.run(mod, "merge", message_id=a["id"], into=b["id"])
    assert await refused(meeting.run(mod, "merge", message_id=c["id"], into=a["id"])) == "conflict"
    assert await refused(meeting.run(mod, "merge", message_id=a["id"], into=c["id"])) == "conflict"
    assert await refused(meeting.run(citizen, "vote", message_id=a["id"], value=1)) == "conflict"
    assert await refused(meeting.post(citizen, "Reply to merged", a["id"])) == "conflict"
    await meeting.run(mod, "moderate", message_id=c["id"], action="hide")
    assert await refused(meeting.run(mod, "merge", message_id=b["id"], into=c["id"])) == "conflict"


# --- withdraw --------------------------------------------------------------------


async def test_withdraw_is_for_the_author_and_leaves_a_placeholder_for_others(
    api: Api, meeting: Meeting
) -> None:
    author = await meeting.citizen("Author")
    other = await meeting.citizen("Other")
    question = await meeting.post(author, "I take this back")
    reply = await meeting.post(other, "A reply that stays", question["id"])
    for who in (other, meeting.moderator):
        code = await refused(meeting.run(who, "withdraw", message_id=question["id"]))
        assert code == "forbidden"
    async with connect(api.server, meeting.id, other["token"]) as other_sock:
        withdrawn = (await meeting.run(author, "withdraw", message_id=question["id"]))["result"]["message"]
        assert withdrawn["status"] == "withdrawn" and withdrawn["body"] == "I take this back"
        event = await other_sock.recv_until(is_event_about(question["id"]))
        assert event["kind"] == "message.updated"
        assert (event["data"]["status"], event["data"]["body"]) == ("withdrawn", "")
        assert event["data"]["author"]["name"] is None
    theirs = await view(api, meeting, other["token"])
    assert (theirs[question["id"]]["status"], theirs[question["id"]]["body"]) == ("withdrawn", "")
    assert theirs[reply["id"]]["body"] == "A reply that stays"
    assert theirs[reply["id"]]["parent_id"] == question["id"]
    mine = await view(api, meeting, author["token"])
    assert mine[question["id"]]["body"] == "I take this back"
    assert await refused(meeting.run(author, "withdraw", message_id=question["id"])) == "conflict"
    assert await refused(meeting.run(other, "vote", message_id=question["id"], value=1)) == "conflict"


# --- floor -----------------------------------------------------------------------


async def test_floor_messages_are_marked_as_from_the_floor_for_everyone(api: Api) -> None:
    m = await new_meeting(api, phase="live")
    citizen = await m.citizen("Online citizen")
    topic = await m.topic()
    named = (await m.run(m.moderator, "floor", body="What about the bus?", parent_id=topic["id"],
                         speaker_name="Parent from Nordby"))["result"]["message"]
    unnamed = (await m.run(m.moderator, "floor", body="And the library?"))["result"]["message"]
    comment = (await m.run(m.moderator, "floor", body="Agreed!",
                           parent_id=named["id"]))["result"]["message"]
    answer = (await m.run(m.moderator, "floor", body="The bus stays.", parent_id=named["id"],
                          kind="answer", speaker_name="Mayor Hansen"))["result"]["message"]
    assert (named["kind"], unnamed["kind"], comment["kind"], answer["kind"]) == (
        "question", "question", "comment", "answer")
    for token in (citizen["token"], m.speaker["token"], None, ADMIN_TOKEN):
        seen = await view(api, m, token)
        for message in (named, unnamed, comment, answer):
            assert seen[message["id"]]["source"] == "floor"
            assert seen[message["id"]]["status"] == "visible"
            assert seen[message["id"]]["mine"] is False
        assert seen[named["id"]]["author"]["name"] == "Parent from Nordby"
        assert seen[named["id"]]["author"]["role"] == "citizen"
        assert seen[unnamed["id"]]["author"]["name"] is None
        assert seen[unnamed["id"]]["author"]["role"] == "citizen"
        assert seen[answer["id"]]["author"] == {"name": "Mayor Hansen", "role": "speaker"} | (
            {"participant_id": m.moderator["participant_id"]} if token == ADMIN_TOKEN else {})
        assert (seen[named["id"]]["answered"], seen[named["id"]]["answered_by"]) == (
            "answered_oral", "Mayor Hansen")
    # Citizens can vote on a floor question like on any other.
    ack = await m.run(citizen, "vote", message_id=named["id"], value=1)
    assert ack["result"]["votes"] == 1


# --- spotlight -----------------------------------------------------------------------


async def test_spotlight_is_set_cleared_and_clears_itself_when_its_message_goes(api: Api) -> None:
    m = await new_meeting(api, phase="live")
    citizen = await m.citizen()
    topic = await m.topic()
    first = await m.post(citizen, "First in the spotlight", topic["id"])
    second = await m.post(citizen, "Second in the spotlight", topic["id"])
    mod = m.moderator

    def spotlight_event(f: dict[str, Any]) -> bool:
        return bool(f["type"] == "event" and f["kind"] == "spotlight.changed")

    async def spotlight_now() -> int | None:
        return (await api.snapshot(m.id, citizen["token"]))["meeting"]["spotlight"]  # type: ignore[no-any-return]

    async with connect(api.server, m.id, None) as screen_sock:
        ack = await m.run(mod, "spotlight", message_id=first["id"])
        assert ack["result"] == {"message_id": first["id"]}
        assert (await screen_sock.recv_until(spotlight_event))["data"] == {"message_id": first["id"]}
        assert await spotlight_now() == first["id"]

        await m.run(mod, "spotlight", message_id=None)
        assert (await screen_sock.recv_until(spotlight_event))["data"] == {"message_id": None}
        assert await spotlight_now() is None

        await m.run(mod, "spotlight", message_id=second["id"])
        assert (await screen_sock.recv_until(spotlight_event))["data"] == {"message_id": second["id"]}
        await m.run(mod, "moderate", message_id=second["id"], action="hide", reason="Rude")
        assert (await screen_sock.recv_until(spotlight_event))["data"] == {"message_id": None}
        assert await spotlight_now() is None

        # Withdrawn, merged, and leaving live clear it too.
        await m.run(mod, "spotlight", message_id=first["id"])
        await m.run(citizen, "withdraw", message_id=first["id"])
        assert await spotlight_now() is None
        third = await m.post(citizen, "Third", topic["id"])
        fourth = await m.post(citizen, "Fourth", topic["id"])
        await m.run(mod, "spotlight", message_id=third["id"])
        await m.run(mod, "merge", message_id=third["id"], into=fourth["id"])
        assert await spotlight_now() is None
        await m.run(mod, "spotlight", message_id=fourth["id"])
        await m.run(mod, "phase", phase="open")
        assert await spotlight_now() is None
        await m.run(mod, "phase", phase="live")

    assert await refused(m.run(mod, "spotlight", message_id=topic["id"])) == "invalid"
    assert await refused(m.run(mod, "spotlight", message_id=second["id"])) == "conflict"
    assert await refused(m.run(mod, "spotlight", message_id=10**9)) == "not_found"
