"""Four people at their own screens in one live meeting.

A citizen asks on a phone, the moderator approves in the console, the
speaker answers on a tablet, the moderator puts the question on the big
screen; every step shows up on the other pages. The time from the
moderator's click to the big screen showing the question is measured.
"""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.browser.harness import REPORT, Probe, open_page, sign_in, switch_language
from tests.support import Api, new_meeting

BASIS = """## Budget 2027

The council must find **38 million** in savings.

| area | proposal |
| --- | ---: |
| Schools | 14 |
| Culture | 8 |
"""

QUESTION = "Why close the school in Nordby when the number of pupils is rising?"
ANSWER = "We will keep Nordby open until the new district plan is ready."


async def shoot_all(probes: list[Probe], state: str) -> None:
    for probe in probes:
        await probe.shoot(state)


async def test_question_travels_from_phone_to_big_screen(api: Api, browser: Browser) -> None:
    meeting = await new_meeting(
        api,
        title="Citizens' meeting on the 2027 budget",
        basis=BASIS,
        phase="live",
        language="da",
        settings={"moderation": "pre"},
    )
    schools = await meeting.topic("Schools and day care")
    await meeting.topic("Culture and leisure")
    base = api.server.url
    keys = meeting.created

    contexts = []
    try:
        ctx, citizen = await open_page(browser, "citizen", f"{base}/m/{meeting.id}")
        contexts.append(ctx)
        ctx, moderator = await open_page(
            browser, "moderator", f"{base}/m/{meeting.id}/moderator#key={keys['moderator_key']}"
        )
        contexts.append(ctx)
        ctx, speaker = await open_page(
            browser, "speaker", f"{base}/m/{meeting.id}/speaker#key={keys['speaker_key']}"
        )
        contexts.append(ctx)
        ctx, screen = await open_page(
            browser, "screen", f"{base}/m/{meeting.id}/screen#key={keys['screen_key']}"
        )
        contexts.append(ctx)
        probes = [citizen, moderator, speaker, screen]

        # The citizen sees the basis before anything else, then joins.
        page = citizen.page
        await expect(page.locator(".basis h3")).to_have_text("Budget 2027")
        await expect(page.locator(".basis td.align-right").first).to_have_text("14")
        await citizen.check("join form")
        await citizen.shoot("join")
        await page.locator("#join-name").fill("Mette")
        await page.locator("#join-in-room").check()
        await page.locator("button[type=submit]").click()
        await page.locator(".conn-live").wait_for()

        await sign_in(moderator, "Lise")
        await sign_in(speaker, "Mayor Hansen")
        await screen.page.locator(".screen-code").wait_for()
        await expect(screen.page.locator(".screen-code")).to_have_text(meeting.created["code"])
        # The QR code is a real image, drawn (an SVG without its namespace is not).
        await screen.page.wait_for_function(
            "() => { const q = document.querySelector('.screen-qr');"
            " return q && q.complete && q.naturalWidth > 0; }"
        )
        for probe in probes:
            await probe.check("joined")
        await shoot_all(probes, "start")

        # 1. The citizen asks; it waits for moderation, only the moderator sees it.
        await page.get_by_role("button", name="Stil et spørgsmål").click()
        await page.locator("#ask-topic").select_option(str(schools["id"]))
        await page.locator("#ask-body").fill(QUESTION)
        await expect(page.locator("#ask-body-count")).to_contain_text(
            f"{len(QUESTION)} af 1.000 tegn"
        )
        await page.get_by_role("button", name="Send spørgsmål").click()
        mine = page.locator(".message", has_text=QUESTION)
        await expect(mine.locator(".badge-pending")).to_be_visible()
        queue_item = moderator.page.locator(".queue .item", has_text=QUESTION)
        await expect(queue_item).to_be_visible()
        await expect(speaker.page.locator(".speaker-queue")).not_to_contain_text(QUESTION)
        await expect(screen.page.locator(".screen")).not_to_contain_text(QUESTION)
        for probe in probes:
            await probe.check("question pending")
        await citizen.shoot("pending")
        await moderator.shoot("queue")

        # 2. The moderator approves; the question is public everywhere.
        await queue_item.get_by_role("button", name="Godkend").click()
        await expect(mine.locator(".badge-pending")).to_have_count(0)
        await expect(speaker.page.locator(".speaker-list")).to_contain_text(QUESTION)
        await expect(screen.page.locator(".next-list")).to_contain_text(QUESTION)
        await expect(moderator.page.locator(".queue .empty")).to_be_visible()
        for probe in probes:
            await probe.check("approved")

        # 3. The speaker answers in writing.
        await speaker.page.locator(".question-button", has_text=QUESTION).click()
        await speaker.page.locator("#answer-body").fill(ANSWER)
        await speaker.page.get_by_role("button", name="Offentliggør svar").click()
        await expect(mine.locator(".badge-answered")).to_have_text(
            "Besvaret skriftligt af Mayor Hansen"
        )
        await mine.get_by_role("button", name="Vis 1 svar").click()
        await expect(mine.locator(".kind-answer .body")).to_have_text(ANSWER)
        row = moderator.page.locator(".messages .item.kind-question", has_text=QUESTION)
        await expect(row.locator(".badge-answered")).to_be_visible()
        await expect(screen.page.locator(".next-list, .next-empty")).not_to_contain_text(QUESTION)
        for probe in probes:
            await probe.check("answered")

        # 4. The moderator puts it on the big screen: measure click to screen.
        await row.click()
        button = row.get_by_role("button", name="Vis på storskærm")
        await expect(button).to_be_visible()
        question_id = int((await row.get_attribute("id") or "").split("-")[1])
        await screen.page.evaluate(
            """(id) => {
              window.__shownAt = null;
              const seen = () => document.querySelector(`[data-spotlight-id="${id}"]`);
              new MutationObserver(() => {
                if (!window.__shownAt && seen()) window.__shownAt = performance.timeOrigin + performance.now();
              }).observe(document.body, {subtree: true, childList: true, attributes: true});
            }""",
            question_id,
        )
        await button.evaluate(
            "(b) => b.addEventListener('click', () => { window.__clickAt = performance.timeOrigin + performance.now(); }, {capture: true})"
        )
        await button.click()
        await screen.page.wait_for_function("() => window.__shownAt !== null")
        clicked = await moderator.page.evaluate("window.__clickAt")
        shown = await screen.page.evaluate("window.__shownAt")
        latency_ms = shown - clicked
        line = f"click-to-screen latency (spotlight): {latency_ms:.1f} ms"
        print(line)
        REPORT.append(line)
        assert 0 <= latency_ms < 1000, latency_ms

        await expect(screen.page.locator(".spot-body")).to_have_text(QUESTION)
        await expect(screen.page.locator(".spot-author")).to_have_text("Mette")
        await expect(page.locator(".spotlight-card .body")).to_have_text(QUESTION)
        await expect(mine.locator(".badge-spotlight")).to_be_visible()
        await expect(speaker.page.locator(".spotlight-card .body")).to_have_text(QUESTION)
        for probe in probes:
            await probe.check("spotlight")
        await shoot_all(probes, "spotlight")
        await citizen.page.get_by_role("button", name="Om mødet").click()
        await citizen.check("basis tab")
        await citizen.shoot("basis")
        await citizen.page.get_by_role("button", name="Spørgsmål").click()

        # Big-screen text is readable from the back of the hall, and nothing scrolls.
        sizes = await screen.page.evaluate(
            """() => [...document.querySelectorAll('.screen p, .screen li, .screen h1, .screen h2, .screen span')]
                 .filter((e) => e.textContent.trim() && e.offsetParent !== null)
                 .map((e) => parseFloat(getComputedStyle(e).fontSize))"""
        )
        assert sizes and min(sizes) >= 48, min(sizes)
        scroll = await screen.page.evaluate(
            "[document.documentElement.scrollHeight, document.documentElement.scrollWidth, innerHeight, innerWidth]"
        )
        assert scroll[0] <= scroll[2] and scroll[1] <= scroll[3], scroll

        # The same pages in English, switched by the user.
        for probe in probes:
            await switch_language(probe, "en")
            await probe.check("english")
        await expect(screen.page.locator(".screen-label").first).to_have_text("Being answered now")
        await expect(mine.locator(".badge-answered")).to_have_text(
            "Answered in writing by Mayor Hansen"
        )
        await shoot_all(probes, "spotlight")
        await citizen.page.get_by_role("button", name="About the meeting").click()
        await citizen.shoot("basis")
        await citizen.page.get_by_role("button", name="Questions").click()
        for probe in probes:
            await probe.check("end", axe=False)
    finally:
        for ctx in contexts:
            await ctx.close()
