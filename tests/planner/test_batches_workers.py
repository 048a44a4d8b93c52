"""Batch jobs with several server workers (and servers) on one database.

Each gunicorn worker of each server has its own JobRegistry on the one
database; here two registries (or two apps) on one database stand for two
workers, possibly on two machines (``tests/test_two_servers_jobs.py`` runs two
real servers on PostgreSQL).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from matcher.batch_input import describe_input
from matcher.matching import DEFAULT_TOP_K, Match, Matcher
from matcher.store import Database, NewPairing, Stored
from matcher.store.schema import BatchJobFileRow, BatchJobRow
from web.jobs import CANCELLED_ERROR, JobRegistry, PairingTotals, Status
from web.planner import job_registry

from ..conftest import REPO
from .conftest import (
    JOB_TIMEOUT,
    SHOPPER_TEXTS,
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


@pytest.fixture
def shared_db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    database.migrate()
    yield database
    database.dispose()


def worker(db: Database, tmp_path: Path, name: str, **options: Any) -> JobRegistry:
    """A registry as one worker (of one server, with its own scratch folder) has it."""
    return JobRegistry(db, tmp_path / name / "planner-batches", **options)


def submit_file(
    registry: JobRegistry,
    matcher: Matcher,
    body: str,
    name: str = "s.csv",
    store: Any = None,
) -> str:
    """Take ``body`` in as an upload and start it, as the batches view does."""
    registry._make_scratch()
    local = registry.scratch / f"upload-{time.monotonic_ns()}.csv"
    local.write_text(body, encoding="utf-8")
    with open(local, "rb") as handle:
        job_id = registry.create(
            handle, describe_input(local, name=name), filename=name, campaign="default"
        )
    local.unlink()
    assert registry.start(
        matcher, job_id, k=2, id_column="id", text_column="text", retention_days=30, store=store
    )
    return job_id


def wait_until(condition: Any, what: str, timeout: float = JOB_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def tiny_rows(count: int) -> list[tuple[str, str]]:
    return [(f"s{number}", TINY_TEXTS[number % 3]) for number in range(count)]


def file_kinds(db: Database, job_id: str) -> list[str]:
    with db.read() as session:
        return sorted(
            set(
                session.scalars(
                    select(BatchJobFileRow.kind).where(BatchJobFileRow.job_id == job_id)
                )
            )
        )


def scratch_files(*registries: JobRegistry) -> list[str]:
    return [p.name for r in registries if r.scratch.exists() for p in r.scratch.iterdir()]


def test_a_job_run_by_one_worker_is_seen_by_another(
    tmp_path: Path, shared_db: Database, fake_matcher: Matcher
) -> None:
    worker_a = worker(shared_db, tmp_path, "a", save_every=0)
    worker_b = worker(shared_db, tmp_path, "b")
    gated = GatedMatcher(fake_matcher)
    body = shopper_csv([("blank", " ")] + tiny_rows(100))

    worker_a.slot.acquire()  # worker A is busy with another batch: this one queues
    try:
        job_id = submit_file(worker_a, gated, body, "crm.csv")
        queued = worker_b.get(job_id)
        assert queued is not None, "the row is in the database before start returns"
        assert (queued.status, queued.filename) == (Status.QUEUED, "crm.csv")
        assert [job.id for job in worker_b.jobs()] == [job_id]
    finally:
        worker_a.slot.release()

    # The first encoder batch (64 shoppers) is done; the second waits at the gate.
    wait_until(lambda: worker_b.get(job_id).matched == 64, "progress seen by worker B")  # type: ignore[union-attr]
    running = worker_b.get(job_id)
    assert running is not None and running.status is Status.RUNNING
    assert running.total_rows == 101 and 0 < running.percent < 100, "the header is no row"
    assert running.rows_done == 65 and running.rate and running.eta_seconds is not None
    assert running.bad == 1 and [b.line for b in running.bad_lines] == [2]
    assert running.bad_lines[0].reason.startswith("text is blank")
    assert worker_b.pairings(job_id) is None, "nothing to download mid-run"
    assert worker_b.pairing_totals() == PairingTotals(), "only done batches count"

    gated.gate.set()
    done = wait_for(worker_b, job_id)
    assert (done.status, done.matched, done.bad, done.percent) == (Status.DONE, 100, 1, 100)
    assert done.downloadable and worker_a.get(job_id) == done
    assert file_kinds(shared_db, job_id) == ["pairings"]

    totals = worker_b.pairing_totals()
    assert worker_a.pairing_totals() == totals
    assert totals.shoppers == 100

    for registry in (worker_b, worker_a, worker_b):
        blocks = registry.pairings(job_id)
        assert blocks is not None
        pairings = read_csv(b"".join(blocks))
        assert [row["id"] for row in pairings] == [f"s{number}" for number in range(100)]
        assert Counter(row["celebrity_1"] for row in pairings) == totals.per_celebrity
    seen_by_a = worker_a.get(job_id)
    assert seen_by_a is not None and seen_by_a.downloads == 3 and seen_by_a.downloadable
    assert scratch_files(worker_a, worker_b) == [], "the worker's copies are deleted"
    assert worker_a.pairing_totals() == totals, "a download does not change the totals"


def test_every_worker_serves_the_job_page_and_the_download(
    tmp_path: Path, sample_matcher: Matcher
) -> None:
    app_a = make_app(tmp_path, sample_matcher)
    app_b = make_app(tmp_path, sample_matcher)
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

    response = download(worker_b, job_id)
    assert response.status_code == 200
    assert len(read_csv(response.data)) == len(rows)
    again = download(worker_a, job_id)
    assert again.status_code == 200 and again.data == response.data

    restarted = make_app(tmp_path, sample_matcher).test_client()
    login(restarted)
    assert download(restarted, job_id).data == response.data, "kept across a restart"


class CountingStore:
    """A ``store`` that records what it is handed, to check a cancelled batch stores nothing."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, pairings: Iterable[NewPairing], filename: str) -> Stored:
        self.calls += 1
        return Stored(1, [p.shopper_ref or "" for p in pairings], 0)


def test_a_running_job_is_cancelled_from_another_worker_and_stores_nothing(
    tmp_path: Path, shared_db: Database, fake_matcher: Matcher
) -> None:
    worker_a = worker(shared_db, tmp_path, "a", save_every=0)
    worker_b = worker(shared_db, tmp_path, "b")
    gated = GatedMatcher(fake_matcher)
    store = CountingStore()
    job_id = submit_file(worker_a, gated, shopper_csv(tiny_rows(200)), store=store)
    wait_until(lambda: worker_b.get(job_id).matched == 64, "the first encoder batch")  # type: ignore[union-attr]
    view = worker_b.cancel(job_id)
    assert view is not None and view.cancel_requested and not view.cancellable
    asked = time.monotonic()
    gated.gate.set()
    done = wait_for(worker_b, job_id)
    stopped_in = time.monotonic() - asked
    assert (done.status, done.error) == (Status.CANCELLED, CANCELLED_ERROR)
    assert done.matched < 200 and store.calls == 0, "nothing of a cancelled batch is stored"
    assert stopped_in < 5, f"the worker stopped {stopped_in:.1f} s after the cancel"
    assert file_kinds(shared_db, job_id) == [], "the upload is deleted and no pairings kept"
    assert worker_a.pairings(job_id) is None
    assert scratch_files(worker_a, worker_b) == []


def test_a_job_waiting_for_its_columns_is_cancelled_at_once(
    app: Flask, planner: FlaskClient
) -> None:
    job_id = job_id_of(upload(planner, "crm.csv", "member,likes\nv1,tea\n", id_column="x"))
    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert 'id="mapping"' in page and 'id="cancel-upload"' in page
    assert post(planner, f"/planner/batches/{job_id}/cancel", {}).status_code == 303
    view = job_registry(app).get(job_id)
    assert view is not None and view.status is Status.CANCELLED
    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert "was cancelled" in page and 'id="mapping"' not in page and "cancel-upload" not in page
    late = post(
        planner, f"/planner/batches/{job_id}/start", {"id_column": "member", "text_column": "likes"}
    )
    assert late.status_code == 303 and job_registry(app).get(job_id).status is Status.CANCELLED  # type: ignore[union-attr]
    assert file_kinds(app.extensions["matcher.db"], job_id) == []


def test_a_job_whose_worker_died_shows_as_failed(app: Flask, planner: FlaskClient) -> None:
    script = """
import sys, time
from pathlib import Path
from matcher.batch_input import describe_input
from matcher.index import build_index
from matcher.matching import Matcher
from matcher.profiles import load_profiles
from matcher.store import Database
from tests.fakes import HashingEncoder
from web.jobs import JobRegistry

class Stuck(Matcher):
    def match_many(self, texts, k=3):
        time.sleep(3600)

encoder = HashingEncoder()
index, _ = build_index(load_profiles(sys.argv[2]), encoder)
registry = JobRegistry(Database(sys.argv[1]), Path(sys.argv[3]))
upload = Path(sys.argv[3]) / "u.csv"
upload.parent.mkdir(parents=True, exist_ok=True)
upload.write_text("id,text\\n1,I like tea\\n", encoding="utf-8")
with open(upload, "rb") as handle:
    job_id = registry.create(handle, describe_input(upload), filename="crash.csv", campaign="default")
registry.start(Stuck(encoder, index), job_id, k=1, id_column="id", text_column="text", retention_days=1)
print(job_id, flush=True)
time.sleep(3600)
"""
    registry = job_registry(app)
    db = app.extensions["matcher.db"]
    command = [
        sys.executable, "-c", script, db.url.render_as_string(hide_password=False),
        app.config["MATCHER_PROFILES"], str(Path(app.instance_path) / "other-worker"),
    ]  # fmt: skip
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            job_id = process.stdout.readline().strip()
            wait_until(lambda: registry.get(job_id).status is Status.RUNNING, "the batch to start")  # type: ignore[union-attr]
        finally:
            process.kill()  # like a worker killed mid-batch: no clean-up runs

    page = planner.get(f"/planner/batches/{job_id}").get_data(as_text=True)
    assert "The server restarted during this batch" in page
    assert 'http-equiv="refresh"' not in page and "failed" in page
    response = planner.get(f"/planner/batches/{job_id}/pairings.csv")
    assert response.status_code == 409 and "did not finish" in response.get_data(as_text=True)

    assert file_kinds(db, job_id) == ["upload"]
    assert registry.sweep() == 1, "the upload (shopper text) is deleted"
    assert file_kinds(db, job_id) == []
    with db.read() as session:
        row = session.get(BatchJobRow, job_id)
        assert row is not None and (row.status, row.abandoned) == ("failed", True)
        assert "I like tea" not in repr(row.bad_lines) + repr(row.settings) + str(row.error)


def test_a_silent_worker_is_given_up_and_stops_when_it_wakes(
    tmp_path: Path, shared_db: Database, fake_matcher: Matcher
) -> None:
    slow = worker(shared_db, tmp_path, "slow", heartbeat=1.0)
    impatient = worker(shared_db, tmp_path, "impatient", stale_after=0.3)
    slow.slot.acquire()  # the job queues; its heartbeat is a second away
    try:
        job_id = submit_file(slow, fake_matcher, shopper_csv(tiny_rows(3)))
        assert impatient.get(job_id).status is Status.QUEUED  # type: ignore[union-attr]
        time.sleep(0.4)
        view = impatient.get(job_id)
        assert view is not None and view.status is Status.FAILED and view.stale
        assert [job.status for job in impatient.jobs()] == [Status.FAILED]
        assert impatient.sweep() == 1
        assert file_kinds(shared_db, job_id) == []
    finally:
        slow.slot.release()
    thread = next(t for t in threading.enumerate() if t.name == f"batch-{job_id}")
    thread.join(JOB_TIMEOUT)
    assert not thread.is_alive()
    for registry in (slow, impatient):
        view = registry.get(job_id)
        assert view is not None and view.status is Status.FAILED and view.stale
    assert file_kinds(shared_db, job_id) == [], "no pairings were left behind"
    assert slow.pairing_totals() == PairingTotals()
    with shared_db.read() as session:
        assert session.scalar(select(func.count()).select_from(BatchJobFileRow)) == 0


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
    assert registry.get(raw) is None and registry.pairings(raw) is None
    assert registry.cancel(raw) is None
    response = post(planner, f"/planner/batches/{job_id}/cancel", {})
    assert response.status_code == 404


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
