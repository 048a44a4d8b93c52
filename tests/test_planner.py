"""The planner area: login, campaigns, roster, try box, corrections, batches, dashboard,
settings, snippet and privacy requests.

Everything runs through Flask's test client with the real model and the
shipped roster (copied to ``tmp_path``, because corrections are written into
the roster folder). Tests that read or write stored campaigns and pairings run
on SQLite and, when a server is configured, PostgreSQL (``database_url`` in
``conftest.py``); their pairings are made through the API, as a microsite would. Batch jobs run in real background threads; tests wait for
them by polling the job registry with a deadline. Several server workers are
simulated by several apps, or job registries, on one instance folder.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from markupsafe import escape
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from matcher.matching import DEFAULT_TOP_K, Match, Matcher
from matcher.profiles import load_profiles
from matcher.store import Campaign, find_campaign, list_campaigns
from matcher.store.schema import PairingRow
from web import charts, create_app
from web.campaigns import database
from web.jobs import JobRegistry, JobView, PairingTotals, Status, score_bin
from web.planner import job_registry
from web.planner.base import LOGIN_SALT
from web.security import form_token, signed_token

from .conftest import REPO, SAMPLE_PROFILES, write_roster

PASSWORD = "s3cret"
JOB_TIMEOUT = 60.0
#: Texts that fit different celebrities of the sample roster.
SHOPPER_TEXTS = [
    "Slow mornings with oolong tea, a book of essays and ten minutes of meditation.",
    "I dance at every concert and sing karaoke with my friends until sunrise.",
    "Trail running before dawn, climbing on weekends, and I hate heavy perfume.",
    "Silk dresses, red lipstick and a seat at the opera on opening night.",
    "I paint in my studio all day and collect vintage vinyl records.",
    "Board meetings, tailored suits and a leather briefcase: I run a company.",
    "Beach volleyball, surfing and salty hair all summer long.",
    "周末喜欢在家看书、喝茶、听雨，不喜欢热闹。",
    "我喜欢去演唱会，和朋友们一起唱歌跳舞。",
    "Camping in the mountains with a tent, a map and a campfire.",
    "Flowers everywhere: peonies on my desk and roses in the garden.",
    "Gallery openings, sketchbooks and long talks about design.",
]


# -- fixtures and helpers ---------------------------------------------------------------


#: Apps made by the running test, whose database connections close when it ends.
_apps: list[Flask] = []


@pytest.fixture(autouse=True)
def close_databases() -> Any:
    yield
    while _apps:
        database(_apps.pop()).dispose()


def make_app(tmp_path: Path, matcher: Matcher, **config: Any) -> Flask:
    profiles = tmp_path / "profiles"
    if not profiles.exists():
        shutil.copytree(SAMPLE_PROFILES, profiles)
    settings = {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "MATCHER_PROFILES": str(profiles),
        "MATCHER_INDEX_DIR": None,
        "MATCHER_PLANNER_USER": "planner",
        "MATCHER_PLANNER_PASSWORD": PASSWORD,
        "MATCHER_EMBED_ORIGINS": None,
        # Campaign rosters must be inside this folder; the tests make theirs in tmp_path.
        "MATCHER_ROSTERS_DIR": str(tmp_path),
    }
    settings.update(config)
    app = create_app(settings, matcher=matcher)
    _apps.append(app)
    return app


@pytest.fixture
def app(tmp_path: Path, sample_matcher: Matcher) -> Flask:
    return make_app(tmp_path, sample_matcher)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def db_app(tmp_path: Path, sample_matcher: Matcher, database_url: str) -> Flask:
    """The app on each test database (SQLite, and PostgreSQL when configured)."""
    return make_app(tmp_path, sample_matcher, MATCHER_DATABASE_URL=database_url)


@pytest.fixture
def db_planner(db_app: Flask) -> FlaskClient:
    """A logged-in planner on ``db_app``."""
    client = db_app.test_client()
    response = login(client)
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def public_token(app: Flask) -> str:
    """A token of the public shopper form: refused on every planner POST."""
    with app.test_request_context():
        return form_token()


def token(app: Flask) -> str:
    """A token for the login form, as its page carries."""
    with app.test_request_context():
        return signed_token(LOGIN_SALT)


def page_token(client: FlaskClient, **kwargs: Any) -> str:
    """The ``token`` the planner's pages carry for this client: its session's own once logged in."""
    page = client.get("/planner/login", **kwargs).get_data(as_text=True)
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found, "the planner's forms carry a token"
    return found.group(1)


def login(
    client: FlaskClient, user: str = "planner", password: str = PASSWORD, **kwargs: Any
) -> Any:
    assert client.application is not None
    data = {"token": token(client.application), "user": user, "password": password}
    return client.post("/planner/login", data=data, **kwargs)


@pytest.fixture
def planner(client: FlaskClient) -> FlaskClient:
    """A client logged in to the planner area."""
    response = login(client)
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def post(client: FlaskClient, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """POST a form with a valid token, like the page's own form would."""
    return client.post(path, data={"token": page_token(client), **data}, **kwargs)


def upload(client: FlaskClient, name: str, body: str | bytes, **fields: str) -> Any:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    data = {"top_k": "3", "id_column": "id", "text_column": "text", **fields}
    data["file"] = (io.BytesIO(raw), name)  # type: ignore[assignment]
    return post(client, "/planner/batches", data, content_type="multipart/form-data")


def job_id_of(response: Any) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)
    match = re.fullmatch(r"/planner/batches/([\w-]+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def wait_for(app: Flask | JobRegistry, job_id: str, timeout: float = JOB_TIMEOUT) -> JobView:
    """Poll a registry until the job has finished, or fail after ``timeout`` seconds."""
    registry = app if isinstance(app, JobRegistry) else job_registry(app)
    deadline = time.monotonic() + timeout
    while True:
        view = registry.get(job_id)
        assert view is not None, job_id
        if view.finished:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {job_id} did not finish in {timeout} s: {view}")
        time.sleep(0.05)


def batch_files(folder: Path) -> set[str]:
    """The files in a jobs folder, without the lock file."""
    return {path.name for path in folder.iterdir()} - {".lock"}


def download(client: FlaskClient, job_id: str) -> Any:
    """GET the pairings, read them and close the response (which closes the file)."""
    response = client.get(f"/planner/batches/{job_id}/pairings.csv")
    response.get_data()
    response.close()
    return response


def shopper_csv(rows: list[tuple[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text"])
    writer.writerows(rows)
    return out.getvalue()


def read_csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def ranked_ids(page: str) -> list[str]:
    section = page[page.index('<section class="ranking"') :]
    return re.findall(r'<tr data-celebrity-id="([^"]+)"', section)


class PageCheck(HTMLParser):
    """Collects what the CSP and keyboard users care about: scripts, styles, labels."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.style_attributes: list[str] = []
        self.style_elements = 0
        self.controls: list[str] = []
        self.labelled: set[str] = set()
        self.svgs: list[dict[str, str | None]] = []
        self.titles_in_svg = 0
        self._in_svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and not attributes.get("src"):
            self.inline_scripts += 1
        if tag == "style":
            self.style_elements += 1
        if "style" in attributes:
            self.style_attributes.append(tag)
        if tag == "label" and attributes.get("for"):
            self.labelled.add(str(attributes["for"]))
        if tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            self.controls.append(str(attributes.get("id")))
        if tag == "svg":
            self._in_svg += 1
            self.svgs.append(attributes)
        if tag == "title" and self._in_svg:
            self.titles_in_svg += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_svg -= 1


def check_page(page: str) -> PageCheck:
    checker = PageCheck()
    checker.feed(page)
    return checker


def chart_bars(page: str, chart_id: str) -> list[tuple[str, int]]:
    svg = page[page.index(f'id="{chart_id}"') :]
    svg = svg[: svg.index("</svg>")]
    return [
        (str(escape(key)), int(value))
        for key, value in re.findall(r'<g class="bar" data-key="([^"]*)" data-value="(\d+)"', svg)
    ]


def campaign(app: Flask, slug: str = "default") -> Campaign:
    found = find_campaign(database(app), slug)
    assert found is not None, slug
    return found


def new_campaign_form(folder: Path, **changes: str) -> dict[str, str]:
    """Every field of the "start a campaign" form, filled in well."""
    form = {
        "slug": "seaside",
        "name": "Seaside summer",
        "brand": "Lueur Marine",
        "profiles_dir": str(folder),
        "embed_origins": "https://sea.example",
        "moods": "calm, sunny",
        "scents": "salty",
        "consent_text": "Keep what I wrote for 30 days.",
        "consent_version": "sea-1",
        "retention_days": "30",
        "store_text": "yes",
    }
    form.update(changes)
    return form


def add_campaign(client: FlaskClient, folder: Path, **changes: str) -> str:
    """Create a campaign through the planner's form; returns its slug."""
    form = new_campaign_form(folder, **changes)
    response = post(client, "/planner/campaigns", form)
    assert response.status_code == 303, response.get_data(as_text=True)
    return form["slug"]


def settings_form(current: Campaign, **changes: str) -> dict[str, str]:
    """The settings form as the page fills it for ``current``, with ``changes``."""
    picks = current.quick_picks or {"moods": ["calm"], "scents": ["woody"]}
    form = {
        "name": current.name,
        "brand": current.brand,
        "profiles_dir": current.profiles_dir,
        "embed_origins": "\n".join(current.embed_origins),
        "moods": ", ".join(picks["moods"]),
        "scents": ", ".join(picks["scents"]),
        "consent_text": current.consent_text,
        "consent_version": current.consent_version,
        "retention_days": str(current.retention_days),
    }
    if current.store_text:
        form["store_text"] = "yes"
    form.update(changes)
    return form


def pair(
    client: FlaskClient,
    text: str,
    *,
    ref: str | None = None,
    slug: str | None = None,
    consent: bool = False,
) -> dict[str, Any]:
    """Pair a shopper through the API, as a microsite does; returns the answer."""
    body: dict[str, Any] = {"text": text, "consent": consent, "top_k": 1}
    if ref is not None:
        body["shopper_ref"] = ref
    if slug is not None:
        body["campaign"] = slug
    response = client.post("/api/v1/match", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer: dict[str, Any] = response.get_json()
    return answer


def days_ago(days: int) -> date:
    return datetime.now(UTC).date() - timedelta(days=days)


def move_to(app: Flask, ref: str, day: date) -> None:
    """Date a shopper's pairings to noon (UTC) of ``day``."""
    with database(app).write() as session:
        session.execute(
            update(PairingRow)
            .where(PairingRow.shopper_ref == ref)
            .values(created_at=datetime.combine(day, clock(12), UTC))
        )


def stored_refs(app: Flask) -> Counter[str]:
    """How many pairings the database holds per shopper reference."""
    with database(app).read() as session:
        return Counter(session.scalars(select(PairingRow.shopper_ref)))


def stored_texts(app: Flask) -> list[str]:
    with database(app).read() as session:
        query = select(PairingRow.shopper_text).where(PairingRow.shopper_text.is_not(None))
        return list(session.scalars(query))


def field_errors(page: str) -> dict[str, str]:
    """The problem shown beside each field of a planner form."""
    return dict(re.findall(r'<p id="([\w-]+)-error" class="error"[^>]*>([^<]*)</p>', page))


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
        {"text": "I like tea", "right": "chen-an", "wrong": "xu-mo"},
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


# -- roster -----------------------------------------------------------------------------


def test_roster_lists_every_celebrity_with_their_profile(planner: FlaskClient) -> None:
    page = planner.get("/planner/").get_data(as_text=True)
    roster = load_profiles(SAMPLE_PROFILES)
    summary = page[page.index('<table class="roster">') :]
    summary = summary[: summary.index("</table>")]
    assert re.findall(r'<tr data-celebrity-id="([^"]+)"', summary) == [p.id for p in roster]
    for profile in roster:
        assert escape(profile.name) in page and profile.name_zh in page
        row = summary[summary.index(f'data-celebrity-id="{profile.id}"') :]
        row = row[: row.index("</tr>")]
        cells = re.findall(r"<td>(.*?)</td>", row, flags=re.S)
        assert cells[1] == ("yes" if profile.active else "no")
        assert cells[2] == (str(profile.quota) if profile.quota is not None else "none")
        assert cells[3] == str(len(profile.examples))
        assert cells[5] == str(escape(", ".join(profile.tags)))
        for facet, text in profile.facets.items():
            assert escape(text) in page, (profile.id, facet)
        for facet, text in profile.facets_zh.items():
            assert escape(text) in page, (profile.id, facet)


def test_roster_shows_edits_waiting_for_the_refresh(app: Flask, planner: FlaskClient) -> None:
    folder = Path(app.config["MATCHER_PROFILES"])
    path = folder / "chen-an.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("active: true", "active: true\nquota: 40"),
        encoding="utf-8",
    )
    gu_yan = folder / "gu-yan.yaml"
    gu_yan.write_text(
        gu_yan.read_text(encoding="utf-8").replace("active: true", "active: false"),
        encoding="utf-8",
    )
    page = planner.get("/planner/").get_data(as_text=True)
    row = page[page.index('<tr data-celebrity-id="chen-an"') :]
    row = row[: row.index("</tr>")]
    assert "<td>40</td>" in row and "edited since the last refresh" in row
    assert 'role="alert"' not in page, "the edited folder still loads"
    row = page[page.index('<tr data-celebrity-id="gu-yan"') :]
    assert "no: inactive" in row[: row.index("</tr>")]
    row = page[page.index('<tr data-celebrity-id="xu-mo"') :]
    assert "<td>yes\n" in row[: row.index("</tr>")]


def test_refresh_applies_the_roster_folder_as_it_is(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher
) -> None:
    path = Path(app.config["MATCHER_PROFILES"]) / "xu-mo.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("active: true", "active: false"),
        encoding="utf-8",
    )
    response = post(planner, "/planner/refresh", {})
    assert response.status_code == 303
    refreshed = app.extensions["matcher"]
    assert refreshed is not sample_matcher
    assert "xu-mo" not in refreshed.index.celebrity_ids
    assert refreshed.roster_size == sample_matcher.roster_size - 1
    page = planner.get("/planner/").get_data(as_text=True)
    assert "The index was refreshed" in page


def test_roster_problems_are_shown(app: Flask, planner: FlaskClient) -> None:
    (Path(app.config["MATCHER_PROFILES"]) / "broken.yaml").write_text("id: Not An Id\n")
    page = planner.get("/planner/").get_data(as_text=True)
    assert "broken.yaml" in page and 'role="alert"' in page
    response = post(planner, "/planner/refresh", {})
    assert response.status_code == 409
    assert app.extensions["matcher"] is not None


# -- try box and corrections ------------------------------------------------------------


def test_try_box_ranks_every_celebrity_like_the_core(
    planner: FlaskClient, sample_matcher: Matcher
) -> None:
    text = "Trail running at dawn, then a cold swim in the lake; no heavy perfume, please."
    expected = sample_matcher.match(text, 7)
    response = post(planner, "/planner/try", {"text": text})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert ranked_ids(page) == [m.celebrity_id for m in expected]
    assert len(expected) == 7
    for match in expected:
        row = page[page.index(f'<tr data-celebrity-id="{match.celebrity_id}"') :]
        row = row[: row.index("</tr>")]
        assert f"{match.score:.4f}" in row
        assert f"{match.share * 100:.1f}%" in row
        assert f"{match.margin:.4f}" in row
        for reason in match.reasons:
            assert str(escape(reason.quote)) in row


@pytest.mark.parametrize(
    "data",
    [pytest.param({"text": "   "}, id="blank"), pytest.param({}, id="missing"),
     pytest.param({"text": "tea " * 300}, id="over-long")],
)  # fmt: skip
def test_try_box_refuses_unusable_text(planner: FlaskClient, data: dict[str, str]) -> None:
    response = post(planner, "/planner/try", data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'role="alert"' in page and 'aria-invalid="true"' in page
    assert '<section class="ranking"' not in page


def test_try_box_says_whether_a_shopper_would_be_paired(planner: FlaskClient) -> None:
    unsure = post(planner, "/planner/try", {"text": "asdfgh"}).get_data(as_text=True)
    assert 'data-confident="false" data-reason="no_content"' in unsure
    assert "a shopper would be paired with nobody" in unsure
    assert '<section class="ranking"' in unsure, "the ranking is still shown to the planner"
    clear = "Board meetings, tailored suits and a leather briefcase: I run a company."
    sure = post(planner, "/planner/try", {"text": clear}).get_data(as_text=True)
    assert 'data-confident="true"' in sure
    assert "a shopper would be paired with Gu Yan" in sure


def test_an_upload_stores_and_counts_only_confident_answers(
    app: Flask, planner: FlaskClient
) -> None:
    rows = [("up-1", SHOPPER_TEXTS[0]), ("junk-1", "asdfgh"), ("junk-2", "哈哈哈")]
    job_id = job_id_of(upload(planner, "a.csv", shopper_csv(rows)))
    view = wait_for(app, job_id)
    assert view.status is Status.DONE
    assert (view.matched, view.unsure, view.stored) == (3, 2, 1)
    assert stored_refs(app) == Counter(["up-1"])
    written = read_csv(download(planner, job_id).data)
    assert [(r["id"], r["confident"], r["reason"]) for r in written] == [
        ("up-1", "true", ""),
        ("junk-1", "false", "no_content"),
        ("junk-2", "false", "no_content"),
    ]


def test_a_correction_is_saved_and_applies_after_the_refresh(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher
) -> None:
    text = "I collect fountain pens and spend Sundays restoring an old sailing boat."
    before = sample_matcher.match(text, 7)
    wrong, right = before[0].celebrity_id, before[-1].celebrity_id
    response = post(planner, "/planner/corrections", {"text": text, "right": right, "wrong": wrong})
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    assert "applies to new matches right away" in page and 'role="status"' in page

    lines = (Path(app.config["MATCHER_PROFILES"]) / "corrections.jsonl").read_text().splitlines()
    assert len(lines) == 1
    saved = json.loads(lines[0])
    assert (saved["text"], saved["right"], saved["wrong"]) == (text, right, wrong)

    refreshed = app.extensions["matcher"]
    assert refreshed is not sample_matcher
    assert refreshed.encoder is sample_matcher.encoder
    assert refreshed.match(text, 1)[0].celebrity_id == right
    assert ranked_ids(page)[0] == right
    assert sample_matcher.match(text, 1)[0].celebrity_id == wrong, "the shared fixture is untouched"
    roster = planner.get("/planner/").get_data(as_text=True)
    row = roster[roster.index(f'<tr data-celebrity-id="{right}"') :]
    assert re.findall(r"<td>(.*?)</td>", row[: row.index("</tr>")], flags=re.S)[4] == "1"


@pytest.mark.parametrize(
    "data",
    [pytest.param({"right": "nobody", "wrong": "chen-an"}, id="unknown-right"),
     pytest.param({"right": "", "wrong": "chen-an"}, id="no-right"),
     pytest.param({"right": "chen-an", "wrong": "chen-an"}, id="same-as-wrong"),
     pytest.param({"right": "chen-an", "wrong": "nobody"}, id="unknown-wrong"),
     pytest.param({"right": "chen-an", "wrong": "xu-mo", "text": "  "}, id="blank-text"),
     pytest.param({"right": "chen-an", "wrong": "xu-mo", "text": "x" * 1001}, id="over-long-text")],
)  # fmt: skip
def test_bad_corrections_are_refused(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher, data: dict[str, str]
) -> None:
    form = {"text": "I like tea and quiet mornings.", **data}
    response = post(planner, "/planner/corrections", form)
    assert response.status_code == 400
    assert 'role="alert"' in response.get_data(as_text=True)
    assert not (Path(app.config["MATCHER_PROFILES"]) / "corrections.jsonl").exists()
    assert app.extensions["matcher"] is sample_matcher


# -- batches ----------------------------------------------------------------------------


def test_upload_matches_in_the_background_and_downloads_once(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher
) -> None:
    secret = "MY-PRIVATE-TEXT-42"
    rows = [
        ("=HYPERLINK(1)", SHOPPER_TEXTS[0]),
        ("+15551234", SHOPPER_TEXTS[1]),
        ("-7", SHOPPER_TEXTS[2]),
        ("@SUM(A1)", SHOPPER_TEXTS[3]),
        ("plain-5", "=1+1 " + SHOPPER_TEXTS[4]),
        ("blank-6", "   "),
        ("long-7", secret + " " + "x" * 1000),
        ("", secret + " without an id"),
    ]
    job_id = job_id_of(upload(planner, "shoppers.csv", shopper_csv(rows)))
    view = wait_for(app, job_id)
    assert view.status is Status.DONE, view.error
    assert (view.matched, view.bad) == (5, 3)

    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in page
    bad = re.findall(
        r'<tr><td class="number">(\d+)</td><td>([^<]*)</td></tr>', page[page.index("bad-rows") :]
    )
    assert [int(line) for line, _ in bad] == [7, 8, 9]
    assert "blank" in bad[0][1] and "limit is 1000" in bad[1][1] and "id is blank" in bad[2][1]
    assert secret not in page

    response = download(planner, job_id)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "shoppers-pairings.csv" in response.headers["Content-Disposition"]
    pairings = read_csv(response.data)
    assert [row["id"] for row in pairings] == [
        "'=HYPERLINK(1)", "'+15551234", "'-7", "'@SUM(A1)", "plain-5"
    ]  # fmt: skip
    texts = [text for _, text in rows[:5]]
    for row, expected in zip(pairings, sample_matcher.match_many(texts, 3), strict=True):
        assert [row[f"celebrity_{rank}"] for rank in (1, 2, 3)] == [
            m.celebrity_id for m in expected
        ]
        assert row["score_1"] == f"{expected[0].score:.4f}"
    assert secret not in response.data.decode("utf-8")

    batch_folder = Path(app.instance_path) / "planner-batches"
    assert batch_files(batch_folder) == {f"{job_id}.job.json"}, "upload and pairings are deleted"
    record = json.loads((batch_folder / f"{job_id}.job.json").read_text(encoding="utf-8"))
    assert secret not in json.dumps(record, ensure_ascii=False)
    assert not any(text in json.dumps(record, ensure_ascii=False) for _, text in rows[:5])
    assert record["bad_lines"] == [{"line": b.line, "reason": b.reason} for b in view.bad_lines]
    again = download(planner, job_id)
    assert again.status_code == 410
    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert "downloaded and deleted" in page


def test_json_lines_upload_reports_broken_lines(app: Flask, planner: FlaskClient) -> None:
    body = "\n".join(
        [
            json.dumps({"id": "a", "text": SHOPPER_TEXTS[0]}),
            '{"id": "b", "text": "broken',
            json.dumps({"id": "c", "text": 42}),
            json.dumps({"id": "d", "text": SHOPPER_TEXTS[1]}),
        ]
    )
    job_id = job_id_of(upload(planner, "shoppers.jsonl", body + "\n"))
    view = wait_for(app, job_id)
    assert view.status is Status.DONE
    assert view.matched == 2
    assert [(bad.line, bad.reason.split(" (")[0]) for bad in view.bad_lines] == [
        (2, "not valid JSON"),
        (3, "'text' is not a string"),
    ]
    pairings = read_csv(download(planner, job_id).data)
    assert [row["id"] for row in pairings] == ["a", "d"]


@pytest.mark.parametrize(
    ("name", "body", "fields", "problem"),
    [pytest.param(None, "", {}, "Choose a CSV", id="no-file"),
     pytest.param("shoppers.txt", "id,text\n1,tea\n", {}, ".jsonl", id="unknown-type"),
     pytest.param("shoppers.xlsx", "id,text\n1,tea\n", {}, ".jsonl", id="spreadsheet"),
     pytest.param("shoppers.csv", "id,comment\n1,tea\n", {}, "no &#39;text&#39; column", id="missing-text-column"),
     pytest.param("shoppers.csv", "", {}, "the file is empty", id="empty-file"),
     pytest.param("shoppers.csv", b"id,t\xffxt\n1,tea\n", {"text_column": "t\ufffdxt"}, "not valid UTF-8", id="undecodable-header"),
     pytest.param("shoppers.csv", "id,text\n1,tea\n", {"top_k": "0"}, "from 1 to 7", id="top-k-zero"),
     pytest.param("shoppers.csv", "id,text\n1,tea\n", {"top_k": "three"}, "from 1 to 7", id="top-k-word"),
     pytest.param("shoppers.csv", "id,text\n1,tea\n", {"top_k": "8"}, "from 1 to 7", id="top-k-over-roster"),
     pytest.param("shoppers.csv", "id,text\n1,tea\n", {"id_column": " "}, "column name", id="blank-id-column"),
     pytest.param("shoppers.csv", "id,text\n1,tea\n", {"text_column": "t" * 101}, "column name", id="long-text-column")],
)  # fmt: skip
def test_unusable_uploads_are_refused_at_once(
    app: Flask,
    planner: FlaskClient,
    name: str | None,
    body: str | bytes,
    fields: dict[str, str],
    problem: str,
) -> None:
    if name is None:
        response = post(
            planner, "/planner/batches", {"top_k": "3"}, content_type="multipart/form-data"
        )
    else:
        response = upload(planner, name, body, **fields)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert problem in page
    assert 'role="alert"' in page and 'aria-invalid="true"' in page
    assert job_registry(app).jobs() == []
    folder = Path(app.instance_path) / "planner-batches"
    assert not folder.exists() or batch_files(folder) == set()


def test_job_page_reloads_itself_until_the_batch_is_done(app: Flask, planner: FlaskClient) -> None:
    registry = job_registry(app)
    registry.slot.acquire()  # another batch is "running": this one waits in the queue
    try:
        job_id = job_id_of(upload(planner, "wait.csv", shopper_csv([("1", SHOPPER_TEXTS[0])])))
        page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
        assert '<meta http-equiv="refresh" content="2">' in page
        assert "waiting for the batch before it" in page
        assert "<progress" in page and "Download" not in page
        assert planner.get(f"/planner/batches/{job_id}/pairings.csv").status_code == 409
    finally:
        registry.slot.release()
    assert wait_for(app, job_id).status is Status.DONE
    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in page
    assert f"/planner/batches/{job_id}/pairings.csv" in page
    listing = planner.get("/planner/batches").get_data(as_text=True)
    assert "wait.csv" in listing and "ready to download" in listing


@pytest.mark.parametrize(
    "path",
    [pytest.param("/planner/batches/nope", id="job"),
     pytest.param("/planner/batches/nope/pairings.csv", id="download")],
)  # fmt: skip
def test_unknown_batches_are_404(planner: FlaskClient, path: str) -> None:
    response = planner.get(path)
    assert response.status_code == 404
    assert "Upload the file again" in response.get_data(as_text=True)


def test_old_pairings_expire(app: Flask, planner: FlaskClient) -> None:
    job_id = job_id_of(upload(planner, "old.csv", shopper_csv([("1", SHOPPER_TEXTS[0])])))
    assert wait_for(app, job_id).status is Status.DONE
    registry = job_registry(app)
    assert registry.sweep(time.time() + registry.ttl - 5) == 0
    assert registry.sweep(time.time() + registry.ttl + 1) == 1
    assert planner.get(f"/planner/batches/{job_id}/pairings.csv").status_code == 410
    assert "expired" in planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("status", "done", "total", "percent"),
    [pytest.param(Status.QUEUED, 0, 0, 0, id="not-counted-yet"),
     pytest.param(Status.RUNNING, 50, 200, 25, id="a-quarter"),
     pytest.param(Status.RUNNING, 201, 200, 99, id="no-trailing-newline"),
     pytest.param(Status.DONE, 10, 200, 100, id="done")],
)  # fmt: skip
def test_progress_percent(status: Status, done: int, total: int, percent: int) -> None:
    view = JobView("j", "f.csv", status, done, total, 0, 0, (), None, False, False, False)
    assert view.percent == percent


def test_sweep_keeps_fresh_files_and_those_of_running_jobs(tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path / "batches", ttl=60)
    registry.folder.mkdir()
    old, fresh = registry.folder / "old.pairings.csv", registry.folder / "new.pairings.csv"
    for path in (old, fresh):
        path.write_text("id\n")
    stale = time.time() - 120
    os.utime(old, (stale, stale))
    assert registry.sweep() == 1
    assert not old.exists() and fresh.exists()


# -- batches with several server workers ----------------------------------------------
#
# Each gunicorn worker has its own JobRegistry on the one jobs folder; here two
# registries (or two apps) on one folder stand for two workers.

#: Texts for the tiny roster of ``fake_matcher`` (ocean, library, stage).
TINY_TEXTS = [
    "surfing and sailing at the beach",
    "reading novels with green tea",
    "dancing at concerts and karaoke",
]


class GatedMatcher(Matcher):
    """Holds its second encoder batch until ``gate`` is set, so a test can look mid-run."""

    def __init__(self, base: Matcher) -> None:
        super().__init__(base.encoder, base.index)
        self.gate = threading.Event()
        self.calls = 0

    def match_many(self, texts: Sequence[str], k: int = DEFAULT_TOP_K) -> list[list[Match]]:
        self.calls += 1
        if self.calls > 1:
            assert self.gate.wait(JOB_TIMEOUT), "the test never opened the gate"
        return super().match_many(texts, k)


def submit_file(registry: JobRegistry, matcher: Matcher, body: str, name: str = "s.csv") -> str:
    """Save ``body`` as an upload and submit it, as the batches view does."""
    job_id, input_path, output_path = registry.paths(".csv")
    input_path.write_text(body, encoding="utf-8")
    registry.submit(matcher, job_id, input_path, output_path, filename=name, k=2)
    return job_id


def wait_until(condition: Any, what: str, timeout: float = JOB_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def tiny_rows(count: int) -> list[tuple[str, str]]:
    return [(f"s{number}", TINY_TEXTS[number % 3]) for number in range(count)]


def test_a_job_run_by_one_worker_is_seen_by_another(tmp_path: Path, fake_matcher: Matcher) -> None:
    folder = tmp_path / "batches"
    worker_a = JobRegistry(folder, save_every=0)
    worker_b = JobRegistry(folder)
    gated = GatedMatcher(fake_matcher)
    body = shopper_csv([("blank", " ")] + tiny_rows(100))

    worker_a.slot.acquire()  # worker A is busy with another batch: this one queues
    try:
        job_id = submit_file(worker_a, gated, body, "crm.csv")
        queued = worker_b.get(job_id)
        assert queued is not None, "the record is on disk before submit returns"
        assert (queued.status, queued.filename) == (Status.QUEUED, "crm.csv")
        assert [job.id for job in worker_b.jobs()] == [job_id]
    finally:
        worker_a.slot.release()

    # The first encoder batch (64 shoppers) is done; the second waits at the gate.
    wait_until(lambda: worker_b.get(job_id).matched == 64, "progress seen by worker B")  # type: ignore[union-attr]
    running = worker_b.get(job_id)
    assert running is not None and running.status is Status.RUNNING
    assert running.total_lines == 102 and 0 < running.percent < 100
    assert running.bad == 1 and [b.line for b in running.bad_lines] == [2]
    assert running.bad_lines[0].reason.startswith("text is blank")
    assert worker_b.take_output(job_id) is None, "nothing to download mid-run"
    assert worker_b.pairing_totals() == PairingTotals(), "only done batches count"

    gated.gate.set()
    done = wait_for(worker_b, job_id)
    assert (done.status, done.matched, done.bad, done.percent) == (Status.DONE, 100, 1, 100)
    assert done.downloadable and worker_a.get(job_id) == done

    totals = worker_b.pairing_totals()
    assert worker_a.pairing_totals() == totals
    assert totals.shoppers == 100

    handle = worker_b.take_output(job_id)
    assert handle is not None
    with handle:
        pairings = read_csv(handle.read())
    assert [row["id"] for row in pairings] == [f"s{number}" for number in range(100)]
    assert Counter(row["celebrity_1"] for row in pairings) == totals.per_celebrity
    seen_by_a = worker_a.get(job_id)
    assert seen_by_a is not None and seen_by_a.downloaded and not seen_by_a.downloadable
    assert worker_a.take_output(job_id) is None
    assert batch_files(folder) == {f"{job_id}.job.json"}
    assert worker_a.pairing_totals() == totals, "a download does not change the totals"


def test_every_worker_serves_the_job_page_download_and_dashboard(
    tmp_path: Path, sample_matcher: Matcher
) -> None:
    app_a = make_app(tmp_path, sample_matcher)
    app_b = make_app(tmp_path, sample_matcher)
    assert app_a.instance_path == app_b.instance_path
    worker_a, worker_b = app_a.test_client(), app_b.test_client()
    for client in (worker_a, worker_b):
        assert login(client).status_code == 303

    rows = [(str(number), text) for number, text in enumerate(SHOPPER_TEXTS)]
    job_id = job_id_of(upload(worker_a, "both.csv", shopper_csv(rows + [("bad", "")])))
    first = worker_b.get(f"/planner/batches/{job_id}")
    assert first.status_code == 200, "worker B knows the job at once"
    assert "both.csv" in first.get_data(as_text=True)
    assert wait_for(app_b, job_id).status is Status.DONE
    page = worker_b.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert f"/planner/batches/{job_id}/pairings.csv" in page
    for client in (worker_a, worker_b):
        listing = client.get("/planner/batches").get_data(as_text=True)
        assert "both.csv" in listing and "ready to download" in listing

    dashboards = [client.get("/planner/dashboard").get_data(as_text=True) for client in (worker_a, worker_b)]  # fmt: skip
    assert chart_bars(dashboards[0], "chart-celebrities") == chart_bars(
        dashboards[1], "chart-celebrities"
    )
    assert chart_bars(dashboards[0], "chart-scores") == chart_bars(dashboards[1], "chart-scores")
    assert all(f'<dd id="total-pairings">{len(rows)}</dd>' in page for page in dashboards)

    response = download(worker_b, job_id)
    assert response.status_code == 200
    assert len(read_csv(response.data)) == len(rows)
    again = download(worker_a, job_id)
    assert again.status_code == 410
    assert "already downloaded" in again.get_data(as_text=True)
    assert "downloaded and deleted" in worker_a.get(f"/planner/batches/{job_id}").get_data(
        as_text=True
    )

    restarted = make_app(tmp_path, sample_matcher).test_client()
    login(restarted)
    page = restarted.get("/planner/dashboard").get_data(as_text=True)
    assert f'<dd id="total-pairings">{len(rows)}</dd>' in page, "totals survive a restart"


def test_only_one_of_racing_downloads_gets_the_pairings(
    tmp_path: Path, fake_matcher: Matcher
) -> None:
    folder = tmp_path / "batches"
    workers = [JobRegistry(folder), JobRegistry(folder)]
    job_id = submit_file(workers[0], fake_matcher, shopper_csv(tiny_rows(5)))
    assert wait_for(workers[1], job_id).status is Status.DONE
    expected = (folder / f"{job_id}.pairings.csv").read_bytes()

    racers = 8
    start = threading.Barrier(racers)
    handles = []

    def take(registry: JobRegistry) -> None:
        start.wait()
        handles.append(registry.take_output(job_id))

    threads = [threading.Thread(target=take, args=(workers[n % 2],)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOB_TIMEOUT)
    won = [handle for handle in handles if handle is not None]
    assert len(handles) == racers and len(won) == 1
    with won[0] as handle:
        assert handle.read() == expected
    for registry in workers:
        view = registry.get(job_id)
        assert view is not None and view.downloaded and not view.expired
    assert batch_files(folder) == {f"{job_id}.job.json"}


def test_a_job_whose_worker_died_shows_as_failed(app: Flask, planner: FlaskClient) -> None:
    folder = Path(app.instance_path) / "planner-batches"
    script = """
import sys, time
from pathlib import Path
from matcher.index import build_index
from matcher.matching import Matcher
from matcher.profiles import load_profiles
from tests.fakes import HashingEncoder
from web.jobs import JobRegistry

class Stuck(Matcher):
    def match_many(self, texts, k=3):
        time.sleep(3600)

encoder = HashingEncoder()
index, _ = build_index(load_profiles(sys.argv[2]), encoder)
registry = JobRegistry(Path(sys.argv[1]))
job_id, upload, output = registry.paths(".csv")
upload.write_text("id,text\\n1,I like tea\\n", encoding="utf-8")
registry.submit(Stuck(encoder, index), job_id, upload, output, filename="crash.csv", k=1)
print(job_id, flush=True)
time.sleep(3600)
"""
    registry = job_registry(app)
    command = [sys.executable, "-c", script, str(folder), app.config["MATCHER_PROFILES"]]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as worker:
        try:
            assert worker.stdout is not None
            job_id = worker.stdout.readline().strip()
            wait_until(lambda: registry.get(job_id).status is Status.RUNNING, "the batch to start")  # type: ignore[union-attr]
            assert (folder / f"{job_id}.upload.csv").exists()
        finally:
            worker.kill()  # like a worker killed mid-batch: no clean-up runs

    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert "The server restarted during this batch" in page
    assert 'http-equiv="refresh"' not in page and "failed" in page
    response = planner.get(f"/planner/batches/{job_id}/pairings.csv")
    assert response.status_code == 409 and "This batch failed" in response.get_data(as_text=True)

    assert registry.sweep() == 2, "the upload (shopper text) and partial pairings are deleted"
    assert batch_files(folder) == {f"{job_id}.job.json"}
    record = json.loads((folder / f"{job_id}.job.json").read_text(encoding="utf-8"))
    assert (record["status"], record["abandoned"]) == ("failed", True)
    assert "I like tea" not in json.dumps(record)


def test_a_silent_worker_is_given_up_and_stops_when_it_wakes(
    tmp_path: Path, fake_matcher: Matcher
) -> None:
    folder = tmp_path / "batches"
    slow = JobRegistry(folder)
    impatient = JobRegistry(folder, stale_after=0.3)
    slow.slot.acquire()  # the job queues; its heartbeat is 30 s away
    try:
        job_id = submit_file(slow, fake_matcher, shopper_csv(tiny_rows(3)))
        assert impatient.get(job_id).status is Status.QUEUED  # type: ignore[union-attr]
        time.sleep(0.4)
        view = impatient.get(job_id)
        assert view is not None and view.status is Status.FAILED and view.stale
        assert [job.status for job in impatient.jobs()] == [Status.FAILED]
        assert impatient.sweep() == 1
        assert not (folder / f"{job_id}.upload.csv").exists()
    finally:
        slow.slot.release()
    thread = next(t for t in threading.enumerate() if t.name == f"batch-{job_id}")
    thread.join(JOB_TIMEOUT)
    assert not thread.is_alive()
    for registry in (slow, impatient):
        view = registry.get(job_id)
        assert view is not None and view.status is Status.FAILED and view.stale
    assert batch_files(folder) == {f"{job_id}.job.json"}, "no pairings were left behind"
    assert slow.pairing_totals() == PairingTotals()


def test_old_records_are_retired_into_the_totals(tmp_path: Path, fake_matcher: Matcher) -> None:
    folder = tmp_path / "batches"
    worker = JobRegistry(folder, keep=1)
    job_ids = []
    for count in (3, 4, 5):
        job_ids.append(submit_file(worker, fake_matcher, shopper_csv(tiny_rows(count))))
        assert wait_for(worker, job_ids[-1]).status is Status.DONE
        time.sleep(0.01)  # distinct creation times
    for job_id in job_ids[:2]:
        handle = worker.take_output(job_id)
        assert handle is not None
        handle.close()
    before = worker.pairing_totals()
    assert before.shoppers == 12
    kept_record = (folder / f"{job_ids[0]}.job.json").read_text(encoding="utf-8")

    worker.sweep()
    assert batch_files(folder) == {
        f"{job_ids[2]}.job.json", f"{job_ids[2]}.pairings.csv", "totals.json"
    }  # fmt: skip
    assert [job.id for job in worker.jobs()] == [job_ids[2]]
    assert worker.get(job_ids[0]) is None
    assert worker.pairing_totals() == before
    assert JobRegistry(folder).pairing_totals() == before, "another worker, or a restart"

    # A crash between writing the totals and deleting a record: it is not counted twice.
    (folder / f"{job_ids[0]}.job.json").write_text(kept_record, encoding="utf-8")
    assert worker.pairing_totals() == before
    worker.sweep()
    assert not (folder / f"{job_ids[0]}.job.json").exists()
    assert worker.pairing_totals() == before
    worker.sweep()
    assert worker.pairing_totals() == before


@pytest.mark.parametrize(
    "job_id",
    [pytest.param("..", id="dot-dot"),
     pytest.param("...", id="dots"),
     pytest.param("abc", id="too-short"),
     pytest.param("A" * 17, id="too-long"),
     pytest.param("AAAAAAAAAAAAAAA.", id="dot-inside"),
     pytest.param("..%2F..%2Fsecret", id="encoded-slash"),
     pytest.param("AAAAAAAAAAAAAAA%00", id="nul"),
     pytest.param("totals", id="totals-file"),
     pytest.param("AAAAAAAAAAAAAAA~", id="other-character")],
)  # fmt: skip
def test_malformed_job_ids_are_refused(app: Flask, planner: FlaskClient, job_id: str) -> None:
    for path in (f"/planner/batches/{job_id}", f"/planner/batches/{job_id}/pairings.csv"):
        response = planner.get(path)
        assert response.status_code == 404, path
        if "%2F" not in job_id:  # a slash never reaches the view: no route matches
            assert "Upload the file again" in response.get_data(as_text=True)
    registry = job_registry(app)
    raw = job_id.replace("%2F", "/").replace("%00", "\0")
    assert registry.get(raw) is None and registry.take_output(raw) is None
    with pytest.raises(ValueError, match="job id"):
        registry.record_path(raw)


def test_a_record_outside_the_folder_is_never_read(tmp_path: Path, fake_matcher: Matcher) -> None:
    folder = tmp_path / "instance" / "batches"
    registry = JobRegistry(folder)
    job_id = submit_file(registry, fake_matcher, shopper_csv(tiny_rows(1)))
    wait_for(registry, job_id)
    (tmp_path / "instance" / "x.job.json").write_bytes((folder / f"{job_id}.job.json").read_bytes())
    assert registry.get("../x") is None
    with pytest.raises(ValueError, match="suffix"):
        registry.paths("/../../x.csv")


def test_shopper_text_is_never_logged(
    app: Flask, planner: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "SHOPPER-SECRET-7731 loves oolong tea"
    caplog.set_level(logging.DEBUG)
    post(planner, "/planner/try", {"text": secret})
    job_id = job_id_of(upload(planner, "log.csv", shopper_csv([("1", secret), ("2", "")])))
    wait_for(app, job_id)
    assert caplog.records, "logging was captured"
    assert "SHOPPER-SECRET" not in caplog.text


# -- dashboard and charts ---------------------------------------------------------------


def test_dashboard_charts_count_the_stored_pairings(
    db_app: Flask, db_planner: FlaskClient, sample_matcher: Matcher
) -> None:
    answers = {}
    for number, text in enumerate(SHOPPER_TEXTS * 2):
        ref = f"shopper-{number}"
        answers[ref] = pair(db_planner, text, ref=ref)["matches"][0]
        move_to(db_app, ref, days_ago(number % 3 * 2))  # today, 2 and 4 days ago
    per_celebrity = Counter(answer["celebrity_id"] for answer in answers.values())
    assert len(per_celebrity) >= 3, "the texts reach several celebrities"

    response = db_planner.get("/planner/dashboard")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'<dd id="total-pairings">{len(answers)}</dd>' in page
    bars = chart_bars(page, "chart-celebrities")
    roster = [p.id for p in sample_matcher.index.profiles]
    assert [key for key, _ in bars] == roster, "one bar per celebrity, roster order"
    assert dict(bars) == {key: per_celebrity.get(key, 0) for key in roster}

    score_counts = Counter(score_bin(answer["score"]) for answer in answers.values())
    expected_bins = charts.score_bins(score_counts, 0.05)
    histogram = chart_bars(page, "chart-scores")
    assert histogram == [(bar.key, bar.value) for bar in expected_bins]

    table = page[page.index('<table class="chart-data">') :]
    table = table[: table.index("</table>")]
    for celebrity_id in roster:
        cell = re.search(
            rf'data-celebrity-id="{celebrity_id}"><th scope="row">[^<]*</th><td class="number">(\d+)',
            table,
        )
        assert cell and int(cell.group(1)) == per_celebrity.get(celebrity_id, 0)

    per_day: Counter[tuple[str, str]] = Counter()
    for number, answer in enumerate(answers.values()):
        per_day[(days_ago(number % 3 * 2).isoformat(), answer["celebrity_id"])] += 1
    assert day_segments(page) == per_day
    days = [days_ago(n).isoformat() for n in (4, 3, 2, 1, 0)]
    assert day_columns(page) == days, "every day in the range, empty ones too"
    legend = re.findall(r'<g class="legend-item" data-key="([^"]+)"', page)
    assert legend == [key for key in roster if per_celebrity.get(key)]
    rows = days_table(page)
    assert list(rows) == days
    assert rows[days_ago(3).isoformat()] == [0] * (len(legend) + 1)
    for day, counts in rows.items():
        expected = [per_day[(day, key)] for key in legend]
        assert counts == [*expected, sum(expected)], day


def day_segments(page: str) -> Counter[tuple[str, str]]:
    """(day, celebrity) -> count, read from the per-day chart's segments."""
    svg = page[page.index('id="chart-days"') :]
    svg = svg[: svg.index("</svg>")]
    found: Counter[tuple[str, str]] = Counter()
    for day, body in re.findall(r'<g class="day" data-day="([^"]+)"[^>]*>(.*?)</g>', svg):
        for key, value in re.findall(r'data-key="([^"]+)" data-value="(\d+)"', body):
            found[(day, key)] += int(value)
    return found


def day_columns(page: str) -> list[str]:
    return re.findall(r'<g class="day" data-day="([^"]+)"', page)


def days_table(page: str) -> dict[str, list[int]]:
    table = page[page.index('class="chart-data days-data"') :]
    table = table[: table.index("</table>")]
    return {
        day: [int(n) for n in re.findall(r'<td class="number">(\d+)</td>', row)]
        for day, row in re.findall(r'<tr data-day="([^"]+)">(.*?)</tr>', table, flags=re.S)
    }


def test_dashboard_filters_by_campaign_and_day(
    db_app: Flask, db_planner: FlaskClient, tmp_path: Path
) -> None:
    seaside = add_campaign(db_planner, write_roster(tmp_path / "seaside"))
    for number, text in enumerate(SHOPPER_TEXTS[:6]):
        pair(db_planner, text, ref=f"d{number}")
        move_to(db_app, f"d{number}", days_ago(10 - number))  # 10 to 5 days ago
    for number, text in enumerate(["sailing at the beach", "reading with tea"]):
        pair(db_planner, text, ref=f"s{number}", slug=seaside)
        move_to(db_app, f"s{number}", days_ago(8))

    def total(query: str, **kwargs: Any) -> int:
        response = db_planner.get(f"/planner/dashboard?{query}", **kwargs)
        assert response.status_code == 200, response.get_data(as_text=True)
        found = re.search(r'<dd id="total-pairings">(\d+)</dd>', response.get_data(as_text=True))
        assert found
        return int(found.group(1))

    assert total("") == 6
    assert total("scope=all") == 8
    assert total(f"campaign={seaside}") == 2
    assert total(f"since={days_ago(8)}") == 4
    assert total(f"until={days_ago(8)}") == 3, "the last day is included"
    assert total(f"since={days_ago(9)}&until={days_ago(7)}") == 3
    assert total(f"scope=all&since={days_ago(8)}&until={days_ago(8)}") == 3
    assert total(f"since={days_ago(1)}") == 0
    page = db_planner.get(f"/planner/dashboard?since={days_ago(1)}").get_data(as_text=True)
    assert "No pairing was made with these filters yet." in page and "<svg" not in page

    page = db_planner.get(f"/planner/dashboard?since={days_ago(12)}&until={days_ago(3)}")
    assert day_columns(page.get_data(as_text=True))[0] == days_ago(12).isoformat()
    assert day_columns(page.get_data(as_text=True))[-1] == days_ago(3).isoformat()
    page = db_planner.get("/planner/dashboard?since=1900-01-01").get_data(as_text=True)
    columns = day_columns(page)
    assert (columns[0], columns[-1]) == (days_ago(10).isoformat(), days_ago(5).isoformat()), (
        "a far-off bound draws the days that have pairings"
    )


@pytest.mark.parametrize(
    ("query", "field", "problem"),
    [pytest.param("since=yesterday", "since", "YYYY-MM-DD", id="word"),
     pytest.param("since=2025-02-30", "since", "YYYY-MM-DD", id="no-such-day"),
     pytest.param("until=2025-1-5", "until", "YYYY-MM-DD", id="short-month"),
     pytest.param("until=2025-01-05T10:00", "until", "YYYY-MM-DD", id="with-time"),
     pytest.param("since=99999-01-01", "since", "YYYY-MM-DD", id="five-digit-year"),
     pytest.param("since=2025-03-02&until=2025-03-01", "until", "comes before", id="reversed"),
     pytest.param("scope=everything", "scope", "all campaigns", id="unknown-scope")],
)  # fmt: skip
def test_bad_dashboard_filters_are_refused(
    planner: FlaskClient, query: str, field: str, problem: str
) -> None:
    response = planner.get(f"/planner/dashboard?{query}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert problem in field_errors(page)[field]
    assert 'role="alert"' in page and 'aria-invalid="true"' in page
    export = planner.get(f"/planner/pairings.csv?{query}")
    assert export.status_code == 400 and problem in export.get_data(as_text=True)


def test_dashboard_before_any_pairing(planner: FlaskClient) -> None:
    page = planner.get("/planner/dashboard").get_data(as_text=True)
    assert "No pairing was made with these filters yet" in page
    assert '<dd id="total-pairings">0</dd>' in page
    assert "<svg" not in page


def test_uploads_count_on_the_dashboard_once_stored(app: Flask, planner: FlaskClient) -> None:
    rows = [(f"up-{number}", text) for number, text in enumerate(SHOPPER_TEXTS[:4])]
    job_id = job_id_of(upload(planner, "a.csv", shopper_csv([*rows, ("bad", "")])))
    view = wait_for(app, job_id)
    assert view.status is Status.DONE and view.stored == len(rows)
    pair(planner, SHOPPER_TEXTS[5], ref="api-1")
    assert stored_refs(app) == Counter([ref for ref, _ in rows] + ["api-1"])
    assert stored_texts(app) == [], "an upload's texts are never kept"
    page = planner.get("/planner/dashboard").get_data(as_text=True)
    assert f'<dd id="total-pairings">{len(rows) + 1}</dd>' in page
    exported = read_csv(planner.get("/planner/pairings.csv").data)
    assert [row["source"] for row in exported] == ["upload"] * len(rows) + ["api"]


def test_csv_export_has_the_filtered_pairings_escaped_and_no_text(
    db_app: Flask, db_planner: FlaskClient, tmp_path: Path
) -> None:
    secret = "MY-PRIVATE-TEXT-77"
    refs = ["=HYPERLINK(1)", "+15551234", "-7", "@SUM(A1)", 'plain, with "quotes"']
    answers = {}
    for number, ref in enumerate(refs):
        answers[ref] = pair(db_planner, f"{secret} {SHOPPER_TEXTS[number]}", ref=ref, consent=True)
        move_to(db_app, ref, days_ago(len(refs) - number))
    seaside = add_campaign(db_planner, write_roster(tmp_path / "seaside"))
    pair(db_planner, "sailing at the beach", ref="sea-1", slug=seaside, consent=True)
    assert len(stored_texts(db_app)) == len(refs) + 1, "the texts are kept, with consent"

    response = db_planner.get("/planner/pairings.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="pairings-default.csv"'
    body = response.get_data(as_text=True)
    assert secret not in body and "sailing" not in body
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["shopper_ref"] for row in rows] == [
        "'=HYPERLINK(1)", "'+15551234", "'-7", "'@SUM(A1)", 'plain, with "quotes"'
    ]  # fmt: skip
    for row, ref in zip(rows, refs, strict=True):
        answer = answers[ref]["matches"][0]
        assert row["celebrity_id"] == answer["celebrity_id"]
        assert row["score"] == f"{answer['score']:.4f}"
        assert (row["campaign"], row["source"], row["consent_version"]) == ("default", "api", "1")
        assert row["created_at"].startswith(days_ago(len(refs) - refs.index(ref)).isoformat())

    since, until = days_ago(4), days_ago(3)
    response = db_planner.get(f"/planner/pairings.csv?since={since}&until={until}")
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="pairings-default-from-{since}-to-{until}.csv"'
    )
    assert [row["shopper_ref"] for row in read_csv(response.data)] == ["'+15551234", "'-7"]

    everything = read_csv(db_planner.get("/planner/pairings.csv?scope=all").data)
    assert [row["campaign"] for row in everything] == ["default"] * len(refs) + [seaside]
    only_sea = db_planner.get(f"/planner/pairings.csv?campaign={seaside}")
    assert only_sea.headers["Content-Disposition"].endswith(f'filename="pairings-{seaside}.csv"')
    assert [row["shopper_ref"] for row in read_csv(only_sea.data)] == ["sea-1"]

    page = db_planner.get(f"/planner/dashboard?scope=all&since={since}").get_data(as_text=True)
    assert f"/planner/pairings.csv?scope=all&amp;since={since}" in page, (
        "the export keeps the filters"
    )


def test_bar_chart_escapes_labels_and_uses_no_style() -> None:
    svg = charts.bar_chart(
        [charts.Bar("a&b", "<b>Bold</b> & co", 3), charts.Bar("z", "Zero", 0)],
        chart_id="c1",
        title="Counts <per> celebrity",
        description='He said "hi"',
    )
    assert "<b>" not in svg and "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in svg
    assert '<title id="c1-title">Counts &lt;per&gt; celebrity</title>' in svg
    assert 'aria-labelledby="c1-title c1-desc"' in svg and 'role="img"' in svg
    assert "style=" not in svg
    assert re.findall(r'data-value="(\d+)"', svg) == ["3", "0"]
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([\d.]+)"', svg)]
    assert widths[0] > 0 and widths[1] == 0


@pytest.mark.parametrize(
    ("score", "expected"),
    [pytest.param(0.55, 11, id="on-an-edge"), pytest.param(0.5499, 10, id="just-below"),
     pytest.param(0.0, 0, id="zero"), pytest.param(-0.01, -1, id="negative"),
     pytest.param(0.9999, 19, id="near-one")],
)  # fmt: skip
def test_scores_fall_in_the_bin_they_start(score: float, expected: int) -> None:
    assert score_bin(score) == expected


def test_histogram_keeps_empty_bins_between_used_ones() -> None:
    bins = charts.score_bins({12: 2, 9: 1}, 0.05)
    assert [(bar.key, bar.value) for bar in bins] == [
        ("0.45", 1), ("0.50", 0), ("0.55", 0), ("0.60", 2)
    ]  # fmt: skip
    assert bins[0].label == "0.45–0.50"
    svg = charts.histogram(bins, chart_id="h", title="t", description="d")
    assert len(re.findall(r'<g class="bar"', svg)) == 4 and "style=" not in svg
    assert charts.score_bins({}, 0.05) == []


def test_per_day_fills_every_day_and_orders_series_by_roster() -> None:
    first = date(2025, 3, 30)
    counts = [
        (date(2025, 4, 2), "b", 2),
        (first, "a", 1),
        (date(2025, 4, 2), "zz-gone", 1),
        (first, "b", 3),
        (date(2025, 4, 1), "a", 0),
    ]
    days, series = charts.per_day(counts, {"a": "Ann", "b": "Bo", "c": "Cy"})
    assert days == [first + timedelta(days=n) for n in range(4)], "across the month's end"
    assert [(s.key, s.label, s.values) for s in series] == [
        ("a", "Ann", (1, 0, 0, 0)), ("b", "Bo", (3, 0, 0, 2)), ("zz-gone", "zz-gone", (0, 0, 0, 1))
    ]  # fmt: skip
    days, _ = charts.per_day(counts, {}, first=date(2025, 3, 28), last=date(2025, 4, 3))
    assert len(days) == 7
    assert charts.per_day([], {"a": "Ann"}) == ([], [])


def test_stacked_days_draws_stacks_a_legend_and_escapes() -> None:
    days = [date(2025, 3, 1), date(2025, 3, 2)]
    series = [charts.Series("a&b", "<i>Ann</i>", (2, 0)), charts.Series("b", "Bo", (1, 3))]
    svg = charts.stacked_days(days, series, chart_id="d", title="Per <day>", description="d & e")
    assert "<i>" not in svg and "&lt;i&gt;Ann&lt;/i&gt;" in svg
    assert '<title id="d-title">Per &lt;day&gt;</title>' in svg and 'role="img"' in svg
    assert "style=" not in svg
    assert re.findall(r'data-day="([^"]+)" data-total="(\d+)"', svg) == [
        ("2025-03-01", "3"), ("2025-03-02", "3")
    ]  # fmt: skip
    segments = re.findall(
        r'data-key="([^"]+)" data-value="(\d+)" x="[\d.]+" y="([\d.]+)" width="[\d.]+" '
        r'height="([\d.]+)" fill="(#\w+)"',
        svg,
    )
    assert [(key, value) for key, value, *_ in segments] == [
        ("a&amp;b", "2"), ("b", "1"), ("b", "3")
    ]  # fmt: skip
    (_, _, y_a, h_a, fill_a), (_, _, y_b, h_b, fill_b), (_, _, y_full, h_full, _) = segments
    assert abs(float(y_b) + float(h_b) - float(y_a)) < 0.2, "Bo sits on Ann's segment"
    assert float(h_full) > float(h_a) > float(h_b) and fill_a != fill_b
    assert re.findall(r'<g class="legend-item" data-key="([^"]+)"', svg) == ["a&amp;b", "b"]
    assert "Bo (4)" in svg


# -- settings ---------------------------------------------------------------------------


def test_settings_are_saved_and_used(db_app: Flask, db_planner: FlaskClient) -> None:
    before = campaign(db_app)
    form = settings_form(
        before,
        name="Lueur autumn",
        brand="Maison Aurelle",
        embed_origins="https://Shop.Example\nhttp://localhost:8000\n",
        moods="calm, sunny\nsunny",
        scents="woody",
        consent_text="Keep my words for a week.\r\nThen delete them.",
        consent_version="2",
        retention_days="7",
    )
    del form["store_text"]
    response = post(db_planner, "/planner/settings", form)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"] == "/planner/settings"
    saved = campaign(db_app)
    assert saved.model_dump(exclude={"updated_at", "index_version"}) == {
        **before.model_dump(exclude={"updated_at", "index_version"}),
        "name": "Lueur autumn",
        "brand": "Maison Aurelle",
        "embed_origins": ["https://shop.example", "http://localhost:8000"],
        "quick_picks": {"moods": ["calm", "sunny"], "scents": ["woody"]},
        "consent_text": "Keep my words for a week.\nThen delete them.",
        "consent_version": "2",
        "retention_days": 7,
        "store_text": False,
    }
    page = db_planner.get("/planner/settings").get_data(as_text=True)
    assert "Settings saved." in page
    assert "https://shop.example\nhttp://localhost:8000</textarea>" in page
    assert 'value="sunny"' in db_planner.get("/").get_data(as_text=True)
    csp = db_planner.get("/embed").headers["Content-Security-Policy"]
    assert "frame-ancestors https://shop.example http://localhost:8000" in csp
    answer = pair(db_planner, SHOPPER_TEXTS[0], consent=True)
    assert answer["text_stored"] is False, "the campaign keeps no text any more"
    assert stored_texts(db_app) == []


def test_settings_of_another_campaign_are_its_own(
    db_app: Flask, db_planner: FlaskClient, tmp_path: Path
) -> None:
    seaside = add_campaign(db_planner, write_roster(tmp_path / "seaside"))
    default_before = campaign(db_app)
    page = db_planner.get(f"/planner/settings?campaign={seaside}").get_data(as_text=True)
    assert "Settings of Seaside summer" in page
    assert f'action="/planner/settings?campaign={seaside}"' in page
    moved = write_roster(tmp_path / "moved")
    form = settings_form(
        campaign(db_app, seaside),
        embed_origins="https://coast.example",
        moods="breezy",
        profiles_dir=str(moved),
    )
    response = post(db_planner, f"/planner/settings?campaign={seaside}", form)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"] == f"/planner/settings?campaign={seaside}"
    saved = campaign(db_app, seaside)
    assert saved.embed_origins == ["https://coast.example"]
    assert saved.profiles_dir == str(moved)
    assert campaign(db_app) == default_before, "the default campaign is untouched"
    embed = db_planner.get(f"/c/{seaside}/embed")
    assert "frame-ancestors https://coast.example" in embed.headers["Content-Security-Policy"]
    assert 'value="breezy"' in db_planner.get(f"/c/{seaside}/").get_data(as_text=True)
    assert 'value="breezy"' not in db_planner.get("/").get_data(as_text=True)


def test_the_default_campaign_keeps_the_servers_roster(
    db_app: Flask, db_planner: FlaskClient, tmp_path: Path
) -> None:
    page = db_planner.get("/planner/settings").get_data(as_text=True)
    assert 'name="profiles_dir"' not in page and "MATCHER_PROFILES" in page
    before = campaign(db_app)
    form = settings_form(before, profiles_dir=str(write_roster(tmp_path / "elsewhere")))
    assert post(db_planner, "/planner/settings", form).status_code == 303
    assert campaign(db_app).profiles_dir == before.profiles_dir


def test_changing_the_consent_notice_needs_a_new_version(
    db_app: Flask, db_planner: FlaskClient
) -> None:
    before = campaign(db_app)
    changed = "Keep what I wrote for ten years."
    response = post(db_planner, "/planner/settings", settings_form(before, consent_text=changed))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "give it a new version" in field_errors(page)["consent_version"]
    assert changed in page, "what was typed is kept"
    assert campaign(db_app) == before
    same = settings_form(before, consent_text=before.consent_text.replace("\n", "\r\n") + "  ")
    assert post(db_planner, "/planner/settings", same).status_code == 303, "no real change"
    form = settings_form(before, consent_text=changed, consent_version="2")
    assert post(db_planner, "/planner/settings", form).status_code == 303
    assert (campaign(db_app).consent_text, campaign(db_app).consent_version) == (changed, "2")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [pytest.param("embed_origins", "https://shop.example/path", "must look like", id="origin-with-path"),
     pytest.param("embed_origins", "ftp://shop.example", "must look like", id="origin-ftp-scheme"),
     pytest.param("embed_origins", "shop.example", "must look like", id="origin-without-scheme"),
     pytest.param("embed_origins", "https://ok.example\njavascript:alert(1)", "must look like", id="origin-script"),
     pytest.param("moods", " , ", "at least one", id="no-moods"),
     pytest.param("scents", "x" * 41, "under 40 characters", id="over-long-pick"),
     pytest.param("scents", ",".join(f"s{n}" for n in range(21)), "at most 20", id="too-many-picks"),
     pytest.param("name", "  ", "Fill this in", id="blank-name"),
     pytest.param("brand", "b" * 201, "200 characters at most", id="over-long-brand"),
     pytest.param("consent_version", "", "Fill this in", id="blank-version"),
     pytest.param("retention_days", "0", "from 1 to 3650", id="no-retention"),
     pytest.param("retention_days", "3651", "from 1 to 3650", id="retention-over-ten-years"),
     pytest.param("retention_days", "30.5", "from 1 to 3650", id="retention-fraction"),
     pytest.param("retention_days", "a month", "from 1 to 3650", id="retention-words")],
)  # fmt: skip
def test_bad_settings_are_refused_and_nothing_is_saved(
    db_app: Flask, db_planner: FlaskClient, field: str, value: str, problem: str
) -> None:
    before = campaign(db_app)
    form = settings_form(before, **{field: value})
    response = post(db_planner, "/planner/settings", form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Nothing was saved" in page
    errors = field_errors(page)
    assert list(errors) == [field] and problem in errors[field]
    assert 'aria-invalid="true"' in page
    assert str(escape(value)) in page, "what was typed is kept for correcting"
    assert campaign(db_app) == before


def test_a_moved_roster_must_load(db_app: Flask, db_planner: FlaskClient, tmp_path: Path) -> None:
    seaside = add_campaign(db_planner, write_roster(tmp_path / "seaside"))
    before = campaign(db_app, seaside)
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, problem in ((tmp_path / "missing", "not found"), (empty, "no profile files")):
        form = settings_form(before, profiles_dir=str(folder))
        response = post(db_planner, f"/planner/settings?campaign={seaside}", form)
        assert response.status_code == 400
        assert problem in field_errors(response.get_data(as_text=True))["profiles_dir"]
    assert campaign(db_app, seaside) == before


def test_settings_say_when_the_environment_wins(tmp_path: Path, sample_matcher: Matcher) -> None:
    app = make_app(tmp_path, sample_matcher, MATCHER_EMBED_ORIGINS="https://env.example")
    client = app.test_client()
    login(client)
    page = client.get("/planner/settings").get_data(as_text=True)
    assert "MATCHER_EMBED_ORIGINS environment variable is set" in page
    assert "https://env.example" in page
    seaside = add_campaign(client, write_roster(tmp_path / "seaside"))
    page = client.get(f"/planner/settings?campaign={seaside}").get_data(as_text=True)
    assert "environment variable is set" not in page, "it wins for the default campaign only"


def test_without_an_environment_setting_there_is_no_such_note(planner: FlaskClient) -> None:
    page = planner.get("/planner/settings").get_data(as_text=True)
    assert "environment variable is set" not in page


# -- campaigns --------------------------------------------------------------------------


def test_a_campaign_is_created_listed_and_selected(
    db_app: Flask, db_planner: FlaskClient, tmp_path: Path
) -> None:
    folder = write_roster(tmp_path / "seaside")
    response = post(db_planner, "/planner/campaigns", new_campaign_form(folder))
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"] == "/planner/campaigns?campaign=seaside"
    created = campaign(db_app, "seaside")
    assert created.model_dump(include={
        "name", "brand", "profiles_dir", "embed_origins", "quick_picks", "consent_text",
        "consent_version", "retention_days", "store_text",
    }) == {
        "name": "Seaside summer", "brand": "Lueur Marine", "profiles_dir": str(folder),
        "embed_origins": ["https://sea.example"],
        "quick_picks": {"moods": ["calm", "sunny"], "scents": ["salty"]},
        "consent_text": "Keep what I wrote for 30 days.", "consent_version": "sea-1",
        "retention_days": 30, "store_text": True,
    }  # fmt: skip

    page = db_planner.get(response.headers["Location"]).get_data(as_text=True)
    assert "Campaign Seaside summer created" in page
    assert re.search(r'<option value="seaside" selected>', page), "the switcher shows it"
    row = page[page.index('<tr data-campaign="seaside"') :]
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row[: row.index("</tr>")], flags=re.S)
    assert "Seaside summer" in cells[0]
    assert cells[1:7] == [
        "Lueur Marine", "<code>seaside</code>", f"<code>{folder}</code>", "30 days",
        "yes, with consent", "sea-1",
    ]  # fmt: skip
    assert "http://localhost/c/seaside/" in cells[7]
    assert 'value="sunny"' in db_planner.get("/c/seaside/").get_data(as_text=True)
    answer = pair(db_planner, "sailing every morning", slug="seaside", consent=True)
    assert answer["campaign"] == "seaside" and answer["text_stored"] is True


BAD_CAMPAIGNS = [
    pytest.param({"slug": "Spring 2025"}, "slug", "lower-case letters", id="slug-with-capitals"),
    pytest.param({"slug": "-spring"}, "slug", "lower-case letters", id="slug-leading-dash"),
    pytest.param({"slug": "s" * 41}, "slug", "lower-case letters", id="slug-too-long"),
    pytest.param({"slug": ""}, "slug", "lower-case letters", id="no-slug"),
    pytest.param({"slug": "default"}, "slug", "already a campaign", id="slug-taken"),
    pytest.param({"name": ""}, "name", "Fill this in", id="no-name"),
    pytest.param({"brand": "   "}, "brand", "Fill this in", id="blank-brand"),
    pytest.param({"profiles_dir": ""}, "profiles_dir", "Fill this in", id="no-roster"),
    pytest.param({"profiles_dir": "no-such-folder"}, "profiles_dir", "not found", id="missing-roster"),
    pytest.param({"profiles_dir": "/no/such/folder"}, "profiles_dir", "Choose a folder inside", id="outside-the-rosters-folder"),
    pytest.param({"profiles_dir": str(SAMPLE_PROFILES)}, "profiles_dir", "Choose a folder inside", id="a-roster-outside"),
    pytest.param({"profiles_dir": "../" * 30 + "etc"}, "profiles_dir", "Choose a folder inside", id="climbing-out"),
    pytest.param({"embed_origins": "sea.example"}, "embed_origins", "must look like", id="bad-origin"),
    pytest.param({"moods": ""}, "moods", "at least one", id="no-moods"),
    pytest.param({"consent_text": ""}, "consent_text", "Fill this in", id="no-consent-text"),
    pytest.param({"consent_text": "c" * 4001}, "consent_text", "4000 characters", id="long-consent"),
    pytest.param({"consent_version": "v" * 41}, "consent_version", "40 characters", id="long-version"),
    pytest.param({"retention_days": "-5"}, "retention_days", "from 1 to 3650", id="negative-retention"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "field", "problem"), BAD_CAMPAIGNS)
def test_bad_campaigns_are_refused_field_by_field(
    db_app: Flask,
    db_planner: FlaskClient,
    tmp_path: Path,
    changes: dict[str, str],
    field: str,
    problem: str,
) -> None:
    form = new_campaign_form(write_roster(tmp_path / "seaside"), **changes)
    response = post(db_planner, "/planner/campaigns", form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "The campaign was not created" in page
    errors = field_errors(page)
    assert list(errors) == [field] and problem in errors[field]
    for name, value in form.items():
        if name not in ("token", "store_text"):
            assert str(escape(value.strip() if name == "slug" else value)) in page, name
    assert 'name="store_text" value="yes" checked' in page
    assert [c.slug for c in list_campaigns(database(db_app))] == ["default"]


def test_every_problem_is_shown_at_once(planner: FlaskClient, tmp_path: Path) -> None:
    form = new_campaign_form(
        tmp_path / "missing", slug="Bad Slug", name="", embed_origins="x", retention_days="0"
    )
    response = post(planner, "/planner/campaigns", form)
    assert response.status_code == 400
    errors = field_errors(response.get_data(as_text=True))
    assert set(errors) == {"slug", "name", "profiles_dir", "embed_origins", "retention_days"}


def test_switching_campaigns_changes_every_page(
    db_app: Flask, db_planner: FlaskClient, tmp_path: Path
) -> None:
    folder = write_roster(tmp_path / "seaside")
    seaside = add_campaign(db_planner, folder)
    page = db_planner.get(f"/planner/?campaign={seaside}").get_data(as_text=True)
    summary = page[page.index('<table class="roster">') :]
    assert re.findall(r'<tr data-celebrity-id="([^"]+)"', summary[: summary.index("</table>")]) == [
        "library", "ocean", "stage"
    ]  # fmt: skip
    nav = page[page.index('<nav class="planner-nav"') :]
    links = re.findall(r'href="(/planner/[^"]*)"', nav[: nav.index("</nav>")])
    assert links and all(link.endswith(f"campaign={seaside}") for link in links), links
    assert f"/planner/?lang=zh&amp;campaign={seaside}" in page, "languages keep it too"
    switcher = page[page.index('class="campaign-switch"') :]
    assert re.findall(r'<option value="([^"]+)"', switcher[: switcher.index("</form>")]) == [
        "default", seaside
    ]  # fmt: skip

    ranking = post(db_planner, f"/planner/try?campaign={seaside}", {"text": "surfing at sea"})
    assert ranked_ids(ranking.get_data(as_text=True))[0] == "ocean"
    assert len(ranked_ids(ranking.get_data(as_text=True))) == 3

    text = "a walk in the park"
    before = ranked_ids(
        post(db_planner, f"/planner/try?campaign={seaside}", {"text": text}).get_data(as_text=True)
    )
    response = post(
        db_planner,
        f"/planner/corrections?campaign={seaside}",
        {"text": text, "right": before[-1], "wrong": before[0]},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert (folder / "corrections.jsonl").exists()
    assert not (Path(db_app.config["MATCHER_PROFILES"]) / "corrections.jsonl").exists()
    assert ranked_ids(response.get_data(as_text=True))[0] == before[-1], "applied at once"

    response = post(db_planner, f"/planner/refresh?campaign={seaside}", {})
    assert response.headers["Location"] == f"/planner/?campaign={seaside}"

    snippet = db_planner.get(f"/planner/embed?campaign={seaside}").get_data(as_text=True)
    assert escape('src="http://localhost/c/seaside/embed"') in snippet
    assert "Sites allowed to embed it now: https://sea.example." in snippet
    default = db_planner.get("/planner/").get_data(as_text=True)
    assert 'data-celebrity-id="chen-an"' in default and 'data-celebrity-id="ocean"' not in default


@pytest.mark.parametrize(
    "slug",
    [pytest.param("nope", id="unknown"), pytest.param("Nope", id="capitals"),
     pytest.param("..%2Fetc", id="path"), pytest.param("x" * 300, id="long")],
)  # fmt: skip
@pytest.mark.parametrize(
    "path", ["/planner/", "/planner/dashboard", "/planner/settings", "/planner/pairings.csv"]
)
def test_an_unknown_campaign_is_a_clear_404(planner: FlaskClient, slug: str, path: str) -> None:
    response = planner.get(f"{path}?campaign={slug}")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "There is no campaign" in page and "/planner/campaigns" in page
    response = post(planner, f"/planner/settings?campaign={slug}", {"name": "x"})
    assert response.status_code == 404


def test_login_comes_back_to_the_campaign(client: FlaskClient) -> None:
    response = client.get("/planner/dashboard?campaign=default&since=2025-01-01")
    assert response.status_code == 302
    target = "/planner/dashboard?campaign=default&since=2025-01-01"
    data = {"token": token(client.application), "user": "planner", "password": PASSWORD}  # type: ignore[arg-type]
    response = client.post("/planner/login", data={**data, "next": target})
    assert response.headers["Location"] == target


# -- privacy requests -------------------------------------------------------------------


def test_a_shoppers_data_is_exported_then_deleted(
    db_app: Flask, db_planner: FlaskClient, tmp_path: Path
) -> None:
    seaside = add_campaign(db_planner, write_roster(tmp_path / "seaside"))
    secret = "MY-PRIVATE-TEXT-91 slow mornings with oolong tea"
    pair(db_planner, secret, ref="ana", consent=True)
    pair(db_planner, "sailing at the beach", ref="ana", slug=seaside)
    pair(db_planner, SHOPPER_TEXTS[1], ref="bo", consent=True)
    assert stored_refs(db_app) == {"ana": 2, "bo": 1}

    response = post(db_planner, "/planner/privacy", {"action": "export", "ref": " ana "})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == 'attachment; filename="shopper-ana.json"'
    exported = json.loads(response.data)
    assert exported["shopper_ref"] == "ana"
    assert [(p["campaign"], p["text"]) for p in exported["pairings"]] == [
        ("default", secret), (seaside, None)
    ]  # fmt: skip

    response = post(db_planner, "/planner/privacy", {"action": "delete", "ref": "ana"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Delete everything held on ana?" in page
    assert "2 pairings, 1 of them with the shopper's text:" in page
    assert "<li>Lueur launch: 1</li>" in page and "<li>Seaside summer: 1</li>" in page
    assert secret not in page
    assert stored_refs(db_app) == {"ana": 2, "bo": 1}, "nothing is deleted before confirming"

    response = post(db_planner, "/planner/privacy", {"action": "confirm-delete", "ref": "ana"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Deleted 2 pairings of the reference ana, texts included." in page
    assert "The database files were cleaned too" in page
    assert stored_refs(db_app) == {"bo": 1}
    assert stored_texts(db_app) == [SHOPPER_TEXTS[1]]

    response = post(db_planner, "/planner/privacy", {"action": "export", "ref": "ana"})
    assert response.status_code == 404
    assert (
        "Nothing is held on the reference ana"
        in field_errors(response.get_data(as_text=True))["ref"]
    )
    again = post(db_planner, "/planner/privacy", {"action": "confirm-delete", "ref": "ana"})
    assert "Deleted 0 pairings" in again.get_data(as_text=True)


def test_an_odd_reference_makes_a_safe_file_name(db_planner: FlaskClient) -> None:
    ref = '../"evil" ref/x'
    pair(db_planner, SHOPPER_TEXTS[0], ref=ref)
    response = post(db_planner, "/planner/privacy", {"action": "export", "ref": ref})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="shopper-____evil__ref_x.json"'
    )
    assert json.loads(response.data)["shopper_ref"] == ref


@pytest.mark.parametrize(
    ("data", "status"),
    [pytest.param({"action": "export", "ref": "  "}, 400, id="blank-ref"),
     pytest.param({"action": "delete"}, 400, id="no-ref"),
     pytest.param({"action": "confirm-delete", "ref": "r" * 201}, 400, id="long-ref"),
     pytest.param({"action": "delete", "ref": "nobody"}, 404, id="unknown-ref"),
     pytest.param({"action": "explode", "ref": "kept"}, 400, id="unknown-action")],
)  # fmt: skip
def test_bad_privacy_requests_change_nothing(
    app: Flask, planner: FlaskClient, data: dict[str, str], status: int
) -> None:
    pair(planner, SHOPPER_TEXTS[0], ref="kept")
    response = post(planner, "/planner/privacy", data)
    assert response.status_code == status
    assert 'role="alert"' in response.get_data(as_text=True)
    assert stored_refs(app) == {"kept": 1}


def test_the_purge_counts_then_deletes_what_is_past_retention(
    db_app: Flask, db_planner: FlaskClient, tmp_path: Path
) -> None:
    seaside = add_campaign(db_planner, write_roster(tmp_path / "seaside"))  # 30 days
    for ref, slug, age in [("old-default", None, 200), ("new-default", None, 100),
                           ("old-sea", seaside, 40), ("new-sea", seaside, 20)]:  # fmt: skip
        pair(db_planner, "sailing and tea", ref=ref, slug=slug, consent=True)
        move_to(db_app, ref, days_ago(age))

    def purge_table(page: str) -> dict[str, int]:
        return {
            slug: int(count)
            for slug, count in re.findall(
                r'<tr data-campaign="([^"]+)"><th scope="row">[^<]*</th><td class="number">(\d+)',
                page,
            )
        }

    response = post(db_planner, "/planner/privacy", {"action": "dry-run"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Trial run: pairings that the purge would delete" in page
    assert purge_table(page) == {"default": 1, seaside: 1}
    assert '<td class="number" id="purge-total">2</td>' in page
    assert len(stored_refs(db_app)) == 4, "a trial run deletes nothing"

    response = post(db_planner, "/planner/privacy", {"action": "purge"})
    page = response.get_data(as_text=True)
    assert "Pairings deleted by the purge" in page
    assert purge_table(page) == {"default": 1, seaside: 1}
    assert "Database files:" in page
    assert set(stored_refs(db_app)) == {"new-default", "new-sea"}
    response = post(db_planner, "/planner/privacy", {"action": "purge"})
    assert purge_table(response.get_data(as_text=True)) == {"default": 0, seaside: 0}


# -- embed snippet ----------------------------------------------------------------------


def test_snippet_embeds_this_host_and_checks_the_origin(app: Flask) -> None:
    client = app.test_client()
    host = "https://matcher.lueur.example"
    login(client, base_url=host)
    page = client.get("/planner/embed", base_url=host).get_data(as_text=True)
    assert escape(f'<iframe id="lueur-matcher" src="{host}/embed"') in page
    assert escape(f'var MATCHER_ORIGIN = "{host}";') in page
    assert escape("if (event.origin !== MATCHER_ORIGIN") in page
    assert "matcher:height" in page and "matcher:paired" in page
    assert "No site may embed the matcher yet" in page
    assert check_page(page).inline_scripts == 0, "the snippet is shown, not run"


# -- every page -------------------------------------------------------------------------


def test_planner_pages_keep_the_csp_and_label_every_control(
    app: Flask, client: FlaskClient
) -> None:
    pages = {"login": client.get("/planner/login").get_data(as_text=True)}
    login(client)
    job_id = job_id_of(upload(client, "a.csv", shopper_csv([("1", SHOPPER_TEXTS[0]), ("2", "")])))
    wait_for(app, job_id)
    pair(client, SHOPPER_TEXTS[0], ref="one")
    for path in ("/planner/", "/planner/try", "/planner/batches", f"/planner/batches/{job_id}",
                 "/planner/dashboard", "/planner/settings", "/planner/embed",
                 "/planner/campaigns", "/planner/privacy"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        pages[path] = response.get_data(as_text=True)
    pages["ranking"] = post(client, "/planner/try", {"text": SHOPPER_TEXTS[1]}).get_data(
        as_text=True
    )
    pages["confirm-delete"] = post(
        client, "/planner/privacy", {"action": "delete", "ref": "one"}
    ).get_data(as_text=True)
    pages["purge"] = post(client, "/planner/privacy", {"action": "dry-run"}).get_data(as_text=True)
    pages["bad-campaign"] = post(client, "/planner/campaigns", {"name": ""}).get_data(as_text=True)
    for name, page in pages.items():
        check = check_page(page)
        assert check.inline_scripts == 0, name
        assert check.style_attributes == [] and check.style_elements == 0, name
        assert set(check.controls) <= check.labelled, (name, check.controls, check.labelled)
        assert "lang=None" not in page, name
    dashboard = check_page(pages["/planner/dashboard"])
    assert len(dashboard.svgs) == 3
    assert all(svg.get("role") == "img" and svg.get("aria-labelledby") for svg in dashboard.svgs)
