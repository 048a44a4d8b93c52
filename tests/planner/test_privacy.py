"""Privacy requests: a shopper's copy, deletion and the purge."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from matcher.store.events import EventFilter, daily_events, record_event
from web.campaigns import database

from ..conftest import write_roster
from .conftest import (
    SHOPPER_TEXTS,
    add_campaign,
    campaign,
    days_ago,
    field_errors,
    move_to,
    pair,
    post,
    stored_refs,
    stored_texts,
)

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
    assert "wiped from the database's files, so it cannot be recovered" in page
    assert "write-ahead" not in page and "checkpoint" not in page, "no jargon"
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
    # Visit counts go with the campaign's retention too: 5 views 40 days ago, 3 of today.
    sea = campaign(db_app, seaside)
    long_ago = datetime.now(UTC) - timedelta(days=40)
    record_event(
        database(db_app), sea.id, "view", source="form", language="en", at=long_ago, count=5
    )
    record_event(database(db_app), sea.id, "view", source="form", language="en", count=3)

    def purge_table(page: str) -> dict[str, int]:
        return {
            slug: int(count)
            for slug, count in re.findall(
                r'<tr data-campaign="([^"]+)"><th scope="row">[^<]*</th><td class="number">(\d+)',
                page,
            )
        }

    # The page's main action is the harmless trial run; the purge is not offered yet.
    page = db_planner.get("/planner/privacy").get_data(as_text=True)
    purge_form = page[page.index('id="purge-title"') :]
    assert 'value="dry-run">' in purge_form and 'value="purge"' not in purge_form
    assert 'class="danger"' not in purge_form

    response = post(db_planner, "/planner/privacy", {"action": "dry-run"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "What the deletion would remove, nothing deleted yet" in page
    assert purge_table(page) == {"default": 1, seaside: 1}
    assert '<td class="number" id="purge-total">2</td>' in page
    assert len(stored_refs(db_app)) == 4, "a trial run deletes nothing"
    # The second step shows the counts and carries the confirmation, marked as destructive.
    danger = page[page.index('class="danger-zone"') :]
    assert "2 pairings and 5 visit counts will be deleted" in danger
    assert '<td class="number" id="purge-events">5</td>' in page
    assert 'name="confirmed" value="yes"' in danger
    assert 'value="purge" class="danger"' in danger

    # A purge asked for without the second step's confirmation is only a trial run.
    response = post(db_planner, "/planner/privacy", {"action": "purge"})
    assert "What the deletion would remove, nothing deleted yet" in response.get_data(as_text=True)
    assert len(stored_refs(db_app)) == 4

    response = post(db_planner, "/planner/privacy", {"action": "purge", "confirmed": "yes"})
    page = response.get_data(as_text=True)
    assert "Deleted just now" in page
    assert purge_table(page) == {"default": 1, seaside: 1}
    assert "wiped from the database's files" in page
    assert "write-ahead" not in page and "vacuum" not in page, "no jargon"
    assert set(stored_refs(db_app)) == {"new-default", "new-sea"}
    assert '<td class="number" id="purge-events">5</td>' in page
    left = daily_events(database(db_app), EventFilter(sea.id))
    assert [one.count for one in left if one.kind == "view"] == [3], "today's views are kept"
    response = post(db_planner, "/planner/privacy", {"action": "purge", "confirmed": "yes"})
    assert purge_table(response.get_data(as_text=True)) == {"default": 0, seaside: 0}
