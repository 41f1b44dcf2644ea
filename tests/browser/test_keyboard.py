"""A moderator works a pre-moderation queue with the keyboard alone."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect

from tests.browser.harness import open_page
from tests.support import Api, new_meeting

QUESTIONS = [
    "When will the new library open?",
    "You are all idiots!",
    "Is the swimming pool closing in the summer?",
    "Will the bus to the hospital run on Sundays?",
]


async def focus_is_visible(page: Page) -> bool:
    """The focused element draws an outline or a ring (WCAG 2.4.7)."""
    return bool(
        await page.evaluate(
            """() => {
          const e = document.activeElement;
          if (!e || e === document.body) return false;
          const s = getComputedStyle(e);
          return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none';
        }"""
        )
    )


async def test_moderator_works_the_queue_by_keyboard_alone(api: Api, browser: Browser) -> None:
    meeting = await new_meeting(
        api, title="Library", phase="live", language="en", settings={"moderation": "pre"}
    )
    people = [await meeting.citizen(f"Citizen {i}") for i in range(len(QUESTIONS))]
    posted = [await meeting.post(who, body) for who, body in zip(people, QUESTIONS, strict=True)]
    ctx, moderator = await open_page(
        browser,
        "moderator",
        f"{api.server.url}/m/{meeting.id}/moderator#key={meeting.created['moderator_key']}",
        locale="en-GB",
    )
    page = moderator.page
    try:
        # Sign in: Tab to the name field, type, Enter.
        for _ in range(6):
            await page.keyboard.press("Tab")
            if await page.evaluate("() => document.activeElement.id") == "staff-name":
                break
        assert await focus_is_visible(page)
        await page.keyboard.type("Lise")
        await page.keyboard.press("Enter")
        await page.locator(".conn-live").wait_for()
        await expect(page.locator(".queue .item")).to_have_count(4)
        await moderator.check("queue of four")

        # j selects the first; a approves it and moves on to the next.
        await page.keyboard.press("j")
        await expect(page.locator(f"#queue-{posted[0]['id']}")).to_be_focused()
        assert await focus_is_visible(page)
        await moderator.check("first selected")
        await moderator.shoot("keyboard-selected")
        await page.keyboard.press("a")
        await expect(page.locator(f"#queue-{posted[1]['id']}")).to_be_focused()

        # r opens the reason; 2 picks a preset; Enter rejects.
        await page.keyboard.press("r")
        reason = page.locator(f"#reason-{posted[1]['id']}")
        await expect(reason).to_be_focused()
        await page.keyboard.press("2")
        await expect(reason).to_have_value("Offensive or a personal attack")
        await moderator.check("reject form")
        await moderator.shoot("keyboard-reject")
        await page.keyboard.press("Enter")
        await expect(page.locator(f"#queue-{posted[2]['id']}")).to_be_focused()

        # Escape closes a form without acting; then approve the last two.
        await page.keyboard.press("r")
        await page.keyboard.press("Escape")
        await expect(page.locator(f"#queue-{posted[2]['id']}")).to_be_focused()
        await page.keyboard.press("a")
        await expect(page.locator(f"#queue-{posted[3]['id']}")).to_be_focused()
        await page.keyboard.press("a")
        await expect(page.locator(".queue .empty")).to_be_visible()

        # Spotlight by keyboard: k/j move through all messages, s shows one on the big screen.
        await page.keyboard.press("j")
        await page.keyboard.press("s")
        await expect(page.locator(".side .spot-now")).to_be_visible()
        await page.keyboard.press("x")
        await expect(page.locator(".side .spot-now")).to_have_count(0)
        await moderator.check("queue done")

        snapshot = await api.snapshot(meeting.id, meeting.moderator["token"])
        status = {m["id"]: (m["status"], m["reason"]) for m in snapshot["messages"]}
        assert status[posted[0]["id"]] == ("visible", None)
        assert status[posted[1]["id"]] == ("rejected", "Offensive or a personal attack")
        assert status[posted[2]["id"]] == ("visible", None)
        assert status[posted[3]["id"]] == ("visible", None)

        # Every control is reachable with Tab and shows where the focus is.
        for _ in range(12):
            await page.keyboard.press("Tab")
            assert await focus_is_visible(page), await page.evaluate(
                "() => document.activeElement.outerHTML.slice(0, 120)"
            )
    finally:
        await ctx.close()
