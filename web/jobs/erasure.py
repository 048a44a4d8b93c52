"""Privacy requests reaching the batch files: a deleted shopper leaves no copy in a job.

A job's files hold shoppers' data: the upload (references and texts) while
the job is open, the pairings (references) until the campaign's retention
ends. Both are chunks in the database (:mod:`web.jobs.table`), so every
server's deletion reaches every job. :class:`BatchCopies` is the jobs as one
of the places :func:`matcher.store.privacy.delete_shopper` and
``purge_expired`` go through (registered as the ``matcher.copies`` entry
point, so ``matcher privacy`` reaches it too):

- a job still open whose upload holds the reference (or one of the texts) is
  stopped: its row says so, its upload is deleted, and the deletion waits
  (up to :data:`RUNNER_WAIT`) for its worker to let go, so the batch cannot
  store the shopper after the database was cleared;
- pairings kept for download are rewritten without the shopper's rows;
- the purge deletes the pairings past their retention, as the sweep does.

The database is scrubbed after the deletion (``delete_shopper`` does it), so
the deleted chunks' bytes do not linger in its files.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from matcher.batch import escape_cell
from matcher.store import Database, default_database_url
from matcher.store.schema import BatchJobRow, utcnow

from .records import JOBS_FOLDER, OPEN, PAIRINGS, UPLOAD, Status
from .registry import JobRegistry
from .table import CHUNK_BYTES

log = logging.getLogger(__name__)

#: Kept in the row of a batch stopped by a privacy deletion.
ERASED_ERROR = (
    "A shopper's data was deleted while this batch was matched, so it was stopped and nothing "
    "of it was stored; please upload the file again."
)
#: How long a deletion waits for a stopped batch's worker to let go, in seconds.
RUNNER_WAIT = 30.0


def _forms(value: str) -> list[bytes]:
    """The ways ``value`` can be spelt in an upload: as is, CSV-quoted, JSON-escaped, GB18030."""
    forms = {
        value.encode("utf-8"),
        value.replace('"', '""').encode("utf-8"),
        json.dumps(value, ensure_ascii=False)[1:-1].encode("utf-8"),
        json.dumps(value)[1:-1].encode("utf-8"),
        value.encode("utf-16-le"),
    }
    try:
        forms.add(value.encode("gb18030"))
    except UnicodeEncodeError:
        pass
    return sorted(form for form in forms if form)


class BatchCopies:
    """The jobs of a :class:`~web.jobs.registry.JobRegistry` as a privacy copy."""

    name = "batch files"

    def __init__(self, registry: JobRegistry, runner_wait: float = RUNNER_WAIT) -> None:
        self.registry = registry
        self.runner_wait = runner_wait

    def erase(self, shopper_ref: str, texts: Sequence[str]) -> int:
        """Stop the jobs whose upload holds the shopper, and take them out of kept pairings.

        An upload that is an Excel workbook is compressed, so its bytes cannot
        be searched: an open job of one is stopped whatever it holds.

        Returns:
            Jobs stopped plus pairing rows removed.
        """
        registry = self.registry
        needles = [form for value in (shopper_ref, *texts) if value for form in _forms(value)]
        stopped: list[str] = []
        removed = 0
        with registry.db.read() as session:
            jobs = list(
                session.execute(select(BatchJobRow.id, BatchJobRow.status, BatchJobRow.settings))
            )
        for job_id, status, settings in jobs:
            if status in OPEN:
                compressed = (settings or {}).get("format") == "xlsx"
                if not compressed and not self._holds(job_id, UPLOAD, needles):
                    continue
                now = utcnow()
                if registry._update(
                    job_id,
                    OPEN,
                    status=Status.FAILED.value,
                    error=ERASED_ERROR,
                    finished_at=now,
                    updated_at=now,
                ):
                    registry._delete_files(job_id, UPLOAD)
                    stopped.append(job_id)
            elif status == Status.DONE.value:
                removed += self._rewrite(job_id, shopper_ref)
        for job_id in stopped:
            self._wait_for_runner(job_id)
            log.info("batch %s stopped by a privacy deletion", job_id)
        return removed + len(stopped)

    def expire(self, now: datetime) -> int:
        """What the sweep deletes: pairings past their retention, stopped batches' files."""
        return self.registry.sweep(now.timestamp())

    def _holds(self, job_id: str, kind: str, needles: Sequence[bytes]) -> bool:
        """Whether the file's bytes contain a needle (searched across chunk edges too)."""
        tail = b""
        longest = max((len(n) for n in needles), default=0)
        for block in self.registry._file_chunks(job_id, kind):
            window = tail + block
            if any(needle in window for needle in needles):
                return True
            tail = window[-longest:] if longest else b""
        return False

    def _rewrite(self, job_id: str, shopper_ref: str) -> int:
        """Rewrite a job's pairings without the rows of ``shopper_ref``; rows removed."""
        data = b"".join(self.registry._file_chunks(job_id, PAIRINGS))
        if not data:
            return 0
        ids = {shopper_ref, escape_cell(shopper_ref)}
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        removed = 0
        for number, row in enumerate(csv.reader(io.StringIO(data.decode("utf-8"), newline=""))):
            if number > 0 and row and row[0] in ids:
                removed += 1
            else:
                writer.writerow(row)
        if removed:
            body = out.getvalue().encode("utf-8")
            blocks = [body[i : i + CHUNK_BYTES] for i in range(0, len(body), CHUNK_BYTES)]
            with self.registry.db.write() as session:
                self.registry._put_file(session, job_id, PAIRINGS, blocks)
        return removed

    def _wait_for_runner(self, job_id: str) -> None:
        """Wait until the worker holding ``job_id`` (on any server) has let go of it."""
        deadline = time.monotonic() + self.runner_wait
        while True:
            with self.registry.db.read() as session:
                row = session.get(BatchJobRow, job_id)
                held = row is not None and row.host is not None
                silent = row is not None and self.registry._owner_gone(row, time.time())
            if not held or silent:
                return
            if time.monotonic() > deadline:
                log.warning("batch %s: its worker did not let go in time", job_id)
                return
            time.sleep(0.05)


def for_instance(instance_dir: Path, db: Database | None = None) -> BatchCopies:
    """The ``matcher.copies`` entry point: the batch jobs of the instance's database."""
    import os

    if db is None:
        db = Database(os.environ.get("MATCHER_DATABASE_URL") or default_database_url(instance_dir))
    return BatchCopies(JobRegistry(db, Path(instance_dir) / JOBS_FOLDER))
