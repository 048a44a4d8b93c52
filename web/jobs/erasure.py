"""Privacy requests reaching the batch files: a deleted shopper leaves no copy in the folder.

A batch's files hold shoppers' data for a while: the upload (references and
texts) while it is matched, the pairings (references) until they are
downloaded or expire. :class:`BatchCopies` is the jobs folder as one of the
places :func:`matcher.store.privacy.delete_shopper` and ``purge_expired`` go
through (registered as the ``matcher.copies`` entry point, so ``matcher
privacy`` reaches it too):

- a batch still matching whose files hold the reference (or one of the
  texts), or whose files cannot be read, is stopped: its record says so, its
  files are deleted, and the deletion waits for its worker to let go, so
  the batch cannot store the shopper after the database was cleared;
- pairings waiting for their download are rewritten without the shopper's rows;
- the purge deletes what is past the registry's time to live, as the sweep does.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from matcher.batch import escape_cell
from matcher.files import atomic_write

from .records import JOBS_FOLDER, UNFINISHED, Status
from .registry import JobRegistry

log = logging.getLogger(__name__)

#: Kept in the record of a batch stopped by a privacy deletion.
ERASED_ERROR = (
    "A shopper's data was deleted while this batch was matched, so it was stopped and nothing "
    "of it was stored; please upload the file again."
)
#: How long a deletion waits for a stopped batch's worker to let go, in seconds.
RUNNER_WAIT = 30.0


def _forms(value: str) -> list[bytes]:
    """The ways ``value`` can be spelt in an upload: as is, CSV-quoted, JSON-escaped."""
    forms = {
        value.encode("utf-8"),
        value.replace('"', '""').encode("utf-8"),
        json.dumps(value, ensure_ascii=False)[1:-1].encode("utf-8"),
        json.dumps(value)[1:-1].encode("utf-8"),
    }
    return sorted(form for form in forms if form)


def _holds(path: Path, needles: Sequence[bytes]) -> bool:
    """Whether the file's bytes contain one of ``needles`` (an unreadable file counts)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return any(needle in data for needle in needles)


class BatchCopies:
    """The jobs folder of a :class:`~web.jobs.registry.JobRegistry` as a privacy copy."""

    name = "batch files"

    def __init__(self, registry: JobRegistry, runner_wait: float = RUNNER_WAIT) -> None:
        self.registry = registry
        self.runner_wait = runner_wait

    def erase(self, shopper_ref: str, texts: Sequence[str]) -> int:
        """Stop the batches holding the shopper, and take them out of waiting pairings.

        Returns:
            Batches stopped plus pairing rows removed.
        """
        registry = self.registry
        needles = [form for value in (shopper_ref, *texts) if value for form in _forms(value)]
        removed = 0
        stopped: list[str] = []
        with registry._locked(exclusive=True):
            for record in registry._records().values():
                if record.status in UNFINISHED:
                    files = [path for path in registry.job_files(record.id) if path.exists()]
                    if files and not any(_holds(path, needles) for path in files):
                        continue
                    registry._write(
                        replace(
                            record, status=Status.FAILED, error=ERASED_ERROR, finished=time.time()
                        )
                    )
                    for path in files:
                        path.unlink(missing_ok=True)
                    stopped.append(record.id)
                elif record.status is Status.DONE and not record.downloaded:
                    removed += self._rewrite(registry.output_path(record.id), shopper_ref)
        for job_id in stopped:
            self._wait_for_runner(job_id)
            log.info("batch %s stopped by a privacy deletion", job_id)
        return removed + len(stopped)

    def expire(self, now: datetime) -> int:
        """What the sweep deletes: files past the time to live, stopped batches' files."""
        return self.registry.sweep(now.timestamp())

    def _rewrite(self, path: Path, shopper_ref: str) -> int:
        """Rewrite a pairings file without the rows of ``shopper_ref``; rows removed."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0
        ids = {shopper_ref, escape_cell(shopper_ref)}
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        removed = 0
        for number, row in enumerate(csv.reader(io.StringIO(text, newline=""))):
            if number > 0 and row and row[0] in ids:
                removed += 1
            else:
                writer.writerow(row)
        if removed:
            atomic_write(path, out.getvalue().encode("utf-8"), private=True)
        return removed

    def _wait_for_runner(self, job_id: str) -> None:
        """Wait until the worker matching ``job_id`` has let go of it (see ``Job.run_lock``)."""
        try:
            fd = os.open(self.registry.run_lock_path(job_id), os.O_RDWR)
        except FileNotFoundError:
            return  # not running here: a queued job stops at its next heartbeat
        try:
            deadline = time.monotonic() + self.runner_wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        log.warning("batch %s: its worker did not let go in time", job_id)
                        return
                    time.sleep(0.05)
        finally:
            os.close(fd)


def for_instance(instance_dir: Path) -> BatchCopies:
    """The ``matcher.copies`` entry point: the instance's planner batch files."""
    return BatchCopies(JobRegistry(Path(instance_dir) / JOBS_FOLDER))
