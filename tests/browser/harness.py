"""Browser test harness: Debian's Chromium driven by Playwright, with checks
that run on every page in every state a test reaches.

- Content-Security-Policy: a `securitypolicyviolation` listener is installed
  before any page script runs, and console errors that mention the policy
  are collected; any one fails the test.
- Uncaught page errors and dialogs (alert, confirm, prompt) fail the test.
- Accessibility: axe-core (vendored in tests/browser/vendor/) is injected and
  run; a violation of impact serious or critical fails the test.
- Screenshots go to artifacts/screenshots/ (not in git), one per page, state
  and language.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page

from tests import schemas

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text(
    encoding="utf-8"
)
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

VIEWPORTS = {
    "citizen": {"width": 360, "height": 740},
    "moderator": {"width": 1440, "height": 900},
    "speaker": {"width": 1024, "height": 768},
    "screen": {"width": 1920, "height": 1080},
}

# Runs in every page before its own scripts: records CSP violations.
PROBE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push({directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample});
});
"""

# axe rules that only make sense with a complete document being audited in
# isolation; none is switched off, so every page state gets the full set.
AXE_OPTIONS = {"resultTypes": ["violations"]}
BLOCKING = {"serious", "critical"}


@dataclass
class AxeLog:
    """Every axe run of the session, for the summary printed at its end."""

    runs: list[tuple[str, Counter[str]]] = field(default_factory=list)

    def summary(self) -> str:
        total: Counter[str] = Counter()
        for _, impacts in self.runs:
            total.update(impacts)
        found = ", ".join(f"{n} {impact}" for impact, n in sorted(total.items())) or "none"
        return f"axe-core: {len(self.runs)} page states checked; violations by impact: {found}"


AXE_LOG = AxeLog()
# Measurements printed at the end of the run (see conftest.py).
REPORT: list[str] = []


@dataclass
class Probe:
    """One page and what went wrong on it."""

    page: Page
    name: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    # Frames the page received that do not match schema/ (see watch_frames).
    schema_errors: list[str] = field(default_factory=list)

    async def csp_violations(self) -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = await self.page.evaluate("window.__csp || []")
        except Exception:  # the page is navigating; the next check sees it
            return []
        return found

    async def check(self, state: str, *, axe: bool = True) -> None:
        """CSP, errors and dialogs so far, and axe on the page as it is now."""
        violations = await self.csp_violations()
        csp_console = [m for m in self.console_errors if "Content Security Policy" in m]
        assert not violations and not csp_console, (self.name, state, violations, csp_console)
        assert not self.page_errors, (self.name, state, self.page_errors)
        assert not self.dialogs, (self.name, state, self.dialogs)
        assert not self.schema_errors, (self.name, state, self.schema_errors)
        if axe:
            await check_axe(self.page, f"{self.name}: {state}")

    async def shoot(self, state: str) -> Path:
        lang = await self.page.evaluate("document.documentElement.lang")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}-{state}-{lang}.png"
        await self.page.screenshot(path=str(path))
        return path


async def check_axe(page: Page, label: str) -> None:
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(AXE_SOURCE)
    result = await page.evaluate(
        "async (options) => (await axe.run(document, options)).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))",
        AXE_OPTIONS,
    )
    AXE_LOG.runs.append((label, Counter(v["impact"] or "minor" for v in result)))
    blocking = [v for v in result if v["impact"] in BLOCKING]
    assert not blocking, f"axe on {label}:\n" + json.dumps(blocking, indent=2)


async def open_page(
    browser: Browser, name: str, url: str, *, viewport: str | None = None, locale: str = "da-DK"
) -> tuple[BrowserContext, Probe]:
    """A new context (its own storage, like a separate device) with one page at `url`."""
    context = await browser.new_context(
        viewport=VIEWPORTS[viewport or name], locale=locale, service_workers="block"
    )
    await context.add_init_script(PROBE)
    page = await context.new_page()
    probe = Probe(page, name)
    page.on("console", lambda m: probe.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: probe.page_errors.append(str(e)))

    async def on_dialog(dialog: Any) -> None:
        probe.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("websocket", lambda ws: watch_frames(ws, probe))
    await page.goto(url)
    return context, probe


def watch_frames(ws: Any, probe: Probe) -> None:
    """Validate every frame the server sends to the page against schema/."""

    def received(payload: str | bytes) -> None:
        try:
            schemas.validate_server_frame(json.loads(payload))
        except (AssertionError, ValueError) as exc:
            probe.schema_errors.append(str(exc)[:500])

    ws.on("framereceived", received)


async def sign_in(probe: Probe, name: str) -> None:
    """Staff pages ask for the name shown with what they post."""
    page = probe.page
    await page.locator("#staff-name").fill(name)
    await page.locator("#staff-name").press("Enter")
    await page.locator(".conn-live").wait_for()


async def switch_language(probe: Probe, lang: str) -> None:
    """The user's own choice: the switch, or ?lang= on the big screen nobody touches."""
    switch = probe.page.locator(f".lang-switch button[lang={lang}]")
    if await switch.count():
        await switch.click()
    else:
        await probe.page.goto(probe.page.url.split("?")[0].split("#")[0] + f"?lang={lang}")
    await probe.page.wait_for_function("(lang) => document.documentElement.lang === lang", arg=lang)


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
