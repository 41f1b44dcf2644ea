"""After the meeting: the moderator closes it, citizens can only read, the
speaker still writes follow-up answers, and the minutes can be exported."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.browser.harness import open_page, sign_in
from tests.support import Api, new_meeting

FOLLOW_UP = "The council will decide on the ferry timetable on 14 May."


async def test_follow_up_answer_after_the_meeting_closes(api: Api, browser: Browser) -> None:
    meeting = await new_meeting(api, title="Ferry", phase="live", language="en")
    asker = await meeting.citizen("Inge", in_room=True)
    question = await meeting.post(asker, "Will the winter ferry keep its evening departure?")
    await meeting.run(
        meeting.moderator,
        "floor",
        body="What about bikes on the ferry?",
        speaker_name="Man in the third row",
    )
    base = api.server.url
    contexts = []
    try:
        ctx, moderator = await open_page(
            browser,
            "moderator",
            f"{base}/m/{meeting.id}/moderator#key={meeting.created['moderator_key']}",
            locale="en-GB",
        )
        contexts.append(ctx)
        ctx, speaker = await open_page(
            browser,
            "speaker",
            f"{base}/m/{meeting.id}/speaker#key={meeting.created['speaker_key']}",
            locale="en-GB",
        )
        contexts.append(ctx)
        ctx, citizen = await open_page(browser, "citizen", f"{base}/m/{meeting.id}", locale="en-GB")
        contexts.append(ctx)
        await sign_in(moderator, "Lise")
        await sign_in(speaker, "Deputy Mayor Berg")
        await citizen.page.locator("button[type=submit]").click()
        await citizen.page.locator(".conn-live").wait_for()
        floor = citizen.page.locator(".message", has_text="bikes on the ferry")
        await expect(floor.locator(".badge-floor")).to_have_text("Asked in the hall")
        await expect(floor.locator(".author")).to_have_text("Man in the third row")

        # The moderator logs a floor question from the panel.
        page = moderator.page
        await page.locator("#floor-speaker").fill("Woman by the door")
        await page.locator("#floor-body").fill("Can the ferry take more cars in summer?")
        await page.get_by_role("button", name="Log it").click()
        await expect(
            citizen.page.locator(".message", has_text="more cars in summer").locator(".author")
        ).to_have_text("Woman by the door")
        await expect(page.locator("#floor-body")).to_have_value("")

        # The moderator closes the meeting (with a confirmation).
        await page.get_by_role("button", name="Close the meeting").click()
        await page.get_by_role("button", name="Yes, go ahead").click()
        await expect(citizen.page.locator(".phase")).to_have_text("Closed")
        await expect(citizen.page.locator(".phase-help")).to_contain_text("The meeting is over")
        await expect(citizen.page.get_by_role("button", name="Ask a question")).to_have_count(0)
        await expect(citizen.page.locator(".vote").first).to_be_disabled()
        await citizen.check("closed")
        await citizen.shoot("closed")

        # The speaker answers in writing afterwards.
        await speaker.page.locator(".question-button", has_text=question["body"]).click()
        await expect(speaker.page.locator(".phase-help")).to_contain_text("follow-up")
        await speaker.page.locator("#answer-body").fill(FOLLOW_UP)
        await speaker.page.get_by_role("button", name="Publish answer").click()
        await expect(
            speaker.page.get_by_role("status").filter(has_text="Your answer has been published.")
        ).to_be_visible()
        await speaker.check("follow-up")
        await speaker.shoot("follow-up")
        asked = citizen.page.locator(".message", has_text=question["body"])
        await expect(asked.locator(".badge-answered")).to_have_text(
            "Answered in writing by Deputy Mayor Berg"
        )
        await asked.get_by_role("button", name="Show 1 reply").click()
        await expect(asked.locator(".kind-answer .body")).to_have_text(FOLLOW_UP)
        await citizen.check("follow-up read")

        # The minutes, downloaded from the console.
        await page.get_by_text("Minutes", exact=True).click()
        async with page.expect_download() as download_info:
            await page.get_by_role("button", name="Download Markdown").click()
        download = await download_info.value
        assert download.suggested_filename == f"{meeting.id}-minutes.md"
        minutes = (await download.path()).read_text(encoding="utf-8")
        # Markdown minutes escape punctuation; compare the words.
        assert question["body"].rstrip("?") in minutes
        assert "decide on the ferry timetable on 14 May" in minutes
        await moderator.check("closed, minutes")
        await moderator.shoot("closed")
    finally:
        for ctx in contexts:
            await ctx.close()
