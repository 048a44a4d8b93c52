"""What the web stores: every answered pairing, the text only with consent where the
campaign keeps it, per campaign; on SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from matcher.matching import Matcher
from matcher.store import CampaignSettings, Database, create_campaign
from matcher.store.schema import BatchRow, PairingRow

from .conftest import SAMPLE_PROFILES, make_app, write_roster
from .test_serve import free_port
from .test_web import post_form

TEXT = "quiet mornings with green tea, linen shirts and a good novel"


@pytest.fixture
def app(db_app: Flask) -> Flask:
    """Every test here runs on SQLite and, when configured, PostgreSQL."""
    return db_app


def pairings(db: Database) -> list[PairingRow]:
    with db.read() as session:
        return list(session.scalars(select(PairingRow).order_by(PairingRow.id)))


@pytest.fixture
def spring(db: Database, tmp_path: Path) -> str:
    """A second campaign on its own (tiny) roster that keeps no shopper text."""
    # Inside the rosters root (the instance's rosters/ folder), where campaign rosters must be.
    roster = write_roster(tmp_path / "instance" / "rosters" / "spring")
    create_campaign(
        db,
        CampaignSettings(
            slug="spring",
            name="Spring pop-up",
            brand="Lueur",
            profiles_dir=str(roster),
            embed_origins=["https://spring.example"],
            store_text=False,
        ),
    )
    return "spring"


def shown_ref(page: str) -> str:
    found = re.search(r"<code>([^<]+)</code>", page)
    assert found, "the result shows the shopper's reference"
    return found.group(1)


# -- the default campaign --------------------------------------------------------------


def test_the_app_creates_the_default_campaign_on_its_database(app: Flask, db: Database) -> None:
    from matcher.store import get_campaign

    campaign = get_campaign(db, "default")
    assert campaign.store_text is True
    assert campaign.profiles_dir == app.config["MATCHER_PROFILES"]


def test_form_with_consent_stores_the_text_with_the_pairing(
    client: FlaskClient, db: Database, sample_matcher: Matcher
) -> None:
    status, page = post_form(client, "/", text=TEXT, consent="yes")
    assert status == 200
    [row] = pairings(db)
    assert row.shopper_ref == shown_ref(page)
    assert row.shopper_text == TEXT
    assert row.consent_version == "1"
    assert row.source == "form"
    assert row.celebrity_id == sample_matcher.match(TEXT, 1)[0].celebrity_id
    assert row.model_id == sample_matcher.index.model_id
    assert "We kept what you wrote" in page


def test_form_without_consent_stores_only_the_pairing(client: FlaskClient, db: Database) -> None:
    status, page = post_form(client, "/", text=TEXT)
    assert status == 200
    [row] = pairings(db)
    assert row.shopper_text is None and row.consent_version is None
    assert row.shopper_ref == shown_ref(page)
    assert "We kept what you wrote" not in page


def test_a_refused_text_stores_nothing(client: FlaskClient, db: Database) -> None:
    status, _ = post_form(client, "/", text="   ", consent="yes")
    assert status == 400
    assert pairings(db) == []


def test_embed_keeps_the_reference_the_microsite_passed(client: FlaskClient, db: Database) -> None:
    status, page = post_form(client, "/embed?ref=crm-0042", text=TEXT, consent="yes")
    assert status == 200
    [row] = pairings(db)
    assert (row.shopper_ref, row.source) == ("crm-0042", "embed")
    assert shown_ref(page) == "crm-0042"


def test_api_stores_the_pairing_and_the_text_only_with_consent(
    client: FlaskClient, db: Database
) -> None:
    silent = client.post("/api/v1/match", json={"text": TEXT, "shopper_ref": "a-1"}).get_json()
    agreed = client.post("/api/v1/match", json={"text": TEXT, "consent": True}).get_json()
    assert silent["text_stored"] is False and agreed["text_stored"] is True
    first, second = pairings(db)
    assert (first.shopper_ref, first.shopper_text, first.source) == ("a-1", None, "api")
    assert (second.shopper_ref, second.shopper_text) == (agreed["shopper_ref"], TEXT)
    assert first.score == pytest.approx(silent["matches"][0]["score"])
    assert first.reasons == [
        {"facet": r["facet"], "score": pytest.approx(r["score"], abs=1e-4), "quote": r["quote"]}
        for r in silent["matches"][0]["reasons"]
    ]


def test_api_batch_is_stored_as_one_batch_without_the_bad_items(
    client: FlaskClient, db: Database
) -> None:
    items = [
        {"text": TEXT, "shopper_ref": "b-1", "consent": True},
        {"text": "   ", "shopper_ref": "b-2"},
        {"text": "street dance battles and neon sneakers", "shopper_ref": "b-3"},
    ]
    body = client.post("/api/v1/match/batch", json={"items": items}).get_json()
    rows = pairings(db)
    assert [r.shopper_ref for r in rows] == ["b-1", "b-3"]
    assert {r.batch_id for r in rows} == {body["batch_id"]}
    assert [r.shopper_text for r in rows] == [TEXT, None]
    with db.read() as session:
        batch = session.get_one(BatchRow, body["batch_id"])
    assert (batch.pairings, batch.source) == (2, "api")


def test_shopper_text_never_reaches_a_log_line(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A clear text around the marker: only confident answers are stored, and
    # the INSERT must happen for the test to mean anything.
    marker = f"marker-{uuid.uuid4().hex} 周末喜欢泡一壶普洱，窝在窗边看书，闻着薰衣草"
    # With SQLAlchemy's statement log on too, as an operator debugging might turn it.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.INFO, "sqlalchemy.engine"):
        post_form(client, "/", text=marker, consent="yes")
        client.post("/api/v1/match", json={"text": marker, "consent": True})
        client.post("/api/v1/match/batch", json={"items": [{"text": marker, "consent": True}]})
    assert any("INSERT INTO pairings" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if "marker-" in r.getMessage()]


# -- other campaigns -------------------------------------------------------------------


def test_a_campaign_has_its_own_page_roster_and_no_text_kept(
    client: FlaskClient, db: Database, spring: str
) -> None:
    page = client.get(f"/c/{spring}/").get_data(as_text=True)
    assert 'id="consent"' not in page  # this campaign keeps no text: nothing to agree to
    assert f'action="/c/{spring}/"' in page
    status, page = post_form(client, f"/c/{spring}/", text="sequins and karaoke", consent="yes")
    assert status == 200
    [row] = pairings(db)
    assert row.celebrity_id in {"ocean", "library", "stage"}  # the tiny roster, not the sample
    assert row.shopper_text is None and row.consent_version == "1"


def test_the_api_pairs_for_the_campaign_named(
    client: FlaskClient, db: Database, spring: str
) -> None:
    body = {"text": "sequins and karaoke", "consent": True, "campaign": spring}
    answer = client.post("/api/v1/match", json=body).get_json()
    assert answer["campaign"] == spring and answer["text_stored"] is False
    assert answer["matches"][0]["celebrity_id"] in {"ocean", "library", "stage"}
    roster = client.get(f"/api/v1/celebrities?campaign={spring}").get_json()
    assert [c["id"] for c in roster["celebrities"]] == ["library", "ocean", "stage"]
    [row] = pairings(db)
    assert row.shopper_text is None


def test_each_campaign_is_framed_only_by_its_own_origins(client: FlaskClient, spring: str) -> None:
    csp = client.get(f"/c/{spring}/embed").headers["Content-Security-Policy"]
    assert "frame-ancestors https://spring.example" in csp
    assert "frame-ancestors 'none'" in client.get("/embed").headers["Content-Security-Policy"]


def test_an_unknown_campaign_is_a_404_not_a_500(client: FlaskClient, db: Database) -> None:
    assert client.get("/c/nope/").status_code == 404
    response = client.post("/api/v1/match", json={"text": TEXT, "campaign": "nope"})
    assert response.status_code == 404
    assert response.get_json()["error"]["field"] == "campaign"
    bad = client.post("/api/v1/match", json={"text": TEXT, "campaign": "Not A Slug"})
    assert bad.status_code == 400
    assert pairings(db) == []


# -- durability ------------------------------------------------------------------------


def test_an_answered_pairing_survives_the_server_being_killed(tmp_path: Path) -> None:
    """SIGKILL the whole server right after the answer: the pairing is in the database."""
    port = free_port()
    url = f"sqlite:///{tmp_path / 'matcher.db'}"
    env = {
        **os.environ,
        "MATCHER_INSTANCE_DIR": str(tmp_path / "instance"),
        "MATCHER_DATABASE_URL": url,
    }
    command = [
        sys.executable, "-c", "from matcher.cli import main; main()", "serve",
        "--profiles", str(SAMPLE_PROFILES), "--index-dir", str(tmp_path / "index"),
        "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).close()
                break
            except OSError:
                time.sleep(0.5)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/match",
            data=json.dumps({"text": TEXT, "consent": True}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    database = Database(url)
    [row] = pairings(database)
    database.dispose()
    assert (row.shopper_ref, row.shopper_text) == (answer["shopper_ref"], TEXT)


# -- reports API -----------------------------------------------------------------------


def basic(password: str, user: str = "planner") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def reporting(app: Flask) -> Flask:
    app.config["MATCHER_PLANNER_PASSWORD"] = "report-pass"
    return app


def test_reports_need_the_planner_credentials(reporting: Flask) -> None:
    client = reporting.test_client()
    missing = client.get("/api/v1/reports/pairings")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    assert missing.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/reports/pairings", headers=basic("wrong")).status_code == 401
    assert client.get("/api/v1/reports/pairings", headers=basic("report-pass")).status_code == 200


def test_reports_are_off_without_a_planner_password(
    tmp_path: Path, sample_matcher: Matcher, database_url: str
) -> None:
    app = make_app(
        tmp_path, sample_matcher, MATCHER_DATABASE_URL=database_url, MATCHER_PLANNER_PASSWORD=None
    )
    response = app.test_client().get("/api/v1/reports/pairings", headers=basic("anything"))
    assert response.status_code == 503


def test_reports_count_stored_pairings_per_celebrity_and_day(
    reporting: Flask, db: Database, spring: str
) -> None:
    client = reporting.test_client()
    answers = [
        client.post("/api/v1/match", json={"text": text}).get_json()
        for text in (TEXT, TEXT, "street dance battles and neon sneakers")
    ]
    client.post("/api/v1/match", json={"text": "sequins and karaoke", "campaign": spring})
    with db.write() as session:  # move the first pairing to an earlier day
        first = session.scalars(select(PairingRow).order_by(PairingRow.id)).first()
        assert first is not None
        first.created_at = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    auth = basic("report-pass")
    report = client.get("/api/v1/reports/pairings?campaign=default", headers=auth).get_json()
    winners = [a["matches"][0]["celebrity_id"] for a in answers]
    assert report["total"] == 3
    assert report["per_celebrity"] == dict(Counter(winners))
    assert report["per_day"][0] == {"day": "2026-01-02", "celebrity_id": winners[0], "pairings": 1}
    assert sum(d["pairings"] for d in report["per_day"]) == 3
    everything = client.get("/api/v1/reports/pairings", headers=auth).get_json()
    assert everything["total"] == 4 and everything["campaign"] is None
    january = client.get(
        "/api/v1/reports/pairings?since=2026-01-01&until=2026-01-31", headers=auth
    ).get_json()
    assert january["total"] == 1
    bad = client.get("/api/v1/reports/pairings?since=yesterday", headers=auth)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "since"
    unknown = client.get("/api/v1/reports/pairings?campaign=nope", headers=auth)
    assert unknown.status_code == 404


def test_report_csv_lists_pairings_without_any_text(reporting: Flask) -> None:
    client = reporting.test_client()
    marker = f"marker-{uuid.uuid4().hex}"
    # A clear taste around the marker, so the answer is confident and stored.
    text = f"Quiet mornings, green tea and a novel by the window {marker}"
    answer = client.post(
        "/api/v1/match", json={"text": text, "consent": True, "shopper_ref": "=HYPERLINK()"}
    ).get_json()
    assert answer["confident"] is True
    response = client.get("/api/v1/reports/pairings.csv", headers=basic("report-pass"))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert 'filename="pairings-all.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:4] == ["created_at", "campaign", "shopper_ref", "celebrity_id"]
    assert rows[1][1:4] == ["default", "'=HYPERLINK()", answer["matches"][0]["celebrity_id"]]
    assert marker not in response.get_data(as_text=True)
