"""Quotas through the web: the API answers who was assigned, and a full celebrity is passed over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from web import create_app

from .test_batch import LIBRARY_TEXT, OCEAN_TEXT
from .test_batch_assign import matcher_with
from .test_web import post_form


def quota_app(tmp_path: Path, database_url: str, quotas: dict[str, int]) -> Flask:
    matcher = matcher_with(tmp_path, {name: f"quota: {n}\n" for name, n in quotas.items()})
    return create_app(
        {"TESTING": True, "INSTANCE_PATH": str(tmp_path), "MATCHER_DATABASE_URL": database_url},
        matcher=matcher,
    )


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    app = quota_app(tmp_path, database_url, {"ocean": 1, "stage": 0})
    yield app
    app.extensions["matcher.db"].dispose()


def test_the_api_assigns_within_the_quota_and_says_why(app: Flask) -> None:
    client = app.test_client()
    first = client.post("/api/v1/match", json={"text": OCEAN_TEXT}).get_json()
    second = client.post("/api/v1/match", json={"text": OCEAN_TEXT}).get_json()
    # The ranking is by fit either way; the assignment is beside it.
    assert first["matches"][0]["celebrity_id"] == second["matches"][0]["celebrity_id"] == "ocean"
    assert first["assigned"] == {"celebrity_id": "ocean", "assignment": "best"}
    # Ocean's one place is taken, stage has none: library.
    assert second["assigned"] == {"celebrity_id": "library", "assignment": "full"}


def test_a_batch_call_is_assigned_exactly_and_a_retry_gets_the_same(app: Flask) -> None:
    client = app.test_client()
    items = [{"text": OCEAN_TEXT}, {"text": OCEAN_TEXT}, {"text": LIBRARY_TEXT}]
    headers = {"Idempotency-Key": "batch-1"}
    body = client.post("/api/v1/match/batch", json={"items": items}, headers=headers).get_json()
    assigned = [r["assigned"]["celebrity_id"] for r in body["results"]]
    assert assigned.count("ocean") == 1 and "stage" not in assigned
    again = client.post("/api/v1/match/batch", json={"items": items}, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert [r["assigned"]["celebrity_id"] for r in again.get_json()["results"]] == assigned


def test_when_no_place_is_left_nobody_is_paired(tmp_path: Path, database_url: str) -> None:
    app = quota_app(tmp_path, database_url, {"ocean": 1, "library": 0, "stage": 0})
    client = app.test_client()
    client.post("/api/v1/match", json={"text": OCEAN_TEXT})
    late = client.post("/api/v1/match", json={"text": OCEAN_TEXT})
    app.extensions["matcher.db"].dispose()
    assert late.status_code == 200
    assert late.get_json()["assigned"] is None


def test_the_form_says_honestly_why_another_celebrity_was_chosen(app: Flask) -> None:
    client = app.test_client()
    status, first = post_form(client, text=OCEAN_TEXT)
    assert status == 200 and "Ocean Star" in first and "no places left" not in first
    status, second = post_form(client, text=OCEAN_TEXT)
    assert status == 200
    heading = second.split('id="result-title">', 1)[1].split("</h2>", 1)[0]
    assert "Quiet Reader" in heading
    assert "Ocean Star, your closest match, has no places left" in second


def test_the_form_says_when_every_place_has_gone(tmp_path: Path, database_url: str) -> None:
    app = quota_app(tmp_path, database_url, {"ocean": 0, "library": 0, "stage": 0})
    _, page = post_form(app.test_client(), text=OCEAN_TEXT)
    app.extensions["matcher.db"].dispose()
    assert "places have gone" in page
    assert "Your reference" not in page


def test_a_planner_upload_never_takes_more_than_the_quota(tmp_path: Path) -> None:
    from sqlalchemy import func, select

    from matcher.store.schema import PairingRow

    from .planner.conftest import job_id_of, login, make_app, shopper_csv, upload, wait_for

    matcher = matcher_with(tmp_path, {"ocean": "quota: 2\n"})
    app = make_app(tmp_path, matcher)
    planner = app.test_client()
    assert login(planner).status_code == 303
    # One place taken by a shopper on the form first.
    post_form(app.test_client(), text=OCEAN_TEXT)
    rows = [(f"crm-{n}", OCEAN_TEXT) for n in range(4)]
    view = wait_for(app, job_id_of(upload(planner, "crm.csv", shopper_csv(rows))))
    assert view.stored == 4
    with app.extensions["matcher.db"].read() as session:
        counts = dict(
            session.execute(
                select(PairingRow.celebrity_id, func.count()).group_by(PairingRow.celebrity_id)
            ).all()
        )
    assert counts["ocean"] == 2
    assert sum(counts.values()) == 5
    with app.extensions["matcher.db"].read() as session:
        moved = session.execute(
            select(PairingRow.first_choice, PairingRow.assignment).where(
                PairingRow.source == "upload", PairingRow.celebrity_id != "ocean"
            )
        ).all()
    # Solved for the whole upload over the one place left: three moved, saying why.
    assert [tuple(row) for row in moved] == [("ocean", "full")] * 3


def test_the_dashboard_shows_places_against_quotas(tmp_path: Path) -> None:
    import re

    from .planner.conftest import login, make_app

    matcher = matcher_with(tmp_path, {"ocean": "quota: 2\nmax_share: 0.5\n"})
    app = make_app(tmp_path, matcher)
    shopper = app.test_client()
    for text in (OCEAN_TEXT, OCEAN_TEXT, OCEAN_TEXT, LIBRARY_TEXT):
        post_form(shopper, text=text)
    planner = app.test_client()
    assert login(planner).status_code == 303
    page = planner.get("/planner/dashboard").get_data(as_text=True)
    assert "Places and shares" in page
    row = page[page.index('<tr data-celebrity-id="ocean"', page.index("places-data")) :]
    cells = re.findall(r'<td class="number">(.*?)</td>', row[: row.index("</tr>")])
    assert cells[:2] == ["2", "2"]  # promised, quota
    assert cells[3] == "0–50%"
    # The chart draws ocean's running total and a dashed quota line at 2.
    assert re.search(r'<g class="fill" data-key="ocean" data-total="2">', page)
    assert 'class="quota" data-value="2"' in page
    roster = planner.get("/planner/").get_data(as_text=True)
    assert "2 · share 0–50%" in roster
