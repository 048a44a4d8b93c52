"""The try box and the corrections filed from it."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from matcher.matching import Matcher
from matcher.store import find_campaign
from matcher.store.rosters import history, published
from web.campaigns import database
from web.jobs import Status

from .conftest import (
    SHOPPER_TEXTS,
    download,
    job_id_of,
    post,
    ranked_ids,
    read_csv,
    shopper_csv,
    stored_refs,
    upload,
    wait_for,
)

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


def test_the_correction_form_preselects_nobody_and_asks_for_a_confirmation(
    planner: FlaskClient,
) -> None:
    text = "I collect fountain pens and spend Sundays restoring an old sailing boat."
    page = post(planner, "/planner/try", {"text": text}).get_data(as_text=True)
    form = page[page.index('action="/planner/corrections"') :]
    form = form[: form.index("</form>")]
    radios = re.findall(r'<input type="radio" name="right" value="([^"]+)"([^>]*)>', form)
    assert len(radios) == 6, "every celebrity but the top one can be chosen"
    assert all("checked" not in rest for _, rest in radios)
    assert "selected" not in form and "<select" not in form
    assert re.search(
        r'<input type="checkbox" id="confirm-correction" name="confirm" value="yes" required>', form
    )


def test_a_correction_without_the_confirmation_writes_nothing(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher
) -> None:
    text = "I collect fountain pens and spend Sundays restoring an old sailing boat."
    ranking = sample_matcher.match(text, 7)
    form = {"text": text, "right": ranking[1].celebrity_id, "wrong": ranking[0].celebrity_id}
    response = post(planner, "/planner/corrections", form)
    assert response.status_code == 400
    assert "Tick the box to confirm" in response.get_data(as_text=True)
    assert versions(app) == [1]
    assert app.extensions["matcher"] is sample_matcher


def versions(app: Flask) -> list[int]:
    campaign = find_campaign(database(app), "default")
    assert campaign is not None
    return [v.number for v in history(database(app), campaign.id)]


def test_a_correction_is_published_and_applies_at_once(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher
) -> None:
    text = "I collect fountain pens and spend Sundays restoring an old sailing boat."
    before = sample_matcher.match(text, 7)
    wrong, right = before[0].celebrity_id, before[-1].celebrity_id
    form = {"text": text, "right": right, "wrong": wrong, "confirm": "yes"}
    response = post(planner, "/planner/corrections", form)
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    assert "applies to new matches right away" in page and 'role="status"' in page

    assert not (Path(app.config["MATCHER_PROFILES"]) / "corrections.jsonl").exists()
    campaign = find_campaign(database(app), "default")
    assert campaign is not None
    served = published(database(app), campaign.id)
    assert served is not None and served.number == 2
    assert [(c.text, c.right, c.wrong) for c in served.corrections] == [(text, right, wrong)]
    assert served.author == "planner" and served.changes["corrections_added"] == 1

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
     pytest.param({"wrong": "chen-an"}, id="right-missing"),
     pytest.param({"right": "chen-an", "wrong": "chen-an"}, id="same-as-wrong"),
     pytest.param({"right": "chen-an", "wrong": "nobody"}, id="unknown-wrong"),
     pytest.param({"right": "chen-an", "wrong": "xu-mo", "text": "  "}, id="blank-text"),
     pytest.param({"right": "chen-an", "wrong": "xu-mo", "text": "x" * 1001}, id="over-long-text")],
)  # fmt: skip
def test_bad_corrections_are_refused(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher, data: dict[str, str]
) -> None:
    form = {"text": "I like tea and quiet mornings.", "confirm": "yes", **data}
    response = post(planner, "/planner/corrections", form)
    assert response.status_code == 400
    assert 'role="alert"' in response.get_data(as_text=True)
    assert versions(app) == [1]
    assert app.extensions["matcher"] is sample_matcher


def test_a_chinese_try_page_names_the_celebrity_in_chinese(planner: FlaskClient) -> None:
    page = post(planner, "/planner/try?lang=zh", {"text": SHOPPER_TEXTS[0], "lang": "zh"})
    body = page.get_data(as_text=True)
    verdict = re.search(r'<p class="(?:hint|warning)"[^>]*>([^<]+)</p>', body)
    assert verdict, body
    # SHOPPER_TEXTS[0] (oolong, essays, meditation) fits Chen An, 陈安, best.
    assert "陈安" in verdict.group(1) and "Chen An" not in verdict.group(1)
