"""The citizen's phone page beyond asking: joining by code, voting and taking
the vote back, replying with a live character count, withdrawing, the
moderator's reason, sorting, collapsing, and pausing the live list."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.browser.harness import open_page
from tests.support import Api, new_meeting


async def test_citizen_joins_by_code_and_takes_part(api: Api, browser: Browser) -> None:
    meeting = await new_meeting(
        api,
        title="Parks",
        basis="Parks are **open** to all.",
        phase="open",
        language="en",
        settings={"moderation": "pre", "max_body": 120},
    )
    parks = await meeting.topic("Parks")
    other = await meeting.citizen("Ole")
    older = await meeting.post(other, "Can the playground get a fence?", parks["id"])
    newer = await meeting.post(other, "Will there be more benches?", parks["id"])
    for q in (older, newer):
        await meeting.run(meeting.moderator, "moderate", message_id=q["id"], action="approve")
    await meeting.run(await meeting.citizen(), "vote", message_id=older["id"], value=1)
    code = meeting.created["code"]

    # The QR code's link: /j/CODE fills in the code on the front page.
    ctx, citizen = await open_page(
        browser, "citizen", f"{api.server.url}/j/{code.lower()}", locale="en-GB"
    )
    page = citizen.page
    try:
        await expect(page.locator("#code")).to_have_value(code)
        await citizen.check("join by code")
        await citizen.shoot("code")
        await page.locator("#code").fill("NOPE22")
        await page.get_by_role("button", name="Go to the meeting").click()
        await expect(page.get_by_role("alert")).to_contain_text("No meeting has that code")
        await citizen.check("unknown code")
        await page.locator("#code").fill(code)
        await page.locator("#code").press("Enter")
        await page.wait_for_url(f"**/m/{meeting.id}")
        await expect(page.locator(".basis .markdown strong")).to_have_text("open")
        await expect(page.locator(".phase-help")).to_contain_text("open for questions")
        await page.locator("button[type=submit]").click()  # anonymous by default
        await page.locator(".conn-live").wait_for()
        await expect(page.locator(".me")).to_have_text("You take part as Anonymous, online.")

        # Popular first, recent on request.
        bodies = page.locator(".questions > li > article > .body")
        await expect(bodies).to_have_text([older["body"], newer["body"]])
        await page.get_by_label("Recent").check()
        await expect(bodies).to_have_text([newer["body"], older["body"]])
        await page.get_by_label("Popular").check()

        # Vote and take the vote back.
        vote = page.locator(".message", has_text=newer["body"]).locator(".vote")
        await vote.click()
        await expect(vote).to_have_attribute("aria-pressed", "true")
        await expect(vote.locator(".vote-count")).to_have_text("1")
        await vote.click()
        await expect(vote).to_have_attribute("aria-pressed", "false")
        await expect(vote.locator(".vote-count")).to_have_text("0")

        # Reply, with the count against the meeting's limit of 120.
        thread = page.locator(".message", has_text=older["body"]).first
        await thread.get_by_role("button", name="Reply").click()
        box = page.locator(f"#reply-{older['id']}")
        await expect(box).to_be_focused()
        await box.fill("x" * 125)
        await expect(page.locator(f"#reply-{older['id']}-count")).to_have_text(
            "5 characters too many (at most 120)"
        )
        await expect(page.get_by_role("button", name="Send reply")).to_be_disabled()
        await citizen.check("reply too long")
        await box.fill("A fence would keep the dogs out.")
        await expect(page.locator(f"#reply-{older['id']}-count")).to_have_text(
            "32 of 120 characters"
        )
        await page.get_by_role("button", name="Send reply").click()
        reply = thread.locator(".replies .message", has_text="A fence would keep")
        await expect(reply.locator(".badge-pending")).to_be_visible()

        # The moderator rejects it: the author sees why.
        snapshot = await api.snapshot(meeting.id, meeting.moderator["token"])
        mine = next(m for m in snapshot["messages"] if m["body"].startswith("A fence"))
        await meeting.run(
            meeting.moderator,
            "moderate",
            message_id=mine["id"],
            action="reject",
            reason="Please ask the parks department directly.",
        )
        await expect(reply.locator(".badge-rejected")).to_be_visible()
        await expect(reply.locator(".reason")).to_contain_text(
            "Please ask the parks department directly."
        )
        await citizen.check("rejected reply")
        await citizen.shoot("rejected")

        # Ask and withdraw.
        await page.get_by_role("button", name="Ask a question").click()
        await page.locator("#ask-body").fill("Is the lake safe for swimming?")
        await page.get_by_role("button", name="Send question").click()
        asked = page.locator(".message", has_text="Is the lake safe")
        await asked.get_by_role("button", name="Withdraw").click()
        await asked.get_by_role("button", name="Yes, withdraw").click()
        await expect(asked.locator(".badge-withdrawn")).to_be_visible()

        # Collapse a topic and open it again.
        toggle = page.locator(".topic-head button")
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await expect(page.locator(".topic .questions")).to_have_count(0)
        await toggle.click()
        await expect(page.locator(".topic .questions")).to_be_visible()

        # Pause: new questions wait, own doings still show; resume shows them.
        await page.get_by_role("button", name="Pause live updates").click()
        late = await meeting.post(meeting.moderator, "Will the park close at night?", parks["id"])
        await expect(page.locator(".pause-note")).to_have_text("1 update waiting")
        await expect(page.locator(".message", has_text=late["body"])).to_have_count(0)
        await vote.click()
        await expect(vote).to_have_attribute("aria-pressed", "true")
        await citizen.check("paused")
        await citizen.shoot("paused")
        await page.get_by_role("button", name="Resume live updates").click()
        await expect(page.locator(".message", has_text=late["body"])).to_be_visible()
        await citizen.check("resumed")
    finally:
        await ctx.close()
