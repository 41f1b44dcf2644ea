"""The minutes of a meeting: per topic, each question with its answers.

Minutes hold what was public: visible messages only. Every format escapes
user text for itself: Markdown punctuation and HTML are escaped, CSV cells
that a spreadsheet would run as a formula are defused, JSON is JSON.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from server.domain.models import Kind, Meeting, Message, Role, Status
from server.domain.views import Viewer, project_message
from server.services.context import Services
from server.store import repository
from server.store.database import now_iso

FORMATS = {
    "md": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}

_PUBLIC = Viewer(Role.VIEWER)


@dataclass
class _Question:
    message: dict[str, Any]
    answers: list[dict[str, Any]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Topic:
    message: dict[str, Any] | None
    questions: list[_Question] = field(default_factory=list)


async def minutes(services: Services, meeting_id: str, fmt: str) -> tuple[bytes, str]:
    async with services.read() as conn:
        meeting = await conn.run_sync(repository.load_meeting, meeting_id)
        messages = await conn.run_sync(repository.list_messages, meeting_id)
    assert meeting is not None
    topics = _tree(messages)
    render = {"md": _markdown, "csv": _csv, "json": _json}[fmt]
    return render(meeting, topics), FORMATS[fmt]


def _tree(messages: list[Message]) -> list[_Topic]:
    visible = {m.id: m for m in messages if m.status is Status.VISIBLE and m.merged_into is None}
    general = _Topic(None)
    topics: dict[int, _Topic] = {}
    questions: dict[int, _Question] = {}
    for m in visible.values():
        view = project_message(m.to_record(), _PUBLIC)
        assert view is not None
        if m.kind is Kind.TOPIC:
            topics[m.id] = _Topic(view)
    for m in visible.values():
        if m.kind is not Kind.QUESTION:
            continue
        view = project_message(m.to_record(), _PUBLIC)
        assert view is not None
        q = questions[m.id] = _Question(view)
        (topics.get(m.parent_id) if m.parent_id in topics else general).questions.append(q)  # type: ignore[union-attr]
    for m in visible.values():
        if m.kind in (Kind.ANSWER, Kind.COMMENT):
            root = _question_of(m, visible)
            if root is None or root not in questions:
                continue
            view = project_message(m.to_record(), _PUBLIC)
            assert view is not None
            bucket = questions[root].answers if m.kind is Kind.ANSWER else questions[root].comments
            bucket.append(view)
    ordered = [topics[k] for k in sorted(topics)]
    if general.questions:
        ordered.append(general)
    for topic in ordered:
        topic.questions.sort(key=lambda q: (-q.message["votes"], q.message["id"]))
    return ordered


def _question_of(m: Message, visible: dict[int, Message]) -> int | None:
    current: Message | None = m
    while current is not None and current.kind is not Kind.QUESTION:
        current = visible.get(current.parent_id) if current.parent_id is not None else None
    return current.id if current is not None else None


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md_escape(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _who(message: dict[str, Any]) -> str:
    name = message["author"]["name"]
    return md_escape(name) if name else "anonymous"


_ANSWERED = {
    "unanswered": "unanswered",
    "answered_written": "answered in writing",
    "answered_oral": "answered orally",
}


def _markdown(meeting: Meeting, topics: list[_Topic]) -> bytes:
    out = [
        f"# {md_escape(meeting.title)}",
        "",
        f"Minutes exported {now_iso()} (phase: {meeting.phase.value}).",
        "",
    ]
    for topic in topics:
        heading = md_escape(topic.message["body"]) if topic.message else "General questions"
        out += [f"## {heading}", ""]
        if not topic.questions:
            out += ["No questions.", ""]
        for q in topic.questions:
            m = q.message
            source = "from the floor" if m["source"] == "floor" else "online"
            state = _ANSWERED[m["answered"]]
            if m["answered_by"]:
                state += f" by {md_escape(m['answered_by'])}"
            out += [
                f"### Question {m['id']} ({m['votes']} votes, {source}, {state})",
                "",
                f"Asked by {_who(m)} at {m['created_at']}:",
                "",
                *[f"> {md_escape(line)}" for line in m["body"].split("\n")],
                "",
            ]
            for a in q.answers:
                out += [f"**Answer by {_who(a)}** ({a['source']}, {a['created_at']}):", ""]
                out += [f"> {md_escape(line)}" for line in a["body"].split("\n")] + [""]
            if q.comments:
                out += [f"{len(q.comments)} comment(s) in the thread.", ""]
    return "\n".join(out).encode()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


CSV_COLUMNS = (
    "topic",
    "id",
    "kind",
    "parent_id",
    "source",
    "author",
    "body",
    "votes",
    "answered",
    "answered_by",
    "created_at",
)


def _csv(meeting: Meeting, topics: list[_Topic]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for topic in topics:
        title = topic.message["body"] if topic.message else "General questions"
        for q in topic.questions:
            for m in (q.message, *q.answers):
                writer.writerow(
                    csv_cell(v)
                    for v in (
                        title,
                        m["id"],
                        m["kind"],
                        m["parent_id"],
                        m["source"],
                        m["author"]["name"] or "anonymous",
                        m["body"],
                        m["votes"],
                        m["answered"],
                        m["answered_by"],
                        m["created_at"],
                    )
                )
    return buffer.getvalue().encode()


def _json(meeting: Meeting, topics: list[_Topic]) -> bytes:
    return orjson.dumps(
        {
            "meeting": meeting.to_json(),
            "exported_at": now_iso(),
            "topics": [
                {
                    "topic": t.message,
                    "questions": [
                        q.message | {"answers": q.answers, "comments": q.comments}
                        for q in t.questions
                    ],
                }
                for t in topics
            ],
        }
    )
