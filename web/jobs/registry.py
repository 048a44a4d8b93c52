"""The registry of batch jobs: uploads taken in, jobs started, read, cancelled and downloaded
from any worker of any server sharing the database, and the sweep.

The lifecycle of a job (one row of ``batch_jobs``):

- **mapping**: uploaded (the file is in the database), waiting for the planner
  to say which column is the id and which the text. A file whose columns
  are found by name skips this step. Dropped with its upload after
  :data:`MAPPING_TTL`.
- **queued**: handed to the worker that received the start; it runs one
  batch at a time, so a second waits its turn (touching its row every
  ``heartbeat`` seconds).
- **running**: matched row by row; the row carries rows done of the total
  (data rows, never the header), from which pages show the rate and the
  time left.
- **done**: the pairings file is kept in the database, re-downloadable by
  any server until the campaign's retention period ends (``ttl`` seconds,
  when the registry is given one, is a shorter limit); the upload is gone.
  When the campaign stores uploads, the whole batch is stored in one
  transaction before the job is written done.
- **failed**: the file could not be read, no row of it could (the reason is
  said), the database refused it, or its worker stopped: a queued or running
  job not heard of for ``stale_after`` seconds (or whose worker's process is
  gone, on the same host) is shown as failed, and the next sweep writes it
  down. Nothing is stored.
- **cancelled**: the planner cancelled it; a running worker notices within a
  second and stops; nothing is stored (a batch is stored whole once every
  row is matched, and a cancel that comes after that point is too late).

Totals for the dashboard are summed over the done jobs' rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from matcher.batch_input import InputFile
from matcher.files import pid_alive, sweep_temporaries
from matcher.matching import Matcher
from matcher.store import Database
from matcher.store.schema import BatchJobRow, utcnow

from .records import (
    ABANDONED_ERROR,
    CANCELLED_ERROR,
    FINAL,
    HEARTBEAT,
    MAPPING_TTL,
    MAX_KEPT_JOBS,
    OPEN,
    PAIRINGS,
    SAVE_EVERY,
    STALE_AFTER,
    UNFINISHED,
    UPLOAD,
    BadLine,
    JobView,
    PairingTotals,
    Status,
    is_job_id,
    rate_and_eta,
)
from .runner import Job, JobRunner, this_host
from .spool import StoreBatch
from .table import chunks_of, moment, seconds

log = logging.getLogger(__name__)

DAY = 86400.0


class JobRegistry(JobRunner):
    """The batch jobs of one database, shared by every worker of every server using it.

    Each worker has its own registry on the same database; jobs started on a
    registry run in its worker, one at a time, and every registry sees them all.

    Args:
        db: where jobs and their files are kept.
        scratch: this server's folder for files being read or written (created when needed).
        ttl: when given, seconds after which a done job's pairings are deleted,
            if that comes before the end of the campaign's retention period.
        keep: jobs listed.
        stale_after: seconds without a word from its worker after which a job is failed.
        heartbeat: seconds between row touches while a job waits its turn.
        save_every: least seconds between progress saves while a job runs.
    """

    def __init__(
        self,
        db: Database,
        scratch: Path,
        ttl: float | None = None,
        *,
        keep: int = MAX_KEPT_JOBS,
        stale_after: float = STALE_AFTER,
        heartbeat: float = HEARTBEAT,
        save_every: float = SAVE_EVERY,
    ) -> None:
        self.db = db
        self.scratch = scratch
        self.ttl = ttl
        self.keep = keep
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self.save_every = save_every
        self.host = this_host()
        self._sweep_lock = threading.Lock()
        self._last_sweep = 0.0
        #: One batch at a time: a second upload waits, queued, instead of halving both.
        self.slot = threading.Semaphore(1)

    # -- taking an upload in --------------------------------------------------------------

    def create(
        self, upload: IO[bytes], found: InputFile, *, filename: str, campaign: str, k: int = 3
    ) -> str:
        """Keep an uploaded file (already read by :func:`matcher.batch_input.describe_input`)
        as a job waiting for its columns; returns the job's id."""
        job_id = self.new_id()
        settings = {
            "format": found.format,
            "encoding": found.encoding_label,
            "columns": list(found.columns),
            "suffix": Path(filename).suffix.lower() or found.path.suffix.lower(),
            "k": k,
        }
        now = utcnow()
        row = BatchJobRow(
            id=job_id,
            campaign=campaign,
            filename=filename,
            status=Status.MAPPING.value,
            settings=settings,
            created_at=now,
            updated_at=now,
            rows_done=0,
            total_rows=0,
            matched=0,
            bad=0,
            unsure=0,
            bad_lines=[],
            abandoned=False,
            cancel_requested=False,
            downloads=0,
        )
        self._insert(row, chunks_of(upload))
        log.info("batch %s uploaded", job_id)
        return job_id

    def start(
        self,
        matcher: Matcher,
        job_id: str,
        *,
        k: int,
        id_column: str,
        text_column: str,
        retention_days: int,
        store: StoreBatch | None = None,
    ) -> bool:
        """Start matching a job waiting for its columns, in a thread of this worker.

        The row says queued before this returns, so the job page finds it on any
        server. With ``store``, the matched batch is also stored in the
        database, whole or not at all.

        Returns:
            Whether the job was started (``False``: it is not waiting any more).
        """
        row = self._row(job_id)
        if row is None:
            return False
        settings = {**row.settings, "k": k, "id_column": id_column, "text_column": text_column}
        if not self._update(
            job_id,
            [Status.MAPPING],
            status=Status.QUEUED.value,
            settings=settings,
            host=self.host,
            pid=_pid(),
            updated_at=utcnow(),
        ):
            return False
        keep_for = retention_days * DAY if self.ttl is None else min(self.ttl, retention_days * DAY)
        job = Job(
            job_id,
            row.filename,
            str(settings.get("suffix", ".csv")),
            k,
            id_column,
            text_column,
            keep_for=keep_for,
            store=store,
        )
        thread = threading.Thread(
            target=self._run, args=(matcher, job), name=f"batch-{job_id}", daemon=True
        )
        thread.start()
        log.info("batch %s queued", job_id)
        return True

    # -- reading, from any worker ---------------------------------------------------------

    def get(self, job_id: str) -> JobView | None:
        """The job as its row says, or ``None`` for an unknown or malformed id."""
        row = self._row(job_id)
        if row is None:
            return None
        present = self._has_file([row.id], PAIRINGS)
        return self._view(row, time.time(), present)

    def jobs(self) -> list[JobView]:
        """The newest ``keep`` jobs, newest first."""
        now = time.time()
        rows = self._rows(self.keep)
        present = self._has_file([row.id for row in rows], PAIRINGS)
        return [self._view(row, now, present) for row in rows]

    def pairing_totals(self) -> PairingTotals:
        """The top-1 totals of every done batch."""
        totals = PairingTotals()
        with self.db.read() as session:
            for data in session.scalars(
                select(BatchJobRow.totals).where(
                    (BatchJobRow.status == Status.DONE.value) & BatchJobRow.totals.is_not(None)
                )
            ):
                try:
                    totals.merge(PairingTotals.from_json(data))
                except (KeyError, TypeError, ValueError):
                    log.warning("a batch's totals are unreadable; left out of the dashboard")
        return totals

    def pairings(self, job_id: str) -> Iterator[bytes] | None:
        """A done job's pairings, chunk by chunk, or ``None`` when there are none (any more).

        The pairings stay in the database until the campaign's retention ends:
        every download gets them, whichever server answers it.
        """
        view = self.get(job_id)
        if view is None or view.status is not Status.DONE or not view.downloadable:
            return None
        with self.db.write() as session:
            row = session.get(BatchJobRow, job_id)
            if row is not None:
                row.downloads += 1
        log.info("batch %s downloaded", job_id)
        return self._file_chunks(job_id, PAIRINGS)

    def take_output(self, job_id: str) -> IO[bytes] | None:
        """The pairings as one open (in-memory) file, or ``None``; see :meth:`pairings`."""
        import io

        blocks = self.pairings(job_id)
        return None if blocks is None else io.BytesIO(b"".join(blocks))

    def cancel(self, job_id: str) -> JobView | None:
        """Cancel a job that is not over: at once when no worker holds it yet, else the
        worker stops at its next save. Returns the job as it now is (``None``: unknown)."""
        if not is_job_id(job_id):
            return None
        now = utcnow()
        # Not yet held by a worker (waiting for its columns): over at once.
        if self._update(
            job_id,
            [Status.MAPPING],
            status=Status.CANCELLED.value,
            error=CANCELLED_ERROR,
            finished_at=now,
            updated_at=now,
        ):
            self._delete_files(job_id, UPLOAD)
        else:
            self._update(job_id, UNFINISHED, cancel_requested=True)
        log.info("batch %s: cancel asked", job_id)
        return self.get(job_id)

    # -- housekeeping, by any worker ------------------------------------------------------

    def sweep(self, now: float | None = None) -> int:
        """Fail jobs whose worker stopped, drop stale uploads and pairings past their time.

        Returns:
            How many files (or jobs waiting for columns) were deleted.
        """
        now = time.time() if now is None else now
        deleted = 0
        for row in self._rows_to_sweep(OPEN):
            status = Status(row.status)
            if status in UNFINISHED and self._owner_gone(row, now):
                deleted += self._abandon(row, now)
            elif status is Status.MAPPING and now - (seconds(row.created_at) or now) > MAPPING_TTL:
                if self._update(
                    row.id,
                    [Status.MAPPING],
                    status=Status.CANCELLED.value,
                    error=CANCELLED_ERROR,
                    finished_at=moment(now),
                ):
                    deleted += bool(self._delete_files(row.id, UPLOAD))
            elif status in FINAL and self._past_keeping(row, now):
                deleted += bool(self._delete_files(row.id))
        return deleted

    def sweep_at_start(self) -> int:
        """The sweep, plus what a killed process of this host left in the scratch folder."""
        return sweep_temporaries(self.scratch) + self.sweep()

    def sweep_if_due(self, every: float = 60.0) -> None:
        """Sweep at most once per ``every`` seconds (cheap to call on each request)."""
        now = time.time()
        with self._sweep_lock:
            if now - self._last_sweep < every:
                return
            self._last_sweep = now
        self.sweep(now)

    def _past_keeping(self, row: BatchJobRow, now: float) -> bool:
        expires = seconds(row.expires_at)
        if expires is not None and now >= expires:
            return True
        finished = seconds(row.finished_at)
        return self.ttl is not None and finished is not None and now - finished >= self.ttl

    def _owner_gone(self, row: BatchJobRow, now: float) -> bool:
        """Whether the worker holding an unfinished job has stopped."""
        updated = seconds(row.updated_at) or 0.0
        if now - updated > self.stale_after:
            return True
        return row.host == self.host and row.pid is not None and not pid_alive(row.pid)

    def _abandon(self, row: BatchJobRow, now: float) -> int:
        """Write down as failed a job whose worker stopped, and delete its upload."""
        if not self._update(
            row.id,
            [row.status],
            status=Status.FAILED.value,
            error=ABANDONED_ERROR,
            abandoned=True,
            finished_at=moment(now),
            host=None,
            pid=None,
        ):
            return 0
        log.warning(
            "batch %s: its worker (pid %s on %s) stopped; written down as failed",
            row.id,
            row.pid,
            row.host,
        )
        return bool(self._delete_files(row.id))

    def _view(self, row: BatchJobRow, now: float, present: set[str]) -> JobView:
        status, stale = Status(row.status), row.abandoned
        if status in UNFINISHED and self._owner_gone(row, now):
            status, stale = Status.FAILED, True
        done = status is Status.DONE
        downloadable = done and row.id in present
        rate = eta = None
        if status is Status.RUNNING:
            rate, eta = rate_and_eta(row.rows_done, row.total_rows, seconds(row.started_at), now)
        settings: dict[str, Any] = row.settings or {}
        return JobView(
            id=row.id,
            filename=row.filename,
            status=status,
            rows_done=row.rows_done,
            total_rows=row.total_rows,
            matched=row.matched,
            bad=row.bad,
            bad_lines=tuple(BadLine(int(line), str(reason)) for line, reason in row.bad_lines),
            error=ABANDONED_ERROR if stale else row.error,
            downloadable=downloadable,
            downloaded=row.downloads > 0,
            expired=done and not downloadable,
            created=seconds(row.created_at) or 0.0,
            # A stopped worker's job ended, as far as anyone knows, at its last word.
            finished_at=seconds(row.finished_at) or (seconds(row.updated_at) if stale else None),
            stale=stale,
            stored=row.stored,
            batch_id=row.batch_id,
            unsure=row.unsure,
            campaign=row.campaign,
            started_at=seconds(row.started_at),
            expires_at=seconds(row.expires_at),
            downloads=row.downloads,
            cancel_requested=row.cancel_requested and status in OPEN,
            columns=tuple(str(c) for c in settings.get("columns", ())),
            id_column=str(settings.get("id_column", "")),
            text_column=str(settings.get("text_column", "")),
            file_format=str(settings.get("format", "")),
            encoding=str(settings.get("encoding", "")),
            top_k=int(settings.get("k", 3)),
            rate=rate,
            eta_seconds=eta,
        )


def _pid() -> int:
    import os

    return os.getpid()
