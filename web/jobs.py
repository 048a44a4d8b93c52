"""Batch jobs for the planner area: an upload matched in a background thread,
its state kept on disk so that every web worker sees it.

A planner uploads a shopper file; matching a large one takes minutes, longer
than a request should. :class:`JobRegistry` matches it in a daemon thread of
the worker that received the upload, one batch at a time per worker so a batch
never starves the shopper pages of CPU.

``matcher serve`` runs several worker processes, and the job page, the
download and the dashboard may be answered by any of them. So a job's state
lives in a small JSON record in the jobs folder under the instance path, and
every read goes to that folder, never to a worker's memory. The folder holds:

- ``<id>.job.json``, the record (:class:`JobRecord`): status, rows done and
  total, bad-row count and the first bad rows as line and reason, file names,
  created/updated/finished times, the host and pid of the worker running it,
  and for done jobs their top-1 totals. The running worker rewrites it at each
  state change and at most once per :data:`SAVE_EVERY` seconds in between.
  Writes go to a temporary file that replaces the record (``os.replace``), so
  a reader sees the old record or the new one, never half of one.
- ``<id>.upload.<ext>``, the upload: deleted as soon as the job ends, because
  it holds shopper text; ``.<id>.pairings.csv.part`` while pairings are written.
- ``<id>.pairings.csv``, the pairings: deleted when downloaded, or by
  :meth:`JobRegistry.sweep` once older than the registry's ``ttl``.
- ``totals.json``, the dashboard totals of retired records (see below), and
  ``.lock``, a lock file for ``flock(2)`` (POSIX, like gunicorn itself).

Writes to a record take the exclusive lock and re-read the record first, so
two workers never overwrite each other's change: a record in a final state
(done or failed) is never rewritten except to note its download. The download
takes the pairings by renaming them away under that lock, so of two workers
racing for it exactly one wins (the rename is atomic even where the lock is
not honoured), and the other finds the record marked downloaded.

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

Storage: when the planner's view hands :meth:`JobRegistry.submit` a
``store`` function, every matched row is also spooled (reference, celebrity,
score, reasons; never the text) to ``.<id>.store.jsonl.part``, and once the
whole file is matched the spool is passed to ``store``, which writes the
batch to the database in one transaction: the batch is stored whole or not at
all, and the record says which (``stored`` and ``batch_id``, or the job fails
saying nothing was stored). The spool is deleted either way.

Shopper text is never written to a record or a log: bad rows are kept as line
and reason (the core's reasons never quote a row) and an unexpected error is
logged by type and stack frames, without its message.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import re
import secrets
import socket
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from matcher.batch import BadRow, CsvPairingWriter, count_lines, match_rows, read_shoppers
from matcher.errors import MatcherError
from matcher.matching import Match, Matcher, Reason
from matcher.store import NewPairing, Stored

#: Stores a matched batch in one transaction: ``store(pairings, filename)``.
StoreBatch = Callable[[Iterable[NewPairing], str], Stored]


#: The longest shopper id stored as given (the database column's size).
MAX_REF_CHARS = 200


class NotStored(MatcherError):
    """The database refused the batch; nothing of it was stored."""


log = logging.getLogger(__name__)

#: Width of a score bin in the dashboard histogram (cosines, so -1..1).
SCORE_BIN_WIDTH = 0.05
#: Bad rows listed per job; the rest are only counted.
MAX_LISTED_BAD_ROWS = 200
#: Finished job records listed and kept; older ones are retired (their totals stay).
MAX_KEPT_JOBS = 50
#: How long uploads and pairings may stay on disk by default, in seconds.
DEFAULT_TTL = 60 * 60
#: Least time between two progress saves of a running job, in seconds.
SAVE_EVERY = 1.0
#: How often a queued job's worker rewrites its record while waiting, in seconds.
HEARTBEAT = 30.0
#: A queued or running job not updated for this long is taken as failed, in seconds.
STALE_AFTER = 5 * 60
#: What :func:`secrets.token_urlsafe` (12 bytes) makes; anything else is refused.
JOB_ID = re.compile(r"[A-Za-z0-9_-]{16}")
#: Upload suffixes as :func:`matcher.batch.input_format` accepts them, lower-cased.
UPLOAD_SUFFIX = re.compile(r"\.[a-z0-9]{1,10}")
RECORD_SUFFIX = ".job.json"
TOTALS_NAME = "totals.json"
LOCK_NAME = ".lock"
RECORD_VERSION = 1
#: Kept in the record of a job whose worker stopped; pages show a translated text instead.
ABANDONED_ERROR = "The server restarted during this batch; please upload the file again."


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


UNFINISHED = (Status.QUEUED, Status.RUNNING)


class JobAbandoned(Exception):
    """Another worker wrote this job down as failed: its own worker must stop."""


def is_job_id(value: str) -> bool:
    """Whether ``value`` can be a job id; ids come from URLs, so check before any path."""
    return JOB_ID.fullmatch(value) is not None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except (OverflowError, OSError):
        return False
    return True


def score_bin(score: float, width: float = SCORE_BIN_WIDTH) -> int:
    """The histogram bin of a score: bin ``i`` holds ``[i * width, (i + 1) * width)``.

    Scores carry four decimals; rounding the quotient first keeps a score that
    sits exactly on an edge (0.5500) in the bin it starts, despite float noise.
    """
    return math.floor(round(score / width, 6))


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {type(value).__name__}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


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

    def to_json(self) -> dict[str, Any]:
        return {
            "per_celebrity": dict(self.per_celebrity),
            "names": dict(self.names),
            "score_bins": {str(index): count for index, count in self.score_bins.items()},
            "shoppers": self.shoppers,
        }

    @classmethod
    def from_json(cls, data: Any) -> PairingTotals:
        """Read :meth:`to_json`'s output back; ``ValueError`` if it is not that shape."""
        if not isinstance(data, dict):
            raise ValueError("totals are not an object")
        return cls(
            Counter({_str(k): _int(v) for k, v in dict(data["per_celebrity"]).items()}),
            {_str(k): _str(v) for k, v in dict(data["names"]).items()},
            Counter({int(_str(k)): _int(v) for k, v in dict(data["score_bins"]).items()}),
            _int(data["shoppers"]),
        )


@dataclass(frozen=True)
class BadLine:
    """A row that could not be matched: where it is and why, without its text."""

    line: int
    reason: str


@dataclass(frozen=True)
class JobRecord:
    """What the jobs folder knows about a job: the content of ``<id>.job.json``."""

    id: str
    filename: str
    status: Status
    created: float
    updated: float
    finished: float | None
    lines_done: int
    total_lines: int
    matched: int
    bad: int
    bad_lines: tuple[BadLine, ...]
    error: str | None
    host: str
    pid: int
    downloaded: bool = False
    #: Written down as failed by another worker because its own had stopped.
    abandoned: bool = False
    #: Top-1 totals, for done jobs only.
    totals: PairingTotals | None = None
    #: Pairings stored in the database (done jobs that were stored), and their batch.
    stored: int | None = None
    batch_id: int | None = None
    #: Matched rows whose answer is not confident: in the output, not stored or counted.
    unsure: int = 0

    @property
    def output_name(self) -> str:
        return f"{self.id}.pairings.csv"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "id": self.id,
            "filename": self.filename,
            "status": self.status.value,
            "created": self.created,
            "updated": self.updated,
            "finished": self.finished,
            "lines_done": self.lines_done,
            "total_lines": self.total_lines,
            "matched": self.matched,
            "bad": self.bad,
            "bad_lines": [{"line": bad.line, "reason": bad.reason} for bad in self.bad_lines],
            "error": self.error,
            "output": self.output_name,
            "host": self.host,
            "pid": self.pid,
            "downloaded": self.downloaded,
            "abandoned": self.abandoned,
            "totals": None if self.totals is None else self.totals.to_json(),
            "stored": self.stored,
            "batch_id": self.batch_id,
            "unsure": self.unsure,
        }

    @classmethod
    def from_json(cls, data: Any, job_id: str) -> JobRecord:
        """Read a record back, checking every field; ``ValueError`` for anything else.

        ``job_id`` is the id in the file name, which must match the one inside.
        """
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise ValueError("not a job record of this version")
        if data["id"] != job_id:
            raise ValueError("the record is for another job")
        finished, error, totals = data["finished"], data["error"], data["totals"]
        return cls(
            id=job_id,
            filename=_str(data["filename"]),
            status=Status(data["status"]),
            created=_float(data["created"]),
            updated=_float(data["updated"]),
            finished=None if finished is None else _float(finished),
            lines_done=_int(data["lines_done"]),
            total_lines=_int(data["total_lines"]),
            matched=_int(data["matched"]),
            bad=_int(data["bad"]),
            bad_lines=tuple(
                BadLine(_int(bad["line"]), _str(bad["reason"])) for bad in list(data["bad_lines"])
            ),
            error=None if error is None else _str(error),
            host=_str(data["host"]),
            pid=_int(data["pid"]),
            downloaded=data["downloaded"] is True,
            abandoned=data["abandoned"] is True,
            totals=None if totals is None else PairingTotals.from_json(totals),
            stored=_optional_int(data.get("stored")),
            batch_id=_optional_int(data.get("batch_id")),
            unsure=_int(data.get("unsure", 0)),
        )


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
    created: float = 0.0
    finished_at: float | None = None
    #: Failed because the worker running it stopped (a restart, a crash).
    stale: bool = False
    stored: int | None = None
    batch_id: int | None = None
    unsure: int = 0

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


def _spooled(shopper_id: str, best: Match) -> str:
    reasons = [[r.facet, r.score, r.quote] for r in best.reasons]
    record = [shopper_id, best.celebrity_id, best.score, best.margin, reasons]
    return json.dumps(record, ensure_ascii=False) + "\n"


def _unspooled(path: Path) -> Iterator[NewPairing]:
    """The spooled rows as pairings to store; the shoppers gave no consent, so no text."""
    with open(path, encoding="utf-8") as spool:
        for line in spool:
            ref, celebrity_id, score, margin, reasons = json.loads(line)
            best = Match(
                celebrity_id,
                "",
                "",
                score,
                margin,
                1,
                tuple(Reason(facet, r_score, quote) for facet, r_score, quote in reasons),
            )
            # A reference too long to keep gets a generated one, rather than sinking the batch.
            ref = ref if len(ref) <= MAX_REF_CHARS else None
            yield NewPairing(best, "", consented=False, shopper_ref=ref)


def _job_of(name: str) -> str | None:
    """The job a file in the folder belongs to (``<id>.…`` or ``.<id>.…``), if any."""
    stem = name.lstrip(".").split(".", 1)[0]
    return stem if is_job_id(stem) else None


class JobRegistry:
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

    # -- paths ----------------------------------------------------------------------------

    def _checked(self, job_id: str) -> str:
        if not is_job_id(job_id):
            raise ValueError(f"job id {job_id!r} is not 16 letters, digits, '-' or '_'")
        return job_id

    def record_path(self, job_id: str) -> Path:
        """Where a job's record is kept. Raises ``ValueError`` for a malformed id."""
        return self.folder / f"{self._checked(job_id)}{RECORD_SUFFIX}"

    def output_path(self, job_id: str) -> Path:
        """Where a job's pairings are kept. Raises ``ValueError`` for a malformed id."""
        return self.folder / f"{self._checked(job_id)}.pairings.csv"

    def paths(self, suffix: str) -> tuple[str, Path, Path]:
        """A fresh job id and the upload and pairing paths that go with it.

        Raises:
            ValueError: ``suffix`` is not a short extension like ``.csv``.
        """
        suffix = suffix.lower()
        if not UPLOAD_SUFFIX.fullmatch(suffix):
            raise ValueError(f"upload suffix {suffix!r} is not an extension like '.csv'")
        self.folder.mkdir(parents=True, exist_ok=True)
        job_id = secrets.token_urlsafe(12)
        return job_id, self.folder / f"{job_id}.upload{suffix}", self.output_path(job_id)

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
            claim = self.folder / f".{job_id}.pairings.{secrets.token_hex(8)}.sending"
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
            try:
                total = count_lines(job.input_path)
                with job.lock:
                    job.status = Status.RUNNING
                    job.total_lines = total
                self._save(job, force=True)
                self._match(matcher, job)
            finally:
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
            with (
                open(part, "w", encoding="utf-8", newline="") as handle,
                open(spool_path if job.store else os.devnull, "w", encoding="utf-8") as spool,
            ):
                writer = CsvPairingWriter(handle, job.k)
                for item in match_rows(matcher, rows, k=job.k):
                    with job.lock:
                        if isinstance(item, BadRow):
                            job.bad += 1
                            if len(job.bad_lines) < MAX_LISTED_BAD_ROWS:
                                job.bad_lines.append(BadLine(item.line, item.reason))
                            job.lines_done = item.line
                        else:
                            writer.write(item)
                            # An unsure answer paired nobody: in the file, marked,
                            # but neither stored nor counted, as on the API.
                            if not item.assessment.confident:
                                job.unsure += 1
                            else:
                                if job.store is not None:
                                    spool.write(_spooled(item.row.id, item.matches[0]))
                                job.totals.add(item.matches[0])
                            job.matched += 1
                            job.lines_done = item.row.line
                    self._save(job)
                writer.close()
            if job.store is not None:
                self._store(job)
            os.replace(part, job.output_path)
        finally:
            part.unlink(missing_ok=True)
            spool_path.unlink(missing_ok=True)

    def _store(self, job: Job) -> None:
        """Store the spooled batch in one transaction; raise :class:`NotStored` if refused."""
        assert job.store is not None
        try:
            stored = job.store(_unspooled(job.spool_path), job.filename)
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
        deleted = 0
        leftovers = [*self.folder.glob(f"{job_id}.upload.*"), self.output_path(job_id)]
        leftovers.append(self.folder / f".{job_id}.pairings.csv.part")
        leftovers.append(self.folder / f".{job_id}.store.jsonl.part")
        for path in leftovers:
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

    # -- files ----------------------------------------------------------------------------

    @contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the folder's lock, shared or exclusive (between threads and workers alike)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self, job_id: str) -> JobRecord | None:
        try:
            text = self.record_path(job_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return JobRecord.from_json(json.loads(text), job_id)
        except (KeyError, TypeError, ValueError):
            log.warning("batch record %s is unreadable; ignoring it", job_id)
            return None

    def _records(self) -> dict[str, JobRecord]:
        """Every readable record in the folder, by id."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return {}
        records = {}
        for name in names:
            job_id = name.removesuffix(RECORD_SUFFIX)
            if name.endswith(RECORD_SUFFIX) and is_job_id(job_id):
                record = self._read(job_id)
                if record is not None:
                    records[job_id] = record
        return records

    def _read_totals(self) -> tuple[PairingTotals, list[str]]:
        """The retired totals and ids; ``ValueError`` if the file is not readable."""
        try:
            text = (self.folder / TOTALS_NAME).read_text(encoding="utf-8")
        except FileNotFoundError:
            return PairingTotals(), []
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
                raise ValueError("not a totals file of this version")
            retired = [self._checked(_str(job_id)) for job_id in list(data["retired"])]
            return PairingTotals.from_json(data["totals"]), retired
        except (KeyError, TypeError) as exc:
            raise ValueError(str(exc)) from exc

    def _write(self, record: JobRecord) -> None:
        self._write_json(self.record_path(record.id), record.to_json())

    def _write_json(self, path: Path, data: dict[str, Any]) -> None:
        """Replace ``path`` atomically: readers see the old content or the new, whole."""
        fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False, allow_nan=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

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
