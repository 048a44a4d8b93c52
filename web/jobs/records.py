"""What pages are shown of a job, and the constants of the job lifecycle.

A job's state is a row of ``batch_jobs`` (:class:`matcher.store.schema.BatchJobRow`),
written by the worker running it and read by every worker of every server;
:class:`JobView` is the snapshot a page renders, with the rate and the time
left worked out from it.
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
#: Jobs listed on the batches page.
MAX_KEPT_JOBS = 50
#: Least time between two progress saves of a running job, in seconds.
SAVE_EVERY = 1.0
#: How often a job's worker touches its row while it waits or matches, in seconds.
HEARTBEAT = 10.0
#: A queued or running job not heard of for this long is taken as failed, in seconds.
STALE_AFTER = 2 * 60
#: A job waiting for its columns this long is dropped with its upload, in seconds.
MAPPING_TTL = 24 * 60 * 60
#: What :func:`secrets.token_urlsafe` (12 bytes) makes; anything else is refused.
JOB_ID = re.compile(r"[A-Za-z0-9_-]{16}")
#: The scratch folder (files being read or written by this server), under the instance folder.
JOBS_FOLDER = "planner-batches"
#: Kept in the row of a job whose worker stopped; pages show a translated text instead.
ABANDONED_ERROR = "The server restarted during this batch; please upload the file again."
#: Kept in the row of a job the planner cancelled.
CANCELLED_ERROR = "Cancelled by the planner; nothing of this batch was stored."
#: Files of a job, as the ``kind`` of their chunks.
UPLOAD = "upload"
PAIRINGS = "pairings"


class Status(StrEnum):
    #: Uploaded; the planner is to say which columns are the id and the text.
    MAPPING = "mapping"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: A worker holds the job (or will): its heartbeat is watched.
UNFINISHED = (Status.QUEUED, Status.RUNNING)
#: Not over yet: a planner can still cancel it.
OPEN = (Status.MAPPING, Status.QUEUED, Status.RUNNING)
FINAL = (Status.DONE, Status.FAILED, Status.CANCELLED)


def is_job_id(value: str) -> bool:
    """Whether ``value`` can be a job id; ids come from URLs, so check before any lookup."""
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
class JobView:
    """A consistent snapshot of a job, for a page to show."""

    id: str
    filename: str
    status: Status
    rows_done: int
    total_rows: int
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
    campaign: str = ""
    started_at: float | None = None
    #: When the pairings are deleted (the campaign's retention after the job ended).
    expires_at: float | None = None
    downloads: int = 0
    cancel_requested: bool = False
    #: The file's columns and how it was read (type, encoding), for the mapping.
    columns: tuple[str, ...] = ()
    id_column: str = ""
    text_column: str = ""
    file_format: str = ""
    encoding: str = ""
    top_k: int = 3
    #: Rows per second so far, and the seconds left at that rate (running jobs only).
    rate: float | None = None
    eta_seconds: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    @property
    def cancellable(self) -> bool:
        return self.status in OPEN and not self.cancel_requested

    @property
    def percent(self) -> int:
        if self.status is Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(99, self.rows_done * 100 // self.total_rows)


def rate_and_eta(
    rows_done: int, total_rows: int, started_at: float | None, now: float
) -> tuple[float | None, float | None]:
    """Rows per second since the job started, and the seconds left at that pace.

    ``None`` until a row is done (no rate can be told yet).
    """
    if started_at is None or rows_done <= 0:
        return None, None
    elapsed = max(now - started_at, 1e-3)
    rate = rows_done / elapsed
    return rate, max(total_rows - rows_done, 0) / rate
