"""The casting page in a real browser (Debian's chromium through Playwright), on a real server.

Cast the sample pool, swap a face and read the coverage change, make the set the campaign's
roster: under the app's Content-Security-Policy, with no console errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from matcher.matching import Matcher

from .conftest import PLANNER_PASSWORD, make_app
from .test_browser import CHROMIUM, CHROMIUM_ARGS, serve

pytestmark = pytest.mark.slow
#: The first cast embeds the sample pool with the real model (about a minute on a busy machine).
WAIT_MS = 240_000


@pytest.fixture
def origin(tmp_path: Path, sample_matcher: Matcher) -> Iterator[str]:
    with serve(make_app(tmp_path, sample_matcher)) as url:
        yield url


@pytest.fixture
def page() -> Iterator[Page]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: scripts/test installs it with apt-get"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(locale="en-US", viewport={"width": 1100, "height": 900})
            context.set_default_timeout(WAIT_MS)
            context.set_default_navigation_timeout(WAIT_MS)
            yield context.new_page()
        finally:
            browser.close()


def test_a_planner_casts_swaps_and_makes_the_roster(page: Page, origin: str) -> None:
    problems: list[str] = []
    failed: list[str] = []
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    # The browser asks for /favicon.ico on its own; the app has none.
    page.on(
        "response",
        lambda response: (
            failed.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.goto(f"{origin}/planner/casting")
    page.fill("#user", "planner")
    page.fill("#password", PLANNER_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Casting")
    page.select_option("#brief_key", "lueur")
    page.select_option("#pool_key", "lueur")
    page.click("form.casting-form button[type=submit]")
    faces = page.locator("table.casting-faces tbody tr")
    expect(faces).to_have_count(7)
    expect(page.locator("#coverage-chart g.bar")).to_have_count(7)
    assert page.locator("#coverage-chart").is_visible()
    expect(page.locator('tr[data-candidate-id="lu-yuan"] td').nth(1)).to_have_text("freedom")

    page.select_option("#out", "lu-yuan")
    page.select_option("#in", "niu-ge")
    page.click("text=Swap and compare")
    expect(page.locator("#coverage-change")).to_be_visible()
    freedom = page.locator('#coverage-change tr[data-facet="freedom"] td')
    expect(freedom.nth(0)).to_have_text("100")
    assert freedom.nth(2).inner_text().startswith("-")
    expect(page.locator('table.casting-faces tr[data-candidate-id="niu-ge"]')).to_have_count(1)

    page.click("form.inline-form button[type=submit]")
    expect(page.locator("p.notice")).to_contain_text("are now the campaign's roster")
    assert not failed, failed
    assert all("404" in text for text in problems), problems
