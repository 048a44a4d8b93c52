"""Editing the roster in the browser: the draft, its checks, the preview, publishing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from matcher.matching import Matcher
from matcher.store import find_campaign
from matcher.store.rosters import draft, history, published
from web import roster
from web.campaigns import database

from .conftest import login, make_app, post

CHEN_AN = "/planner/roster/chen-an/edit"


def form_of(page: str) -> dict[str, Any]:
    """The fields of the edit form as the page fills them (what a browser would post)."""
    form = page[page.index('<form method="post" class="planner-form roster-edit">') :]
    form = form[: form.index("</form>")]
    fields: dict[str, Any] = {}
    for name, value in re.findall(
        r'<input type="(?:text|hidden)"[^>]* name="([^"]+)" value="([^"]*)"', form
    ):
        fields[name] = value
    for name, value in re.findall(
        r'<textarea[^>]* name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S
    ):
        fields[name] = value
    if re.search(r'name="active" value="yes" checked', form):
        fields["active"] = "yes"
    fields.pop("token", None)
    return {key: _unescape(value) for key, value in fields.items()}


def _unescape(value: str) -> str:
    import html

    return html.unescape(value)


def campaign_id(app: Flask) -> int:
    campaign = find_campaign(database(app), "default")
    assert campaign is not None
    return campaign.id


def test_editing_a_celebrity_keeps_a_draft_until_it_is_published(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher
) -> None:
    page = planner.get(CHEN_AN).get_data(as_text=True)
    fields = form_of(page)
    assert fields["name"] == "Chen An" and fields["active"] == "yes"
    fields["tagline"] = "A quieter line for the spring launch."
    response = post(planner, CHEN_AN, fields)
    assert response.status_code == 303, response.get_data(as_text=True)

    kept = draft(database(app), campaign_id(app))
    assert kept is not None
    assert kept.profiles[[p.id for p in kept.profiles].index("chen-an")].tagline == (
        "A quieter line for the spring launch."
    )
    roster_page = planner.get("/planner/").get_data(as_text=True)
    assert "saved in the draft" in roster_page
    row = roster_page[roster_page.index('<tr data-celebrity-id="chen-an"') :]
    assert "edited in the draft" in row[: row.index("</tr>")]
    assert app.extensions["matcher"] is sample_matcher, "a draft is not served"

    response = post(planner, "/planner/roster/publish", {"note": "spring tagline"})
    assert response.status_code == 303
    served = published(database(app), campaign_id(app))
    assert served is not None and served.number == 2
    assert (served.author, served.note, served.changes["edited"]) == (
        "planner",
        "spring tagline",
        ["chen-an"],
    )
    assert draft(database(app), campaign_id(app)) is None
    live = app.extensions["matcher"]
    assert live is not sample_matcher
    assert next(p for p in live.index.profiles if p.id == "chen-an").tagline.startswith("A quieter")
    assert "Version 2 is published" in planner.get("/planner/").get_data(as_text=True)


def test_deactivating_a_celebrity_takes_them_out_of_matching(
    app: Flask, planner: FlaskClient
) -> None:
    fields = form_of(planner.get("/planner/roster/xu-mo/edit").get_data(as_text=True))
    del fields["active"]
    assert post(planner, "/planner/roster/xu-mo/edit", fields).status_code == 303
    row = planner.get("/planner/").get_data(as_text=True)
    row = row[row.index('<tr data-celebrity-id="xu-mo"') :]
    assert "deactivated in the draft" in row[: row.index("</tr>")]
    assert post(planner, "/planner/roster/publish", {}).status_code == 303
    assert "xu-mo" not in app.extensions["matcher"].index.celebrity_ids
    assert history(database(app), campaign_id(app))[0].changes["deactivated"] == ["xu-mo"]


NEW = {
    "id": "lin-xia",
    "name": "Lin Xia",
    "name_zh": "林夏",
    "tagline": "Ceramics, kilns and long afternoons by the river.",
    "tagline_zh": "",
    "facet_rows": "3",
    "facet_name_0": "style",
    "facet_en_0": "Linen smocks, clay on her hands, hair tied with a pencil.",
    "facet_zh_0": "亚麻罩衫，手上沾着陶泥。",
    "facet_name_1": "lifestyle",
    "facet_en_1": "Throwing pots in a riverside studio in Jingdezhen, firing a wood kiln.",
    "facet_zh_1": "",
    "facet_name_2": "",
    "facet_en_2": "",
    "facet_zh_2": "",
    "examples": "I spend weekends at the pottery wheel.\n我周末在陶艺工作室拉坯。",
    "tags": "ceramics, 手作",
    "active": "yes",
    "quota": "",
    "min_share": "",
    "max_share": "",
}


def test_a_new_celebrity_is_added_to_the_draft_and_published(
    app: Flask, planner: FlaskClient
) -> None:
    response = post(planner, "/planner/roster/new", NEW)
    assert response.status_code == 303, response.get_data(as_text=True)
    kept = draft(database(app), campaign_id(app))
    assert kept is not None
    added = kept.profiles[-1]
    assert (added.id, added.name_zh, added.tags) == ("lin-xia", "林夏", ["ceramics", "手作"])
    assert added.facets_zh == {"style": "亚麻罩衫，手上沾着陶泥。"}
    assert added.examples == ["I spend weekends at the pottery wheel.", "我周末在陶艺工作室拉坯。"]
    page = planner.get("/planner/").get_data(as_text=True)
    row = page[page.index('<tr data-celebrity-id="lin-xia"') :]
    assert "new in the draft" in row[: row.index("</tr>")]
    assert post(planner, "/planner/roster/publish", {"note": "new face"}).status_code == 303
    assert "lin-xia" in app.extensions["matcher"].index.celebrity_ids
    text = "Weekends at the pottery wheel, then firing a wood kiln by the river."
    ranking = post(planner, "/planner/try", {"text": text}).get_data(as_text=True)
    assert re.findall(r'<tr data-celebrity-id="([^"]+)"', ranking)[0] == "lin-xia"


@pytest.mark.parametrize(
    "changes, field, message",
    [
        pytest.param({"id": "Lin Xia"}, "id", "must be kebab-case", id="bad-id"),
        pytest.param({"id": "chen-an"}, "id", "Another celebrity", id="taken-id"),
        pytest.param({"name": "   "}, "name", "is blank", id="blank-name"),
        pytest.param({"facet_name_0": "Style!"}, "facets", "facet names must be", id="facet-name"),
        pytest.param(
            {"facet_name_0": "", "facet_en_0": "", "facet_name_1": "", "facet_en_1": ""},
            "facets",
            "should have at least 1 item",
            id="no-facets",
        ),
        pytest.param({"tags": "x" * 61}, "tags", "at most 60 characters", id="long-tag"),
        pytest.param({"quota": "many"}, "quota", "whole number", id="quota-not-a-number"),
        pytest.param({"quota": "-1"}, "quota", "greater than or equal to 0", id="negative-quota"),
        pytest.param({"max_share": "1.5"}, "max_share", "less than or equal to 1", id="share"),
        pytest.param({"min_share": "0.9"}, "form", "min_share", id="infeasible-shares"),
    ],
)
def test_a_bad_profile_is_refused_with_the_problem_next_to_its_field(
    app: Flask, planner: FlaskClient, changes: dict[str, str], field: str, message: str
) -> None:
    if field == "form":
        # Chen An promised 90% too: 180% cannot be kept.
        chen = form_of(planner.get(CHEN_AN).get_data(as_text=True))
        assert post(planner, CHEN_AN, {**chen, "min_share": "0.9"}).status_code == 303
    response = post(planner, "/planner/roster/new", {**NEW, **changes})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    error = re.search(rf'<p id="{field}-error" class="error">(.*?)</p>', page, re.S)
    assert error is not None, page[page.index("<h1>") :][:2000]
    assert message in error.group(1)
    assert 'aria-invalid="true"' in page or field == "form"
    assert "Lin Xia" in page or changes.get("name") == "   ", "what was typed is kept"
    kept = draft(database(app), campaign_id(app))
    assert kept is None or "lin-xia" not in [p.id for p in kept.profiles]


def test_markup_in_a_profile_is_shown_as_text(app: Flask, planner: FlaskClient) -> None:
    hostile = {**NEW, "name": "<script>alert(1)</script>"}
    assert post(planner, "/planner/roster/new", hostile).status_code == 303
    page = planner.get("/planner/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_preview_pairs_a_text_with_the_draft_beside_the_published_roster(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher
) -> None:
    text = "Trail running before dawn, climbing on weekends, and I hate heavy perfume."
    now = sample_matcher.match(text, 7)
    best = now[0].celebrity_id
    fields = form_of(planner.get(f"/planner/roster/{best}/edit").get_data(as_text=True))
    del fields["active"]
    assert post(planner, f"/planner/roster/{best}/edit", fields).status_code == 303
    response = post(planner, "/planner/roster/preview", {"text": text})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    ids = re.findall(r'<tr data-celebrity-id="([^"]+)"', page)
    assert ids == [m.celebrity_id for m in now[1:]], "the draft ranks without the deactivated one"
    first = page[page.index(f'<tr data-celebrity-id="{ids[0]}"') :]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", first[: first.index("</tr>")], re.S)
    assert cells[0] == "1" and cells[2] == "2", "rank 1 in the draft, rank 2 now"
    assert app.extensions["matcher"] is sample_matcher, "a preview serves nothing"


def test_a_preview_without_a_draft_says_so(planner: FlaskClient) -> None:
    response = post(planner, "/planner/roster/preview", {"text": "Tea and essays."})
    assert response.status_code == 400
    assert "There is no draft" in response.get_data(as_text=True)


def test_discarding_the_draft_leaves_the_published_roster(app: Flask, planner: FlaskClient) -> None:
    assert post(planner, "/planner/roster/new", NEW).status_code == 303
    assert post(planner, "/planner/roster/discard", {}).status_code == 303
    assert draft(database(app), campaign_id(app)) is None
    assert [v.number for v in history(database(app), campaign_id(app))] == [1]


def test_an_unknown_celebrity_is_a_404(planner: FlaskClient) -> None:
    response = planner.get("/planner/roster/nobody/edit")
    assert response.status_code == 404


def test_a_publish_on_one_worker_is_served_by_another(
    tmp_path: Path, sample_matcher: Matcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(roster, "CHECK_INTERVAL", 0.0)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = make_app(tmp_path, sample_matcher, MATCHER_DATABASE_URL=url)
    second = make_app(
        tmp_path, sample_matcher, MATCHER_DATABASE_URL=url, INSTANCE_PATH=str(tmp_path / "two")
    )
    planner = first.test_client()
    assert login(planner).status_code == 303
    fields = form_of(planner.get("/planner/roster/xu-mo/edit").get_data(as_text=True))
    del fields["active"]
    assert post(planner, "/planner/roster/xu-mo/edit", fields).status_code == 303
    assert post(planner, "/planner/roster/publish", {}).status_code == 303
    response = second.test_client().post("/api/v1/match", json={"text": "tea", "top_k": 7})
    ids = [m["celebrity_id"] for m in response.get_json()["matches"]]
    assert "xu-mo" not in ids and len(ids) == 6


# -- in a real browser --------------------------------------------------------------------


def test_a_planner_edits_previews_and_publishes_in_a_browser(
    tmp_path: Path, sample_matcher: Matcher
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from ..test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, WAIT_MS, serve
    from .conftest import PASSWORD

    app = make_app(tmp_path, sample_matcher)
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(app) as origin, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(locale="en-US", viewport={"width": 1100, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{origin}/planner/login")
            page.fill("#user", "planner")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Roster")

            # A new celebrity with a bad id: the problem is shown next to the field.
            page.goto(f"{origin}/planner/roster/new")
            page.fill("#id", "Lin Xia")
            page.fill("#name", "Lin Xia")
            page.fill("#name_zh", "林夏")
            page.fill("#tagline", "Ceramics and long afternoons by the river.")
            page.fill("#facet_en_0", "Linen smocks and clay on her hands.")
            page.fill("#tags", "ceramics")
            page.click("text=Save in the draft")
            expect(page.locator("#id-error")).to_contain_text("must be kebab-case")
            expect(page.locator("#id")).to_have_attribute("aria-invalid", "true")
            page.screenshot(path=str(ARTIFACTS / "roster-edit-error.png"), full_page=True)

            # Deactivate Xu Mo in the draft, preview, publish.
            page.goto(f"{origin}/planner/roster/xu-mo/edit")
            page.uncheck("input[name=active]")
            page.click("text=Save in the draft")
            row = page.locator('tr[data-celebrity-id="xu-mo"]')
            expect(row).to_contain_text("deactivated in the draft")
            page.screenshot(path=str(ARTIFACTS / "roster-draft.png"), full_page=True)
            page.fill("#preview-text", "Gallery openings, sketchbooks and long talks about design.")
            page.click("button:has-text('Preview')")
            expect(page.locator("table.preview")).to_be_visible()
            assert page.locator('table.preview tr[data-celebrity-id="xu-mo"]').count() == 0
            page.screenshot(path=str(ARTIFACTS / "roster-preview.png"), full_page=True)
            page.goto(f"{origin}/planner/")
            page.fill("#note", "Xu Mo is away this month")
            page.click("text=Publish the draft")
            expect(page.locator("p.notice")).to_contain_text("Version 2 is published")
            page.click("text=History of published versions")
            expect(page.locator('tr[data-version="2"]')).to_contain_text("deactivated: xu-mo")
            page.screenshot(path=str(ARTIFACTS / "roster-history.png"), full_page=True)
            assert "xu-mo" not in app.extensions["matcher"].index.celebrity_ids

            # The try page: one click on the button writes nothing; choose and confirm.
            page.goto(f"{origin}/planner/try")
            page.fill("#text", "I collect fountain pens and restore an old sailing boat.")
            page.click("text=Show the ranking")
            page.click("text=Mark as wrong and save the correction")
            assert versions(app) == [2, 1], "nothing chosen, nothing confirmed: nothing saved"
            page.locator("input[name=right]").last.check()
            page.check("input[name=confirm]")
            page.screenshot(path=str(ARTIFACTS / "try-correction.png"), full_page=True)
            page.click("text=Mark as wrong and save the correction")
            expect(page.locator("p.notice")).to_contain_text("Saved: this text now pairs with")
            assert versions(app) == [3, 2, 1]
        finally:
            browser.close()


def versions(app: Flask) -> list[int]:
    return [v.number for v in history(database(app), campaign_id(app))]


def test_a_draft_older_than_the_published_version_says_so(app: Flask, planner: FlaskClient) -> None:
    assert post(planner, "/planner/roster/new", NEW).status_code == 303
    served = published(database(app), campaign_id(app))
    assert served is not None
    from matcher.store.rosters import publish

    publish(database(app), campaign_id(app), served.profiles, author="bo", note="meanwhile")
    page = planner.get("/planner/").get_data(as_text=True)
    assert 'data-draft-base="1"' in page and "version 2 was published since" in page
