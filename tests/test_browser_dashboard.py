"""The planner's dashboard in a real browser, in English and Chinese.

A campaign with two weeks of live shoppers (form and embed, both languages)
and one 20,000-row CRM upload is served by the real app on a free port;
Debian's chromium (through Playwright) logs in, reads the dashboard, and
saves screenshots to ``test-artifacts/dashboard-*.png``. The checks are what
a planner reads at a glance: the funnel's figures, the upload kept apart
from the live shoppers, the days of the campaign's time zone, and table
headers on one line in Chinese (no header wrapping one character per line).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import insert

from matcher.matching import Matcher
from matcher.store import Campaign, Database, find_campaign
from matcher.store.events import record_event
from matcher.store.schema import PairingRow

from .conftest import PLANNER_PASSWORD, REPO, make_app
from .test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, serve

ARTIFACTS = REPO / "test-artifacts"
ZONE = ZoneInfo("Asia/Shanghai")
DAYS = 14
UPLOAD_ROWS = 20_000


@dataclass
class Seeded:
    """What was stored, step by step, to compare with what the page says."""

    views: int = 0
    submissions: int = 0
    pairings: Counter[str] = field(default_factory=Counter)
    clicks: int = 0
    upload: Counter[str] = field(default_factory=Counter)
    days: set[date] = field(default_factory=set)


def seed(db: Database, campaign: Campaign, celebrities: list[str], today: date) -> Seeded:
    """Two weeks of live shoppers in Shanghai's evenings, and one CRM upload."""
    rng = random.Random(15)
    seeded = Seeded()
    pairings: list[dict[str, object]] = []
    weights = [5, 3, 8, 2, 4, 6, 1][: len(celebrities)] or [1]
    for back in range(DAYS):
        day = today - timedelta(days=back)
        seeded.days.add(day)
        # 23:30 in Shanghai is 15:30 UTC: the same day there, whatever UTC says.
        evening = datetime.combine(day, time(23, 30), ZONE).astimezone(UTC)
        for source, language, views in (("form", "zh", 300), ("embed", "en", 90)):
            n_views = views + rng.randrange(0, views)
            n_sent = int(n_views * rng.uniform(0.3, 0.45))
            n_paired = int(n_sent * 0.9)
            record_event(
                db, campaign.id, "view", source=source, language=language, at=evening, count=n_views
            )
            record_event(
                db,
                campaign.id,
                "submission",
                source=source,
                language=language,
                at=evening,
                count=n_sent,
            )
            seeded.views += n_views
            seeded.submissions += n_sent
            chosen = rng.choices(celebrities, weights=weights, k=n_paired)
            for number, celebrity in enumerate(chosen):
                pairings.append(
                    _pairing(campaign, celebrity, source, evening, f"{source}-{back}-{number}")
                )
                seeded.pairings[celebrity] += 1
            for celebrity, paired in Counter(chosen).items():
                clicks = paired // 4
                if clicks:
                    record_event(
                        db,
                        campaign.id,
                        "cta_click",
                        source=source,
                        language=language,
                        celebrity_id=celebrity,
                        at=evening,
                        count=clicks,
                    )
                    seeded.clicks += clicks
    upload_at = datetime.combine(today - timedelta(days=3), time(10), ZONE).astimezone(UTC)
    for number in range(UPLOAD_ROWS):
        celebrity = celebrities[number % len(celebrities)]
        pairings.append(_pairing(campaign, celebrity, "upload", upload_at, f"crm-{number}"))
        seeded.upload[celebrity] += 1
    with db.write() as session:
        for start in range(0, len(pairings), 5000):
            session.execute(insert(PairingRow), pairings[start : start + 5000])
    return seeded


def _pairing(
    campaign: Campaign, celebrity: str, source: str, at: datetime, ref: str
) -> dict[str, object]:
    return {
        "campaign_id": campaign.id,
        "shopper_ref": ref,
        "celebrity_id": celebrity,
        "score": 0.42 + (hash(ref) % 30) / 100,
        "margin": 0.05,
        "reasons": [],
        "model_id": "m",
        "index_version": "v",
        "source": source,
        "created_at": at,
    }


@pytest.fixture(scope="module")
def site(
    sample_matcher: Matcher, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Seeded]]:
    folder = tmp_path_factory.mktemp("dashboard")
    app: Flask = make_app(folder, sample_matcher)
    db: Database = app.extensions["matcher.db"]
    campaign = find_campaign(db, "default")
    assert campaign is not None and campaign.time_zone == "Asia/Shanghai"
    today = datetime.now(ZONE).date()
    seeded = seed(db, campaign, [p.id for p in sample_matcher.index.profiles], today)
    with serve(app) as origin:
        yield origin, seeded
    db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs it with apt-get")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def planner_page(browser: Browser, origin: str, lang: str, width: int = 1280) -> Page:
    context = browser.new_context(locale="en-US", viewport={"width": width, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(f"{origin}/planner/login?lang={lang}")
    page.fill("#user", "planner")
    page.fill("#password", PLANNER_PASSWORD)
    page.click("form.planner-form button[type=submit]")
    page.wait_for_load_state()
    return page


def figure(page: Page, step: str) -> int:
    return int(page.inner_text(f"#total-{step}").replace(",", ""))


def wrapped_headers(page: Page) -> list[str]:
    """Table headers taller than one line of their text (a header broken over lines)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('table.chart-data th')]
            .filter(th => th.offsetParent !== null)
            .filter(th => {
              const style = getComputedStyle(th);
              const line = parseFloat(style.lineHeight) || 1.6 * parseFloat(style.fontSize);
              const range = document.createRange();
              range.selectNodeContents(th);
              return range.getBoundingClientRect().height > 1.5 * line;
            })
            .map(th => th.textContent.trim())"""
    )
    return found


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_dashboard_reads_at_a_glance(
    browser: Browser, site: tuple[str, Seeded], lang: str
) -> None:
    origin, seeded = site
    page = planner_page(browser, origin, lang)
    page.goto(f"{origin}/planner/dashboard?lang={lang}")
    live = sum(seeded.pairings.values())
    # Live shoppers by default: the upload does not swamp them.
    assert figure(page, "view") == seeded.views
    assert figure(page, "submission") == seeded.submissions
    assert figure(page, "pairing") == live
    assert figure(page, "cta_click") == seeded.clicks
    upload_row = page.locator('tr[data-source="upload"] td[data-step="pairing"]')
    assert upload_row.inner_text().replace(",", "") == str(UPLOAD_ROWS)
    # One campaign selector on the page, not the bar's and the dashboard's.
    assert page.locator("select[name=campaign]").count() == 1
    # Days of the campaign's zone: the evenings at 23:30 Shanghai fall on their own day.
    panel_days = set(
        page.eval_on_selector_all(
            "#chart-funnel-days rect.day", "els => els.map(e => e.dataset.day)"
        )
    )
    assert panel_days == {day.isoformat() for day in seeded.days}
    assert "Asia/Shanghai" in page.inner_text(".zone-note")
    # Every table header on one line, in Chinese too; the tables in <details> are opened.
    for summary in page.locator("details summary").all():
        summary.click()
    assert wrapped_headers(page) == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{lang}.png"), full_page=True)
    # Filters combine and stay in the link: the upload alone, one celebrity.
    celebrity = seeded.pairings.most_common(1)[0][0]
    page.select_option("#source", "upload")
    page.select_option("#celebrity", celebrity)
    page.click(".filter-actions button")
    page.wait_for_load_state()
    assert "source=upload" in page.url and f"celebrity={celebrity}" in page.url
    assert figure(page, "pairing") == seeded.upload[celebrity]
    assert figure(page, "view") == 0  # an upload has no page views
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{lang}-upload.png"), full_page=True)
    page.context.close()


def test_the_dashboard_on_a_phone(browser: Browser, site: tuple[str, Seeded]) -> None:
    origin, seeded = site
    page = planner_page(browser, origin, "zh", width=390)
    page.goto(f"{origin}/planner/dashboard?lang=zh")
    assert figure(page, "view") == seeded.views
    assert wrapped_headers(page) == []
    page.screenshot(path=str(ARTIFACTS / "dashboard-zh-phone.png"), full_page=True)
    page.context.close()
