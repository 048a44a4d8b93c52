"""Running a job: matching an upload in a daemon thread of the worker that received it.

Shopper text is never written to a record or a log: bad rows are kept as line
and reason (the core's reasons never quote a row) and an unexpected error is
logged by type and stack frames, without its message.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from matcher.batch import (
    BadRow,
    CsvPairingWriter,
    best_placed,
    count_lines,
    match_rows,
    read_shoppers,
)
from matcher.batch_assign import Placed
from matcher.capacity import limits_of
from matcher.errors import MatcherError
from matcher.files import locked, open_private
from matcher.matching import Matcher
from matcher.store.pairings import Replayable

from .folder import JobFolder
from .records import (
    MAX_LISTED_BAD_ROWS,
    UNFINISHED,
    BadLine,
    JobRecord,
    PairingTotals,
    Status,
)
from .spool import NotStored, StoreBatch, _spooled, _unspooled

log = logging.getLogger(__name__)


class JobAbandoned(Exception):
    """Another worker wrote this job down as failed: its own worker must stop."""


@dataclass
class Job:
    """The running side of a job, in the memory of the worker matching it.

    Mutated by its thread under ``lock``; pages never see it, only the records
    :meth:`record` makes of it.
    """

    id: str
    filename: str
    input_path: Path
    output_path: Path
    k: int
    id_column: str = "id"
    text_column: str = "text"
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    status: Status = Status.QUEUED
    created: float = field(default_factory=time.time)
    finished: float | None = None
    lines_done: int = 0
    total_lines: int = 0
    matched: int = 0
    bad: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    error: str | None = None
    totals: PairingTotals = field(default_factory=PairingTotals)
    store: StoreBatch | None = field(default=None, repr=False)
    stored: int | None = None
    batch_id: int | None = None
    unsure: int = 0
    #: ``time.monotonic()`` of the last save, for the save throttle.
    saved_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def part_path(self) -> Path:
        """Where the pairings are written until the batch ends (then renamed)."""
        return self.output_path.with_name(f".{self.output_path.name}.part")

    @property
    def spool_path(self) -> Path:
        """Where matched rows wait, without their text, to be stored in one transaction."""
        return self.output_path.with_name(f".{self.id}.store.jsonl.part")

    def record(self) -> JobRecord:
        with self.lock:
            return JobRecord(
                id=self.id,
                filename=self.filename,
                status=self.status,
                created=self.created,
                updated=time.time(),
                finished=self.finished,
                lines_done=self.lines_done,
                total_lines=self.total_lines,
                matched=self.matched,
                bad=self.bad,
                bad_lines=tuple(self.bad_lines),
                error=self.error,
                host=self.host,
                pid=self.pid,
                totals=self.totals.copy() if self.status is Status.DONE else None,
                stored=self.stored,
                batch_id=self.batch_id,
                unsure=self.unsure,
            )


class JobRunner(JobFolder):
    """The running side of :class:`~web.jobs.registry.JobRegistry`, which sets the
    attributes below: a job submitted to a registry runs in its worker, one at a time.
    """

    host: str
    heartbeat: float
    save_every: float
    slot: threading.Semaphore

    # -- running, in the worker that received the upload ----------------------------------

    def submit(
        self,
        matcher: Matcher,
        job_id: str,
        input_path: Path,
        output_path: Path,
        *,
        filename: str,
        k: int,
        id_column: str = "id",
        text_column: str = "text",
        store: StoreBatch | None = None,
    ) -> Job:
        """Start matching ``input_path`` (already saved and checked) in the background.

        The record is written before this returns, so the job page finds it
        whichever worker answers the redirect. With ``store``, the matched
        batch is also stored in the database, whole or not at all.
        """
        job = Job(
            self._checked(job_id),
            filename,
            input_path,
            output_path,
            k,
            id_column,
            text_column,
            host=self.host,
            store=store,
        )
        self._save(job, force=True)
        thread = threading.Thread(
            target=self._run, args=(matcher, job), name=f"batch-{job.id}", daemon=True
        )
        thread.start()
        log.info("batch %s queued", job.id)
        return job

    def _run(self, matcher: Matcher, job: Job) -> None:
        try:
            while not self.slot.acquire(timeout=self.heartbeat):
                self._save(job, force=True)
            run_lock = self.run_lock_path(job.id)
            try:
                # Held until the batch is stored or given up: a privacy deletion
                # that stops the job waits for it (web.jobs.erasure).
                with locked(run_lock):
                    total = count_lines(job.input_path)
                    with job.lock:
                        job.status = Status.RUNNING
                        job.total_lines = total
                    self._save(job, force=True)
                    self._match(matcher, job)
            finally:
                run_lock.unlink(missing_ok=True)
                self.slot.release()
        except JobAbandoned:
            job.output_path.unlink(missing_ok=True)
            log.warning("batch %s was written down as failed by another worker; stopped", job.id)
        except MatcherError as exc:
            # Core errors describe the file (type, header, columns), not its rows.
            self._finish(job, str(exc))
        except Exception as exc:
            # Only the type and the frames: an exception's message could quote a row.
            log.error(
                "batch %s failed with %s\n%s",
                job.id,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            self._finish(job, "The batch stopped on an unexpected error; please retry.")
        else:
            self._finish(job)
        finally:
            job.input_path.unlink(missing_ok=True)

    def _match(self, matcher: Matcher, job: Job) -> None:
        rows = read_shoppers(
            job.input_path,
            id_column=job.id_column,
            text_column=job.text_column,
            max_chars=matcher.max_chars,
        )
        part, spool_path = job.part_path, job.spool_path
        try:
            # Both name shoppers: private from the first byte.
            with (
                open_private(part, "w", encoding="utf-8", newline="") as handle,
                open_private(spool_path, "w", encoding="utf-8")
                if job.store
                else open(os.devnull, "w", encoding="utf-8") as spool,
            ):
                writer = CsvPairingWriter(handle, job.k)
                # Under quotas and shares the store chooses among every celebrity,
                # after this whole file is matched; the file shows the ranking by fit.
                limited = bool(limits_of(matcher.index.profiles))
                k = matcher.roster_size if limited else job.k
                for item in match_rows(matcher, rows, k=k):
                    with job.lock:
                        if isinstance(item, BadRow):
                            job.bad += 1
                            if len(job.bad_lines) < MAX_LISTED_BAD_ROWS:
                                job.bad_lines.append(BadLine(item.line, item.reason))
                            job.lines_done = item.line
                        else:
                            top = replace(item, matches=item.matches[: job.k])
                            writer.write(Placed(top, None, None) if limited else best_placed(top))
                            # An unsure answer paired nobody: in the file, marked,
                            # but neither stored nor counted, as on the API.
                            if not item.assessment.confident:
                                job.unsure += 1
                            else:
                                if job.store is not None:
                                    ranking = item.matches if limited else ()
                                    spool.write(_spooled(item.row.id, item.matches[0], ranking))
                                job.totals.add(item.matches[0])
                            job.matched += 1
                            job.lines_done = item.row.line
                    self._save(job)
                writer.close()
            # Stopped meanwhile (a privacy deletion, a sweep)? Then nothing is stored.
            self._save(job, force=True)
            if job.store is not None:
                self._store(job)
            os.replace(part, job.output_path)
        finally:
            rows.close()  # the input file, also when matching stopped early
            part.unlink(missing_ok=True)
            spool_path.unlink(missing_ok=True)

    def _store(self, job: Job) -> None:
        """Store the spooled batch in one transaction; raise :class:`NotStored` if refused."""
        assert job.store is not None
        try:
            spool = job.spool_path
            stored = job.store(Replayable(lambda: _unspooled(spool)), job.filename)
        except Exception as exc:
            # Only the type: a database error's message can quote the values it refused.
            log.error("batch %s could not be stored: %s", job.id, type(exc).__name__)
            raise NotStored(
                "Nothing of this batch was stored: the database refused it. Upload it again."
            ) from None
        with job.lock:
            job.stored, job.batch_id = stored.count, stored.batch_id
        log.info("batch %s stored as database batch %s", job.id, stored.batch_id)

    def _finish(self, job: Job, error: str | None = None) -> None:
        """Write the final record: done, or failed with ``error``."""
        if error is not None:
            job.output_path.unlink(missing_ok=True)
        with job.lock:
            job.status = Status.DONE if error is None else Status.FAILED
            job.error = error
            job.finished = time.time()
        try:
            self._save(job, force=True)
        except JobAbandoned:
            job.output_path.unlink(missing_ok=True)
            log.warning("batch %s was written down as failed by another worker", job.id)
            return
        if error is None:
            log.info("batch %s done: %d matched, %d bad", job.id, job.matched, job.bad)
        else:
            log.info("batch %s failed", job.id)

    def _save(self, job: Job, *, force: bool = False) -> None:
        """Write the job's record, at most once per ``save_every`` unless ``force``.

        Raises:
            JobAbandoned: the record on disk is already final, so another
                worker gave this job up; the caller must stop.
        """
        now = time.monotonic()
        if not force and now - job.saved_at < self.save_every:
            return
        job.saved_at = now
        record = job.record()
        with self._locked(exclusive=True):
            on_disk = self._read(job.id)
            if on_disk is not None and on_disk.status not in UNFINISHED:
                raise JobAbandoned(job.id)
            self._write(record)
