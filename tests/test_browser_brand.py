"""A second brand in a real browser: a watch campaign, "acme", branded through the planner page.

Debian's chromium through Playwright against the real app (real model, real
FAISS, SQLite) served by werkzeug on a free port: a planner signs in, sets the
campaign's words, colours, fonts, logo, portraits and links on the branding
page and saves; shoppers then see that brand in English and Chinese, on a
desktop and on a phone (the result above the fold at 390x844), reopen and
share their result, follow a call to action, and use the embed framed by a
microsite on another origin. Screenshots go to ``test-artifacts/brand-*.png``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFilter
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import select
from werkzeug.wrappers import Request, Response

from matcher.matching import Matcher
from matcher.store import CampaignSettings, create_campaign
from matcher.store.schema import CampaignEventRow, PairingRow

from .conftest import PLANNER_PASSWORD, make_app, write_roster
from .test_branding import ACME_ROSTER, DIVER
from .test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, WAIT_MS, serve

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
LINKS = {
    "iris": "https://acme.example/steel",
    "marco": "https://acme.example/diver",
    "lena": "https://acme.example/gold",
}
DIALS = {
    "iris": ("#e9e6df", "#2b2b2b"),
    "marco": ("#0b2b3a", "#d8e6ea"),
    "lena": ("#20160f", "#d9b45a"),
}

HOST_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>ACME · 腕表</title>
<style>body {{ margin: 0; font-family: sans-serif; background: #eee; }}
header {{ padding: 1rem; background: #0b3d2e; color: #fff; }}
iframe {{ display: block; width: 100%; max-width: 40rem; margin: 0 auto; border: 0; height: 900px; background: #fff; }}</style>
</head><body>
<header>ACME Horlogerie · microsite</header>
<script>
  window.__events = [];
  window.addEventListener("message", function (event) {{
    var frame = document.getElementById("matcher");
    if (event.origin !== {app_origin} || event.source !== frame.contentWindow) {{ return; }}
    window.__events.push(event.data);
    if (event.data && event.data.type === "matcher:height") {{
      frame.style.height = event.data.height + "px";
    }}
  }});
</script>
<iframe id="matcher" src={embed_url} title="ACME"></iframe>
</body></html>
"""


def dial(path: Path, face: str, ink: str) -> Path:
    """A watch dial drawn as a portrait: a gradient, a case, markers and hands."""
    size = 900
    image = Image.new("RGB", (size, size), face)
    draw = ImageDraw.Draw(image)
    top = Image.new("RGB", (size, size), "#ffffff")
    image = Image.blend(image, top, 0.0)
    for y in range(size):
        shade = int(40 * y / size)
        draw.line([(0, y), (size, y)], fill=_darken(face, shade))
    centre, radius = size // 2, 300
    glow = Image.new("L", (size, size), 0)
    ImageDraw.Draw(glow).ellipse(
        [centre - radius - 40, centre - radius - 40, centre + radius + 40, centre + radius + 40],
        fill=120,
    )
    image.paste(
        Image.new("RGB", (size, size), "#000000"), mask=glow.filter(ImageFilter.GaussianBlur(40))
    )
    draw = ImageDraw.Draw(image)
    draw.ellipse(
        [centre - radius - 18, centre - radius - 18, centre + radius + 18, centre + radius + 18],
        fill=ink,
    )
    draw.ellipse([centre - radius, centre - radius, centre + radius, centre + radius], fill=face)
    for hour in range(12):
        angle = math.radians(hour * 30)
        inner, outer = radius - 60, radius - 20
        draw.line(
            [
                (centre + inner * math.sin(angle), centre - inner * math.cos(angle)),
                (centre + outer * math.sin(angle), centre - outer * math.cos(angle)),
            ],
            fill=ink,
            width=12 if hour % 3 == 0 else 6,
        )
    for length, angle, width in ((170, 300, 14), (240, 60, 9)):
        a = math.radians(angle)
        draw.line(
            [(centre, centre), (centre + length * math.sin(a), centre - length * math.cos(a))],
            fill=ink,
            width=width,
        )
    draw.ellipse([centre - 16, centre - 16, centre + 16, centre + 16], fill=ink)
    image.save(path, "PNG")
    return path


def _darken(colour: str, amount: int) -> tuple[int, int, int]:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return (max(r - amount, 0), max(g - amount, 0), max(b - amount, 0))


def logo(path: Path) -> Path:
    """A wordmark: letter-spaced capitals on a transparent ground."""
    from PIL import ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", 64)
    image = Image.new("RGBA", (520, 110), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    x = 10
    for letter in "ACME":
        draw.text((x, 18), letter, font=font, fill="#0b3d2e")
        x += 120
    image.save(path, "PNG")
    return path


@pytest.fixture(scope="module")
def site(
    sample_matcher: Matcher, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The app with the acme campaign (unbranded yet), and a microsite on another origin."""
    tmp = tmp_path_factory.mktemp("brand-site")
    roster = write_roster(tmp / "acme", ACME_ROSTER)
    host_page = tmp / "host.html"

    @Request.application
    def host(request: Request) -> Response:
        return Response(host_page.read_text(encoding="utf-8"), mimetype="text/html")

    with serve(host) as microsite:
        app = make_app(tmp, sample_matcher)
        db = app.extensions["matcher.db"]
        create_campaign(
            db,
            CampaignSettings(
                slug="acme",
                name="ACME autumn",
                brand="ACME",
                profiles_dir=str(roster),
                embed_origins=[microsite],
                store_text=True,
            ),
        )
        with serve(app) as origin:
            host_page.write_text(
                HOST_PAGE.format(
                    app_origin=json.dumps(origin),
                    embed_url=json.dumps(f"{origin}/c/acme/embed?lang=zh"),
                ),
                encoding="utf-8",
            )
            yield {"app": origin, "host": microsite, "db": db, "tmp": tmp}
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


def new_context(
    browser: Browser, viewport: dict[str, int], locale: str = "en-US", **extra: Any
) -> BrowserContext:
    context = browser.new_context(locale=locale, viewport=viewport, **extra)
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    # The brand's own site is not on this machine: answer its links here.
    context.route(
        "https://acme.example/**",
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<h1>ACME shop</h1>"
        ),
    )
    return context


def shoot(page: Page, name: str, *, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


@pytest.fixture(scope="module")
def branded(browser: Browser, site: dict[str, Any]) -> dict[str, Any]:
    """The planner brands acme on the branding page, in the browser, and saves."""
    tmp: Path = site["tmp"]
    context = new_context(browser, DESKTOP)
    page = context.new_page()
    try:
        page.goto(f"{site['app']}/planner/login")
        page.locator("#user").fill("planner")
        page.locator("#password").fill(PLANNER_PASSWORD)
        with page.expect_navigation():
            page.locator("form button[type=submit]").last.click()
        page.goto(f"{site['app']}/planner/branding?campaign=acme&lang=en")
        expect(page.get_by_role("heading", name="Branding of ACME autumn")).to_be_visible()
        fields = {
            "brand_name": "ACME Horlogerie",
            "colours-ink": "#14201b",
            "colours-paper": "#f6f3ec",
            "colours-accent": "#0b3d2e",
            "copy-en-headline": "Which ACME watch keeps your time?",
            "copy-en-intro": "Three watches, three ways to wear time. Tell us how you spend your days and we will find the one made for your wrist.",
            "copy-en-result_heading": "Your ACME watch",
            "copy-en-cta_label": "Book a private fitting",
            "copy-en-share_text": "My ACME watch",
            "copy-en-button": "Find my watch",
            "copy-en-quick_picks": "Occasions: diving, the office, a gala night, travel",
            "copy-zh-headline": "哪一款 ACME 腕表属于你？",
            "copy-zh-intro": "三款腕表，三种佩戴时间的方式。说说你如何度过每一天，我们为你找到最合适的那一枚。",
            "copy-zh-result_heading": "你的 ACME 腕表",
            "copy-zh-cta_label": "预约私享试戴",
            "copy-zh-share_text": "我的 ACME 腕表",
            "copy-zh-button": "为我挑选腕表",
            "copy-zh-quick_picks": "场合：潜水、办公、晚宴、旅行",
            "facet_labels-craft-en": "watchmaking",
            "facet_labels-craft-zh": "制表工艺",
        }
        for field, value in fields.items():
            page.locator(f"#{field}").fill(value)
        page.locator("#heading_font").select_option("didone")
        page.locator("#logo").set_input_files(str(logo(tmp / "logo.png")))
        for celebrity, (face, ink) in DIALS.items():
            page.locator(f"#celebrity-{celebrity} summary").click()
            page.locator(f"#portrait-{celebrity}").set_input_files(
                str(dial(tmp / f"{celebrity}.png", face, ink))
            )
            page.locator(f"#celebrities-{celebrity}-cta_url").fill(LINKS[celebrity])
        page.locator("#celebrities-marco-display_name-zh").fill("马可·斯通")
        page.locator("#celebrities-marco-lines-audience-en").fill(
            "Marco dives where you dive: open water, early light."
        )
        page.locator("#celebrities-marco-lines-audience-zh").fill(
            "马可和你潜在同一片海，迎着清晨的光。"
        )
        page.locator("#celebrities-marco-lines-craft-zh").fill("每一枚潜水表都经过水压测试。")
        with page.expect_navigation():
            page.get_by_role("button", name="Save the branding").click()
        expect(page.get_by_role("status")).to_contain_text("Branding saved")
        shoot(page, "brand-acme-planner.png", full_page=False)
        return site
    finally:
        context.close()


def pair_in(page: Page, text: str, button: str) -> None:
    page.locator("#text").fill(text)
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()
    expect(page.locator("#result")).to_be_visible()


@pytest.mark.parametrize(
    ("lang", "headline", "button", "name"),
    [
        pytest.param(
            "en", "Which ACME watch keeps your time?", "Find my watch", "Marco Stone", id="en"
        ),
        pytest.param("zh", "哪一款 ACME 腕表属于你？", "为我挑选腕表", "马可·斯通", id="zh"),
    ],
)
def test_the_brand_on_a_desktop_in_both_languages(
    browser: Browser, branded: dict[str, Any], lang: str, headline: str, button: str, name: str
) -> None:
    context = new_context(browser, DESKTOP, locale="zh-CN" if lang == "zh" else "en-US")
    page = context.new_page()
    try:
        page.goto(f"{branded['app']}/c/acme/?lang={lang}")
        expect(page.locator("h1")).to_have_text(headline)
        logo_img = page.locator("header.site img.logo")
        expect(logo_img).to_have_attribute("alt", "ACME Horlogerie")
        assert logo_img.evaluate("img => img.naturalWidth") > 0
        send = page.get_by_role("button", name=button)
        assert send.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(11, 61, 46)"
        assert "Didot" in page.locator("h1").evaluate("h => getComputedStyle(h).fontFamily")
        assert "Maison Aurelle" not in page.content() and "Lueur" not in page.content()
        shoot(page, f"brand-acme-{lang}-desktop-form.png")
        pair_in(page, DIVER, button)
        result = page.locator("#result")
        expect(result).to_have_attribute("data-celebrity-id", "marco")
        expect(page.locator("#result-title .name")).to_have_text(name)
        portrait = page.locator(".result-hero .portrait img")
        assert portrait.evaluate("img => img.complete && img.naturalWidth") == 720
        reasons = page.locator("ul.reasons").inner_text()
        assert ("马可和你潜在同一片海" if lang == "zh" else "Marco dives where you dive") in reasons
        shoot(page, f"brand-acme-{lang}-desktop.png", full_page=True)
    finally:
        context.close()


def test_on_a_phone_the_result_comes_first(browser: Browser, branded: dict[str, Any]) -> None:
    context = new_context(
        browser, PHONE, locale="zh-CN", device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    try:
        page.goto(f"{branded['app']}/c/acme/")
        expect(page.locator("h1")).to_have_text("哪一款 ACME 腕表属于你？")
        shoot(page, "brand-acme-zh-phone-form.png")
        pair_in(page, DIVER, "为我挑选腕表")
        # Above the fold: the portrait, the name and the call to action, without scrolling.
        assert page.evaluate("() => window.scrollY") == 0
        for selector in ("#result-title", ".result-hero .portrait", "a.cta"):
            box = page.locator(selector).bounding_box()
            assert box is not None, selector
            assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], (selector, box)
        result = page.locator("#result").bounding_box()
        assert result is not None and result["y"] < PHONE["height"] / 4, result
        # Nothing wider than the phone.
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        shoot(page, "brand-acme-zh-phone.png")
        shoot(page, "brand-acme-zh-phone-full.png", full_page=True)
    finally:
        context.close()


def test_the_share_link_reopens_the_result_without_the_shopper(
    browser: Browser, branded: dict[str, Any]
) -> None:
    context = new_context(browser, PHONE, locale="en-US", device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(f"{branded['app']}/c/acme/?lang=en")
        secret = DIVER + " code 7731"
        pair_in(page, secret, "Find my watch")
        assert re.search(r"/c/acme/r/[\w-]{22}\?o=", page.url), page.url
        ref = page.locator(".reference code").inner_text()
        methods: list[str] = []
        page.on("request", lambda request: methods.append(request.method))
        page.reload()
        expect(page.locator("#result")).to_be_visible()
        assert "POST" not in methods, "a reload never sends the form again"
        share = page.locator("a.share-link").get_attribute("href")
        assert share and "?o=" not in share
    finally:
        context.close()
    friend = new_context(browser, PHONE, locale="en-US", device_scale_factor=2, is_mobile=True)
    page = friend.new_page()
    try:
        page.goto(share)
        expect(page.locator("#result-title .name")).to_have_text("Marco Stone")
        html = page.content()
        assert "7731" not in html and ref not in html and "Your reference" not in html
        assert page.locator('meta[property="og:image"]').get_attribute("content", timeout=WAIT_MS)
        shoot(page, "brand-acme-en-phone-shared.png")
        # The call to action leads to the stored link (redirects are followed by the
        # browser itself, so the hop is checked here rather than by routing it).
        href = page.locator("a.cta").get_attribute("href")
        assert href and href.startswith("/c/acme/go/marco?")
        hop = page.request.get(f"{branded['app']}{href}", max_redirects=0)
        assert hop.status == 302 and hop.headers["location"] == LINKS["marco"]
    finally:
        friend.close()
    with branded["db"].read() as session:
        clicks = session.scalars(
            select(CampaignEventRow.count).where(CampaignEventRow.kind == "cta_click")
        ).all()
    assert sum(clicks) >= 1


def test_the_embed_on_a_foreign_host_is_branded_and_cookie_free(
    browser: Browser, branded: dict[str, Any]
) -> None:
    context = new_context(browser, {"width": 800, "height": 1000}, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(f"{branded['host']}/")
        frame = page.frame_locator("#matcher")
        expect(frame.get_by_role("button", name="为我挑选腕表")).to_be_visible()
        frame.locator("#text").fill("asdfgh")
        frame.get_by_role("button", name="为我挑选腕表").click()
        expect(frame.locator("#unsure")).to_contain_text("再多说一点吧")
        expect(frame.locator("#text")).to_have_value("asdfgh")
        shoot(page, "brand-acme-zh-embed-unsure.png")
        frame.locator("#text").fill(DIVER)
        frame.get_by_role("button", name="为我挑选腕表").click()
        expect(frame.locator("#result")).to_have_attribute("data-celebrity-id", "marco")
        page.wait_for_function(
            "() => window.__events.some(e => e && e.type === 'matcher:paired')", timeout=WAIT_MS
        )
        paired = [
            e for e in page.evaluate("() => window.__events") if e.get("type") == "matcher:paired"
        ]
        assert paired[-1]["celebrity_id"] == "marco" and paired[-1]["lang"] == "zh-CN"
        cta = frame.locator("a.cta")
        assert cta.get_attribute("target") == "_blank"
        assert context.cookies() == [], "the embed sets no cookie"
        shoot(page, "brand-acme-zh-embed.png", full_page=True)
    finally:
        context.close()
    with branded["db"].read() as session:
        sources = set(session.scalars(select(PairingRow.source)))
    assert "embed" in sources
