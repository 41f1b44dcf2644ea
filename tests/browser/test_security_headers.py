"""Every page and file comes with a strict Content-Security-Policy and the
usual security headers, and the browser enforces them."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser

from tests.browser.harness import open_page
from tests.support import Api, new_meeting

EXPECTED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/m/{id}",
        "/m/{id}/moderator",
        "/m/{id}/speaker",
        "/m/{id}/screen",
        "/static/js/pages/citizen.js",
        "/static/vendor/preact/preact.module.js",
        "/static/i18n/da.json",
    ],
)
async def test_pages_carry_a_strict_policy(
    api: Api, http_client: httpx.AsyncClient, path: str
) -> None:
    meeting = await new_meeting(api, phase="open")
    response = await http_client.get(api.server.url + path.format(id=meeting.id))
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert "unsafe" not in csp
    for name, value in EXPECTED.items():
        assert response.headers[name] == value
    if path.endswith(".js"):
        assert response.headers["content-type"].startswith("text/javascript")


async def test_the_browser_refuses_html_string_sinks(api: Api, browser: Browser) -> None:
    meeting = await new_meeting(api, phase="open")
    ctx, probe = await open_page(browser, "citizen", f"{api.server.url}/m/{meeting.id}")
    try:
        await probe.page.locator("#join-name").wait_for()
        outcome = await probe.page.evaluate(
            """() => { try { document.body.insertAdjacentHTML('beforeend', '<b>x</b>'); return 'allowed'; }
                       catch (e) { return e.name; } }"""
        )
        assert outcome == "TypeError"
        reported = await probe.csp_violations()
        assert [v["directive"] for v in reported] == ["require-trusted-types-for"]
    finally:
        await ctx.close()
