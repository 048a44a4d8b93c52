"""Planner uploads: batch jobs, their progress and their results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from matcher.matching import Matcher
from matcher.store.schema import BatchJobFileRow, BatchJobRow
from web.jobs import JobView, Status, rate_and_eta
from web.planner import job_registry
from web.planner.batches import time_left

from ..conftest import make_app
from .conftest import (
    SHOPPER_TEXTS,
    download,
    job_id_of,
    login,
    post,
    read_csv,
    shopper_csv,
    upload,
    wait_for,
)


def db_of(app: Flask):  # type: ignore[no-untyped-def]
    return app.extensions["matcher.db"]


# -- batches ----------------------------------------------------------------------------


def test_upload_matches_in_the_background_and_downloads_again(
    app: Flask, planner: FlaskClient, sample_matcher: Matcher
) -> None:
    secret = "MY-PRIVATE-TEXT-42"
    rows = [
        ("=HYPERLINK(1)", SHOPPER_TEXTS[0]),
        ("+15551234", SHOPPER_TEXTS[1]),
        ("-7", SHOPPER_TEXTS[2]),
        ("@SUM(A1)", SHOPPER_TEXTS[3]),
        ("plain-5", "=1+1 " + SHOPPER_TEXTS[4]),
        ("blank-6", "   "),
        ("long-7", secret + " " + "x" * 1000),
        ("", secret + " without an id"),
    ]
    job_id = job_id_of(upload(planner, "shoppers.csv", shopper_csv(rows)))
    view = wait_for(app, job_id)
    assert view.status is Status.DONE, view.error
    assert (view.matched, view.bad) == (5, 3)

    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in page
    bad = re.findall(
        r'<tr><td class="number">(\d+)</td><td>([^<]*)</td></tr>', page[page.index("bad-rows") :]
    )
    assert [int(line) for line, _ in bad] == [7, 8, 9]
    assert "blank" in bad[0][1] and "limit is 1000" in bad[1][1] and "id is blank" in bad[2][1]
    assert secret not in page

    response = download(planner, job_id)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert "shoppers-pairings.csv" in response.headers["Content-Disposition"]
    pairings = read_csv(response.data)
    assert [row["id"] for row in pairings] == [
        "'=HYPERLINK(1)", "'+15551234", "'-7", "'@SUM(A1)", "plain-5"
    ]  # fmt: skip
    texts = [text for _, text in rows[:5]]
    for row, expected in zip(pairings, sample_matcher.match_many(texts, 3), strict=True):
        assert [row[f"celebrity_{rank}"] for rank in (1, 2, 3)] == [
            m.celebrity_id for m in expected
        ]
        assert row["score_1"] == f"{expected[0].score:.4f}"
    assert secret not in response.data.decode("utf-8")

    with db_of(app).read() as session:
        [row] = session.scalars(select(BatchJobRow).where(BatchJobRow.id == job_id))
        kinds = set(
            session.scalars(select(BatchJobFileRow.kind).where(BatchJobFileRow.job_id == job_id))
        )
        record = json.dumps(
            {c.name: getattr(row, c.name) for c in BatchJobRow.__table__.columns},
            ensure_ascii=False,
            default=str,
        )
    assert kinds == {"pairings"}, "the upload is deleted when matching ends"
    assert secret not in record
    assert not any(text in record for _, text in rows[:5])
    assert row.bad_lines == [[b.line, b.reason] for b in view.bad_lines]
    assert (row.rows_done, row.total_rows) == (8, 8), "the header is not a row"
    again = download(planner, job_id)
    assert again.status_code == 200 and again.data == response.data, "downloadable again"
    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert "can be downloaded again" in page
    assert not list((Path(app.instance_path) / "planner-batches").glob("*")), "no file left"


def test_json_lines_upload_reports_broken_lines(app: Flask, planner: FlaskClient) -> None:
    body = "\n".join(
        [
            json.dumps({"id": "a", "text": SHOPPER_TEXTS[0]}),
            '{"id": "b", "text": "broken',
            json.dumps({"id": "c", "text": 42}),
            json.dumps({"id": "d", "text": SHOPPER_TEXTS[1]}),
        ]
    )
    job_id = job_id_of(upload(planner, "shoppers.jsonl", body + "\n"))
    view = wait_for(app, job_id)
    assert view.status is Status.DONE
    assert view.matched == 2
    assert [(bad.line, bad.reason.split(" (")[0]) for bad in view.bad_lines] == [
        (2, "not valid JSON"),
        (3, "'text' is not a string"),
    ]
    pairings = read_csv(download(planner, job_id).data)
    assert [row["id"] for row in pairings] == ["a", "d"]


@pytest.mark.parametrize(
    ("name", "body", "fields", "problem"),
    [pytest.param(None, "", {}, "Choose a CSV", id="no-file"),
     pytest.param("shoppers.txt", "id,text\n1,tea\n", {}, ".jsonl", id="unknown-type"),
     pytest.param("shoppers.xls", "id,text\n1,tea\n", {}, ".xlsx", id="old-excel"),
     pytest.param("shoppers.xlsx", "id,text\n1,tea\n", {}, "shoppers.xlsx: not an Excel .xlsx workbook", id="not-a-workbook"),
     pytest.param("shoppers.csv", "", {}, "shoppers.csv: the file is empty", id="empty-file"),
     pytest.param("shoppers.csv", "id,text\n1,tea\n", {"top_k": "0"}, "from 1 to 7", id="top-k-zero"),
     pytest.param("shoppers.csv", "id,text\n1,tea\n", {"top_k": "three"}, "from 1 to 7", id="top-k-word"),
     pytest.param("shoppers.csv", "id,text\n1,tea\n", {"top_k": "8"}, "from 1 to 7", id="top-k-over-roster"),
     pytest.param("shoppers.csv", "id,text\n1,tea\n", {"id_column": " "}, "column name", id="blank-id-column"),
     pytest.param("shoppers.csv", "id,text\n1,tea\n", {"text_column": "t" * 101}, "column name", id="long-text-column")],
)  # fmt: skip
def test_unusable_uploads_are_refused_at_once(
    app: Flask,
    planner: FlaskClient,
    name: str | None,
    body: str | bytes,
    fields: dict[str, str],
    problem: str,
) -> None:
    if name is None:
        response = post(
            planner, "/planner/batches", {"top_k": "3"}, content_type="multipart/form-data"
        )
    else:
        response = upload(planner, name, body, **fields)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert problem in page
    assert ".tmp" not in page and "~" not in page, "never a temporary file's name"
    assert 'role="alert"' in page and 'aria-invalid="true"' in page
    assert job_registry(app).jobs() == []
    folder = Path(app.instance_path) / "planner-batches"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_other_column_names_are_chosen_before_matching_starts(
    app: Flask, planner: FlaskClient
) -> None:
    body = (
        "会员编号;城市;喜好\r\nv1;上海;"
        + SHOPPER_TEXTS[0]
        + "\r\nv2;杭州;"
        + SHOPPER_TEXTS[1]
        + "\r\n"
    )
    job_id = job_id_of(upload(planner, "crm.csv", body.encode("gbk")))
    view = job_registry(app).get(job_id)
    assert view is not None and view.status is Status.MAPPING
    assert view.columns == ("会员编号", "城市", "喜好")
    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert "Read as CSV in GB18030 (GBK)." in page
    assert '<option value="会员编号" selected>' in page and '<option value="喜好" selected>' in page
    assert 'http-equiv="refresh"' not in page
    refused = post(planner, f"/planner/batches/{job_id}/start",
                   {"id_column": "会员编号", "text_column": "nope", "top_k": "2"})  # fmt: skip
    assert refused.status_code == 400 and "Choose one of the file" in refused.get_data(as_text=True)
    started = post(planner, f"/planner/batches/{job_id}/start",
                   {"id_column": "会员编号", "text_column": "喜好", "top_k": "2"})  # fmt: skip
    assert started.status_code == 303
    view = wait_for(app, job_id)
    assert (view.status, view.matched, view.total_rows) == (Status.DONE, 2, 2), view.error
    pairings = read_csv(download(planner, job_id).data)
    assert [row["id"] for row in pairings] == ["v1", "v2"]
    assert "celebrity_2" in pairings[0] and "celebrity_3" not in pairings[0]


def test_a_file_of_which_no_row_can_be_read_fails_saying_why(
    app: Flask, planner: FlaskClient
) -> None:
    body = "id,text\n,one\n,two\n"
    job_id = job_id_of(upload(planner, "blank-ids.csv", body))
    view = wait_for(app, job_id)
    assert view.status is Status.FAILED
    assert view.error == "blank-ids.csv: no row could be read (2 bad rows; all: id is blank)"
    assert view.stored is None
    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert "no row could be read" in page and 'id="stored"' not in page
    assert download(planner, job_id).status_code == 409


def test_duplicate_ids_are_bad_rows_with_their_line(app: Flask, planner: FlaskClient) -> None:
    rows = [("a", SHOPPER_TEXTS[0]), ("b", SHOPPER_TEXTS[1]), ("a", SHOPPER_TEXTS[2])]
    view = wait_for(app, job_id_of(upload(planner, "dup.csv", shopper_csv(rows), id_column="ID")))
    assert (view.matched, view.bad, view.total_rows) == (2, 1, 3)
    assert [(b.line, b.reason) for b in view.bad_lines] == [
        (4, "duplicate id: the same id is on line 2")
    ]


def test_job_page_reloads_itself_until_the_batch_is_done(app: Flask, planner: FlaskClient) -> None:
    registry = job_registry(app)
    registry.slot.acquire()  # another batch is "running": this one waits in the queue
    try:
        job_id = job_id_of(upload(planner, "wait.csv", shopper_csv([("1", SHOPPER_TEXTS[0])])))
        page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
        assert '<meta http-equiv="refresh" content="2">' in page
        assert "waiting for the batch before it" in page
        assert "<progress" in page and "Download" not in page
        assert 'id="cancel"' in page
        assert planner.get(f"/planner/batches/{job_id}/pairings.csv").status_code == 409
    finally:
        registry.slot.release()
    assert wait_for(app, job_id).status is Status.DONE
    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in page
    assert f"/planner/batches/{job_id}/pairings.csv" in page
    listing = planner.get("/planner/batches").get_data(as_text=True)
    assert "wait.csv" in listing and "ready to download" in listing


@pytest.mark.parametrize(
    "path",
    [pytest.param("/planner/batches/nope", id="job"),
     pytest.param("/planner/batches/nope/pairings.csv", id="download")],
)  # fmt: skip
def test_unknown_batches_are_404(planner: FlaskClient, path: str) -> None:
    response = planner.get(path)
    assert response.status_code == 404
    assert "Upload the file again" in response.get_data(as_text=True)


def test_pairings_are_kept_until_the_campaign_retention_ends(
    app: Flask, planner: FlaskClient
) -> None:
    job_id = job_id_of(upload(planner, "old.csv", shopper_csv([("1", SHOPPER_TEXTS[0])])))
    view = wait_for(app, job_id)
    assert view.status is Status.DONE and view.finished_at and view.expires_at
    assert view.expires_at - view.finished_at == pytest.approx(180 * 86400, abs=5)
    registry = job_registry(app)
    assert registry.sweep(view.expires_at - 5) == 0
    for _ in range(3):
        assert download(planner, job_id).status_code == 200
    assert registry.get(job_id).downloads == 3  # type: ignore[union-attr]
    assert registry.sweep(view.expires_at + 1) == 1
    assert download(planner, job_id).status_code == 410
    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert "deleted at the end of the campaign" in page


def test_a_configured_ttl_shortens_the_keeping(tmp_path: Path, sample_matcher: Matcher) -> None:
    app = make_app(tmp_path, sample_matcher, MATCHER_PLANNER_BATCH_TTL=60)
    planner = app.test_client()
    login(planner)
    job_id = job_id_of(upload(planner, "old.csv", shopper_csv([("1", SHOPPER_TEXTS[0])])))
    view = wait_for(app, job_id)
    assert view.expires_at and view.finished_at
    assert view.expires_at - view.finished_at == pytest.approx(60, abs=2)
    assert job_registry(app).sweep(view.finished_at + 61) == 1


@pytest.mark.parametrize(
    ("status", "done", "total", "percent"),
    [pytest.param(Status.QUEUED, 0, 0, 0, id="not-counted-yet"),
     pytest.param(Status.RUNNING, 50, 200, 25, id="a-quarter"),
     pytest.param(Status.RUNNING, 200, 200, 99, id="all-read-not-yet-stored"),
     pytest.param(Status.DONE, 10, 200, 100, id="done")],
)  # fmt: skip
def test_progress_percent(status: Status, done: int, total: int, percent: int) -> None:
    view = JobView("j", "f.csv", status, done, total, 0, 0, (), None, False, False, False)
    assert view.percent == percent


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "rate", "eta"),
    [pytest.param(0, 100, 5.0, None, None, id="nothing-done-yet"),
     pytest.param(50, 200, 10.0, 5.0, 30.0, id="a-quarter"),
     pytest.param(200, 200, 4.0, 50.0, 0.0, id="all-read")],
)  # fmt: skip
def test_rate_and_time_left(
    done: int, total: int, elapsed: float, rate: float | None, eta: float | None
) -> None:
    assert rate_and_eta(done, total, 1000.0, 1000.0 + elapsed) == (rate, eta)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [pytest.param(None, "working out the time left…", id="unknown"),
     pytest.param(20, "less than a minute left", id="seconds"),
     pytest.param(61, "about 1 minute left", id="one-minute"),
     pytest.param(600, "about 10 minutes left", id="minutes"),
     pytest.param(3 * 3600, "about 3 hours left", id="hours")],
)  # fmt: skip
def test_time_left_reads_well(app: Flask, seconds: float | None, text: str) -> None:
    with app.test_request_context("/planner/batches"):
        assert time_left(seconds) == text
