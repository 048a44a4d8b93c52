"""Planner login, sessions and form tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from werkzeug.security import generate_password_hash

from matcher.matching import Matcher
from matcher.store import list_campaigns
from matcher.store.rosters import history
from web.campaigns import database

from ..conftest import SAMPLE_PROFILES
from .conftest import (
    PASSWORD,
    SHOPPER_TEXTS,
    campaign,
    days_ago,
    login,
    make_app,
    move_to,
    new_campaign_form,
    page_token,
    pair,
    post,
    public_token,
    stored_refs,
    token,
)

# -- login ------------------------------------------------------------------------------

PAGES = [
    pytest.param("/planner/", id="roster"),
    pytest.param("/planner/try", id="try"),
    pytest.param("/planner/batches", id="batches"),
    pytest.param("/planner/batches/abc123", id="job"),
    pytest.param("/planner/batches/abc123/pairings.csv", id="download"),
    pytest.param("/planner/dashboard", id="dashboard"),
    pytest.param("/planner/settings", id="settings"),
    pytest.param("/planner/embed", id="snippet"),
    pytest.param("/planner/campaigns", id="campaigns"),
    pytest.param("/planner/privacy", id="privacy"),
    pytest.param("/planner/pairings.csv", id="export"),
]

POSTS = [
    pytest.param("/planner/logout", {}, id="logout"),
    pytest.param("/planner/try", {"text": "I like tea"}, id="try"),
    pytest.param(
        "/planner/corrections",
        {"text": "I like tea", "right": "chen-an", "wrong": "xu-mo", "confirm": "yes"},
        id="correct",
    ),
    pytest.param("/planner/refresh", {}, id="refresh"),
    pytest.param("/planner/batches", {"top_k": "3"}, id="batches"),
    pytest.param(
        "/planner/settings",
        {"name": "Taken over", "brand": "Evil", "embed_origins": "https://shop.example",
         "moods": "calm", "scents": "woody", "consent_text": "x", "consent_version": "9",
         "retention_days": "1"},
        id="settings",
    ),
    pytest.param(
        "/planner/campaigns",
        {**new_campaign_form(SAMPLE_PROFILES), "slug": "sneaky"},
        id="new-campaign",
    ),
    pytest.param("/planner/privacy", {"action": "confirm-delete", "ref": "kept"}, id="delete"),
    pytest.param("/planner/privacy", {"action": "purge"}, id="purge"),
]  # fmt: skip


def assert_nothing_changed(app: Flask) -> None:
    """What the POSTS above would change, unchanged."""
    assert [c.slug for c in list_campaigns(database(app))] == ["default"]
    default = campaign(app)
    assert (default.name, default.embed_origins, default.retention_days) == (
        "Lueur launch", [], 180
    )  # fmt: skip
    assert stored_refs(app) == {"kept": 1}
    assert not (Path(app.config["MATCHER_PROFILES"]) / "corrections.jsonl").exists()
    assert [v.number for v in history(database(app), default.id)] == [1], "nothing published"


@pytest.mark.parametrize("path", PAGES)
def test_every_planner_page_needs_a_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/planner/login?next=")
    assert path in response.headers["Location"]


@pytest.mark.parametrize(("path", "data"), POSTS)
def test_every_planner_post_needs_a_login(
    app: Flask, client: FlaskClient, path: str, data: dict[str, str]
) -> None:
    pair(client, SHOPPER_TEXTS[0], ref="kept")
    move_to(app, "kept", days_ago(400))  # a purge would delete it
    response = post(client, path, data)
    assert response.status_code == 302
    assert response.headers["Location"] == "/planner/login"
    assert_nothing_changed(app)


@pytest.mark.parametrize(
    "path",
    [pytest.param("/planner/login", id="login"), pytest.param("/planner/", id="roster"),
     pytest.param("/planner/settings", id="settings")],
)  # fmt: skip
@pytest.mark.parametrize("password", [pytest.param(None, id="unset"), pytest.param("", id="empty")])
def test_planner_is_off_without_a_password(
    tmp_path: Path, sample_matcher: Matcher, path: str, password: str | None
) -> None:
    app = make_app(tmp_path, sample_matcher, MATCHER_PLANNER_PASSWORD=password)
    response = app.test_client().get(path)
    assert response.status_code == 503
    assert "set MATCHER_PLANNER_PASSWORD to turn it on" in response.get_data(as_text=True)


def test_login_goes_on_to_the_page_asked_for_and_logout_ends_it(client: FlaskClient) -> None:
    assert client.get("/planner/settings").status_code == 302
    response = client.post(
        "/planner/login",
        data={
            "token": token(client.application),  # type: ignore[arg-type]
            "user": "planner",
            "password": PASSWORD,
            "next": "/planner/settings",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/planner/settings"
    page = client.get("/planner/settings")
    assert page.status_code == 200
    assert "Logged in as planner" in page.get_data(as_text=True)

    response = post(client, "/planner/logout", {})
    assert response.status_code == 303
    assert client.get("/planner/settings").status_code == 302


@pytest.mark.parametrize(
    ("user", "password"),
    [pytest.param("planner", "wrong", id="wrong-password"),
     pytest.param("someone", PASSWORD, id="wrong-user"),
     pytest.param("planner", "", id="blank-password"),
     pytest.param("planner", PASSWORD.upper(), id="password-case"),
     pytest.param("planner", PASSWORD + " ", id="password-trailing-space"),
     pytest.param("", "", id="blank")],
)  # fmt: skip
def test_wrong_credentials_are_refused(client: FlaskClient, user: str, password: str) -> None:
    response = login(client, user, password)
    assert response.status_code == 403
    assert "do not match" in response.get_data(as_text=True)
    assert client.get("/planner/").status_code == 302


@pytest.mark.parametrize("method", ["scrypt", "pbkdf2:sha256"], ids=["scrypt", "pbkdf2"])
def test_a_hashed_password_works(tmp_path: Path, sample_matcher: Matcher, method: str) -> None:
    hashed = generate_password_hash("correct horse", method=method)
    app = make_app(tmp_path, sample_matcher, MATCHER_PLANNER_PASSWORD=hashed)
    client = app.test_client()
    assert login(client, password=hashed).status_code == 403, "the hash itself is not a password"
    assert login(client, password="correct horse").status_code == 303
    assert client.get("/planner/").status_code == 200


@pytest.mark.parametrize(
    "target",
    [pytest.param("https://evil.example/planner/", id="absolute-url"),
     pytest.param("//evil.example/planner/", id="protocol-relative"),
     pytest.param("/planner//evil.example", id="double-slash"),
     pytest.param("/api/v1/match", id="outside-the-planner")],
)  # fmt: skip
def test_login_goes_on_only_to_planner_pages(client: FlaskClient, target: str) -> None:
    response = client.post(
        "/planner/login",
        data={
            "token": token(client.application),  # type: ignore[arg-type]
            "user": "planner",
            "password": PASSWORD,
            "next": target,
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/planner/"


def test_changing_the_password_ends_existing_sessions(app: Flask, planner: FlaskClient) -> None:
    assert planner.get("/planner/").status_code == 200
    app.config["MATCHER_PLANNER_PASSWORD"] = "rotated"
    assert planner.get("/planner/").status_code == 302


# -- form tokens ------------------------------------------------------------------------


def foreign_token() -> str:
    return URLSafeTimedSerializer("another-secret", salt="matcher.form").dumps("x")


@pytest.mark.parametrize(("path", "data"), POSTS)
@pytest.mark.parametrize(
    "bad",
    [pytest.param({"token": None}, id="no-token"),
     pytest.param({"token": "forged"}, id="forged-token"),
     pytest.param({"token": "foreign"}, id="other-key-token"),
     pytest.param({"token": "public"}, id="public-form-token"),
     pytest.param({"token": "login"}, id="login-form-token"),
     pytest.param({"token": "other-session"}, id="other-sessions-token"),
     pytest.param({"origin": "https://evil.example"}, id="cross-site-origin")],
)  # fmt: skip
def test_every_planner_post_needs_a_valid_form_token(
    app: Flask, planner: FlaskClient, path: str, data: dict[str, str], bad: dict[str, str | None]
) -> None:
    pair(planner, SHOPPER_TEXTS[0], ref="kept")
    move_to(app, "kept", days_ago(400))
    form = dict(data)
    headers = {}
    if "origin" in bad:
        form["token"] = page_token(planner)
        headers["Origin"] = str(bad["origin"])
    elif bad["token"] == "foreign":
        form["token"] = foreign_token()
    elif bad["token"] == "public":
        form["token"] = public_token(app)
    elif bad["token"] == "login":
        form["token"] = token(app)
    elif bad["token"] == "other-session":
        other = app.test_client()
        assert login(other).status_code == 303
        form["token"] = page_token(other)
        assert form["token"] != page_token(planner)
    elif bad["token"] is not None:
        form["token"] = str(bad["token"])
    response = planner.post(path, data=form, headers=headers)
    assert response.status_code == 403, response.get_data(as_text=True)
    assert planner.get("/planner/").status_code == 200, "still logged in"
    assert_nothing_changed(app)


def test_login_needs_a_form_token(client: FlaskClient) -> None:
    response = client.post("/planner/login", data={"user": "planner", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/planner/").status_code == 302
