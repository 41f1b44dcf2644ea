"""The minutes: Markdown, CSV and JSON exports, who may fetch them, and how user text is escaped."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import ADMIN_TOKEN, Api, Meeting, ServerProcess, new_meeting

EXPORT_ROUTE = "/api/meetings/{id}/export"


async def export(api: Api, meeting_id: str, fmt: str, token: str | None = None,
                 expect: int | None = 200) -> Any:
    return await api.request("GET", f"/api/meetings/{meeting_id}/export?format={fmt}", token=token,
                             route=EXPORT_ROUTE, expect=expect)


async def export_response(api: Api, meeting_id: str, fmt: str) -> httpx.Response:
    return await api.client.get(f"{api.server.url}/api/meetings/{meeting_id}/export?format={fmt}",
                                headers={"authorization": f"Bearer {ADMIN_TOKEN}"})


@dataclass
class Hearing:
    """A closed meeting with two topics, answered and unanswered questions, and noise."""

    meeting: Meeting
    ids: dict[str, int]


@pytest.fixture(scope="module")
async def hearing(server: ServerProcess, http_client: httpx.AsyncClient) -> Hearing:
    api = Api(server, http_client)
    m = await new_meeting(api, title="Budget hearing", phase="live")
    mette, jens, aisha = [await m.citizen(name) for name in ("Mette", "Jens", "Aisha")]
    schools = await m.topic("Schools")
    elderly = await m.topic("Elderly care")
    popular = await m.post(mette, "Why close the school in Nordby", schools["id"])
    quiet = await m.post(jens, "How long is the new way to school", schools["id"])
    care = await m.post(aisha, "Who replaces the temporary staff", elderly["id"])
    hidden = await m.post(jens, "A hidden rant about the mayor", elderly["id"])
    floor = (await m.run(m.moderator, "floor", body="What happens to the school bus",
                         parent_id=schools["id"], speaker_name="Parent from Nordby"))["result"]["message"]
    await asyncio.gather(*(m.run(voter, "vote", message_id=popular["id"], value=1)
                           for voter in (mette, jens, aisha)))
    await m.run(jens, "vote", message_id=care["id"], value=1)
    answer = await m.post(m.speaker, "We keep the school open until the summer", popular["id"])
    await m.post(aisha, "A comment on the school", popular["id"])
    await m.run(m.moderator, "answered", message_id=care["id"], state="answered_oral",
                by="Councillor Berg")
    await m.run(m.moderator, "moderate", message_id=hidden["id"], action="hide", reason="Rude")
    await m.run(m.moderator, "phase", phase="closed")

    async def counts_published() -> bool:
        seen = {msg["id"]: msg for msg in (await api.snapshot(m.id, ADMIN_TOKEN))["messages"]}
        return bool(seen[popular["id"]]["votes"] == 3 and seen[care["id"]]["votes"] == 1)

    for _ in range(60):
        if await counts_published():
            break
        await asyncio.sleep(0.05)
    ids = {"schools": schools["id"], "elderly": elderly["id"], "popular": popular["id"],
           "quiet": quiet["id"], "care": care["id"], "hidden": hidden["id"], "floor": floor["id"],
           "answer": answer["id"]}
    return Hearing(m, ids)


async def test_json_minutes_hold_each_topic_with_its_questions_votes_and_answers(
    api: Api, hearing: Hearing
) -> None:
    minutes = await export(api, hearing.meeting.id, "json")
    assert minutes["meeting"]["id"] == hearing.meeting.id
    topics = {t["topic"]["body"]: t["questions"] for t in minutes["topics"] if t["topic"]}
    assert set(topics) == {"Schools", "Elderly care"}
    schools = {q["id"]: q for q in topics["Schools"]}
    ids = hearing.ids
    assert set(schools) == {ids["popular"], ids["quiet"], ids["floor"]}
    # Questions come by votes: the popular one first.
    assert topics["Schools"][0]["id"] == ids["popular"]
    popular = schools[ids["popular"]]
    assert (popular["votes"], popular["source"], popular["answered"], popular["answered_by"]) == (
        3, "online", "answered_written", "Speaker")
    assert [a["body"] for a in popular["answers"]] == ["We keep the school open until the summer"]
    assert [c["body"] for c in popular["comments"]] == ["A comment on the school"]
    floor = schools[ids["floor"]]
    assert (floor["source"], floor["author"]["name"]) == ("floor", "Parent from Nordby")
    assert schools[ids["quiet"]]["answered"] == "unanswered"
    [care] = topics["Elderly care"]
    assert (care["id"], care["votes"], care["answered"], care["answered_by"]) == (
        ids["care"], 1, "answered_oral", "Councillor Berg")
    assert "A hidden rant" not in json.dumps(minutes)


async def test_markdown_minutes_read_as_minutes(api: Api, hearing: Hearing) -> None:
    md = (await export(api, hearing.meeting.id, "md")).decode()
    assert "Budget hearing" in md
    schools_at, elderly_at = md.index("Schools"), md.index("Elderly care")
    popular_at = md.index("Why close the school in Nordby")
    answer_at = md.index("We keep the school open until the summer")
    care_at = md.index("Who replaces the temporary staff")
    assert schools_at < popular_at < answer_at < elderly_at < care_at
    popular_block = md[popular_at - 200:answer_at]
    assert "3 votes" in popular_block
    assert "in writing by Speaker" in popular_block
    assert "from the floor" in md[schools_at:elderly_at]
    assert "Parent from Nordby" in md
    assert "orally by Councillor Berg" in md[elderly_at:]
    assert "1 comment" in md[answer_at:elderly_at]
    assert "A hidden rant" not in md


async def test_csv_minutes_have_a_row_per_question_and_answer(api: Api, hearing: Hearing) -> None:
    text = (await export(api, hearing.meeting.id, "csv")).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    by_body = {row["body"]: row for row in rows}
    ids = hearing.ids
    popular = by_body["Why close the school in Nordby"]
    assert (popular["topic"], popular["votes"], popular["source"], popular["answered"],
            popular["answered_by"]) == ("Schools", "3", "online", "answered_written", "Speaker")
    answer = by_body["We keep the school open until the summer"]
    assert (answer["kind"], answer["parent_id"]) == ("answer", str(ids["popular"]))
    assert by_body["What happens to the school bus"]["source"] == "floor"
    care = by_body["Who replaces the temporary staff"]
    assert (care["topic"], care["answered"], care["answered_by"]) == (
        "Elderly care", "answered_oral", "Councillor Berg")
    assert not any("hidden rant" in row["body"] for row in rows)


async def test_exports_come_with_their_media_types(api: Api, hearing: Hearing) -> None:
    for fmt, media in (("md", "text/markdown"), ("csv", "text/csv"), ("json", "application/json")):
        response = await export_response(api, hearing.meeting.id, fmt)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media)
        assert "attachment" in response.headers["content-disposition"]
    body = await export(api, hearing.meeting.id, "pdf", ADMIN_TOKEN, expect=400)
    assert body["error"]["code"] == "invalid"


async def test_minutes_are_for_staff_any_time_and_for_anyone_once_closed(api: Api) -> None:
    m = await new_meeting(api, phase="draft")
    screen = await api.join(m.id, key=m.created["screen_key"])
    await m.topic()
    for token in (m.moderator["token"], ADMIN_TOKEN):
        await export(api, m.id, "md", token)
    for token in (None, m.speaker["token"], screen["token"]):
        body = await export(api, m.id, "md", token, expect=404)
        assert body["error"]["code"] == "not_found"

    await m.run(m.moderator, "phase", phase="live")
    citizen = await m.citizen()
    for token in (None, citizen["token"], m.speaker["token"], screen["token"]):
        for fmt in ("md", "csv", "json"):
            body = await export(api, m.id, fmt, token, expect=403)
            assert body["error"]["code"] == "forbidden"
    for token in (m.moderator["token"], ADMIN_TOKEN):
        await export(api, m.id, "json", token)

    await m.run(m.moderator, "phase", phase="closed")
    for token in (None, citizen["token"], m.speaker["token"], screen["token"]):
        for fmt in ("md", "csv", "json"):
            await export(api, m.id, fmt, token)
    await m.run(m.moderator, "phase", phase="archived")
    assert (await export(api, m.id, "json"))["meeting"]["phase"] == "archived"


async def test_exports_escape_user_text_for_their_format(api: Api) -> None:
    m = await new_meeting(api, phase="live", title="Escaping <b>test</b>")
    citizen = await m.citizen("=cmd|' /C calc'!A0")
    topic = await m.topic("@SUM(1+1)")
    formula = await m.post(citizen, "=SUM(A1)", topic["id"])
    plus = await m.post(citizen, "+1-555-0100", topic["id"])
    script = await m.post(citizen, "<script>alert(1)</script>", topic["id"])
    link = await m.post(citizen, "[click here](http://evil.example/x) and ![img](http://evil.example/i.png)",
                        topic["id"])
    await m.run(m.moderator, "phase", phase="closed")

    rows = list(csv.DictReader(io.StringIO((await export(api, m.id, "csv")).decode())))
    cells = [cell for row in rows for cell in row.values()]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    bodies = {row["body"] for row in rows}
    assert any(b.endswith("=SUM(A1)") and b != "=SUM(A1)" for b in bodies)
    assert any(b.endswith("+1-555-0100") and b != "+1-555-0100" for b in bodies)
    assert any(cell.endswith("@SUM(1+1)") for cell in cells)
    assert any(cell.endswith("=cmd|' /C calc'!A0") for cell in cells)

    md = (await export(api, m.id, "md")).decode()
    assert "<script>" not in md and "</script>" not in md
    assert "<b>" not in md
    assert "alert(1)" in md.replace("\\", "")
    # No Markdown link or image survives: the brackets are escaped.
    assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(", md)
    assert "evil.example" in md.replace("\\", "")

    minutes = await export(api, m.id, "json")
    exported = {q["id"]: q["body"] for t in minutes["topics"] for q in t["questions"]}
    assert exported[formula["id"]] == "=SUM(A1)"
    assert exported[plus["id"]] == "+1-555-0100"
    assert exported[script["id"]] == "<script>alert(1)</script>"
    assert exported[link["id"]].startswith("[click here](http://evil.example/x)")
