"""Starting and listing campaigns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from matcher.store import get_campaign, list_campaigns
from matcher.store.rosters import published
from web.campaigns import database

from ..conftest import SAMPLE_PROFILES, write_roster
from .conftest import (
    PASSWORD,
    add_campaign,
    campaign,
    field_errors,
    new_campaign_form,
    pair,
    post,
    ranked_ids,
    token,
)

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
        {"text": text, "right": before[-1], "wrong": before[0], "confirm": "yes"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    # The correction is published with the campaign's roster, not written into any folder.
    served = published(database(db_app), get_campaign(database(db_app), seaside).id)
    assert served is not None and [c.text for c in served.corrections] == [text]
    assert not (folder / "corrections.jsonl").exists()
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
