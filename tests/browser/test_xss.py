"""Hostile text as names, bodies, title and basis: nothing runs, text shows as text.

A payload that ran would set window.__xss, open a dialog, or (stopped by the
Content-Security-Policy) report a violation; the harness fails on each."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect

from tests.browser.harness import Probe, open_page, sign_in
from tests.support import Api, new_meeting

NAMES = [
    '<img src=x onerror="window.__xss=1">',
    '"><script>window.__xss=1</script>',
    "<svg onload=window.__xss=1>",
]
BODIES = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1;alert(1)">',
    '<a href="javascript:window.__xss=1">click me</a>',
    "{{constructor.constructor('window.__xss=1')()}} ${window.__xss=1}",
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    "</textarea><script>window.__xss=1</script> **not bold** <b>not bold either</b>",
]
TITLE = 'Meeting <img src=x onerror="window.__xss=1"> & "friends"'
BASIS = """# Basis <script>window.__xss=1</script>

<img src=x onerror="window.__xss=1">

[a javascript link](javascript:window.__xss=1) and [a data link](data:text/html,<script>window.__xss=1</script>)

![a tracking pixel](https://tracker.example/pixel.png)

<iframe src="javascript:window.__xss=1"></iframe>
<style>body { display: none }</style>
<div style="background:url(javascript:window.__xss=1)">styled</div>

| left | centre | right |
|:-----|:------:|------:|
| <b>x</b> | [ok](https://example.org/) | 3 |
"""
UI_BODY = "<img src=x onerror=window.__xss=1> typed into the form"


async def assert_inert(probe: Probe, state: str) -> None:
    assert await probe.page.evaluate("() => window.__xss") is None, (probe.name, state)
    hostile = await probe.page.evaluate(
        "() => document.querySelectorAll('#app script, #app iframe, #app style, img[src=\"x\"], [onerror], [onload]').length"
    )
    assert hostile == 0, (probe.name, state)
    await probe.check(state)


async def shows_literally(page: Page, text: str) -> None:
    await expect(page.get_by_text(text, exact=True).first).to_be_visible()


async def test_hostile_text_never_runs(api: Api, browser: Browser) -> None:
    meeting = await new_meeting(api, title=TITLE, basis=BASIS, phase="live", language="en")
    topic = await meeting.post(
        meeting.moderator, "<b>Topic</b><script>window.__xss=1</script>", kind="topic"
    )
    authors = [await meeting.citizen(name) for name in NAMES]
    posted = []
    for i, body in enumerate(BODIES):
        posted.append(await meeting.post(authors[i % len(authors)], body, topic["id"]))
    await meeting.post(authors[0], BODIES[0], posted[1]["id"])
    await meeting.run(meeting.moderator, "spotlight", message_id=posted[1]["id"])
    base = api.server.url
    contexts = []
    try:
        ctx, citizen = await open_page(browser, "citizen", f"{base}/m/{meeting.id}", locale="en-GB")
        contexts.append(ctx)
        page = citizen.page
        # The basis: raw HTML shown as text, no dangerous links, no foreign image.
        basis = page.locator(".basis .markdown")
        await expect(basis.locator("h3")).to_have_text("Basis <script>window.__xss=1</script>")
        await expect(basis).to_contain_text('<img src=x onerror="window.__xss=1">')
        await expect(basis.get_by_text("a javascript link")).not_to_have_attribute(
            "href", "javascript:window.__xss=1"
        )
        assert await basis.locator("a[href^=javascript], a[href^=data]").count() == 0
        assert await basis.locator("img").count() == 0
        await expect(basis.get_by_text("a tracking pixel")).to_be_visible()
        await expect(basis.locator("a[href='https://example.org/']")).to_have_attribute(
            "rel", "noopener noreferrer"
        )
        await expect(basis.locator("td.align-right")).to_have_text("3")
        await assert_inert(citizen, "basis")
        await citizen.shoot("xss-basis")

        await page.locator("#join-name").fill(NAMES[0])
        await page.locator("button[type=submit]").click()
        await page.locator(".conn-live").wait_for()
        await expect(page.locator("h1")).to_have_text(TITLE)
        assert TITLE in await page.title()
        for body in BODIES:
            await shows_literally(page, body)
        for name in NAMES:
            await shows_literally(page, name)
        await page.get_by_role("button", name="Ask a question").click()
        await page.locator("#ask-body").fill(UI_BODY)
        await page.get_by_role("button", name="Send question").click()
        await shows_literally(page, UI_BODY)
        await page.get_by_role("button", name="Show 1 reply").first.click()
        await assert_inert(citizen, "questions")
        await citizen.shoot("xss-questions")

        ctx, moderator = await open_page(
            browser,
            "moderator",
            f"{base}/m/{meeting.id}/moderator#key={meeting.created['moderator_key']}",
            locale="en-GB",
        )
        contexts.append(ctx)
        await sign_in(moderator, NAMES[1])
        for body in [*BODIES, UI_BODY]:
            await shows_literally(moderator.page, body)
        await moderator.page.locator(".messages .item", has_text=BODIES[2]).click()
        await moderator.page.keyboard.press("h")
        await moderator.page.keyboard.type("<script>window.__xss=1</script>")
        await moderator.page.keyboard.press("Enter")
        await expect(moderator.page.locator(".reason").first).to_contain_text(
            "<script>window.__xss=1</script>"
        )
        await moderator.page.get_by_text("Meeting settings").click()
        await expect(moderator.page.locator("#settings-basis")).to_have_value(BASIS.strip())
        await moderator.page.get_by_text("Preview the basis").click()
        await expect(moderator.page.locator(".preview .markdown h3")).to_have_text(
            "Basis <script>window.__xss=1</script>"
        )
        await assert_inert(moderator, "console")

        ctx, speaker = await open_page(
            browser,
            "speaker",
            f"{base}/m/{meeting.id}/speaker#key={meeting.created['speaker_key']}",
            locale="en-GB",
        )
        contexts.append(ctx)
        await sign_in(speaker, NAMES[2])
        await expect(speaker.page.locator(".detail-body")).to_have_text(BODIES[1])
        await speaker.page.locator("#answer-body").fill(BODIES[0])
        await speaker.page.get_by_role("button", name="Publish answer").click()
        await expect(speaker.page.locator(".detail .kind-answer .body").last).to_have_text(
            BODIES[0]
        )
        await assert_inert(speaker, "answered")

        ctx, screen = await open_page(
            browser,
            "screen",
            f"{base}/m/{meeting.id}/screen#key={meeting.created['screen_key']}",
            locale="en-GB",
        )
        contexts.append(ctx)
        await expect(screen.page.locator(".spot-body")).to_have_text(BODIES[1])
        await expect(screen.page.locator(".spot-author")).to_have_text(NAMES[1])
        await expect(screen.page.locator(".screen-title")).to_have_text(TITLE)
        await assert_inert(screen, "spotlight")
        await screen.shoot("xss")

        await page.reload()
        await page.locator(".conn-live").wait_for()
        await assert_inert(citizen, "after reload")
    finally:
        for ctx in contexts:
            await ctx.close()
