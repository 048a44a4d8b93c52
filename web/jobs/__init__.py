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
  it holds shopper text; ``.<id>.pairings.csv.part`` while pairings are written,
  and ``.<id>.run.lock`` while a worker matches or stores it. Every file that
  names shoppers is created 0600, in a folder made 0700.
- ``<id>.pairings.csv``, the pairings: deleted when downloaded, or by
  :meth:`JobRegistry.sweep` once older than the registry's ``ttl``.
- ``totals.json``, the dashboard totals of retired records (see
  :mod:`web.jobs.registry`), and ``.lock``, a lock file for ``flock(2)``
  (POSIX, like gunicorn itself).

The package is split by responsibility, each module importing only those
above it:

- :mod:`~web.jobs.records`: the record and the views made of it, their
  constants and parsing;
- :mod:`~web.jobs.spool`: matched rows waiting, without their text, to be
  stored in the database in one transaction;
- :mod:`~web.jobs.folder`: the folder's paths, its lock and atomic writes;
- :mod:`~web.jobs.runner`: :class:`Job` and the matching thread;
- :mod:`~web.jobs.registry`: :class:`JobRegistry`, reading jobs from any
  worker, handing over downloads and the sweep;
- :mod:`~web.jobs.erasure`: privacy deletions and purges reaching the folder.

A worker sweeps the folder when it starts (:meth:`JobRegistry.sweep_at_start`),
so what a killed worker left (an upload, half-written pairings) is gone
after the next start.
"""

from .erasure import ERASED_ERROR, BatchCopies
from .records import (
    ABANDONED_ERROR,
    DEFAULT_TTL,
    HEARTBEAT,
    JOB_ID,
    JOBS_FOLDER,
    LOCK_NAME,
    MAX_KEPT_JOBS,
    MAX_LISTED_BAD_ROWS,
    RECORD_SUFFIX,
    RECORD_VERSION,
    SAVE_EVERY,
    SCORE_BIN_WIDTH,
    STALE_AFTER,
    TOTALS_NAME,
    UNFINISHED,
    UPLOAD_SUFFIX,
    BadLine,
    JobRecord,
    JobView,
    PairingTotals,
    Status,
    is_job_id,
    score_bin,
)
from .registry import JobRegistry, pid_alive
from .runner import Job, JobAbandoned
from .spool import MAX_REF_CHARS, NotStored, StoreBatch

__all__ = [
    "ABANDONED_ERROR",
    "ERASED_ERROR",
    "DEFAULT_TTL",
    "HEARTBEAT",
    "JOB_ID",
    "JOBS_FOLDER",
    "LOCK_NAME",
    "MAX_KEPT_JOBS",
    "MAX_LISTED_BAD_ROWS",
    "MAX_REF_CHARS",
    "RECORD_SUFFIX",
    "RECORD_VERSION",
    "SAVE_EVERY",
    "SCORE_BIN_WIDTH",
    "STALE_AFTER",
    "TOTALS_NAME",
    "UNFINISHED",
    "UPLOAD_SUFFIX",
    "BadLine",
    "BatchCopies",
    "Job",
    "JobAbandoned",
    "JobRecord",
    "JobRegistry",
    "JobView",
    "NotStored",
    "PairingTotals",
    "Status",
    "StoreBatch",
    "is_job_id",
    "pid_alive",
    "score_bin",
]
