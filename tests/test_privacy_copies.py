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
    from web.jobs import ERASED_ERROR, BatchCopies, JobRegistry, Status
    from web.jobs.records import JobRecord

    registry = JobRegistry(tmp_path / "jobs")

    def job(status: Status, upload: str | None, output: str | None) -> str:
        job_id, upload_path, output_path = registry.paths(".csv")
        if upload is not None:
            upload_path.write_text(upload, encoding="utf-8")
        if output is not None:
            output_path.write_text(output, encoding="utf-8")
        now = time.time()
        registry._write(
            JobRecord(
                job_id, "f.csv", status, now, now, None, 0, 0, 0, 0, (), None,
                registry.host, os.getpid(),
            )
        )  # fmt: skip
        return job_id

    holding = job(Status.RUNNING, 'id,text\n"crm-""7",tea\n', None)
    other = job(Status.RUNNING, "id,text\ncrm-8,tea\n", None)
    done = job(Status.DONE, None, "id,celebrity_1\ncrm-\"7,ocean\n'=crm,library\ncrm-8,stage\n")
    removed = BatchCopies(registry, runner_wait=0.5).erase('crm-"7', [])
    assert removed == 2  # one batch stopped, one row taken out
    view = registry.get(holding)
    assert view is not None and view.status is Status.FAILED and view.error == ERASED_ERROR
    assert list(registry.folder.glob(f"{holding}.*upload*")) == []
    assert registry.get(other).status is Status.RUNNING  # type: ignore[union-attr]
    kept = registry.output_path(done).read_text(encoding="utf-8").splitlines()
    assert kept == ["id,celebrity_1", "'=crm,library", "crm-8,stage"]
    assert oct(registry.output_path(done).stat().st_mode & 0o777) == "0o600"


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
    from web import create_app
    from web.jobs import JobRegistry, Status
    from web.jobs.records import JobRecord

    folder = tmp_path / "instance" / "planner-batches"
    registry = JobRegistry(folder)
    job_id, upload, _ = registry.paths(".csv")
    upload.write_text("id,text\ncrm-1,my secret weekend\n", encoding="utf-8")
    (folder / f".{job_id}.pairings.csv.part").write_text("id\ncrm-1\n", encoding="utf-8")
    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    claim = temporary_path(registry.output_path(job_id), ".part")
    claim = claim.with_name(claim.name.replace(f"~{os.getpid()}~", f"~{dead}~"))
    claim.write_text("id\ncrm-1\n", encoding="utf-8")  # a download killed half-way
    now = time.time()
    registry._write(
        JobRecord(
            job_id, "f.csv", Status.RUNNING, now, now, None, 1, 2, 1, 0, (), None,
            registry.host, dead,
        )
    )  # fmt: skip
    app = create_app(
        {"TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance"),
         "MATCHER_PROFILES": str(roster_dir)},
        matcher=fake_matcher,
    )  # fmt: skip
    app.extensions["matcher.db"].dispose()
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == [f"{job_id}.job.json"]
    assert b"crm-1" not in (folder / f"{job_id}.job.json").read_bytes()
