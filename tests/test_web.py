"""The shopper form served by the app factory, with the real matcher."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from matcher.matching import Matcher
from web import create_app


@pytest.fixture
def app(sample_matcher: Matcher) -> Flask:
    return create_app({"TESTING": True}, matcher=sample_matcher)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_matcher_is_kept_in_extensions(app: Flask, sample_matcher: Matcher) -> None:
    assert app.extensions["matcher"] is sample_matcher


def test_healthz_reports_the_roster(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "celebrities": 7}


def test_form_shows_the_length_limit(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'maxlength="1000"' in page and "<form" in page


def test_posting_a_text_shows_the_best_celebrity_and_reasons(
    client: FlaskClient, sample_matcher: Matcher
) -> None:
    text = (
        "Slow mornings: a pot of oolong, a book of essays and ten minutes of breathing exercises."
    )
    expected = sample_matcher.match(text, 3)[0]
    page = client.post("/", data={"text": text}).get_data(as_text=True)
    assert f"{expected.name} · {expected.name_zh}" in page
    assert expected.reasons[0].quote in page


@pytest.mark.parametrize(
    "data",
    [pytest.param({"text": "   "}, id="blank"), pytest.param({}, id="missing"),
     pytest.param({"text": "x" * 1001}, id="over-long")],
)  # fmt: skip
def test_bad_text_is_a_400_with_the_reason(client: FlaskClient, data: dict[str, str]) -> None:
    response = client.post("/", data=data)
    assert response.status_code == 400
    assert 'role="alert"' in response.get_data(as_text=True)


def test_shopper_text_is_escaped(client: FlaskClient) -> None:
    page = client.post("/", data={"text": "<script>alert(1)</script> I like tea"}).get_data(
        as_text=True
    )
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
