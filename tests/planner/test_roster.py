"""The roster pages: profiles as a planner reads them."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from matcher.matching import Matcher
from matcher.profiles import load_profiles
from matcher.store import find_campaign
from matcher.store.rosters import history, publish, published
from web.campaigns import database

from ..conftest import SAMPLE_PROFILES
from .conftest import (
    post,
)

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


def test_folder_edits_are_served_only_once_published(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher
) -> None:
    folder = Path(app.config["MATCHER_PROFILES"])
    path = folder / "xu-mo.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("active: true", "active: false"),
        encoding="utf-8",
    )
    page = planner.get("/planner/").get_data(as_text=True)
    row = page[page.index('<tr data-celebrity-id="xu-mo"') :]
    assert "<td>yes\n" in row[: row.index("</tr>")], "the published roster is still served"
    assert app.extensions["matcher"] is sample_matcher

    response = post(planner, "/planner/refresh", {})
    assert response.status_code == 303
    refreshed = app.extensions["matcher"]
    assert refreshed is not sample_matcher
    assert "xu-mo" not in refreshed.index.celebrity_ids
    assert refreshed.roster_size == sample_matcher.roster_size - 1
    page = planner.get("/planner/").get_data(as_text=True)
    assert "Version 2 is published from the roster folder" in page
    assert 'data-version="2"' in page
    row = page[page.index('<tr data-celebrity-id="xu-mo"') :]
    assert "no: inactive" in row[: row.index("</tr>")]
    campaign = find_campaign(database(app), "default")
    assert campaign is not None
    served = published(database(app), campaign.id)
    assert served is not None and served.number == 2 and served.changes["deactivated"] == ["xu-mo"]

    again = post(planner, "/planner/refresh", {})
    assert again.status_code == 303
    assert "nothing changed" in planner.get("/planner/").get_data(as_text=True)
    assert [v.number for v in history(database(app), campaign.id)] == [2, 1]


def test_roster_problems_are_shown_and_nothing_is_published(
    app: Flask, planner: FlaskClient
) -> None:
    (Path(app.config["MATCHER_PROFILES"]) / "broken.yaml").write_text("id: Not An Id\n")
    response = post(planner, "/planner/refresh", {})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "broken.yaml" in page and 'role="alert"' in page
    campaign = find_campaign(database(app), "default")
    assert campaign is not None
    assert [v.number for v in history(database(app), campaign.id)] == [1]


def test_history_lists_every_version_with_who_when_and_what_changed(
    app: Flask, planner: FlaskClient
) -> None:
    campaign = find_campaign(database(app), "default")
    assert campaign is not None
    first = published(database(app), campaign.id)
    assert first is not None and first.author == "import"
    profiles = [
        p.model_copy(update={"tagline": "A <b>new</b> line."}) if p.id == "chen-an" else p
        for p in first.profiles
    ]
    publish(database(app), campaign.id, profiles, author="ana", note="Tagline <i>fix</i>")
    page = planner.get("/planner/history").get_data(as_text=True)
    rows = re.findall(r'<tr data-version="(\d+)">', page)
    assert rows == ["2", "1"]
    newest = page[page.index('<tr data-version="2">') :]
    newest = newest[: newest.index("</tr>")]
    assert "ana" in newest and "edited: chen-an" in newest
    assert "Tagline &lt;i&gt;fix&lt;/i&gt;" in newest, "a note is text, never markup"
    oldest = page[page.index('<tr data-version="1">') :]
    assert "import" in oldest[: oldest.index("</tr>")]
