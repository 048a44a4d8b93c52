"""The job record, ``<id>.job.json``, and what pages are shown of it.

A record is written by the worker running the job and read by every worker,
so reading one back checks every field (:meth:`JobRecord.from_json`): a record
that is not exactly what this version writes is ignored, never half-trusted.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from matcher.matching import Match

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
#: The jobs folder, under the instance folder.
JOBS_FOLDER = "planner-batches"
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


def is_job_id(value: str) -> bool:
    """Whether ``value`` can be a job id; ids come from URLs, so check before any path."""
    return JOB_ID.fullmatch(value) is not None


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
