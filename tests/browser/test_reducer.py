"""The page's reducer mirrors the server: a snapshot followed by the events
after it gives the same state as a fresh snapshot (for each kind of reader),
whether the events come one by one or wrapped in batches."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser

from tests.browser.harness import open_page
from tests.support import Api, new_meeting

REPLAY = """async ([first, events, last, batched]) => {
  const { reduce, initialState } = await import("/static/js/state.js");
  const frames = batched ? [{ type: "batch", frames: events }] : events;
  const replayed = frames.reduce(reduce, reduce(initialState, { type: "snapshot", ...first }));
  const fresh = reduce(initialState, { type: "snapshot", ...last });
  const plain = (s) => ({ seq: s.seq, meeting: s.meeting, messages: s.messages });
  return [plain(replayed), plain(fresh)];
}"""


async def a_busy_meeting(api: Api) -> tuple[Any, list[dict[str, Any]]]:
    meeting = await new_meeting(api, phase="open", settings={"moderation": "pre"})
    await meeting.topic("Schools")
    ann = await meeting.citizen("Ann")
    ben = await meeting.citizen()
    readers = [ann, ben, meeting.moderator, meeting.speaker]
    return meeting, readers


async def test_snapshot_plus_events_equals_a_fresh_snapshot(api: Api, browser: Browser) -> None:
    meeting, readers = await a_busy_meeting(api)
    ann, ben = readers[0], readers[1]
    firsts = [await api.snapshot(meeting.id, r["token"]) for r in readers]

    topic = await meeting.topic("Roads")
    q1 = await meeting.post(ann, "Why the school?", topic["id"])
    q2 = await meeting.post(ben, "Why the road?", topic["id"])
    q3 = await meeting.post(ben, "Why the road, really?", topic["id"])
    pending = await meeting.post(ann, "Never approved")
    for q in (q1, q2, q3):
        await meeting.run(meeting.moderator, "moderate", message_id=q["id"], action="approve")
    await meeting.run(ann, "vote", message_id=q2["id"], value=1)
    await meeting.run(ann, "vote", message_id=q3["id"], value=1)
    await meeting.run(ben, "vote", message_id=q1["id"], value=1)
    await meeting.run(ben, "vote", message_id=q1["id"], value=0)
    await meeting.run(meeting.moderator, "merge", message_id=q3["id"], into=q2["id"])
    reply = await meeting.post(ann, "A reply", q1["id"])
    await meeting.run(meeting.moderator, "moderate", message_id=reply["id"], action="approve")
    await meeting.run(
        meeting.moderator, "moderate", message_id=reply["id"], action="hide", reason="Rude"
    )
    await meeting.run(ann, "withdraw", message_id=pending["id"])
    await meeting.run(meeting.moderator, "phase", phase="live")
    await meeting.post(meeting.speaker, "The answer", q1["id"])
    await meeting.run(meeting.moderator, "spotlight", message_id=q2["id"])
    await meeting.run(meeting.moderator, "moderate", message_id=q2["id"], action="pin")
    await meeting.run(meeting.moderator, "floor", body="From the hall", speaker_name="Ida")
    await api.request(
        "PATCH",
        f"/api/meetings/{meeting.id}",
        token=meeting.moderator["token"],
        json={"title": "Renamed"},
        route="/api/meetings/{id}",
    )

    ctx, probe = await open_page(browser, "citizen", f"{api.server.url}/m/{meeting.id}")
    try:
        await probe.page.locator("#join-name").wait_for()
        for reader, first in zip(readers, firsts, strict=True):
            replay = await api.events(meeting.id, first["seq"], reader["token"])
            assert not replay["more"]
            last = await api.snapshot(meeting.id, reader["token"])
            assert replay["seq"] == last["seq"]
            for batched in (False, True):
                replayed, fresh = await probe.page.evaluate(
                    REPLAY, [first, replay["events"], last, batched]
                )
                # A reader who cannot see the last events stops at an earlier seq.
                assert replayed["seq"] <= fresh["seq"]
                assert replayed["meeting"] == fresh["meeting"], reader
                assert replayed["messages"] == fresh["messages"], reader
        await probe.check("reducer", axe=False)
    finally:
        await ctx.close()
