"""Unsure answers on the web: the API says so, the form and the embed ask for more, nothing is stored.

Uses the hashing encoder on the tiny roster, so each verdict follows from the
words of the text; thresholds are set per test where scores decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from matcher.confidence import Thresholds
from matcher.index import build_index
from matcher.matching import Matcher
from matcher.profiles import load_profiles
from matcher.store import Database
from matcher.store.schema import PairingRow
from web import create_app

from .fakes import HashingEncoder
from .test_web import post_form

OCEAN = "surfing and sailing at the beach, sea salt on my skin"
LIBRARY = "reading novels in the library with green tea and old paper"
ORIGIN = "https://shop.example"


def make_app(tmp_path: Path, roster_dir: Path, confidence: Thresholds | None = None) -> Flask:
    encoder = HashingEncoder(
        dimension=4096
    )  # wide enough that the tiny roster's words never collide
    index, _ = build_index(load_profiles(roster_dir), encoder)
    return create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "MATCHER_PROFILES": str(roster_dir),
            "MATCHER_EMBED_ORIGINS": ORIGIN,
        },
        matcher=Matcher(encoder, index, confidence=confidence),
    )


@pytest.fixture
def app(tmp_path: Path, roster_dir: Path) -> Iterator[Flask]:
    app = make_app(tmp_path, roster_dir)
    yield app
    app.extensions["matcher.db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def stored(app: Flask) -> int:
    db: Database = app.extensions["matcher.db"]
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(PairingRow)) or 0)


# -- the API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("asdfgh", "no_content", id="mash"),
        pytest.param("😀😀😀", "no_content", id="emoji"),
        pytest.param("???", "no_content", id="punctuation"),
        pytest.param("哈哈哈", "no_content", id="chinese-laughter"),
        pytest.param("test", "too_short", id="one-word"),
        pytest.param("velvet opera gloves", "weak", id="close-to-nobody"),
    ],
)
def test_api_answers_an_unsure_text_with_matches_but_no_pairing(
    app: Flask, client: FlaskClient, text: str, reason: str
) -> None:
    response = client.post("/api/v1/match", json={"text": text, "shopper_ref": "order-7"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["confident"] is False
    assert body["reason"] == reason
    assert body["hint"].strip()
    assert len(body["matches"]) == 3  # still there, for a client that wants to show them
    assert body["shopper_ref"] == "order-7"
    assert body["text_stored"] is False
    assert stored(app) == 0


def test_api_unsure_without_a_reference_makes_none(client: FlaskClient) -> None:
    body = client.post("/api/v1/match", json={"text": "asdfgh"}).get_json()
    assert body["shopper_ref"] is None


def test_api_confident_answer_is_stored_and_carries_no_hint(
    app: Flask, client: FlaskClient
) -> None:
    body = client.post("/api/v1/match", json={"text": OCEAN}).get_json()
    assert body["confident"] is True
    assert "reason" not in body and "hint" not in body
    assert body["matches"][0]["celebrity_id"] == "ocean"
    assert body["shopper_ref"].startswith("s-")
    assert stored(app) == 1


@pytest.mark.parametrize(
    ("request_lang", "header", "expected"),
    [
        pytest.param("zh", None, "再多说一点你喜欢什么吧。", id="lang-zh"),
        pytest.param("en", "zh-CN", "Tell us a little more about what you like.", id="lang-wins"),
        pytest.param(None, "zh-CN,zh;q=0.9", "再多说一点你喜欢什么吧。", id="accept-language"),
        pytest.param(None, None, "Tell us a little more about what you like.", id="english-default"),
    ],
)  # fmt: skip
def test_api_hint_is_translated(
    client: FlaskClient, request_lang: str | None, header: str | None, expected: str
) -> None:
    body: dict[str, object] = {"text": "hello"}
    if request_lang:
        body["lang"] = request_lang
    headers = {"Accept-Language": header} if header else {}
    answer = client.post("/api/v1/match", json=body, headers=headers).get_json()
    assert answer["reason"] == "too_short"
    assert answer["hint"] == expected


def test_api_batch_stores_only_the_confident_items(app: Flask, client: FlaskClient) -> None:
    items = [
        {"text": OCEAN, "shopper_ref": "a"},
        {"text": "???", "shopper_ref": "b"},
        {"text": LIBRARY},
        {"text": "  "},
    ]
    response = client.post("/api/v1/match/batch", json={"items": items, "lang": "zh"})
    assert response.status_code == 200
    body = response.get_json()
    first, unsure, third, blank = body["results"]
    assert (first["confident"], first["shopper_ref"]) == (True, "a")
    assert unsure["confident"] is False and unsure["reason"] == "no_content"
    assert unsure["shopper_ref"] == "b"
    assert re.search(r"[\u4e00-\u9fff]", unsure["hint"])
    assert len(unsure["matches"]) == 3
    assert third["confident"] is True and third["shopper_ref"].startswith("s-")
    assert set(blank) == {"shopper_ref", "error"}
    assert isinstance(body["batch_id"], int)
    assert stored(app) == 2


def test_api_batch_of_only_unsure_texts_stores_no_batch(app: Flask, client: FlaskClient) -> None:
    items = [{"text": "asdfgh"}, {"text": "。。。"}]
    body = client.post("/api/v1/match/batch", json={"items": items}).get_json()
    assert [r["confident"] for r in body["results"]] == [False, False]
    assert [r["shopper_ref"] for r in body["results"]] == [None, None]
    assert body["batch_id"] is None
    assert stored(app) == 0


def test_api_near_tie_by_the_matcher_margin(tmp_path: Path, roster_dir: Path) -> None:
    # A margin no lead can reach: every readable text is a near tie.
    app = make_app(tmp_path, roster_dir, Thresholds(floor=-1.0, margin=2.0))
    body = app.test_client().post("/api/v1/match", json={"text": OCEAN}).get_json()
    assert (body["confident"], body["reason"]) == (False, "near_tie")
    assert "more than one" in body["hint"]
    assert stored(app) == 0
    app.extensions["matcher.db"].dispose()


# -- the form and the embed ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/embed"])
def test_form_asks_for_more_and_keeps_the_text(app: Flask, client: FlaskClient, path: str) -> None:
    text = "<b>hi</b> 😀"
    status, page = post_form(client, path, text=text)
    assert status == 200
    assert 'id="result"' not in page
    assert "Your celebrity" not in page
    assert 'id="unsure"' in page and 'data-reason="too_short"' in page
    assert "Tell us a little more about what you like." in page
    # Escaped, in the box, ready to add to.
    assert ">&lt;b&gt;hi&lt;/b&gt; 😀</textarea>" in page
    assert "<b>hi</b>" not in page
    assert 'aria-describedby="text-limit unsure"' in page
    assert stored(app) == 0


def test_form_in_chinese_shows_the_chinese_hint(client: FlaskClient) -> None:
    status, page = post_form(client, "/?lang=zh", text="哈哈哈", lang="zh")
    assert status == 200
    assert "我们没看懂这段话" in page
    assert 'data-reason="no_content"' in page


def test_form_announces_a_confident_pairing(app: Flask, client: FlaskClient) -> None:
    status, page = post_form(client, "/", text=OCEAN)
    assert status == 200
    assert 'data-celebrity-id="ocean"' in page
    assert 'id="unsure"' not in page
    assert stored(app) == 1


def test_embed_unsure_page_has_no_pairing_for_the_script_to_post(client: FlaskClient) -> None:
    """embed.js posts ``matcher:paired`` only when ``#result`` exists, else ``matcher:unsure``."""
    status, page = post_form(client, "/embed", text="???")
    assert status == 200
    assert 'id="result"' not in page and "data-celebrity-id" not in page
    assert 'id="unsure"' in page and 'data-reason="no_content"' in page
    # No inline script: every <script> loads a file.
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []


def test_embed_script_sends_unsure_without_a_celebrity() -> None:
    script = (Path(__file__).resolve().parent.parent / "web" / "static" / "embed.js").read_text()
    unsure = script[script.index('type: "matcher:unsure"') :]
    unsure = unsure[: unsure.index("});")]
    assert "confident: false" in unsure
    assert "celebrity_id" not in unsure and "percent" not in unsure
    paired = script[script.index('type: "matcher:paired"') :]
    assert "confident: true" in paired[: paired.index("});")]


@pytest.mark.parametrize(
    ("lang", "title"),
    [pytest.param("en", "Tell us a little more", id="en"),
     pytest.param("zh", "再多说一点吧", id="zh")],
)  # fmt: skip
@pytest.mark.parametrize("path", ["/", "/embed"])
def test_an_unsure_answer_is_a_friendly_request_for_more(
    client: FlaskClient, path: str, lang: str, title: str
) -> None:
    """No redirect, no result page: the same form, the text in the box, a kind word above it."""
    token_page = client.get(f"{path}?lang={lang}").get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', token_page)
    assert token
    response = client.post(path, data={"token": token.group(1), "text": "hello", "lang": lang})
    assert response.status_code == 200 and "Location" not in response.headers
    page = response.get_data(as_text=True)
    unsure = page[page.index('id="unsure"') : page.index("</div>", page.index('id="unsure"'))]
    assert f'<p class="unsure-title">{title}</p>' in unsure
    assert ">hello</textarea>" in page
