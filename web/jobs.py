"""Batch jobs for the planner area: an upload matched in a background thread.

A planner uploads a shopper file; matching a large one takes minutes, longer
than a request should. :class:`JobRegistry` keeps the jobs of this process in
memory, keyed by a random id, and runs them one at a time in daemon threads
so a batch never starves the shopper pages of CPU. The job page polls
:meth:`JobRegistry.get` for progress.

Files live in one folder under the instance path. The upload is deleted as
soon as its job ends (it holds shopper text); the pairings are deleted when
downloaded, or by :meth:`JobRegistry.sweep` once they are older than the
registry's ``ttl``. Bad rows are kept as line and reason only, never text,
and nothing here logs shopper text.

The registry is per process: with several web workers, a job page must be
served by the worker that ran the job (a database comes in a later issue).
The top-1 pairings of finished jobs are added up in :attr:`JobRegistry.totals`
for the dashboard, so job records can be forgotten without losing them.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from matcher.batch import BadRow, CsvPairingWriter, count_lines, match_rows, read_shoppers
from matcher.errors import MatcherError
from matcher.matching import Match, Matcher

log = logging.getLogger(__name__)

#: Width of a score bin in the dashboard histogram (cosines, so -1..1).
SCORE_BIN_WIDTH = 0.05
#: Bad rows listed per job; the rest are only counted.
MAX_LISTED_BAD_ROWS = 200
#: Finished job records kept; older ones are forgotten (their totals stay).
MAX_KEPT_JOBS = 50
#: How long uploads and pairings may stay on disk by default, in seconds.
DEFAULT_TTL = 60 * 60


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def score_bin(score: float, width: float = SCORE_BIN_WIDTH) -> int:
    """The histogram bin of a score: bin ``i`` holds ``[i * width, (i + 1) * width)``.

    Scores carry four decimals; rounding the quotient first keeps a score that
    sits exactly on an edge (0.5500) in the bin it starts, despite float noise.
    """
    return math.floor(round(score / width, 6))


@dataclass
class PairingTotals:
    """Top-1 pairings added up: how many per celebrity, and how top scores spread."""

    per_celebrity: Counter[str] = field(default_factory=Counter)
    names: dict[str, str] = field(default_factory=dict)
    score_bins: Counter[int] = field(default_factory=Counter)
    shoppers: int = 0

    def add(self, best: Match) -> None:
        self.per_celebrity[best.celebrity_id] += 1
        self.names[best.celebrity_id] = best.name
        self.score_bins[score_bin(best.score)] += 1
        self.shoppers += 1

    def merge(self, other: PairingTotals) -> None:
        self.per_celebrity.update(other.per_celebrity)
        self.names.update(other.names)
        self.score_bins.update(other.score_bins)
        self.shoppers += other.shoppers

    def copy(self) -> PairingTotals:
        return PairingTotals(
            Counter(self.per_celebrity), dict(self.names), Counter(self.score_bins), self.shoppers
        )


@dataclass(frozen=True)
class BadLine:
    """A row that could not be matched: where it is and why, without its text."""

    line: int
    reason: str


@dataclass(frozen=True)
class JobView:
    """A consistent snapshot of a job, for a page to show."""

    id: str
    filename: str
    status: Status
    lines_done: int
    total_lines: int
    matched: int
    bad: int
    bad_lines: tuple[BadLine, ...]
    error: str | None
    downloadable: bool
    downloaded: bool
    expired: bool

    @property
    def finished(self) -> bool:
        return self.status in (Status.DONE, Status.FAILED)

    @property
    def percent(self) -> int:
        if self.status is Status.DONE:
            return 100
        if not self.total_lines:
            return 0
        return min(99, self.lines_done * 100 // self.total_lines)


@dataclass
class Job:
    """One uploaded file being matched; mutated by its thread under ``lock``."""

    id: str
    filename: str
    input_path: Path
    output_path: Path
    k: int
    id_column: str = "id"
    text_column: str = "text"
    status: Status = Status.QUEUED
    created: float = field(default_factory=time.time)
    finished_at: float | None = None
    lines_done: int = 0
    total_lines: int = 0
    matched: int = 0
    bad: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    error: str | None = None
    downloaded: bool = False
    expired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def part_path(self) -> Path:
        """Where the pairings are written until the batch ends (then renamed)."""
        return self.output_path.with_name(f".{self.output_path.name}.part")

    def view(self) -> JobView:
        with self.lock:
            return JobView(
                id=self.id,
                filename=self.filename,
                status=self.status,
                lines_done=self.lines_done,
                total_lines=self.total_lines,
                matched=self.matched,
                bad=self.bad,
                bad_lines=tuple(self.bad_lines),
                error=self.error,
                downloadable=self.status is Status.DONE
                and not self.downloaded
                and not self.expired,
                downloaded=self.downloaded,
                expired=self.expired,
            )


class JobRegistry:
    """The batch jobs of this process, run one at a time in background threads.

    Args:
        folder: where uploads and pairings are kept (created when needed).
        ttl: seconds after which files are deleted by :meth:`sweep`.
    """

    def __init__(self, folder: Path, ttl: float = DEFAULT_TTL) -> None:
        self.folder = folder
        self.ttl = ttl
        self.totals = PairingTotals()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0
        #: One batch at a time: a second upload waits, queued, instead of halving both.
        self.slot = threading.Semaphore(1)

    def paths(self, suffix: str) -> tuple[str, Path, Path]:
        """A fresh job id and the upload and pairing paths that go with it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        job_id = secrets.token_urlsafe(12)
        return (
            job_id,
            self.folder / f"{job_id}.upload{suffix.lower()}",
            self.folder / f"{job_id}.pairings.csv",
        )

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
    ) -> Job:
        """Start matching ``input_path`` (already saved and checked) in the background."""
        job = Job(job_id, filename, input_path, output_path, k, id_column, text_column)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        thread = threading.Thread(
            target=self._run, args=(matcher, job), name=f"batch-{job.id}", daemon=True
        )
        thread.start()
        log.info("batch %s queued", job.id)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[JobView]:
        """Snapshots of the kept jobs, newest first."""
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)
        return [job.view() for job in jobs]

    def pairing_totals(self) -> PairingTotals:
        with self._lock:
            return self.totals.copy()

    def take_output(self, job_id: str) -> Path | None:
        """Hand over a finished job's pairings once; ``None`` if there is nothing to hand over.

        The caller opens the file and then deletes it: the download is the
        only copy the planner gets.
        """
        job = self.get(job_id)
        if job is None:
            return None
        with job.lock:
            if job.status is not Status.DONE or job.downloaded or job.expired:
                return None
            job.downloaded = True
            return job.output_path

    def sweep(self, now: float | None = None) -> int:
        """Delete files in the folder older than ``ttl`` (also those of earlier processes).

        Files of queued or running jobs are kept whatever their age.

        Returns:
            How many files were deleted.
        """
        now = time.time() if now is None else now
        with self._lock:
            busy = {
                path
                for job in self._jobs.values()
                if not job.view().finished
                for path in (job.input_path, job.part_path, job.output_path)
            }
            jobs = list(self._jobs.values())
        deleted = 0
        try:
            entries = list(self.folder.iterdir())
        except FileNotFoundError:
            return 0
        for path in entries:
            if path in busy or not path.is_file():
                continue
            try:
                if now - path.stat().st_mtime >= self.ttl:
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:
                continue
        for job in jobs:
            with job.lock:
                if job.status is Status.DONE and not job.output_path.exists():
                    job.expired = True
        return deleted

    def sweep_if_due(self, every: float = 60.0) -> None:
        """Sweep at most once per ``every`` seconds (cheap to call on each request)."""
        now = time.time()
        with self._lock:
            if now - self._last_sweep < every:
                return
            self._last_sweep = now
        self.sweep(now)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.view().finished]
        for job in sorted(finished, key=lambda j: j.created)[
            : max(0, len(finished) - MAX_KEPT_JOBS)
        ]:
            del self._jobs[job.id]

    def _run(self, matcher: Matcher, job: Job) -> None:
        with self.slot:
            totals = PairingTotals()
            try:
                total = count_lines(job.input_path)
                with job.lock:
                    job.status = Status.RUNNING
                    job.total_lines = total
                self._match(matcher, job, totals)
            except MatcherError as exc:
                # Core errors describe the file (type, header, columns), not its rows.
                self._fail(job, str(exc))
            except Exception as exc:
                # Only the type and the frames: an exception's message could quote a row.
                log.error(
                    "batch %s failed with %s\n%s",
                    job.id,
                    type(exc).__name__,
                    "".join(traceback.format_tb(exc.__traceback__)),
                )
                self._fail(job, "The batch stopped on an unexpected error; please retry.")
            else:
                with self._lock:
                    self.totals.merge(totals)
                with job.lock:
                    job.status = Status.DONE
                    job.finished_at = time.time()
                log.info("batch %s done: %d matched, %d bad", job.id, job.matched, job.bad)
            finally:
                job.input_path.unlink(missing_ok=True)

    def _match(self, matcher: Matcher, job: Job, totals: PairingTotals) -> None:
        rows = read_shoppers(
            job.input_path,
            id_column=job.id_column,
            text_column=job.text_column,
            max_chars=matcher.max_chars,
        )
        part = job.part_path
        try:
            with open(part, "w", encoding="utf-8", newline="") as handle:
                writer = CsvPairingWriter(handle, job.k)
                for item in match_rows(matcher, rows, k=job.k):
                    if isinstance(item, BadRow):
                        line = item.line
                        with job.lock:
                            job.bad += 1
                            if len(job.bad_lines) < MAX_LISTED_BAD_ROWS:
                                job.bad_lines.append(BadLine(item.line, item.reason))
                    else:
                        writer.write(item)
                        totals.add(item.matches[0])
                        line = item.row.line
                        with job.lock:
                            job.matched += 1
                    with job.lock:
                        job.lines_done = line
                writer.close()
            os.replace(part, job.output_path)
        finally:
            part.unlink(missing_ok=True)

    def _fail(self, job: Job, message: str) -> None:
        with job.lock:
            job.status = Status.FAILED
            job.error = message
            job.finished_at = time.time()
        job.output_path.unlink(missing_ok=True)
        log.info("batch %s failed", job.id)
