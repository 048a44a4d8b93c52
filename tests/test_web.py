"""The shopper page and the embed page: the flow, headers, form protection and languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from matcher.errors import ConfigError
from matcher.matching import Matcher
from web import create_app, security

HOST_ORIGINS = "https://shop.example, http://127.0.0.1:8123"


@pytest.fixture
def app(sample_matcher: Matcher, tmp_path: Path) -> Flask:
    return create_app(
        {"TESTING": True, "INSTANCE_PATH": str(tmp_path), "MATCHER_EMBED_ORIGINS": HOST_ORIGINS},
        matcher=sample_matcher,
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def token_from(page: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found, "the form carries a token"
    return found.group(1)


def post_form(client: FlaskClient, path: str = "/", **fields: object) -> tuple[int, str]:
    """Send the form at ``path``; a pairing's redirect is followed to the result page."""
    token = token_from(client.get(path).get_data(as_text=True))
    response = client.post(path, data={"token": token, **fields}, follow_redirects=True)
    return response.status_code, response.get_data(as_text=True)


def test_matcher_is_kept_in_extensions(app: Flask, sample_matcher: Matcher) -> None:
    assert app.extensions["matcher"] is sample_matcher


def test_healthz_reports_the_roster(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "celebrities": 7}


def test_form_shows_limit_picks_and_an_unticked_consent(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'maxlength="1000"' in page
    assert 'name="picks" value="woody"' in page
    consent = re.search(r'<input type="checkbox" id="consent"[^>]*>', page)
    assert consent and "checked" not in consent.group(0)
    assert '<label for="text">' in page and '<label for="consent">' in page


@pytest.mark.parametrize("path", ["/", "/embed"])
def test_posting_a_text_shows_the_best_celebrity_with_reasons(
    client: FlaskClient, sample_matcher: Matcher, path: str
) -> None:
    text = (
        "Slow mornings: a pot of oolong, a book of essays and ten minutes of breathing exercises."
    )
    expected = sample_matcher.match(text, 3)
    status, page = post_form(client, path, text=text, lang="en")
    assert status == 200
    heading = page.split('id="result-title">', 1)[1].split("</h2>", 1)[0]
    assert f'<span class="name">{expected[0].name}</span>' in heading
    assert f'data-celebrity-id="{expected[0].celebrity_id}"' in page
    assert f'data-percent="{round(expected[0].share * 100)}"' in page
    # Reasons are lines for the shopper, never the profile's briefing copy.
    reasons = page[page.index('<ul class="reasons">') : page.index("</ul>")]
    assert reasons.count("<li>") == len({r.facet for r in expected[0].reasons})
    for reason in expected[0].reasons:
        assert reason.quote not in page
    assert "<meter" not in page and "0%" not in page
    # Runners-up are named only when they come close, never with a figure.
    for runner_up in expected[1:]:
        shown = f'<li data-celebrity-id="{runner_up.celebrity_id}">' in page
        assert shown == (round(runner_up.share * 100) >= 12), runner_up


def test_the_sample_campaign_wears_its_seeded_brand(client: FlaskClient) -> None:
    english = client.get("/?lang=en").get_data(as_text=True)
    assert "Maison Aurelle · Lueur" in english and "Find your Lueur celebrity" in english
    assert "Seven celebrities, seven sides of one fragrance." in english
    assert "<legend>Scent families</legend>" in english
    chinese = client.get("/?lang=zh").get_data(as_text=True)
    assert "找到你的 Lueur 明星" in chinese and "<legend>香调</legend>" in chinese
    assert "Seven celebrities" not in chinese


def test_quick_picks_alone_are_enough_to_match(
    client: FlaskClient, sample_matcher: Matcher
) -> None:
    expected = sample_matcher.match("woody, calm", 3)[0]
    status, page = post_form(client, picks=["woody", "calm"], lang="en")
    assert status == 200
    assert f'data-celebrity-id="{expected.celebrity_id}"' in page


def test_unknown_quick_picks_are_ignored(client: FlaskClient) -> None:
    status, page = post_form(client, picks=["<script>"], lang="en")
    assert status == 400 and 'role="alert"' in page


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"text": "   "}, id="blank"),
        pytest.param({}, id="missing"),
        pytest.param({"text": "x" * 1001}, id="over-long"),
    ],
)
def test_bad_text_is_a_400_that_keeps_the_form(client: FlaskClient, fields: dict[str, str]) -> None:
    status, page = post_form(client, lang="en", **fields)
    assert status == 400
    assert 'role="alert"' in page and 'aria-invalid="true"' in page
    assert "<form" in page


def test_shopper_text_is_escaped(client: FlaskClient) -> None:
    # Too long, so the page shows the text again in the box for the shopper to shorten.
    _, page = post_form(client, text="<script>alert(1)</script> I like tea" + " tea" * 300)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_every_page_forbids_framing_and_inline_script(client: FlaskClient) -> None:
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in response.get_data(as_text=True)  # only external scripts


def test_embed_may_be_framed_by_exactly_the_listed_origins(client: FlaskClient) -> None:
    response = client.get("/embed")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors https://shop.example http://127.0.0.1:8123" in csp
    assert "X-Frame-Options" not in response.headers
    page = response.get_data(as_text=True)
    assert 'data-parent-origins="https://shop.example http://127.0.0.1:8123"' in page


def test_embed_without_listed_origins_cannot_be_framed(
    sample_matcher: Matcher, tmp_path: Path
) -> None:
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path)}, matcher=sample_matcher)
    csp = app.test_client().get("/embed").headers["Content-Security-Policy"]
    assert csp.endswith("frame-ancestors 'none'")


@pytest.mark.parametrize(
    "origins",
    [pytest.param("shop.example", id="no-scheme"), pytest.param("ftp://shop.example", id="ftp"),
     pytest.param("https://shop.example/path", id="with-path")],
)  # fmt: skip
def test_bad_embed_origin_stops_the_app_with_a_clear_error(
    sample_matcher: Matcher, tmp_path: Path, origins: str
) -> None:
    with pytest.raises(ConfigError, match="embed origin"):
        create_app(
            {"INSTANCE_PATH": str(tmp_path), "MATCHER_EMBED_ORIGINS": origins},
            matcher=sample_matcher,
        )


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param({"Origin": "https://evil.example"}, "cross_site_post", id="foreign-origin"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, "cross_site_post", id="cross-site-fetch"),
        pytest.param({"Sec-Fetch-Site": "same-site"}, "cross_site_post", id="same-site-fetch"),
    ],
)
def test_cross_site_posts_are_refused(
    client: FlaskClient, headers: dict[str, str], code: str
) -> None:
    token = token_from(client.get("/embed").get_data(as_text=True))
    response = client.post("/embed", data={"token": token, "text": "tea"}, headers=headers)
    assert response.status_code == 403
    assert "This form can only be sent from its own page." in response.get_data(as_text=True)


def test_same_origin_post_with_browser_headers_is_accepted(client: FlaskClient) -> None:
    token = token_from(client.get("/embed").get_data(as_text=True))
    response = client.post(
        "/embed",
        data={"token": token, "text": "tea and books"},
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303  # to the result page


@pytest.mark.parametrize(
    "token",
    [pytest.param("", id="missing"), pytest.param("forged.token.value", id="forged")],
)
def test_posts_without_a_valid_token_are_refused(client: FlaskClient, token: str) -> None:
    response = client.post("/", data={"token": token, "text": "tea"})
    assert response.status_code == 403
    assert "could not be verified" in response.get_data(as_text=True)


def test_expired_tokens_are_refused(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    token = token_from(client.get("/").get_data(as_text=True))
    monkeypatch.setattr(security, "TOKEN_MAX_AGE", -1)
    response = client.post("/", data={"token": token, "text": "tea"})
    assert response.status_code == 403
    assert "expired" in response.get_data(as_text=True)


def test_workers_of_one_instance_share_a_secret(sample_matcher: Matcher, tmp_path: Path) -> None:
    first = create_app({"INSTANCE_PATH": str(tmp_path)}, matcher=sample_matcher)
    second = create_app({"INSTANCE_PATH": str(tmp_path)}, matcher=sample_matcher)
    assert first.secret_key == second.secret_key and len(str(first.secret_key)) == 64
    token = token_from(first.test_client().get("/").get_data(as_text=True))
    response = second.test_client().post("/", data={"token": token, "text": "tea"})
    assert response.status_code == 200


def test_language_follows_the_browser_and_the_switch(
    client: FlaskClient, sample_matcher: Matcher
) -> None:
    chinese = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert '<html lang="zh-CN">' in chinese.get_data(as_text=True)
    english = client.get("/?lang=en", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in english.get_data(as_text=True)
    text = "每个周末都背上包去山里走两天，手机关机，晚上看星星。"
    best = sample_matcher.match(text, 3)[0]
    profile = next(p for p in sample_matcher.index.profiles if p.id == best.celebrity_id)
    _, page = post_form(client, text=text, lang="zh")
    assert f'<span class="name">{profile.name_zh}</span>' in page
    assert f'<span class="other-name" lang="en">{profile.name}</span>' in page
    assert (profile.tagline_zh or "") in page
    # Chinese punctuation and the Chinese name in the reasons.
    reasons = page[page.index('<ul class="reasons">') : page.index("</ul>")]
    assert profile.name_zh in reasons and profile.name not in reasons
    assert not re.search(r"[A-Za-z,.:;!?]", re.sub(r"<[^>]+>", "", reasons)), reasons


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/no-such-page", 404, id="not-found"),
        pytest.param("/healthz", 405, id="wrong-method"),
    ],
)
def test_page_errors_are_friendly_pages(client: FlaskClient, path: str, status: int) -> None:
    response = client.post(path) if status == 405 else client.get(path)
    assert response.status_code == status
    body = response.get_data(as_text=True)
    assert response.mimetype == "text/html" and 'role="alert"' in body
    assert "Traceback" not in body
    assert "Maison Aurelle · Lueur" in body  # the campaign's own header


def test_error_pages_are_in_the_page_language(client: FlaskClient) -> None:
    body = client.get("/no-such-page?lang=zh").get_data(as_text=True)
    assert '<html lang="zh-CN">' in body and "此页面不存在。" in body
    assert "does not exist" not in body and "返回首页" in body


def test_a_result_reloads_without_sending_the_form_again(client: FlaskClient) -> None:
    token = token_from(client.get("/").get_data(as_text=True))
    response = client.post("/", data={"token": token, "text": "tea and books", "lang": "en"})
    assert response.status_code == 303
    result = response.headers["Location"]
    assert client.get(result).status_code == client.get(result).status_code == 200
