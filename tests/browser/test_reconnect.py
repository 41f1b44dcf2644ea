"""Network blips: the citizen's phone and the big screen lose the network
while the meeting goes on, then catch up to exactly what a fresh load shows,
with no duplicates; a post made while offline is sent once when the network
returns, and the big screen never keeps a stale spotlight."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Browser, expect

from tests.browser.harness import normalise, open_page
from tests.support import Api, new_meeting


async def visible_tree(page) -> str:  # type: ignore[no-untyped-def]
    return normalise(" | ".join(await page.locator("#main .topic").all_inner_texts()))


async def test_pages_converge_after_the_network_drops(api: Api, browser: Browser) -> None:
    meeting = await new_meeting(api, title="Roads and paths", phase="live", language="en")
    roads = await meeting.topic("Roads")
    bob = await meeting.citizen("Bob")
    carla = await meeting.citizen("Carla", in_room=True)
    first = await meeting.post(bob, "Will the bridge be repaired this year?", roads["id"])
    base = api.server.url

    ctx, citizen = await open_page(browser, "citizen", f"{base}/m/{meeting.id}", locale="en-GB")
    sctx, screen = await open_page(
        browser, "screen", f"{base}/m/{meeting.id}/screen#key={meeting.created['screen_key']}"
    )
    try:
        page = citizen.page
        await page.locator("#join-name").fill("Alice")
        await page.locator("button[type=submit]").click()
        await page.locator(".conn-live").wait_for()
        question = page.locator(".message", has_text=first["body"])
        await question.locator(".vote").click()
        await expect(question.locator(".vote")).to_have_attribute("aria-pressed", "true")
        await meeting.run(meeting.moderator, "spotlight", message_id=first["id"])
        await expect(screen.page.locator(f"[data-spotlight-id='{first['id']}']")).to_be_visible()

        # The network goes; the meeting goes on without these two.
        await ctx.set_offline(True)
        await sctx.set_offline(True)
        await expect(page.locator(".conn-offline")).to_be_visible()
        await expect(screen.page.locator(".screen-conn")).to_be_visible()
        await citizen.check("offline")
        await citizen.shoot("offline")

        second = await meeting.post(bob, "Can the cycle path be lit at night?", roads["id"])
        third = await meeting.post(carla, "Who decides the speed limits?", roads["id"])
        await meeting.post(carla, "Yes, please light it.", second["id"])
        await meeting.run(carla, "vote", message_id=second["id"], value=1)
        await meeting.run(bob, "vote", message_id=second["id"], value=1)
        await meeting.run(
            meeting.moderator,
            "moderate",
            message_id=third["id"],
            action="hide",
            reason="Asked before",
        )
        await meeting.run(meeting.moderator, "spotlight", message_id=second["id"])

        # A post made offline is kept on the phone until the network returns.
        offline_text = "Posted on the train, where the network comes and goes."
        await page.get_by_role("button", name="Ask a question").click()
        await page.locator("#ask-body").fill(offline_text)
        await page.get_by_role("button", name="Send question").click()
        await expect(page.locator(".outbox-item")).to_have_text(offline_text)
        stored = await page.evaluate(
            "() => Object.keys(localStorage).filter((k) => k.startsWith('ting.outbox.'))"
            ".flatMap((k) => JSON.parse(localStorage.getItem(k)))"
        )
        assert [item["body"] for item in stored] == [offline_text]
        await citizen.check("offline post kept")

        await ctx.set_offline(False)
        await sctx.set_offline(False)
        await page.locator(".conn-live").wait_for()
        await expect(page.locator(".outbox")).to_have_count(0)

        # The phone caught up: new questions, the reply count, votes, the hidden one gone.
        lit = page.locator(".message", has_text=second["body"])
        await expect(lit.locator(".vote-count")).to_have_text("2")
        await expect(lit.get_by_role("button", name="Show 1 reply")).to_be_visible()
        await expect(page.locator(".message", has_text=third["body"])).to_have_count(0)
        await expect(page.locator(".message", has_text=offline_text)).to_have_count(1)
        await expect(question.locator(".vote")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator(".spotlight-card .body")).to_have_text(second["body"])
        for body in (first["body"], second["body"], offline_text):
            await expect(page.locator(".message > article > .body", has_text=body)).to_have_count(1)

        # The big screen shows the new spotlight, never the old one.
        await expect(screen.page.locator(f"[data-spotlight-id='{second['id']}']")).to_be_visible()
        await expect(screen.page.locator(f"[data-spotlight-id='{first['id']}']")).to_have_count(0)
        await expect(screen.page.locator(".screen-conn")).to_have_count(0)

        # The offline post was stored once.
        snapshot = await api.snapshot(meeting.id, meeting.moderator["token"])
        assert [m["body"] for m in snapshot["messages"]].count(offline_text) == 1

        for probe in (citizen, screen):
            await probe.check("caught up")
        await citizen.shoot("caught-up")

        # What a fresh load shows is what the resumed page shows.
        resumed = await visible_tree(page)
        await page.reload()
        await page.locator(".conn-live").wait_for()
        await expect(page.locator(".message", has_text=offline_text)).to_be_visible()
        assert await visible_tree(page) == resumed
        await citizen.check("reloaded", axe=False)
    finally:
        await ctx.close()
        await sctx.close()


async def test_big_screen_drops_a_cleared_spotlight_after_a_blip(
    api: Api, browser: Browser
) -> None:
    meeting = await new_meeting(api, title="Harbour", phase="live", language="en")
    asker = await meeting.citizen()
    question = await meeting.post(asker, "What happens to the old harbour baths?")
    ctx, screen = await open_page(
        browser,
        "screen",
        f"{api.server.url}/m/{meeting.id}/screen#key={meeting.created['screen_key']}",
    )
    try:
        await meeting.run(meeting.moderator, "spotlight", message_id=question["id"])
        await expect(screen.page.locator(".spot-body")).to_have_text(question["body"])
        await ctx.set_offline(True)
        await expect(screen.page.locator(".screen-conn")).to_be_visible()
        await meeting.run(meeting.moderator, "spotlight", message_id=None)
        await ctx.set_offline(False)
        await expect(screen.page.locator(".spot-empty")).to_be_visible()
        await expect(screen.page.locator("[data-spotlight-id]")).to_have_count(0)
        await screen.check("spotlight cleared while offline")
        await screen.shoot("no-spotlight")
    finally:
        await ctx.close()


async def test_pages_resume_after_the_server_restarts(
    make_server: Any, http_client: httpx.AsyncClient, browser: Browser
) -> None:
    server = make_server()
    api = Api(server, http_client)
    meeting = await new_meeting(api, title="Restart", phase="live", language="en")
    asker = await meeting.citizen("Eva")
    before = await meeting.post(asker, "Asked before the restart")
    await meeting.run(meeting.moderator, "spotlight", message_id=before["id"])
    url = f"{server.url}/m/{meeting.id}/screen#key={meeting.created['screen_key']}"
    ctx, screen = await open_page(browser, "screen", url)
    try:
        await expect(screen.page.locator(".spot-body")).to_have_text(before["body"])
        server.stop()
        # The server said goodbye (1001): the screen says so and keeps trying.
        await expect(screen.page.locator(".screen-conn")).to_have_text("Reconnecting…")
        server.start()
        after = await meeting.post(asker, "Asked after the restart")
        await meeting.run(meeting.moderator, "spotlight", message_id=after["id"])
        await expect(screen.page.locator(".spot-body")).to_have_text(after["body"], timeout=15000)
        await expect(screen.page.locator(".screen-conn")).to_have_count(0)
        await expect(screen.page.locator(".next-list")).to_contain_text(before["body"])
        await screen.check("after restart")
    finally:
        await ctx.close()
