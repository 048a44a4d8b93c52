"""Running a job: matching an upload in a daemon thread of the worker that started it.

The matching itself is the core's batch loop (:func:`matcher.batch.counted_rows`),
the same one ``matcher batch`` runs; this module only feeds it the upload,
writes the pairings file, spools what is to be stored and keeps the job's row
up to date: progress at most once per ``save_every`` seconds and a heartbeat
at least every ``heartbeat`` seconds, from any thread that holds the job.

Every save is a conditional update that only a queued or running job
accepts; when it is refused (another server gave the job up as dead, a
privacy deletion stopped it) the worker stops at once and stores nothing.
A cancel is read at each save and stops the loop within a second or one
encoder batch; nothing of a cancelled batch is stored, since a batch is
stored whole, in one transaction, only once every row is matched.

Shopper text is never written to a row or a log: bad rows are kept as line
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

from sqlalchemy import select

from matcher.batch import (
    BadRow,
    BatchStopped,
    BatchSummary,
    CsvPairingWriter,
    best_placed,
    count_rows,
    counted_rows,
    nothing_read,
    read_shoppers,
)
from matcher.batch_assign import Placed
from matcher.batch_rows import Paired
from matcher.capacity import limits_of
from matcher.errors import MatcherError
from matcher.files import open_private, temporary_path
from matcher.matching import Matcher
from matcher.store.pairings import Replayable
from matcher.store.schema import BatchJobRow, utcnow

from .records import (
    CANCELLED_ERROR,
    MAX_LISTED_BAD_ROWS,
    PAIRINGS,
    UNFINISHED,
    UPLOAD,
    PairingTotals,
    Status,
)
from .spool import NotStored, StoreBatch, _spooled, _unspooled
from .table import JobTable, chunks_of, moment

log = logging.getLogger(__name__)


class JobAbandoned(Exception):
    """The job's row no longer takes this worker's saves: it must stop, storing nothing."""


@dataclass
class Job:
    """The running side of a job, in the memory of the worker matching it."""

    id: str
    filename: str
    suffix: str
    k: int
    id_column: str = "id"
    text_column: str = "text"
    #: How long the pairings stay after the job ends, in seconds.
    keep_for: float = 180 * 86400.0
    store: StoreBatch | None = field(default=None, repr=False)
    summary: BatchSummary = field(default_factory=BatchSummary)
    totals: PairingTotals = field(default_factory=PairingTotals)
    #: Why the loop must stop: "cancelled" or "abandoned" (set by a save).
    stop: str | None = None
    #: ``time.monotonic()`` of the last save, for the save throttle.
    saved_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self) -> dict[str, object]:
        with self.lock:
            summary = self.summary
            return {
                "rows_done": summary.rows,
                "matched": summary.matched,
                "bad": summary.bad,
                "unsure": summary.unsure,
                "bad_lines": [
                    [row.line, row.reason] for row in summary.bad_rows[:MAX_LISTED_BAD_ROWS]
                ],
            }


class JobRunner(JobTable):
    """The running side of :class:`~web.jobs.registry.JobRegistry`, which sets the
    attributes below: a job started by a registry runs in its worker, one at a time.
    """

    host: str
    heartbeat: float
    save_every: float
    slot: threading.Semaphore

    def _run(self, matcher: Matcher, job: Job) -> None:
        local = temporary_path(self.scratch / f"{job.id}{job.suffix}")
        try:
            while not self.slot.acquire(timeout=self.heartbeat):
                self._save(job, force=True)
                if job.stop:
                    raise JobAbandoned(job.id)
            try:
                self._make_scratch()
                self._copy_out(job.id, UPLOAD, local)
                total = count_rows(local, name=job.filename)
                if not self._update(
                    job.id,
                    [Status.QUEUED],
                    status=Status.RUNNING,
                    total_rows=total,
                    started_at=utcnow(),
                    updated_at=utcnow(),
                ):
                    raise JobAbandoned(job.id)
                self._match(matcher, job, local)
            finally:
                self.slot.release()
        except JobAbandoned:
            self._let_go(job)
        except MatcherError as exc:
            # Core errors describe the file (type, header, columns), not its rows.
            self._finish(job, Status.FAILED, str(exc))
        except Exception as exc:
            # Only the type and the frames: an exception's message could quote a row.
            log.error(
                "batch %s failed with %s\n%s",
                job.id,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            self._finish(
                job, Status.FAILED, "The batch stopped on an unexpected error; please retry."
            )
        finally:
            local.unlink(missing_ok=True)

    def _match(self, matcher: Matcher, job: Job, local: Path) -> None:
        rows = read_shoppers(
            local,
            id_column=job.id_column,
            text_column=job.text_column,
            max_chars=matcher.max_chars,
            name=job.filename,
        )
        part = temporary_path(self.scratch / f"{job.id}.pairings.csv", ".part")
        spool_path = temporary_path(self.scratch / f"{job.id}.store.jsonl", ".part")
        # Under quotas and shares the store chooses among every celebrity,
        # after this whole file is matched; the file shows the ranking by fit.
        limited = bool(limits_of(matcher.index.profiles))
        k = matcher.roster_size if limited else job.k

        def on_row(_line: int) -> None:
            self._save(job)

        def should_stop() -> bool:
            return job.stop is not None

        try:
            with (
                open_private(part, "w", encoding="utf-8", newline="") as handle,
                open_private(spool_path, "w", encoding="utf-8") as spool,
            ):
                writer = CsvPairingWriter(handle, job.k)
                loop = counted_rows(
                    matcher, rows, job.summary, k=k, on_row=on_row, should_stop=should_stop
                )
                try:
                    for item in loop:
                        if isinstance(item, BadRow):
                            continue
                        self._write(job, writer, spool, item, limited)
                except BatchStopped:
                    raise JobAbandoned(job.id) from None
                writer.close()
            problem = nothing_read(job.summary, job.filename)
            if problem is not None:
                self._finish(job, Status.FAILED, problem)
                return
            # Cancelled or stopped meanwhile? Then nothing is stored.
            self._save(job, force=True)
            if job.stop:
                raise JobAbandoned(job.id)
            if job.store is not None:
                self._store(job, spool_path)
            with open(part, "rb") as output:
                self._finish(job, Status.DONE, None, output=output)
        finally:
            rows.close()  # the input file, also when matching stopped early
            part.unlink(missing_ok=True)
            spool_path.unlink(missing_ok=True)

    def _write(
        self, job: Job, writer: CsvPairingWriter, spool: object, item: Paired, limited: bool
    ) -> None:
        top = replace(item, matches=item.matches[: job.k])
        writer.write(Placed(top, None, None) if limited else best_placed(top))
        # An unsure answer paired nobody: in the file, marked, but neither
        # stored nor counted, as on the API.
        if item.assessment.confident:
            if job.store is not None:
                ranking = item.matches if limited else ()
                spool.write(_spooled(item.row.id, item.matches[0], ranking))  # type: ignore[attr-defined]
            with job.lock:
                job.totals.add(item.matches[0])

    def _store(self, job: Job, spool: Path) -> None:
        """Store the spooled batch in one transaction; raise :class:`NotStored` if refused."""
        assert job.store is not None
        try:
            stored = job.store(Replayable(lambda: _unspooled(spool)), job.filename)
        except Exception as exc:
            # Only the type: a database error's message can quote the values it refused.
            log.error("batch %s could not be stored: %s", job.id, type(exc).__name__)
            raise NotStored(
                "Nothing of this batch was stored: the database refused it. Upload it again."
            ) from None
        self._update(
            job.id, UNFINISHED, stored=stored.count, batch_id=stored.batch_id, updated_at=utcnow()
        )
        log.info("batch %s stored as database batch %s", job.id, stored.batch_id)

    def _finish(
        self, job: Job, status: Status, error: str | None, *, output: object | None = None
    ) -> None:
        """Write the job's end: its figures, status and (done) pairings in one transaction."""
        now = time.time()
        values = {
            **job.progress(),
            "status": status.value,
            "error": error,
            "finished_at": moment(now),
            "updated_at": moment(now),
            "expires_at": moment(now + job.keep_for),
            "host": None,
            "pid": None,
        }
        if status is Status.DONE:
            with job.lock:
                values["totals"] = job.totals.to_json()
        with self.db.write() as session:
            row = session.execute(
                select(BatchJobRow).where(BatchJobRow.id == job.id).with_for_update()
            ).scalar_one_or_none()
            if row is None or row.status not in UNFINISHED or (row.host, row.pid) != self._me():
                log.warning(
                    "batch %s was stopped by another worker; its end is not written", job.id
                )
                if row is not None and (row.host, row.pid) == self._me():
                    row.host, row.pid = None, None
                return
            for key, value in values.items():
                setattr(row, key, value)
            if output is not None:
                self._put_file(session, job.id, PAIRINGS, chunks_of(output))  # type: ignore[arg-type]
            self._put_file(session, job.id, UPLOAD, ())
        if status is Status.DONE:
            log.info(
                "batch %s done: %d matched, %d bad", job.id, job.summary.matched, job.summary.bad
            )
        else:
            log.info("batch %s %s", job.id, status.value)

    def _let_go(self, job: Job) -> None:
        """Stopped without finishing: cancelled (written down now), or given up by another."""
        if job.stop == "cancelled":
            self._finish(job, Status.CANCELLED, CANCELLED_ERROR)
            return
        with self.db.write() as session:
            row = session.get(BatchJobRow, job.id)
            if row is not None and (row.host, row.pid) == self._me():
                row.host, row.pid = None, None
        self._delete_files(job.id, UPLOAD)
        log.warning("batch %s was stopped by another worker or a deletion; stopped", job.id)

    def _me(self) -> tuple[str, int]:
        return self.host, os.getpid()

    def _save(self, job: Job, *, force: bool = False) -> None:
        """Write the job's progress (the heartbeat), at most once per ``save_every`` unless
        ``force``, and read back whether it must stop: ``job.stop`` is set when the
        planner cancelled it or the row no longer accepts this worker's saves."""
        now = time.monotonic()
        if not force and now - job.saved_at < self.save_every:
            return
        job.saved_at = now
        with self.db.write() as session:
            row = session.execute(
                select(BatchJobRow).where(BatchJobRow.id == job.id).with_for_update()
            ).scalar_one_or_none()
            if row is None or row.status not in UNFINISHED or (row.host, row.pid) != self._me():
                job.stop = "abandoned"
                return
            if row.status == Status.RUNNING:
                for key, value in job.progress().items():
                    setattr(row, key, value)
            row.updated_at = utcnow()
            if row.cancel_requested:
                job.stop = "cancelled"


def this_host() -> str:
    return socket.gethostname()
