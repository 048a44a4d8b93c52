"""The dashboard and its charts."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from matcher.matching import Matcher
from matcher.store.campaigns import update_campaign
from matcher.store.events import record_event
from matcher.store.schema import PairingRow
from web import charts
from web.campaigns import database, forget
from web.jobs import Status, score_bin

from ..conftest import write_roster
from .conftest import (
    SHOPPER_TEXTS,
    add_campaign,
    campaign,
    chart_bars,
    days_ago,
    field_errors,
    job_id_of,
    move_to,
    pair,
    read_csv,
    shopper_csv,
    stored_refs,
    stored_texts,
    upload,
    wait_for,
)

# -- dashboard and charts ---------------------------------------------------------------


def test_dashboard_charts_count_the_stored_pairings(
    db_app: Flask, db_planner: FlaskClient, sample_matcher: Matcher
) -> None:
    answers = {}
    for number, text in enumerate(SHOPPER_TEXTS * 2):
        ref = f"shopper-{number}"
        answers[ref] = pair(db_planner, text, ref=ref)["matches"][0]
        move_to(db_app, ref, days_ago(number % 3 * 2))  # today, 2 and 4 days ago
    per_celebrity = Counter(answer["celebrity_id"] for answer in answers.values())
    assert len(per_celebrity) >= 3, "the texts reach several celebrities"

    response = db_planner.get("/planner/dashboard")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert pairings_figure(page) == len(answers)
    bars = chart_bars(page, "chart-celebrities")
    roster = [p.id for p in sample_matcher.index.profiles]
    assert [key for key, _ in bars] == roster, "one bar per celebrity, roster order"
    assert dict(bars) == {key: per_celebrity.get(key, 0) for key in roster}

    score_counts = Counter(score_bin(answer["score"]) for answer in answers.values())
    expected_bins = charts.score_bins(score_counts, 0.05)
    histogram = chart_bars(page, "chart-scores")
    assert histogram == [(bar.key, bar.value) for bar in expected_bins]

    table = page[page.index('<table class="chart-data celebrities-data">') :]
    table = table[: table.index("</table>")]
    for celebrity_id in roster:
        cell = re.search(
            rf'data-celebrity-id="{celebrity_id}"><th scope="row">[^<]*</th>\s*'
            r'<td class="number" data-step="pairing">(\d+)',
            table,
        )
        assert cell and int(cell.group(1)) == per_celebrity.get(celebrity_id, 0)

    per_day: Counter[tuple[str, str]] = Counter()
    for number, answer in enumerate(answers.values()):
        per_day[(days_ago(number % 3 * 2).isoformat(), answer["celebrity_id"])] += 1
    assert day_segments(page) == per_day
    # Up to today in Shanghai, where the API calls were counted (a day ahead of UTC after 16:00).
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    first = days_ago(4)
    days = [(first + timedelta(days=n)).isoformat() for n in range((today - first).days + 1)]
    assert day_columns(page) == days, "every day in the range, empty ones too"
    legend = re.findall(r'<g class="legend-item" data-key="([^"]+)"', page)
    assert legend == [key for key in roster if per_celebrity.get(key)]
    rows = days_table(page)
    assert list(rows) == days
    assert rows[days_ago(3).isoformat()] == [0] * (len(legend) + 1)
    for day, counts in rows.items():
        expected = [per_day[(day, key)] for key in legend]
        assert counts == [*expected, sum(expected)], day


def figure(page: str, step: str) -> int | None:
    """A funnel figure as the page shows it (``None`` for "–")."""
    found = re.search(rf'<strong class="figure" id="total-{step}">([^<]+)</strong>', page)
    assert found, step
    text = found.group(1).replace(",", "")
    return None if text == "–" else int(text)


def pairings_figure(page: str) -> int | None:
    return figure(page, "pairing")


def day_segments(page: str) -> Counter[tuple[str, str]]:
    """(day, celebrity) -> count, read from the per-day chart's segments."""
    svg = page[page.index('id="chart-days"') :]
    svg = svg[: svg.index("</svg>")]
    found: Counter[tuple[str, str]] = Counter()
    for day, body in re.findall(r'<g class="day" data-day="([^"]+)"[^>]*>(.*?)</g>', svg):
        for key, value in re.findall(r'data-key="([^"]+)" data-value="(\d+)"', body):
            found[(day, key)] += int(value)
    return found


def day_columns(page: str) -> list[str]:
    return re.findall(r'<g class="day" data-day="([^"]+)"', page)


def days_table(page: str) -> dict[str, list[int]]:
    table = page[page.index('class="chart-data pairings-days-data"') :]
    table = table[: table.index("</table>")]
    return {
        day: [int(n) for n in re.findall(r'<td class="number">(\d+)</td>', row)]
        for day, row in re.findall(r'<tr data-day="([^"]+)">(.*?)</tr>', table, flags=re.S)
    }


def test_dashboard_filters_by_campaign_and_day(
    db_app: Flask, db_planner: FlaskClient, tmp_path: Path
) -> None:
    seaside = add_campaign(db_planner, write_roster(tmp_path / "seaside"))
    for number, text in enumerate(SHOPPER_TEXTS[:6]):
        pair(db_planner, text, ref=f"d{number}")
        move_to(db_app, f"d{number}", days_ago(10 - number))  # 10 to 5 days ago
    for number, text in enumerate(["sailing at the beach", "reading with tea"]):
        pair(db_planner, text, ref=f"s{number}", slug=seaside)
        move_to(db_app, f"s{number}", days_ago(8))

    def total(query: str, **kwargs: Any) -> int:
        response = db_planner.get(f"/planner/dashboard?{query}", **kwargs)
        assert response.status_code == 200, response.get_data(as_text=True)
        found = pairings_figure(response.get_data(as_text=True))
        assert found is not None
        return found

    assert total("") == 6
    assert total("scope=all") == 8
    assert total(f"campaign={seaside}") == 2
    assert total(f"since={days_ago(8)}") == 4
    assert total(f"until={days_ago(8)}") == 3, "the last day is included"
    assert total(f"since={days_ago(9)}&until={days_ago(7)}") == 3
    assert total(f"scope=all&since={days_ago(8)}&until={days_ago(8)}") == 3
    assert total(f"since={days_ago(1)}") == 0
    page = db_planner.get(f"/planner/dashboard?since={days_ago(1)}").get_data(as_text=True)
    # Today's submissions (the API calls) are there; their pairings were dated back.
    assert pairings_figure(page) == 0 and figure(page, "submission") == 6
    assert 'id="chart-celebrities"' not in page and 'id="chart-scores"' not in page

    page = db_planner.get(f"/planner/dashboard?since={days_ago(12)}&until={days_ago(3)}")
    assert day_columns(page.get_data(as_text=True))[0] == days_ago(12).isoformat()
    assert day_columns(page.get_data(as_text=True))[-1] == days_ago(3).isoformat()
    page = db_planner.get("/planner/dashboard?since=1900-01-01").get_data(as_text=True)
    columns = day_columns(page)
    # The API calls were counted today (in Shanghai), when they were made.
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert (columns[0], columns[-1]) == (days_ago(10).isoformat(), today.isoformat()), (
        "a far-off bound draws the days that have data"
    )


@pytest.mark.parametrize(
    ("query", "field", "problem"),
    [pytest.param("since=yesterday", "since", "YYYY-MM-DD", id="word"),
     pytest.param("since=2025-02-30", "since", "YYYY-MM-DD", id="no-such-day"),
     pytest.param("until=2025-1-5", "until", "YYYY-MM-DD", id="short-month"),
     pytest.param("until=2025-01-05T10:00", "until", "YYYY-MM-DD", id="with-time"),
     pytest.param("since=99999-01-01", "since", "YYYY-MM-DD", id="five-digit-year"),
     pytest.param("since=2025-03-02&until=2025-03-01", "until", "comes before", id="reversed"),
     pytest.param("scope=everything", "scope", "all campaigns", id="unknown-scope"),
     pytest.param("source=email", "source", "source from the list", id="unknown-source"),
     pytest.param("language=fr", "language", "language from the list", id="unknown-language"),
     pytest.param("celebrity=nobody", "celebrity", "celebrity of this campaign", id="unknown-celebrity")],
)  # fmt: skip
def test_bad_dashboard_filters_are_refused(
    planner: FlaskClient, query: str, field: str, problem: str
) -> None:
    response = planner.get(f"/planner/dashboard?{query}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert problem in field_errors(page)[field]
    assert 'role="alert"' in page and 'aria-invalid="true"' in page
    export = planner.get(f"/planner/pairings.csv?{query}")
    assert export.status_code == 400 and problem in export.get_data(as_text=True)


def test_dashboard_before_any_pairing(planner: FlaskClient) -> None:
    page = planner.get("/planner/dashboard").get_data(as_text=True)
    assert "Nothing yet with these filters: no page view, submission, pairing or click." in page
    assert "<svg" not in page


def test_uploads_count_on_the_dashboard_once_stored(app: Flask, planner: FlaskClient) -> None:
    rows = [(f"up-{number}", text) for number, text in enumerate(SHOPPER_TEXTS[:4])]
    job_id = job_id_of(upload(planner, "a.csv", shopper_csv([*rows, ("bad", "")])))
    view = wait_for(app, job_id)
    assert view.status is Status.DONE and view.stored == len(rows)
    pair(planner, SHOPPER_TEXTS[5], ref="api-1")
    assert stored_refs(app) == Counter([ref for ref, _ in rows] + ["api-1"])
    assert stored_texts(app) == [], "an upload's texts are never kept"
    # Live shoppers by default: the upload is counted apart, in its own row.
    page = planner.get("/planner/dashboard").get_data(as_text=True)
    assert pairings_figure(page) == 1
    assert source_row(page, "upload")["pairing"] == len(rows)
    assert source_row(page, "api") == {"view": 0, "submission": 1, "pairing": 1, "cta_click": 0}
    page = planner.get("/planner/dashboard?source=upload").get_data(as_text=True)
    assert pairings_figure(page) == len(rows)
    assert figure(page, "view") == 0 and figure(page, "submission") == 0
    page = planner.get("/planner/dashboard?source=all").get_data(as_text=True)
    assert pairings_figure(page) == len(rows) + 1
    exported = read_csv(planner.get("/planner/pairings.csv?source=all").data)
    assert [row["source"] for row in exported] == ["upload"] * len(rows) + ["api"]
    live = read_csv(planner.get("/planner/pairings.csv").data)
    assert [row["source"] for row in live] == ["api"], "the export follows the source filter"


def source_row(page: str, source: str) -> dict[str, int | None]:
    """One row of the by-source table, by step."""
    row = page[page.index(f'<tr data-source="{source}"') :]
    row = row[: row.index("</tr>")]
    return {
        step: None if value == "–" else int(value.replace(",", ""))
        for step, value in re.findall(r'data-step="([a-z_]+)">([^<]+)</td>', row)
    }


def test_csv_export_has_the_filtered_pairings_escaped_and_no_text(
    db_app: Flask, db_planner: FlaskClient, tmp_path: Path
) -> None:
    secret = "MY-PRIVATE-TEXT-77"
    refs = ["=HYPERLINK(1)", "+15551234", "-7", "@SUM(A1)", 'plain, with "quotes"']
    answers = {}
    for number, ref in enumerate(refs):
        answers[ref] = pair(db_planner, f"{secret} {SHOPPER_TEXTS[number]}", ref=ref, consent=True)
        move_to(db_app, ref, days_ago(len(refs) - number))
    seaside = add_campaign(db_planner, write_roster(tmp_path / "seaside"))
    pair(db_planner, "sailing at the beach", ref="sea-1", slug=seaside, consent=True)
    assert len(stored_texts(db_app)) == len(refs) + 1, "the texts are kept, with consent"

    response = db_planner.get("/planner/pairings.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="pairings-default-form-embed-api.csv"'
    )
    body = response.get_data(as_text=True)
    assert secret not in body and "sailing" not in body
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["shopper_ref"] for row in rows] == [
        "'=HYPERLINK(1)", "'+15551234", "'-7", "'@SUM(A1)", 'plain, with "quotes"'
    ]  # fmt: skip
    for row, ref in zip(rows, refs, strict=True):
        answer = answers[ref]["matches"][0]
        assert row["celebrity_id"] == answer["celebrity_id"]
        assert row["score"] == f"{answer['score']:.4f}"
        assert (row["campaign"], row["source"], row["consent_version"]) == ("default", "api", "1")
        assert row["created_at"].startswith(days_ago(len(refs) - refs.index(ref)).isoformat())

    since, until = days_ago(4), days_ago(3)
    response = db_planner.get(f"/planner/pairings.csv?since={since}&until={until}")
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="pairings-default-form-embed-api-from-{since}-to-{until}.csv"'
    )
    assert [row["shopper_ref"] for row in read_csv(response.data)] == ["'+15551234", "'-7"]

    everything = read_csv(db_planner.get("/planner/pairings.csv?scope=all").data)
    assert [row["campaign"] for row in everything] == ["default"] * len(refs) + [seaside]
    only_sea = db_planner.get(f"/planner/pairings.csv?campaign={seaside}")
    assert only_sea.headers["Content-Disposition"].endswith(
        f'filename="pairings-{seaside}-form-embed-api.csv"'
    )
    assert [row["shopper_ref"] for row in read_csv(only_sea.data)] == ["sea-1"]

    page = db_planner.get(f"/planner/dashboard?scope=all&since={since}").get_data(as_text=True)
    assert f"/planner/pairings.csv?scope=all&amp;since={since}" in page, (
        "the export keeps the filters"
    )


def test_bar_chart_escapes_labels_and_uses_no_style() -> None:
    svg = charts.bar_chart(
        [charts.Bar("a&b", "<b>Bold</b> & co", 3), charts.Bar("z", "Zero", 0)],
        chart_id="c1",
        title="Counts <per> celebrity",
        description='He said "hi"',
    )
    assert "<b>" not in svg and "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in svg
    assert '<title id="c1-title">Counts &lt;per&gt; celebrity</title>' in svg
    assert 'aria-labelledby="c1-title c1-desc"' in svg and 'role="img"' in svg
    assert "style=" not in svg
    assert re.findall(r'data-value="(\d+)"', svg) == ["3", "0"]
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([\d.]+)"', svg)]
    assert widths[0] > 0 and widths[1] == 0


@pytest.mark.parametrize(
    ("score", "expected"),
    [pytest.param(0.55, 11, id="on-an-edge"), pytest.param(0.5499, 10, id="just-below"),
     pytest.param(0.0, 0, id="zero"), pytest.param(-0.01, -1, id="negative"),
     pytest.param(0.9999, 19, id="near-one")],
)  # fmt: skip
def test_scores_fall_in_the_bin_they_start(score: float, expected: int) -> None:
    assert score_bin(score) == expected


def test_histogram_keeps_empty_bins_between_used_ones() -> None:
    bins = charts.score_bins({12: 2, 9: 1}, 0.05)
    assert [(bar.key, bar.value) for bar in bins] == [
        ("0.45", 1), ("0.50", 0), ("0.55", 0), ("0.60", 2)
    ]  # fmt: skip
    assert bins[0].label == "0.45–0.50"
    svg = charts.histogram(bins, chart_id="h", title="t", description="d")
    assert len(re.findall(r'<g class="bar"', svg)) == 4 and "style=" not in svg
    assert charts.score_bins({}, 0.05) == []


def test_per_day_fills_every_day_and_orders_series_by_roster() -> None:
    first = date(2025, 3, 30)
    counts = [
        (date(2025, 4, 2), "b", 2),
        (first, "a", 1),
        (date(2025, 4, 2), "zz-gone", 1),
        (first, "b", 3),
        (date(2025, 4, 1), "a", 0),
    ]
    days, series = charts.per_day(counts, {"a": "Ann", "b": "Bo", "c": "Cy"})
    assert days == [first + timedelta(days=n) for n in range(4)], "across the month's end"
    assert [(s.key, s.label, s.values) for s in series] == [
        ("a", "Ann", (1, 0, 0, 0)), ("b", "Bo", (3, 0, 0, 2)), ("zz-gone", "zz-gone", (0, 0, 0, 1))
    ]  # fmt: skip
    days, _ = charts.per_day(counts, {}, first=date(2025, 3, 28), last=date(2025, 4, 3))
    assert len(days) == 7
    assert charts.per_day([], {"a": "Ann"}) == ([], [])


def test_stacked_days_draws_stacks_a_legend_and_escapes() -> None:
    days = [date(2025, 3, 1), date(2025, 3, 2)]
    series = [charts.Series("a&b", "<i>Ann</i>", (2, 0)), charts.Series("b", "Bo", (1, 3))]
    svg = charts.stacked_days(days, series, chart_id="d", title="Per <day>", description="d & e")
    assert "<i>" not in svg and "&lt;i&gt;Ann&lt;/i&gt;" in svg
    assert '<title id="d-title">Per &lt;day&gt;</title>' in svg and 'role="img"' in svg
    assert "style=" not in svg
    assert re.findall(r'data-day="([^"]+)" data-total="(\d+)"', svg) == [
        ("2025-03-01", "3"), ("2025-03-02", "3")
    ]  # fmt: skip
    segments = re.findall(
        r'data-key="([^"]+)" data-value="(\d+)" x="[\d.]+" y="([\d.]+)" width="[\d.]+" '
        r'height="([\d.]+)" fill="(#\w+)"',
        svg,
    )
    assert [(key, value) for key, value, *_ in segments] == [
        ("a&amp;b", "2"), ("b", "1"), ("b", "3")
    ]  # fmt: skip
    (_, _, y_a, h_a, fill_a), (_, _, y_b, h_b, fill_b), (_, _, y_full, h_full, _) = segments
    assert abs(float(y_b) + float(h_b) - float(y_a)) < 0.2, "Bo sits on Ann's segment"
    assert float(h_full) > float(h_a) > float(h_b) and fill_a != fill_b
    assert re.findall(r'<g class="legend-item" data-key="([^"]+)"', svg) == ["a&amp;b", "b"]
    assert "Bo (4)" in svg


# -- the funnel -------------------------------------------------------------------------


def form_page_token(client: FlaskClient, path: str = "/") -> str:
    found = re.search(r'name="token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found, "the form carries a token"
    return found.group(1)


def test_the_funnel_counts_each_step_with_its_rate(
    db_app: Flask, db_planner: FlaskClient, sample_matcher: Matcher
) -> None:
    shopper = db_app.test_client()
    for _ in range(7):
        shopper.get("/?lang=zh")  # 7 views of the form
    for _ in range(3):
        shopper.get("/embed?lang=en")  # and 3 of the embed
    for text in SHOPPER_TEXTS[:4]:
        sent = shopper.post("/", data={"token": form_page_token(shopper), "text": text})
        assert sent.status_code < 400
    # Fetching each form's token was a view too: 11 form views in all.
    answer = pair(db_planner, SHOPPER_TEXTS[5], ref="api-1")  # an API call: no view
    best = answer["matches"][0]["celebrity_id"]
    db = database(db_app)
    default = campaign(db_app)
    record_event(db, default.id, "cta_click", source="form", language="zh", celebrity_id=best)

    page = db_planner.get("/planner/dashboard").get_data(as_text=True)
    assert figure(page, "view") == 14
    assert figure(page, "submission") == 5
    assert figure(page, "pairing") == 5
    assert figure(page, "cta_click") == 1
    funnel = page[page.index('class="funnel-figures"') :]
    # Rates over the sources that have both steps: the API call has no view to compare.
    assert "28.6% of views" in funnel  # 4 form submissions / 14 page views
    assert "100.0% of submissions" in funnel
    assert "25.0% of pairings" in funnel  # 1 click / 4 pairings made on the pages
    assert re.findall(r'<g class="step" data-key="([a-z_]+)" data-value="(\d+)"', page) == [
        ("view", "14"), ("submission", "5"), ("pairing", "5"), ("cta_click", "1")
    ]  # fmt: skip
    assert source_row(page, "form") == {"view": 11, "submission": 4, "pairing": 4, "cta_click": 1}
    assert source_row(page, "embed") == {"view": 3, "submission": 0, "pairing": 0, "cta_click": 0}
    languages = page[page.index('class="chart-data languages-data"') :]
    # 7 views asked for zh; the 4 pages fetched for their token were in English.
    assert re.search(r'data-language="zh">.*?data-step="view">7<', languages, flags=re.S)
    # One campaign selector on the page: the dashboard's, not the bar's as well.
    assert page.count('name="campaign"') == 1 and 'id="campaign-switch"' not in page
    # The language filter: views of zh pages; pairings are not recorded by language.
    page = db_planner.get("/planner/dashboard?language=en").get_data(as_text=True)
    assert figure(page, "view") == 7 and figure(page, "cta_click") == 0
    assert figure(page, "pairing") is None and "not counted by language" in page
    # The celebrity filter: that celebrity's pairings and clicks, every view before the choice.
    page = db_planner.get(f"/planner/dashboard?celebrity={best}").get_data(as_text=True)
    assert figure(page, "view") == 14 and figure(page, "cta_click") == 1
    with db.read() as session:
        paired_best = session.scalar(
            select(func.count()).select_from(PairingRow).where(PairingRow.celebrity_id == best)
        )
    assert paired_best and figure(page, "pairing") == paired_best
    # Filters combine, and the link keeps them.
    page = db_planner.get(f"/planner/dashboard?celebrity={best}&source=form&language=zh")
    html = page.get_data(as_text=True)
    assert figure(html, "view") == 7 and figure(html, "cta_click") == 1
    assert f'<option value="{best}" selected>' in html
    assert '<option value="form" selected>' in html and '<option value="zh" selected>' in html


def test_days_are_the_campaigns_time_zone(db_app: Flask, db_planner: FlaskClient) -> None:
    pair(db_planner, SHOPPER_TEXTS[0], ref="late")
    # 17:00 UTC on 1 March is 01:00 on 2 March in Shanghai.
    with database(db_app).write() as session:
        session.execute(
            update(PairingRow)
            .where(PairingRow.shopper_ref == "late")
            .values(created_at=datetime(2026, 3, 1, 17, tzinfo=UTC))
        )

    def pairings_on(day: str) -> int | None:
        page = db_planner.get(f"/planner/dashboard?since={day}&until={day}&source=all")
        html = page.get_data(as_text=True)
        if "Nothing yet with these filters" in html:
            return 0
        return pairings_figure(html)

    assert pairings_on("2026-03-02") == 1 and pairings_on("2026-03-01") == 0
    page = db_planner.get("/planner/dashboard?since=2026-03-01&until=2026-03-03").get_data(
        as_text=True
    )
    assert "Asia/Shanghai" in page
    assert day_segments(page) == Counter({("2026-03-02", segment_key(page)): 1})
    update_campaign(database(db_app), "default", {"time_zone": "UTC"})
    forget(db_app, "default")
    assert pairings_on("2026-03-01") == 1 and pairings_on("2026-03-02") == 0


def segment_key(page: str) -> str:
    found = re.search(r'<rect class="segment" data-key="([^"]+)"', page)
    assert found
    return found.group(1)


def test_funnel_chart_escapes_and_marks_what_is_not_counted() -> None:
    svg = charts.funnel(
        [
            charts.Step("view", "<Views>", 1000),
            charts.Step("pairing", "Pairings & co", None, None, "not counted"),
            charts.Step("cta_click", "Clicks", 0, 0.0, "0.0% of pairings"),
        ],
        chart_id="f1",
        title="Funnel <t>",
        description="d",
    )
    assert "<Views>" not in svg and "&lt;Views&gt;" in svg and "Pairings &amp; co" in svg
    assert "style=" not in svg
    assert re.findall(r'data-key="([a-z_]+)" data-value="(\d*)"', svg) == [
        ("view", "1000"), ("pairing", ""), ("cta_click", "0")
    ]  # fmt: skip
    assert 'stroke-dasharray="4 4"' in svg, "an uncounted step is an outline"
    assert "1,000" in svg


def test_day_panels_draw_each_step_on_its_own_scale() -> None:
    days = [date(2026, 3, 1) + timedelta(days=n) for n in range(3)]
    svg = charts.day_panels(
        days,
        [
            charts.Series("view", "Views", (1000, 0, 500)),
            charts.Series("cta_click", "Clicks", (2, 4, 0)),
        ],
        chart_id="p1",
        title="t",
        description="d",
    )
    bars = re.findall(
        r'data-day="([^"]+)" data-value="(\d+)" x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)"',
        svg,
    )
    assert [(day, value) for day, value, _ in bars] == [
        ("2026-03-01", "1000"), ("2026-03-03", "500"), ("2026-03-01", "2"), ("2026-03-02", "4")
    ]  # fmt: skip
    heights = [float(h) for _, _, h in bars]
    # Each row's peak fills its panel: 4 clicks stand as tall as 1,000 views.
    assert (
        heights[0] == heights[3] and heights[1] == heights[0] / 2 and heights[2] == heights[0] / 2
    )
