"""Planner uploads: batch jobs, their progress and their results."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from matcher.matching import Matcher
from web.jobs import JobRegistry, JobView, Status
from web.planner import job_registry

from .conftest import (
    SHOPPER_TEXTS,
    batch_files,
    download,
    job_id_of,
    post,
    read_csv,
    shopper_csv,
    upload,
    wait_for,
)

# -- batches ----------------------------------------------------------------------------


def test_upload_matches_in_the_background_and_downloads_once(
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

    batch_folder = Path(app.instance_path) / "planner-batches"
    assert batch_files(batch_folder) == {f"{job_id}.job.json"}, "upload and pairings are deleted"
    record = json.loads((batch_folder / f"{job_id}.job.json").read_text(encoding="utf-8"))
    assert secret not in json.dumps(record, ensure_ascii=False)
    assert not any(text in json.dumps(record, ensure_ascii=False) for _, text in rows[:5])
    assert record["bad_lines"] == [{"line": b.line, "reason": b.reason} for b in view.bad_lines]
    again = download(planner, job_id)
    assert again.status_code == 410
    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert "downloaded and deleted" in page


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
     pytest.param("shoppers.xlsx", "id,text\n1,tea\n", {}, ".jsonl", id="spreadsheet"),
     pytest.param("shoppers.csv", "id,comment\n1,tea\n", {}, "no &#39;text&#39; column", id="missing-text-column"),
     pytest.param("shoppers.csv", "", {}, "the file is empty", id="empty-file"),
     pytest.param("shoppers.csv", b"id,t\xffxt\n1,tea\n", {"text_column": "t\ufffdxt"}, "not valid UTF-8", id="undecodable-header"),
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
    assert 'role="alert"' in page and 'aria-invalid="true"' in page
    assert job_registry(app).jobs() == []
    folder = Path(app.instance_path) / "planner-batches"
    assert not folder.exists() or batch_files(folder) == set()


def test_job_page_reloads_itself_until_the_batch_is_done(app: Flask, planner: FlaskClient) -> None:
    registry = job_registry(app)
    registry.slot.acquire()  # another batch is "running": this one waits in the queue
    try:
        job_id = job_id_of(upload(planner, "wait.csv", shopper_csv([("1", SHOPPER_TEXTS[0])])))
        page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
        assert '<meta http-equiv="refresh" content="2">' in page
        assert "waiting for the batch before it" in page
        assert "<progress" in page and "Download" not in page
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


def test_old_pairings_expire(app: Flask, planner: FlaskClient) -> None:
    job_id = job_id_of(upload(planner, "old.csv", shopper_csv([("1", SHOPPER_TEXTS[0])])))
    assert wait_for(app, job_id).status is Status.DONE
    registry = job_registry(app)
    assert registry.sweep(time.time() + registry.ttl - 5) == 0
    assert registry.sweep(time.time() + registry.ttl + 1) == 1
    assert planner.get(f"/planner/batches/{job_id}/pairings.csv").status_code == 410
    assert "expired" in planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("status", "done", "total", "percent"),
    [pytest.param(Status.QUEUED, 0, 0, 0, id="not-counted-yet"),
     pytest.param(Status.RUNNING, 50, 200, 25, id="a-quarter"),
     pytest.param(Status.RUNNING, 201, 200, 99, id="no-trailing-newline"),
     pytest.param(Status.DONE, 10, 200, 100, id="done")],
)  # fmt: skip
def test_progress_percent(status: Status, done: int, total: int, percent: int) -> None:
    view = JobView("j", "f.csv", status, done, total, 0, 0, (), None, False, False, False)
    assert view.percent == percent


def test_sweep_keeps_fresh_files_and_those_of_running_jobs(tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path / "batches", ttl=60)
    registry.folder.mkdir()
    old, fresh = registry.folder / "old.pairings.csv", registry.folder / "new.pairings.csv"
    for path in (old, fresh):
        path.write_text("id\n")
    stale = time.time() - 120
    os.utime(old, (stale, stale))
    assert registry.sweep() == 1
    assert not old.exists() and fresh.exists()
