"""The roster pages: profiles as a planner reads them."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from matcher.matching import Matcher
from matcher.profiles import load_profiles

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
