"""Shared fixtures and helpers of the planner tests: an app on the real model and the shipped
roster, a signed-in planner client, stored campaigns on SQLite and PostgreSQL.

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
import re
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select, update

from matcher.store import Campaign, find_campaign
from matcher.store.schema import PairingRow
from web.campaigns import database
from web.jobs import JobRegistry, JobView
from web.planner import job_registry
from web.planner.base import LOGIN_SALT
from web.security import form_token, signed_token

from ..conftest import PLANNER_PASSWORD
from ..conftest import make_app as make_app

PASSWORD = PLANNER_PASSWORD
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
