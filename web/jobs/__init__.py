"""Batch jobs for the planner area: an upload matched in a background thread, its state,
its upload and its pairings kept in the database, so every server sees them.

A planner uploads a shopper file; matching a large one takes minutes, longer
than a request should. :class:`JobRegistry` keeps the upload as a job, and
once its columns are known matches it in a daemon thread of the worker that
received the start, one batch at a time per worker, so a batch never starves
the shopper pages of CPU.

Several servers (behind a load balancer) and several workers per server may
answer the job page, the download, the cancel and the dashboard. So a job
lives in the database, never in a worker's memory or a server's folder:

- a row of ``batch_jobs`` (:class:`matcher.store.schema.BatchJobRow`): status,
  rows done and total, the first bad rows as line and reason, the file's
  columns and how it was read, the times, the worker holding it (host and
  pid) and its heartbeat, and for done jobs their top-1 totals and what was
  stored;
- its files as chunks in ``batch_job_files``: the upload while the job is
  open (it holds shopper text), the pairings until the campaign's retention
  period ends. Both are personal data: a privacy deletion reaches them
  (:mod:`~web.jobs.erasure`).

The lifecycle (mapping, queued, running, done, failed, cancelled) is told in
:mod:`~web.jobs.registry`. The package is split by responsibility, each
module importing only those above it:

- :mod:`~web.jobs.records`: what pages see of a job, the lifecycle's constants;
- :mod:`~web.jobs.spool`: matched rows waiting, without their text, to be
  stored in the database in one transaction;
- :mod:`~web.jobs.table`: rows and chunked files in the database, the scratch folder;
- :mod:`~web.jobs.runner`: the matching thread, over the core's batch loop;
- :mod:`~web.jobs.registry`: :class:`JobRegistry`: uploads, starts, views,
  cancels, downloads and the sweep, from any worker;
- :mod:`~web.jobs.erasure`: privacy deletions and purges reaching the jobs.
"""

from .erasure import ERASED_ERROR, BatchCopies
from .records import (
    ABANDONED_ERROR,
    CANCELLED_ERROR,
    FINAL,
    HEARTBEAT,
    JOB_ID,
    JOBS_FOLDER,
    MAPPING_TTL,
    MAX_KEPT_JOBS,
    MAX_LISTED_BAD_ROWS,
    OPEN,
    SAVE_EVERY,
    SCORE_BIN_WIDTH,
    STALE_AFTER,
    UNFINISHED,
    BadLine,
    JobView,
    PairingTotals,
    Status,
    is_job_id,
    rate_and_eta,
    score_bin,
)
from .registry import JobRegistry
from .runner import Job, JobAbandoned
from .spool import MAX_REF_CHARS, NotStored, StoreBatch

__all__ = [
    "ABANDONED_ERROR",
    "CANCELLED_ERROR",
    "ERASED_ERROR",
    "FINAL",
    "HEARTBEAT",
    "JOBS_FOLDER",
    "JOB_ID",
    "MAPPING_TTL",
    "MAX_KEPT_JOBS",
    "MAX_LISTED_BAD_ROWS",
    "MAX_REF_CHARS",
    "OPEN",
    "SAVE_EVERY",
    "SCORE_BIN_WIDTH",
    "STALE_AFTER",
    "UNFINISHED",
    "BadLine",
    "BatchCopies",
    "Job",
    "JobAbandoned",
    "JobRegistry",
    "JobView",
    "NotStored",
    "PairingTotals",
    "Status",
    "StoreBatch",
    "is_job_id",
    "rate_and_eta",
    "score_bin",
]
