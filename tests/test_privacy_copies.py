"""Delete and purge beyond the database: corrections, planner batch files, temporaries
left by killed processes, and the ``matcher privacy`` commands that reach them."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from matcher.matching import Matcher
from matcher.store import Database
from matcher.store.privacy import delete_shopper, purge_expired

from .test_store import record


def _corrections(folder: Path) -> list[dict[str, str]]:
    path = folder / "corrections.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_corrections_are_private_and_erased_by_text_or_age(roster_dir: Path) -> None:
    from matcher.feedback import add_correction, erase_corrections, expire_corrections

    ids = ["ocean", "library", "stage"]
    mine = f"my own words {uuid.uuid4().hex} about tea"
    add_correction(roster_dir, mine, "library", ids)
    add_correction(roster_dir, "a paraphrase about surfing", "ocean", ids)
    add_correction(roster_dir, "short", "stage", ids)
    path = roster_dir / "corrections.jsonl"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert erase_corrections(roster_dir, ["tea"]) == 0  # too short to look inside texts
    assert erase_corrections(roster_dir, [mine.split(" about")[0]]) == 1  # part of a text
    assert erase_corrections(roster_dir, ["short"]) == 1  # a short text, whole
    assert [c["right"] for c in _corrections(roster_dir)] == ["ocean"]
    assert mine.encode() not in path.read_bytes()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    now = datetime.now(UTC)
    assert expire_corrections(roster_dir, now - timedelta(days=1)) == 0
    assert expire_corrections(roster_dir, now + timedelta(seconds=1)) == 1
    assert path.read_bytes() == b""


def test_delete_and_purge_reach_the_campaigns_corrections(
    database: Database, fake_matcher: Matcher, roster_dir: Path
) -> None:
    from matcher.feedback import add_correction
    from matcher.store import CampaignSettings, create_campaign
    from matcher.store.privacy import instance_copies

    create_campaign(
        database,
        CampaignSettings(
            slug="tea", name="Tea", brand="B", profiles_dir=str(roster_dir), store_text=True,
            retention_days=10,
        ),
    )  # fmt: skip
    mine = f"rainy days with a novel {uuid.uuid4().hex}"
    [campaign] = [c for c in _campaigns(database) if c.slug == "tea"]
    record(database, campaign, fake_matcher, [mine], refs=["me"])
    add_correction(roster_dir, mine, "library", ["ocean", "library", "stage"])
    add_correction(roster_dir, "a planner's own test text", "ocean", ["ocean", "library"])
    copies = instance_copies(database, roster_dir.parent / "instance")
    deleted = delete_shopper(database, "me", copies=copies)
    assert deleted.pairings == 1 and deleted.copies["corrections"] == 1
    assert [c["right"] for c in _corrections(roster_dir)] == ["ocean"]
    purged = purge_expired(database, datetime.now(UTC) + timedelta(days=11), copies=copies)
    assert purged.copies["corrections"] == 1
    assert (roster_dir / "corrections.jsonl").read_bytes() == b""


def _campaigns(database: Database) -> list[Any]:
    from matcher.store import list_campaigns

    return list_campaigns(database)


def test_sweep_deletes_only_temporaries_of_stopped_writers(tmp_path: Path) -> None:
    import subprocess
    import sys

    from matcher.files import sweep_temporaries, temporary_path

    target = tmp_path / "pairings.csv"
    live = temporary_path(target, ".part")
    dead_pid = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    dead = live.with_name(live.name.replace(f"~{os.getpid()}~", f"~{dead_pid}~"))
    elsewhere = live.with_name(live.name.replace("~", "~other-host-", 1).replace(
        f"~{os.getpid()}~", f"~{dead_pid}~"))  # fmt: skip
    for path in (live, dead, elsewhere, target):
        path.write_text("x")
    assert sweep_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, elsewhere, target)
    )


def test_a_deletion_stops_a_batch_holding_the_shopper_and_edits_waiting_pairings(
    tmp_path: Path,
) -> None:
    from matcher.store import Database
    from matcher.store.schema import BatchJobRow
    from web.jobs import ERASED_ERROR, BatchCopies, JobRegistry, Status

    db = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    db.migrate()
    registry = JobRegistry(db, tmp_path / "scratch")

    def job(status: Status, upload: bytes, output: bytes | None, fmt: str = "csv") -> str:
        job_id = registry.new_id()
        now = time.time()
        with db.write() as session:
            session.add(
                BatchJobRow(
                    id=job_id, campaign="default", filename="f.csv", status=status.value,
                    settings={"format": fmt}, rows_done=0, total_rows=0, matched=0, bad=0,
                    unsure=0, bad_lines=[], abandoned=False, cancel_requested=False, downloads=0,
                )
            )  # fmt: skip
            session.flush()
            registry._put_file(session, job_id, "upload", [upload[:9], upload[9:]])
            if output is not None:
                registry._put_file(session, job_id, "pairings", [output])
        assert now
        return job_id

    # The reference is cut across two chunks: it is found all the same.
    holding = job(Status.RUNNING, b'id,text\n"crm-""7",tea\n', None)
    other = job(Status.RUNNING, b"id,text\ncrm-8,tea\n", None)
    gbk = job(Status.MAPPING, "id,text\n会员-9,茶\n".encode("gbk"), None)
    workbook = job(Status.QUEUED, b"PK\x03\x04 compressed", None, fmt="xlsx")
    done = job(Status.DONE, b"", b"id,celebrity_1\ncrm-\"7,ocean\n'=crm,library\ncrm-8,stage\n")
    removed = BatchCopies(registry, runner_wait=0.5).erase('crm-"7', [])
    assert removed == 3  # two batches stopped (one an unsearchable workbook), one row taken out
    for stopped in (holding, workbook):
        view = registry.get(stopped)
        assert view is not None and view.status is Status.FAILED and view.error == ERASED_ERROR
        assert registry._has_file([stopped], "upload") == set()
    assert registry.get(other).status is Status.RUNNING  # type: ignore[union-attr]
    assert registry.get(gbk).status is Status.MAPPING  # type: ignore[union-attr]
    kept = b"".join(registry._file_chunks(done, "pairings")).decode().splitlines()
    assert kept == ["id,celebrity_1", "'=crm,library", "crm-8,stage"]
    assert BatchCopies(registry, runner_wait=0.5).erase("会员-9", []) == 1, "found in GBK too"
    assert registry.get(gbk).status is Status.FAILED  # type: ignore[union-attr]
    db.dispose()


def test_cli_delete_with_a_text_erases_a_try_box_correction(
    tmp_path: Path, roster_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from matcher.cli import cli
    from matcher.feedback import add_correction

    monkeypatch.setenv("MATCHER_INSTANCE_DIR", str(tmp_path / "instance"))
    runner = CliRunner()
    result = runner.invoke(cli, ["db", "upgrade", "--profiles", str(roster_dir)])
    assert result.exit_code == 0, result.output
    mine = f"weekends in the tea house {uuid.uuid4().hex}"
    add_correction(roster_dir, mine, "library", ["ocean", "library", "stage"])
    result = runner.invoke(cli, ["privacy", "delete", "--yes", "--text", mine, "nobody"])
    assert result.exit_code == 0, result.output
    assert "corrections: removed 1" in result.output
    assert mine.encode() not in (roster_dir / "corrections.jsonl").read_bytes()
    result = runner.invoke(cli, ["privacy", "scrub"])
    assert (result.exit_code, result.output) == (0, "write-ahead log checkpointed and emptied\n")


def test_a_start_deletes_what_a_killed_batch_worker_left(
    tmp_path: Path, fake_matcher: Matcher, roster_dir: Path
) -> None:
    """The upload's texts go when the next worker starts, not at some later planner request."""
    import subprocess
    import sys

    from matcher.files import temporary_path
    from matcher.store import Database, default_database_url
    from matcher.store.schema import BatchJobRow
    from web import create_app
    from web.jobs import JobRegistry, Status

    instance = tmp_path / "instance"
    instance.mkdir()
    db = Database(default_database_url(instance))
    db.migrate()
    folder = instance / "planner-batches"
    registry = JobRegistry(db, folder)
    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    job_id = registry.new_id()
    with db.write() as session:
        session.add(
            BatchJobRow(
                id=job_id, campaign="default", filename="f.csv", status=Status.RUNNING.value,
                settings={"format": "csv"}, rows_done=1, total_rows=2, matched=1, bad=0,
                unsure=0, bad_lines=[], abandoned=False, cancel_requested=False, downloads=0,
                host=registry.host, pid=dead,
            )
        )  # fmt: skip
        session.flush()
        registry._put_file(session, job_id, "upload", [b"id,text\ncrm-1,my secret weekend\n"])
    db.dispose()
    folder.mkdir(mode=0o700)
    local = temporary_path(folder / f"{job_id}.csv")
    local = local.with_name(local.name.replace(f"~{os.getpid()}~", f"~{dead}~"))
    local.write_text("id,text\ncrm-1,my secret weekend\n", encoding="utf-8")  # a worker's copy
    app = create_app(
        {"TESTING": True, "INSTANCE_PATH": str(instance), "MATCHER_PROFILES": str(roster_dir)},
        matcher=fake_matcher,
    )
    app.extensions["matcher.db"].dispose()
    assert list(folder.iterdir()) == []
    view = JobRegistry(db, folder).get(job_id)
    assert view is not None and view.status is Status.FAILED and view.stale
    assert JobRegistry(db, folder)._has_file([job_id], "upload") == set()
    db.dispose()
