"""A campaign's settings page."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from matcher.matching import Matcher

from ..conftest import write_roster
from .conftest import (
    SHOPPER_TEXTS,
    add_campaign,
    campaign,
    field_errors,
    login,
    make_app,
    pair,
    post,
    settings_form,
    stored_texts,
)

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
