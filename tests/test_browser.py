"""The shopper pages in a real browser, and the Chinese UI they are shown in.

The browser tests serve the real app (real models, real FAISS) with werkzeug
on a free port and drive Debian's chromium through Playwright: a host page on
another origin frames ``/embed`` and records its ``postMessage`` events, a
host on an origin the planner did not list is refused by ``frame-ancestors``,
and the main page works from the keyboard alone. Playwright's own browser
download is never used; ``scripts/test`` installs chromium, and without it
these tests fail rather than skip.

The translation tests check that the shipped ``messages.mo`` is the compiled
``messages.po``, that the catalog covers every message in the code, and that
Chinese pages come out in Chinese.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from matcher.matching import Matcher
from matcher.store.database import Database
from matcher.store.privacy import instance_copies
from web import create_app
from web.settings import DEFAULT_QUICK_PICKS

from .conftest import REPO

WEB = REPO / "web"
CATALOG = WEB / "translations" / "zh" / "LC_MESSAGES"
REFRESH = (
    "pybabel extract -F web/babel.cfg -k _l -o /tmp/messages.pot web && "
    "pybabel update -i /tmp/messages.pot -d web/translations -l zh -w 100, "
    "translate the new entries, then pybabel compile -d web/translations"
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
#: Upper bound for any single browser wait, in milliseconds: generous, because
#: the first pairing encodes the text with the real models.
WAIT_MS = 30_000
ARTIFACTS = REPO / "test-artifacts"

TEXT = "Slow mornings: a pot of oolong, a book of essays and ten minutes of breathing exercises."


# --- Translations ---------------------------------------------------------


def translated(catalog: Catalog) -> dict[str, object]:
    """The messages a catalog translates, as ``{msgid: (msgid, msgstr)}`` (header left out).

    A plural message is keyed by its singular, as the extractor names it, and
    holds its ids and strings as tuples; it counts only with every form filled.
    """
    found: dict[str, object] = {}
    for m in catalog:
        if not m.id or m.fuzzy:
            continue
        forms = m.string if isinstance(m.string, (tuple, list)) else (m.string,)
        if forms and all(forms):
            key = m.id if isinstance(m.id, str) else m.id[0]
            found[key] = (tuple(m.id) if isinstance(m.id, (tuple, list)) else m.id, tuple(forms))
    return found


def test_shipped_mo_is_the_compiled_po() -> None:
    with (CATALOG / "messages.po").open("rb") as po:
        catalog = read_po(po, locale="zh")
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    with (CATALOG / "messages.mo").open("rb") as mo:
        shipped = read_mo(mo)
    assert translated(shipped) == translated(read_mo(compiled)), f"recompile: {REFRESH}"


def test_every_message_in_the_code_is_translated() -> None:
    with (WEB / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {**DEFAULT_KEYWORDS, "_l": None}
    in_code = {
        message if isinstance(message, str) else message[0]
        for _, _, message, _, _ in extract_from_dir(str(WEB), method_map, options_map, keywords)
    }
    with (CATALOG / "messages.po").open("rb") as po:
        catalog = translated(read_po(po, locale="zh"))
    missing = sorted(in_code - set(catalog))
    assert not missing, f"untranslated: {missing}; refresh: {REFRESH}"


def test_default_quick_picks_are_translated() -> None:
    """``_form.html`` translates picks from data; ``translations/data_messages.py`` lists them."""
    with (CATALOG / "messages.po").open("rb") as po:
        catalog = translated(read_po(po, locale="zh"))
    picks = {pick for group in DEFAULT_QUICK_PICKS.values() for pick in group}
    assert picks <= set(catalog), sorted(picks - set(catalog))


def test_places_a_delete_reaches_are_translated(sqlite_database: Database, tmp_path: Path) -> None:
    """``planner/privacy.html`` names each place by its ``Copies.name``, translated."""
    places = {copy.name for copy in instance_copies(sqlite_database, tmp_path)}
    assert {"corrections", "batch files"} <= places
    with (CATALOG / "messages.po").open("rb") as po:
        catalog = translated(read_po(po, locale="zh"))
    assert places <= set(catalog), sorted(places - set(catalog))


@pytest.fixture(scope="module")
def app(sample_matcher: Matcher, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    instance = tmp_path_factory.mktemp("instance")
    return create_app({"TESTING": True, "INSTANCE_PATH": str(instance)}, matcher=sample_matcher)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/", {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}, id="accept-language"),
        pytest.param("/?lang=zh", {}, id="query"),
        pytest.param("/?lang=zh", {"Accept-Language": "en-US"}, id="query-beats-header"),
        pytest.param("/embed?lang=zh", {}, id="embed"),
    ],
)
def test_chinese_pages_are_in_chinese(
    client: FlaskClient, path: str, headers: dict[str, str]
) -> None:
    page = client.get(path, headers=headers).get_data(as_text=True)
    assert '<html lang="zh-CN">' in page
    assert "为我匹配明星" in page  # the submit button
    assert "心情" in page and "平静" in page  # a quick-pick legend and a pick
    assert '<input type="hidden" name="lang" value="zh">' in page
    assert "Find my celebrity" not in page


def test_english_stays_english_when_asked(client: FlaskClient) -> None:
    page = client.get("/?lang=en", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert '<html lang="en">' in page and "Find my celebrity" in page
    assert "为我匹配明星" not in page


def test_chinese_result_names_the_celebrity_in_chinese(
    client: FlaskClient, sample_matcher: Matcher
) -> None:
    form = client.get("/?lang=zh").get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', form)
    assert token is not None
    expected = sample_matcher.match(TEXT, 3)[0]
    page = client.post(
        "/", data={"text": TEXT, "lang": "zh", "token": token.group(1)}, follow_redirects=True
    )
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'<span class="name">{expected.name_zh}</span>' in html
    assert f"为什么是{expected.name_zh}" in html
    assert "你的 Lueur 缪斯" in html


# --- Servers ----------------------------------------------------------------


class QuietHandler(WSGIRequestHandler):
    """Keeps werkzeug's one line per request out of the test output."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextmanager
def serve(app: Callable[..., Any]) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1 at a free port in a thread; yield its origin."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name=f"serve-{server.port}")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the test server did not stop"


HOST_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Lueur microsite</title>
<style>body {{ margin: 0; font-family: sans-serif; }} iframe {{ display: block; width: 100%; border: 0; height: 1600px; }}</style>
</head>
<body>
<h1>Lueur · the microsite</h1>
<script>
  // What docs/embedding.md tells a planner to write: trust only the matcher's origin.
  // The frame starts taller than any page of the widget, so it must shrink to fit.
  window.__events = [];
  window.__unchecked = [];
  window.addEventListener("message", function (event) {{
    window.__unchecked.push(event.origin);
    var frame = document.getElementById("matcher");
    if (event.origin !== {app_origin} || event.source !== frame.contentWindow) {{ return; }}
    window.__events.push(event.data);
    if (event.data && event.data.type === "matcher:height") {{
      frame.style.height = event.data.height + "px";
    }}
  }});
</script>
<iframe id="matcher" src={embed_url} title="Find your Lueur celebrity"></iframe>
</body>
</html>
"""


@pytest.fixture(scope="module")
def sites(
    sample_matcher: Matcher, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The matcher, a listed microsite and an unlisted one, each on its own origin."""
    pages = tmp_path_factory.mktemp("host")
    # The hosts must know the app's origin and the app the listed host's, so
    # the hosts read their page at request time, written once the app is up.
    host_page = pages / "host.html"

    @Request.application
    def host(request: Request) -> Response:
        return Response(host_page.read_text(encoding="utf-8"), mimetype="text/html")

    with serve(host) as listed, serve(host) as unlisted:
        instance = tmp_path_factory.mktemp("browser-instance")
        app = create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(instance),
                # Two listed sites: the frame must talk to the one framing it.
                "MATCHER_EMBED_ORIGINS": f"https://shop.example, {listed}",
            },
            matcher=sample_matcher,
        )
        with serve(app) as origin:
            host_page.write_text(
                HOST_PAGE.format(
                    app_origin=json.dumps(origin), embed_url=json.dumps(f"{origin}/embed")
                ),
                encoding="utf-8",
            )
            yield {"app": origin, "listed": listed, "unlisted": unlisted}


# --- Browser ----------------------------------------------------------------


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


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-US", viewport={"width": 900, "height": 800})
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def events(page: Page, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(
        "kind => window.__events.filter(e => e && e.type === kind)", kind
    )
    return found


def test_listed_microsite_embeds_the_form_and_hears_the_pairing(
    page: Page, sites: dict[str, str], sample_matcher: Matcher
) -> None:
    expected = sample_matcher.match(TEXT, 3)[0]
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{sites['listed']}/")
    frame = page.frame_locator("#matcher")
    frame.locator("#text").fill(TEXT)
    frame.get_by_role("button", name="Find my celebrity").click()

    result = frame.locator("#result")
    expect(result).to_have_attribute("data-celebrity-id", expected.celebrity_id, timeout=WAIT_MS)
    expect(frame.locator("#result-title .name")).to_have_text(expected.name, timeout=WAIT_MS)

    page.wait_for_function(
        "() => window.__events.some(e => e && e.type === 'matcher:paired')", timeout=WAIT_MS
    )
    (paired,) = events(page, "matcher:paired")
    percent = int(result.get_attribute("data-percent") or "-1")
    assert paired == {
        "type": "matcher:paired",
        "version": 1,
        "confident": True,
        "celebrity_id": expected.celebrity_id,
        "percent": percent,
        "lang": "en",
    }
    heights = events(page, "matcher:height")
    assert heights and all(
        e["version"] == 1 and isinstance(e["height"], int) and e["height"] > 0 for e in heights
    )
    # The host sized the frame from the last height: as tall as the content, no more, no less.
    page.wait_for_function(
        """() => {
          const sizes = window.__events.filter(e => e && e.type === "matcher:height");
          return document.getElementById("matcher").offsetHeight === sizes[sizes.length - 1].height;
        }""",
        timeout=WAIT_MS,
    )
    content = frame.locator("body").evaluate("body => body.getBoundingClientRect().height")
    # Within the pixel the fractional layout height is rounded up to.
    assert 0 <= page.locator("#matcher").evaluate("frame => frame.clientHeight") - content < 1
    assert set(page.evaluate("() => window.__unchecked")) == {sites["app"]}
    assert not [line for line in console if "postMessage" in line], console

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "embed-result.png"), full_page=True)


def test_an_unsure_answer_tells_the_host_without_a_pairing(
    page: Page, sites: dict[str, str]
) -> None:
    page.goto(f"{sites['listed']}/")
    frame = page.frame_locator("#matcher")
    frame.locator("#text").fill("asdfgh")
    frame.get_by_role("button", name="Find my celebrity").click()

    expect(frame.locator("#unsure")).to_have_attribute("data-reason", "no_content", timeout=WAIT_MS)
    expect(frame.locator("#text")).to_have_value("asdfgh")
    expect(frame.locator("#text")).to_be_focused()
    page.wait_for_function(
        "() => window.__events.some(e => e && e.type === 'matcher:unsure')", timeout=WAIT_MS
    )
    assert events(page, "matcher:unsure") == [
        {
            "type": "matcher:unsure",
            "version": 1,
            "confident": False,
            "reason": "no_content",
            "lang": "en",
        }
    ]
    assert events(page, "matcher:paired") == []


def test_unlisted_microsite_is_refused(page: Page, sites: dict[str, str]) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{sites['unlisted']}/")
    (child,) = page.main_frame.child_frames
    # frame-ancestors: chromium swaps the page for its error page, so no form
    # and no script of ours runs in the frame.
    assert not child.url.startswith(sites["app"]), child.url
    assert child.locator("form").count() == 0
    assert page.frame_locator("#matcher").locator("#text").count() == 0
    assert any("frame-ancestors" in line for line in console), console
    # Nothing can arrive from a page that never ran; give it a moment to be sure.
    page.wait_for_timeout(1000)
    assert page.evaluate("() => window.__unchecked") == []
    assert page.evaluate("() => window.__events") == []


def test_main_page_works_from_the_keyboard_alone(
    page: Page, sites: dict[str, str], sample_matcher: Matcher
) -> None:
    expected = sample_matcher.match(TEXT, 3)[0]
    page.goto(f"{sites['app']}/")

    def tab_to(selector: str, limit: int = 40) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("s => document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"{limit} presses of Tab never reached {selector}")

    tab_to("textarea#text")
    page.keyboard.type(TEXT)
    tab_to("button[type=submit]")
    with page.expect_navigation(timeout=WAIT_MS):
        page.keyboard.press("Enter")

    result = page.locator("#result")
    expect(result).to_be_visible(timeout=WAIT_MS)
    expect(result).to_be_focused(timeout=WAIT_MS)
    assert result.get_attribute("data-celebrity-id") == expected.celebrity_id
    # The result has its own page: the call to action is the next stop from the keyboard.
    assert "/r/" in page.url
    tab_to("a.cta")


@pytest.mark.parametrize(
    ("lang", "locale", "name"),
    [pytest.param("en", "en-US", "sample-lueur-en-phone.png", id="en"),
     pytest.param("zh", "zh-CN", "sample-lueur-zh-phone.png", id="zh")],
)  # fmt: skip
def test_the_sample_result_on_a_phone(
    browser: Browser, sites: dict[str, str], sample_matcher: Matcher, lang: str, locale: str,
    name: str,
) -> None:  # fmt: skip
    expected = sample_matcher.match(TEXT, 3)[0]
    context = browser.new_context(
        locale=locale, viewport={"width": 390, "height": 844}, device_scale_factor=2,
        is_mobile=True,
    )  # fmt: skip
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        page.goto(f"{sites['app']}/?lang={lang}")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / name.replace("-phone", "-phone-form")))
        page.locator("#text").fill(TEXT)
        with page.expect_navigation(timeout=WAIT_MS):
            page.locator("button[type=submit]").click()
        expect(page.locator("#result")).to_have_attribute(
            "data-celebrity-id", expected.celebrity_id, timeout=WAIT_MS
        )
        box = page.locator("#result-title").bounding_box()
        assert box is not None and box["y"] + box["height"] <= 844
        page.screenshot(path=str(ARTIFACTS / name))
    finally:
        context.close()


def test_a_refused_text_sends_focus_back_to_the_text_box(page: Page, sites: dict[str, str]) -> None:
    page.goto(f"{sites['app']}/")
    with page.expect_navigation(timeout=WAIT_MS):
        page.get_by_role("button", name="Find my celebrity").click()
    expect(page.locator("#form-error")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#text")).to_be_focused(timeout=WAIT_MS)
