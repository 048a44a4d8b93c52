"""The casting page through the test client, with the real model: cast the sample pool, upload a
brief and a pool, swap a face and see the coverage change, make the set the campaign's roster."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import yaml
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from matcher.store.rosters import history, published

from .conftest import campaign, chart_bars, check_page, field_errors, page_token, post

POOL = Path(__file__).parents[2] / "pools" / "lueur"

BRIEF = """\
product: Tea and peaks
k: 2
facets:
  calm:
    en: green tea, quiet books and meditation in the hills
  wild:
    en: mountains, wind and trekking alone far off the map
"""


def candidate(candidate_id: str, name: str, text: str, tag: str) -> str:
    return json.dumps(
        {
            "id": candidate_id,
            "name": name,
            "name_zh": "名字",
            "tagline": text,
            "facets": {"lifestyle": text, "scent": text + " in the air"},
            "tags": [tag],
        },
        ensure_ascii=False,
    )


POOL_LINES = [
    candidate(
        "tea-master",
        "Tea <b>Master</b>",
        "Brews green tea, reads quiet books and meditates in the hills.",
        "writer",
    ),
    candidate(
        "climber",
        "Climber",
        "Treks alone across mountains in the wind, far off the map.",
        "athlete",
    ),
    candidate(
        "chef", "Chef", "Grills lamb skewers with cumin at a late-night barbecue stall.", "chef"
    ),
    candidate(
        "gamer", "Gamer", "Plays ranked esports matches all night with energy drinks.", "gamer"
    ),
]


def faces(page: str) -> list[str]:
    section = page[page.index('<table class="casting-faces">') :]
    section = section[: section.index("</table>")]
    return re.findall(r'<tr data-candidate-id="([^"]+)"', section)


def cast_upload(
    client: FlaskClient, brief: str = BRIEF, pool: list[str] | None = None, **fields: str
) -> Any:
    data: dict[str, Any] = {
        "brief_key": "lueur",
        "pool_key": "lueur",
        "k": "",
        "method": "greedy",
        **fields,
    }
    data["brief_file"] = (io.BytesIO(brief.encode("utf-8")), "brief.yaml")
    body = "\n".join(POOL_LINES if pool is None else pool) + "\n"
    data["pool_file"] = (io.BytesIO(body.encode("utf-8")), "pool.jsonl")
    return post(client, "/planner/casting", data, content_type="multipart/form-data")


def hidden(page: str, name: str) -> list[str]:
    return re.findall(rf'<input type="hidden" name="{name}" value="([^"]*)">', page)


def carried(page: str) -> dict[str, Any]:
    """What the page's swap and roster forms carry."""
    return {
        "brief_key": hidden(page, "brief_key")[0],
        "pool_key": hidden(page, "pool_key")[0],
        "k": hidden(page, "k")[0],
        "id": hidden(page, "id")[: len(faces(page))],
    }


def test_the_page_offers_the_sample_pool_behind_the_login(
    planner: FlaskClient, client: FlaskClient
) -> None:
    page = planner.get("/planner/casting").get_data(as_text=True)
    assert '<option value="lueur" selected>lueur</option>' in page
    assert 'href="/planner/casting' in page  # the nav link
    check = check_page(page)
    assert check.inline_scripts == 0 and not check.style_attributes
    assert set(check.controls) <= check.labelled
    planner.post("/planner/logout", data={"token": page_token(planner)})
    assert client.get("/planner/casting").status_code == 302


def test_casting_the_sample_pool_shows_each_face_its_facet_quote_and_coverage(
    planner: FlaskClient,
) -> None:
    response = post(
        planner,
        "/planner/casting",
        {"brief_key": "lueur", "pool_key": "lueur", "k": "", "method": "greedy"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    intended = set(yaml.safe_load((POOL / "intended.yaml").read_text(encoding="utf-8"))["intended"])
    assert len(faces(page)) == 7
    assert len(set(faces(page)) & intended) >= 6
    bars = dict(chart_bars(page, "coverage-chart"))
    assert set(bars) == {
        "heritage",
        "freedom",
        "avant_garde",
        "romance",
        "serenity",
        "joy",
        "ambition",
    }
    assert all(0 <= value <= 100 for value in bars.values())
    row = page[page.index('<tr data-candidate-id="lu-yuan">') :]
    row = row[: row.index("</tr>")]
    assert "<td>freedom</td>" in row and "<q>" in row
    assert "7 faces from 62 candidates" in page


def test_the_quotes_are_in_chinese_on_the_chinese_page(planner: FlaskClient) -> None:
    data = {"brief_key": "lueur", "pool_key": "lueur", "k": "3", "method": "exact", "lang": "zh"}
    page = post(planner, "/planner/casting?lang=zh", data).get_data(as_text=True)
    quotes = re.findall(r"<q>([^<]+)</q>", page)
    assert len(quotes) == 3
    assert all(re.search(r"[\u4e00-\u9fff]", quote) for quote in quotes)


def test_an_uploaded_pool_is_cast_and_its_markup_escaped(planner: FlaskClient) -> None:
    response = cast_upload(planner)
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert set(faces(page)) == {"tea-master", "climber"}
    assert "<b>Master</b>" not in page and str(escape("Tea <b>Master</b>")) in page
    assert dict(chart_bars(page, "coverage-chart")) == {"calm": 100, "wild": 100}


def test_a_swap_shows_the_coverage_before_and_after(planner: FlaskClient) -> None:
    page = cast_upload(planner).get_data(as_text=True)
    form = carried(page)
    response = post(planner, "/planner/casting/swap", {**form, "out": "climber", "in": "chef"})
    after = response.get_data(as_text=True)
    assert response.status_code == 200, after
    assert set(faces(after)) == {"tea-master", "chef"}
    bars = dict(chart_bars(after, "coverage-chart"))
    assert bars["calm"] == 100 and bars["wild"] < 50
    change = after[after.index('<tr data-facet="wild">') :]
    cells = re.findall(r'<td class="number">([^<]+)</td>', change[: change.index("</tr>")])
    assert cells[0] == "100" and int(cells[1]) < 50 and cells[2].startswith("-")
    assert "Objective before the swap" in after


def test_a_swap_that_cannot_be_made_says_why(planner: FlaskClient) -> None:
    form = carried(cast_upload(planner).get_data(as_text=True))
    response = post(planner, "/planner/casting/swap", {**form, "out": "chef", "in": "gamer"})
    assert response.status_code == 400
    assert (
        field_errors(response.get_data(as_text=True))["out"]
        == "Choose a face of the set to take out."
    )
    response = post(
        planner, "/planner/casting/swap", {**form, "out": "climber", "in": "tea-master"}
    )
    assert (
        field_errors(response.get_data(as_text=True))["in"]
        == "Choose a candidate who is not in the set yet."
    )
    gone = post(
        planner,
        "/planner/casting/swap",
        {**form, "pool_key": "u-" + "0" * 64, "out": "climber", "in": "chef"},
    )
    assert gone.status_code == 400
    assert "That pool is no longer available: upload it again." in gone.get_data(as_text=True)
    bad = post(
        planner,
        "/planner/casting/swap",
        {**form, "pool_key": "../../etc", "out": "climber", "in": "chef"},
    )
    assert bad.status_code == 400


def test_a_brief_or_pool_with_errors_is_refused_with_file_line_and_field(
    planner: FlaskClient,
) -> None:
    response = cast_upload(planner, brief=BRIEF.replace("k: 2", "k: 0"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<code>brief.yaml:2: k: Input should be greater than or equal to 1</code>" in page
    broken = [POOL_LINES[0], '{"id": "x", "name": "<i>X</i>"}']
    page = cast_upload(planner, pool=broken).get_data(as_text=True)
    assert "<code>pool.jsonl:2: name_zh: is required but missing</code>" in page
    assert "<i>X</i>" not in page
    response = cast_upload(planner, brief=BRIEF + "must_include: [nobody]\n")
    assert (
        "<code>brief.yaml:8: must_include: nobody is not a candidate in the pool</code>"
        in response.get_data(as_text=True)
    )


def test_forms_without_the_sessions_token_are_refused(planner: FlaskClient) -> None:
    response = planner.post("/planner/casting", data={"brief_key": "lueur", "pool_key": "lueur"})
    assert response.status_code == 403


def test_make_this_the_campaigns_roster_publishes_the_set(planner: FlaskClient, app: Flask) -> None:
    form = carried(cast_upload(planner).get_data(as_text=True))
    response = post(planner, "/planner/casting/roster", form)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"].startswith("/planner/")
    from web.campaigns import database

    version = published(database(app), campaign(app).id)
    assert version is not None
    assert [p.id for p in version.profiles] == form["id"]
    assert version.profiles[0].name == "Tea <b>Master</b>"
    assert history(database(app), campaign(app).id)[0].author == "planner"
    page = planner.get(response.headers["Location"]).get_data(as_text=True)
    assert "now the campaign&#39;s roster" in page


SHOPPERS = (
    "id,text\n"
    "1,I brew green tea and read quiet books every morning.\n"
    "2,Meditation in the hills with a pot of green tea.\n"
    "3,I trek alone across the mountains in the wind.\n"
)


def test_a_shopper_sample_gives_each_face_its_share_and_is_not_kept(
    planner: FlaskClient, app: Flask
) -> None:
    data: dict[str, Any] = {"shoppers_file": (io.BytesIO(SHOPPERS.encode("utf-8")), "sample.csv")}
    page = cast_upload(planner, **data).get_data(as_text=True)
    assert "Covering a sample of 3 shoppers too." in page
    shares = dict(
        re.findall(
            r'<tr data-candidate-id="([^"]+)">.*?<td class="number share">(\d+)%</td>', page, re.S
        )
    )
    assert shares == {"tea-master": "67", "climber": "33"}
    folder = Path(app.instance_path) / "casting"
    assert not list(folder.glob(".shoppers-*"))
    kept = [path for path in folder.rglob("*") if path.is_file()]
    assert kept and not any(b"green tea and read" in path.read_bytes() for path in kept)
    form = {**carried(page), "shoppers_key": hidden(page, "shoppers_key")[0]}
    after = post(planner, "/planner/casting/swap", {**form, "out": "climber", "in": "chef"})
    shares = dict(
        re.findall(
            r'<tr data-candidate-id="([^"]+)">.*?<td class="number share">(\d+)%</td>',
            after.get_data(as_text=True),
            re.S,
        )
    )
    assert shares["tea-master"] == "100" and shares["chef"] == "0"
    gone = post(
        planner,
        "/planner/casting/swap",
        {**form, "shoppers_key": "s-" + "1" * 64, "out": "climber", "in": "chef"},
    )
    assert gone.status_code == 400
    assert "That sample of shoppers is no longer held here: upload it again." in gone.get_data(
        as_text=True
    )


def test_a_shopper_file_that_cannot_be_read_is_refused(planner: FlaskClient) -> None:
    data: dict[str, Any] = {"shoppers_file": (io.BytesIO(b"name,words\nx,y\n"), "sample.csv")}
    response = cast_upload(planner, **data)
    assert response.status_code == 400
    assert "shoppers" in field_errors(response.get_data(as_text=True))
