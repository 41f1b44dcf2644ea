"""Fixtures for the browser tests: one Chromium for the whole session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.browser.harness import AXE_LOG, CHROMIUM, CHROMIUM_ARGS, REPORT

# Debian's Chromium; the browser tests never download a browser of their own.
CHROMIUM_FOUND = Path(CHROMIUM).exists()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_FOUND:
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
        )
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        await chromium.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the measurements and the axe-core summary at the end of the run."""
    lines = [*REPORT, AXE_LOG.summary()] if AXE_LOG.runs else list(REPORT)
    if lines:
        terminalreporter.section("browser tests")
        for line in lines:
            terminalreporter.write_line(line)
