"""The registry of a jobs folder: jobs read from any worker, downloads, the sweep.

Dead workers: a record still queued or running whose worker has stopped (its
pid is gone, when the record was written on this host, or there has been no
update for ``stale_after`` seconds, :data:`STALE_AFTER` by default) is shown
as failed, with :attr:`JobView.stale` set. A queued job's worker rewrites the
record every :data:`HEARTBEAT` seconds while it waits, and a running one after
each encoder batch, so only a stopped or stuck worker falls silent that long.
The next sweep writes the failure down and deletes the job's upload and
partial pairings; if its worker was only stuck, it sees the failed record at
its next save and stops (:class:`JobAbandoned`). Host names tell workers
apart across machines, so containers sharing the folder need distinct ones.

Totals: the dashboard counts every batch ever matched, but records are not
kept for ever. A finished record past the newest ``keep`` whose pairings are
gone (downloaded, expired or never made) is retired by the sweep: under the
exclusive lock its totals are added to ``totals.json``, its id is noted there
as retired, and the record is deleted. The dashboard reads ``totals.json`` and
the records under the shared lock, so no batch is missed or counted twice
while one is retired; records whose id is noted as retired are skipped, so a
crash between the two steps cannot count one twice either (the next sweep
deletes such a record and drops the note). This keeps the folder and the
cost of a dashboard view bounded, which keeping every record for its totals
would not.
The totals survive restarts for as long as the folder does.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import IO

from matcher.files import pid_alive, sweep_temporaries, temporary_path

from .records import (
    ABANDONED_ERROR,
    DEFAULT_TTL,
    HEARTBEAT,
    LOCK_NAME,
    MAX_KEPT_JOBS,
    RECORD_SUFFIX,
    RECORD_VERSION,
    SAVE_EVERY,
    STALE_AFTER,
    TOTALS_NAME,
    UNFINISHED,
    JobRecord,
    JobView,
    PairingTotals,
    Status,
    is_job_id,
)
from .runner import JobRunner

log = logging.getLogger(__name__)


def _job_of(name: str) -> str | None:
    """The job a file in the folder belongs to (``<id>.…`` or ``.<id>.…``), if any."""
    stem = name.lstrip(".").split(".", 1)[0]
    return stem if is_job_id(stem) else None


class JobRegistry(JobRunner):
    """The batch jobs in one folder, shared by every worker that opens it.

    Each worker has its own registry on the same folder; jobs submitted to a
    registry run in its worker, one at a time, and every registry sees them all.

    Args:
        folder: where records, uploads and pairings are kept (created when needed).
        ttl: seconds after which uploads and pairings are deleted by :meth:`sweep`.
        keep: finished records listed and kept before being retired.
        stale_after: seconds without an update after which an unfinished job is failed.
        heartbeat: seconds between record rewrites while a job waits its turn.
        save_every: least seconds between progress saves while a job runs.
    """

    def __init__(
        self,
        folder: Path,
        ttl: float = DEFAULT_TTL,
        *,
        keep: int = MAX_KEPT_JOBS,
        stale_after: float = STALE_AFTER,
        heartbeat: float = HEARTBEAT,
        save_every: float = SAVE_EVERY,
    ) -> None:
        self.folder = folder
        self.ttl = ttl
        self.keep = keep
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self.save_every = save_every
        self.host = socket.gethostname()
        self._sweep_lock = threading.Lock()
        self._last_sweep = 0.0
        #: One batch at a time: a second upload waits, queued, instead of halving both.
        self.slot = threading.Semaphore(1)

    # -- reading, from any worker ---------------------------------------------------------

    def get(self, job_id: str) -> JobView | None:
        """The job as its record says, or ``None`` for an unknown or malformed id."""
        if not is_job_id(job_id):
            return None
        record = self._read(job_id)
        return None if record is None else self._view(record, time.time())

    def jobs(self) -> list[JobView]:
        """The newest ``keep`` jobs, newest first."""
        now = time.time()
        records = sorted(self._records().values(), key=lambda r: r.created, reverse=True)
        return [self._view(record, now) for record in records[: self.keep]]

    def pairing_totals(self) -> PairingTotals:
        """The top-1 totals of every done batch: retired ones and those with a record."""
        if not self.folder.is_dir():
            return PairingTotals()
        with self._locked(exclusive=False):
            try:
                totals, retired = self._read_totals()
            except ValueError:
                log.error("%s is unreadable; the dashboard shows recent batches only", TOTALS_NAME)
                totals, retired = PairingTotals(), []
            for record in self._records().values():
                if record.id not in retired and record.status is Status.DONE and record.totals:
                    totals.merge(record.totals)
        return totals

    def take_output(self, job_id: str) -> IO[bytes] | None:
        """Hand over a done job's pairings once, as an open file already deleted from disk.

        Returns ``None`` if there is nothing to hand over: unknown or unfinished
        job, pairings already taken (by this worker or another) or expired.
        The caller sends the file and closes it: the download is the only copy
        the planner gets.
        """
        if not is_job_id(job_id):
            return None
        with self._locked(exclusive=True):
            record = self._read(job_id)
            if record is None or record.status is not Status.DONE or record.downloaded:
                return None
            # A claim left by a crash right here is swept at the next start.
            claim = temporary_path(self.output_path(job_id), ".part")
            try:
                os.rename(self.output_path(job_id), claim)
            except FileNotFoundError:
                return None  # expired: the sweep deleted it
            try:
                self._write(replace(record, downloaded=True))
            except BaseException:
                os.rename(claim, self.output_path(job_id))
                raise
            # POSIX keeps an open file readable after unlinking, so the copy on
            # disk is gone from the moment the planner has it.
            handle = open(claim, "rb")  # the caller sends and closes it
            claim.unlink()
        log.info("batch %s downloaded", job_id)
        return handle

    # -- housekeeping, by any worker ------------------------------------------------------

    def sweep(self, now: float | None = None) -> int:
        """Clean the folder: fail stopped jobs, delete old files, retire old records.

        Uploads, pairings and other files older than ``ttl`` are deleted (those
        of earlier runs too), except the files of live queued or running jobs.
        Records and the totals are never deleted here, only retired.

        Returns:
            How many files were deleted.
        """
        now = time.time() if now is None else now
        try:
            entries = list(self.folder.iterdir())
        except FileNotFoundError:
            return 0
        busy: set[str] = set()
        deleted = 0
        for record in self._records().values():
            if record.status in UNFINISHED:
                if self._owner_gone(record, now):
                    deleted += self._abandon(record.id, now)
                else:
                    busy.add(record.id)
        for path in entries:
            name = path.name
            if name in (TOTALS_NAME, LOCK_NAME) or name.endswith(RECORD_SUFFIX):
                continue
            if _job_of(name) in busy:
                continue
            try:
                if path.is_file() and now - path.stat().st_mtime >= self.ttl:
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:
                continue
        self._retire()
        return deleted

    def sweep_at_start(self) -> int:
        """The sweep, plus what a killed process left half-written (records, downloads).

        Called when a worker starts: a batch whose worker was killed is
        written down as failed and its upload deleted at once, not at the
        next planner request.

        Returns:
            How many files were deleted.
        """
        return sweep_temporaries(self.folder) + self.sweep()

    def sweep_if_due(self, every: float = 60.0) -> None:
        """Sweep at most once per ``every`` seconds (cheap to call on each request)."""
        now = time.time()
        with self._sweep_lock:
            if now - self._last_sweep < every:
                return
            self._last_sweep = now
        self.sweep(now)

    def _owner_gone(self, record: JobRecord, now: float) -> bool:
        """Whether the worker that wrote an unfinished record has stopped."""
        if now - record.updated > self.stale_after:
            return True
        return record.host == self.host and not pid_alive(record.pid)

    def _abandon(self, job_id: str, now: float) -> int:
        """Write down as failed a job whose worker stopped, and delete its files.

        Returns:
            How many files were deleted.
        """
        with self._locked(exclusive=True):
            record = self._read(job_id)
            if record is None or record.status not in UNFINISHED:
                return 0
            if not self._owner_gone(record, now):
                return 0
            self._write(
                replace(
                    record,
                    status=Status.FAILED,
                    error=ABANDONED_ERROR,
                    finished=now,
                    abandoned=True,
                )
            )
        log.warning(
            "batch %s: its worker (pid %d on %s) stopped; written down as failed",
            job_id,
            record.pid,
            record.host,
        )
        self.run_lock_path(job_id).unlink(missing_ok=True)  # holds nothing; not counted
        deleted = 0
        for path in self.job_files(job_id):
            try:
                path.unlink()
                deleted += 1
            except FileNotFoundError:
                continue
        return deleted

    def _retire(self) -> None:
        """Fold finished records past the newest ``keep`` into ``totals.json``.

        ``totals.json`` lists the ids folded in by the last pass. Their records
        are deleted right after it is written; one still there (a crash came in
        between) is already counted, so it is deleted now and the list cleared.
        """
        with self._locked(exclusive=True):
            try:
                totals, retired = self._read_totals()
            except ValueError:
                log.error("%s is unreadable; no batch record is retired", TOTALS_NAME)
                return
            for job_id in retired:
                self.record_path(job_id).unlink(missing_ok=True)
            records = sorted(self._records().values(), key=lambda r: r.created, reverse=True)
            leaving = [
                record
                for record in records[self.keep :]
                if record.status not in UNFINISHED and not self.output_path(record.id).exists()
            ]
            if not leaving and not retired:
                return
            for record in leaving:
                if record.status is Status.DONE and record.totals:
                    totals.merge(record.totals)
            self._write_json(
                self.folder / TOTALS_NAME,
                {
                    "version": RECORD_VERSION,
                    "totals": totals.to_json(),
                    "retired": [record.id for record in leaving],
                },
            )
            for record in leaving:
                self.record_path(record.id).unlink(missing_ok=True)
        if leaving:
            log.info("retired %d batch records into %s", len(leaving), TOTALS_NAME)

    def _view(self, record: JobRecord, now: float) -> JobView:
        status, stale = record.status, record.abandoned
        if status in UNFINISHED and self._owner_gone(record, now):
            status, stale = Status.FAILED, True
        waiting = status is Status.DONE and not record.downloaded
        present = waiting and self.output_path(record.id).exists()
        return JobView(
            id=record.id,
            filename=record.filename,
            status=status,
            lines_done=record.lines_done,
            total_lines=record.total_lines,
            matched=record.matched,
            bad=record.bad,
            bad_lines=record.bad_lines,
            error=ABANDONED_ERROR if stale else record.error,
            downloadable=present,
            downloaded=record.downloaded,
            expired=waiting and not present,
            created=record.created,
            # A stopped worker's job ended, as far as anyone knows, at its last update.
            finished_at=record.updated if record.finished is None and stale else record.finished,
            stale=stale,
            stored=record.stored,
            batch_id=record.batch_id,
            unsure=record.unsure,
        )
