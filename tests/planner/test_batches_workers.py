"""Batch jobs with several server workers on one instance folder."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from matcher.matching import DEFAULT_TOP_K, Match, Matcher
from web.jobs import JobRegistry, PairingTotals, Status
from web.planner import job_registry

from ..conftest import REPO
from .conftest import (
    JOB_TIMEOUT,
    SHOPPER_TEXTS,
    batch_files,
    chart_bars,
    download,
    job_id_of,
    login,
    make_app,
    post,
    read_csv,
    shopper_csv,
    upload,
    wait_for,
)

# -- batches with several server workers ----------------------------------------------
#
# Each gunicorn worker has its own JobRegistry on the one jobs folder; here two
# registries (or two apps) on one folder stand for two workers.

#: Texts for the tiny roster of ``fake_matcher`` (ocean, library, stage).
TINY_TEXTS = [
    "surfing and sailing at the beach",
    "reading novels with green tea",
    "dancing at concerts and karaoke",
]


class GatedMatcher(Matcher):
    """Holds its second encoder batch until ``gate`` is set, so a test can look mid-run."""

    def __init__(self, base: Matcher) -> None:
        super().__init__(base.encoder, base.index)
        self.gate = threading.Event()
        self.calls = 0

    def match_many(self, texts: Sequence[str], k: int = DEFAULT_TOP_K) -> list[list[Match]]:
        self.calls += 1
        if self.calls > 1:
            assert self.gate.wait(JOB_TIMEOUT), "the test never opened the gate"
        return super().match_many(texts, k)


def submit_file(registry: JobRegistry, matcher: Matcher, body: str, name: str = "s.csv") -> str:
    """Save ``body`` as an upload and submit it, as the batches view does."""
    job_id, input_path, output_path = registry.paths(".csv")
    input_path.write_text(body, encoding="utf-8")
    registry.submit(matcher, job_id, input_path, output_path, filename=name, k=2)
    return job_id


def wait_until(condition: Any, what: str, timeout: float = JOB_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def tiny_rows(count: int) -> list[tuple[str, str]]:
    return [(f"s{number}", TINY_TEXTS[number % 3]) for number in range(count)]


def test_a_job_run_by_one_worker_is_seen_by_another(tmp_path: Path, fake_matcher: Matcher) -> None:
    folder = tmp_path / "batches"
    worker_a = JobRegistry(folder, save_every=0)
    worker_b = JobRegistry(folder)
    gated = GatedMatcher(fake_matcher)
    body = shopper_csv([("blank", " ")] + tiny_rows(100))

    worker_a.slot.acquire()  # worker A is busy with another batch: this one queues
    try:
        job_id = submit_file(worker_a, gated, body, "crm.csv")
        queued = worker_b.get(job_id)
        assert queued is not None, "the record is on disk before submit returns"
        assert (queued.status, queued.filename) == (Status.QUEUED, "crm.csv")
        assert [job.id for job in worker_b.jobs()] == [job_id]
    finally:
        worker_a.slot.release()

    # The first encoder batch (64 shoppers) is done; the second waits at the gate.
    wait_until(lambda: worker_b.get(job_id).matched == 64, "progress seen by worker B")  # type: ignore[union-attr]
    running = worker_b.get(job_id)
    assert running is not None and running.status is Status.RUNNING
    assert running.total_lines == 102 and 0 < running.percent < 100
    assert running.bad == 1 and [b.line for b in running.bad_lines] == [2]
    assert running.bad_lines[0].reason.startswith("text is blank")
    assert worker_b.take_output(job_id) is None, "nothing to download mid-run"
    assert worker_b.pairing_totals() == PairingTotals(), "only done batches count"

    gated.gate.set()
    done = wait_for(worker_b, job_id)
    assert (done.status, done.matched, done.bad, done.percent) == (Status.DONE, 100, 1, 100)
    assert done.downloadable and worker_a.get(job_id) == done

    totals = worker_b.pairing_totals()
    assert worker_a.pairing_totals() == totals
    assert totals.shoppers == 100

    handle = worker_b.take_output(job_id)
    assert handle is not None
    with handle:
        pairings = read_csv(handle.read())
    assert [row["id"] for row in pairings] == [f"s{number}" for number in range(100)]
    assert Counter(row["celebrity_1"] for row in pairings) == totals.per_celebrity
    seen_by_a = worker_a.get(job_id)
    assert seen_by_a is not None and seen_by_a.downloaded and not seen_by_a.downloadable
    assert worker_a.take_output(job_id) is None
    assert batch_files(folder) == {f"{job_id}.job.json"}
    assert worker_a.pairing_totals() == totals, "a download does not change the totals"


def test_every_worker_serves_the_job_page_download_and_dashboard(
    tmp_path: Path, sample_matcher: Matcher
) -> None:
    app_a = make_app(tmp_path, sample_matcher)
    app_b = make_app(tmp_path, sample_matcher)
    assert app_a.instance_path == app_b.instance_path
    worker_a, worker_b = app_a.test_client(), app_b.test_client()
    for client in (worker_a, worker_b):
        assert login(client).status_code == 303

    rows = [(str(number), text) for number, text in enumerate(SHOPPER_TEXTS)]
    job_id = job_id_of(upload(worker_a, "both.csv", shopper_csv(rows + [("bad", "")])))
    first = worker_b.get(f"/planner/batches/{job_id}")
    assert first.status_code == 200, "worker B knows the job at once"
    assert "both.csv" in first.get_data(as_text=True)
    assert wait_for(app_b, job_id).status is Status.DONE
    page = worker_b.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert f"/planner/batches/{job_id}/pairings.csv" in page
    for client in (worker_a, worker_b):
        listing = client.get("/planner/batches").get_data(as_text=True)
        assert "both.csv" in listing and "ready to download" in listing

    dashboards = [client.get("/planner/dashboard").get_data(as_text=True) for client in (worker_a, worker_b)]  # fmt: skip
    assert chart_bars(dashboards[0], "chart-celebrities") == chart_bars(
        dashboards[1], "chart-celebrities"
    )
    assert chart_bars(dashboards[0], "chart-scores") == chart_bars(dashboards[1], "chart-scores")
    assert all(f'<dd id="total-pairings">{len(rows)}</dd>' in page for page in dashboards)

    response = download(worker_b, job_id)
    assert response.status_code == 200
    assert len(read_csv(response.data)) == len(rows)
    again = download(worker_a, job_id)
    assert again.status_code == 410
    assert "already downloaded" in again.get_data(as_text=True)
    assert "downloaded and deleted" in worker_a.get(f"/planner/batches/{job_id}").get_data(
        as_text=True
    )

    restarted = make_app(tmp_path, sample_matcher).test_client()
    login(restarted)
    page = restarted.get("/planner/dashboard").get_data(as_text=True)
    assert f'<dd id="total-pairings">{len(rows)}</dd>' in page, "totals survive a restart"


def test_only_one_of_racing_downloads_gets_the_pairings(
    tmp_path: Path, fake_matcher: Matcher
) -> None:
    folder = tmp_path / "batches"
    workers = [JobRegistry(folder), JobRegistry(folder)]
    job_id = submit_file(workers[0], fake_matcher, shopper_csv(tiny_rows(5)))
    assert wait_for(workers[1], job_id).status is Status.DONE
    expected = (folder / f"{job_id}.pairings.csv").read_bytes()

    racers = 8
    start = threading.Barrier(racers)
    handles = []

    def take(registry: JobRegistry) -> None:
        start.wait()
        handles.append(registry.take_output(job_id))

    threads = [threading.Thread(target=take, args=(workers[n % 2],)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOB_TIMEOUT)
    won = [handle for handle in handles if handle is not None]
    assert len(handles) == racers and len(won) == 1
    with won[0] as handle:
        assert handle.read() == expected
    for registry in workers:
        view = registry.get(job_id)
        assert view is not None and view.downloaded and not view.expired
    assert batch_files(folder) == {f"{job_id}.job.json"}


def test_a_job_whose_worker_died_shows_as_failed(app: Flask, planner: FlaskClient) -> None:
    folder = Path(app.instance_path) / "planner-batches"
    script = """
import sys, time
from pathlib import Path
from matcher.index import build_index
from matcher.matching import Matcher
from matcher.profiles import load_profiles
from tests.fakes import HashingEncoder
from web.jobs import JobRegistry

class Stuck(Matcher):
    def match_many(self, texts, k=3):
        time.sleep(3600)

encoder = HashingEncoder()
index, _ = build_index(load_profiles(sys.argv[2]), encoder)
registry = JobRegistry(Path(sys.argv[1]))
job_id, upload, output = registry.paths(".csv")
upload.write_text("id,text\\n1,I like tea\\n", encoding="utf-8")
registry.submit(Stuck(encoder, index), job_id, upload, output, filename="crash.csv", k=1)
print(job_id, flush=True)
time.sleep(3600)
"""
    registry = job_registry(app)
    command = [sys.executable, "-c", script, str(folder), app.config["MATCHER_PROFILES"]]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as worker:
        try:
            assert worker.stdout is not None
            job_id = worker.stdout.readline().strip()
            wait_until(lambda: registry.get(job_id).status is Status.RUNNING, "the batch to start")  # type: ignore[union-attr]
            assert (folder / f"{job_id}.upload.csv").exists()
        finally:
            worker.kill()  # like a worker killed mid-batch: no clean-up runs

    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert "The server restarted during this batch" in page
    assert 'http-equiv="refresh"' not in page and "failed" in page
    response = planner.get(f"/planner/batches/{job_id}/pairings.csv")
    assert response.status_code == 409 and "This batch failed" in response.get_data(as_text=True)

    assert registry.sweep() == 2, "the upload (shopper text) and partial pairings are deleted"
    assert batch_files(folder) == {f"{job_id}.job.json"}
    record = json.loads((folder / f"{job_id}.job.json").read_text(encoding="utf-8"))
    assert (record["status"], record["abandoned"]) == ("failed", True)
    assert "I like tea" not in json.dumps(record)


def test_a_silent_worker_is_given_up_and_stops_when_it_wakes(
    tmp_path: Path, fake_matcher: Matcher
) -> None:
    folder = tmp_path / "batches"
    slow = JobRegistry(folder)
    impatient = JobRegistry(folder, stale_after=0.3)
    slow.slot.acquire()  # the job queues; its heartbeat is 30 s away
    try:
        job_id = submit_file(slow, fake_matcher, shopper_csv(tiny_rows(3)))
        assert impatient.get(job_id).status is Status.QUEUED  # type: ignore[union-attr]
        time.sleep(0.4)
        view = impatient.get(job_id)
        assert view is not None and view.status is Status.FAILED and view.stale
        assert [job.status for job in impatient.jobs()] == [Status.FAILED]
        assert impatient.sweep() == 1
        assert not (folder / f"{job_id}.upload.csv").exists()
    finally:
        slow.slot.release()
    thread = next(t for t in threading.enumerate() if t.name == f"batch-{job_id}")
    thread.join(JOB_TIMEOUT)
    assert not thread.is_alive()
    for registry in (slow, impatient):
        view = registry.get(job_id)
        assert view is not None and view.status is Status.FAILED and view.stale
    assert batch_files(folder) == {f"{job_id}.job.json"}, "no pairings were left behind"
    assert slow.pairing_totals() == PairingTotals()


def test_old_records_are_retired_into_the_totals(tmp_path: Path, fake_matcher: Matcher) -> None:
    folder = tmp_path / "batches"
    worker = JobRegistry(folder, keep=1)
    job_ids = []
    for count in (3, 4, 5):
        job_ids.append(submit_file(worker, fake_matcher, shopper_csv(tiny_rows(count))))
        assert wait_for(worker, job_ids[-1]).status is Status.DONE
        time.sleep(0.01)  # distinct creation times
    for job_id in job_ids[:2]:
        handle = worker.take_output(job_id)
        assert handle is not None
        handle.close()
    before = worker.pairing_totals()
    assert before.shoppers == 12
    kept_record = (folder / f"{job_ids[0]}.job.json").read_text(encoding="utf-8")

    worker.sweep()
    assert batch_files(folder) == {
        f"{job_ids[2]}.job.json", f"{job_ids[2]}.pairings.csv", "totals.json"
    }  # fmt: skip
    assert [job.id for job in worker.jobs()] == [job_ids[2]]
    assert worker.get(job_ids[0]) is None
    assert worker.pairing_totals() == before
    assert JobRegistry(folder).pairing_totals() == before, "another worker, or a restart"

    # A crash between writing the totals and deleting a record: it is not counted twice.
    (folder / f"{job_ids[0]}.job.json").write_text(kept_record, encoding="utf-8")
    assert worker.pairing_totals() == before
    worker.sweep()
    assert not (folder / f"{job_ids[0]}.job.json").exists()
    assert worker.pairing_totals() == before
    worker.sweep()
    assert worker.pairing_totals() == before


@pytest.mark.parametrize(
    "job_id",
    [pytest.param("..", id="dot-dot"),
     pytest.param("...", id="dots"),
     pytest.param("abc", id="too-short"),
     pytest.param("A" * 17, id="too-long"),
     pytest.param("AAAAAAAAAAAAAAA.", id="dot-inside"),
     pytest.param("..%2F..%2Fsecret", id="encoded-slash"),
     pytest.param("AAAAAAAAAAAAAAA%00", id="nul"),
     pytest.param("totals", id="totals-file"),
     pytest.param("AAAAAAAAAAAAAAA~", id="other-character")],
)  # fmt: skip
def test_malformed_job_ids_are_refused(app: Flask, planner: FlaskClient, job_id: str) -> None:
    for path in (f"/planner/batches/{job_id}", f"/planner/batches/{job_id}/pairings.csv"):
        response = planner.get(path)
        assert response.status_code == 404, path
        if "%2F" not in job_id:  # a slash never reaches the view: no route matches
            assert "Upload the file again" in response.get_data(as_text=True)
    registry = job_registry(app)
    raw = job_id.replace("%2F", "/").replace("%00", "\0")
    assert registry.get(raw) is None and registry.take_output(raw) is None
    with pytest.raises(ValueError, match="job id"):
        registry.record_path(raw)


def test_a_record_outside_the_folder_is_never_read(tmp_path: Path, fake_matcher: Matcher) -> None:
    folder = tmp_path / "instance" / "batches"
    registry = JobRegistry(folder)
    job_id = submit_file(registry, fake_matcher, shopper_csv(tiny_rows(1)))
    wait_for(registry, job_id)
    (tmp_path / "instance" / "x.job.json").write_bytes((folder / f"{job_id}.job.json").read_bytes())
    assert registry.get("../x") is None
    with pytest.raises(ValueError, match="suffix"):
        registry.paths("/../../x.csv")


def test_shopper_text_is_never_logged(
    app: Flask, planner: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "SHOPPER-SECRET-7731 loves oolong tea"
    caplog.set_level(logging.DEBUG)
    post(planner, "/planner/try", {"text": secret})
    job_id = job_id_of(upload(planner, "log.csv", shopper_csv([("1", secret), ("2", "")])))
    wait_for(app, job_id)
    assert caplog.records, "logging was captured"
    assert "SHOPPER-SECRET" not in caplog.text
