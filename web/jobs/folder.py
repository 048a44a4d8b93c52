"""The jobs folder on disk: where each file of a job is, the lock, atomic writes.

Writes to a record take the exclusive lock and re-read the record first, so
two workers never overwrite each other's change: a record in a final state
(done or failed) is never rewritten except to note its download. The download
takes the pairings by renaming them away under that lock, so of two workers
racing for it exactly one wins (the rename is atomic even where the lock is
not honoured), and the other finds the record marked downloaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from matcher.files import open_private, temporary_path

from .records import (
    LOCK_NAME,
    RECORD_SUFFIX,
    RECORD_VERSION,
    TOTALS_NAME,
    UPLOAD_SUFFIX,
    JobRecord,
    PairingTotals,
    _str,
    is_job_id,
)

log = logging.getLogger(__name__)


class JobFolder:
    """The files of one jobs folder, for :class:`~web.jobs.registry.JobRegistry` to build on.

    Paths are only ever made from checked ids, and every record or totals
    write replaces the file whole, under the folder's lock when it must.
    """

    folder: Path

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

    def run_lock_path(self, job_id: str) -> Path:
        """Locked by the worker matching the job for as long as it may still store it."""
        return self.folder / f".{self._checked(job_id)}.run.lock"

    def job_files(self, job_id: str) -> list[Path]:
        """Every file of a job that may hold shoppers' data (present or not), record aside."""
        job_id = self._checked(job_id)
        return [
            *sorted(self.folder.glob(f"{job_id}.upload.*")),
            self.output_path(job_id),
            self.folder / f".{job_id}.pairings.csv.part",
            self.folder / f".{job_id}.store.jsonl.part",
        ]

    def _make_folder(self) -> None:
        """The folder holds shoppers' files: readable by the server's user only.

        A folder an earlier version made 0755 is narrowed.
        """
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, mode=0o700, exist_ok=True)
        elif self.folder.stat().st_mode & 0o077:
            with contextlib.suppress(PermissionError):
                self.folder.chmod(0o700)

    def save_upload(self, path: Path, upload: Any) -> None:
        """Write an uploaded file (anything with ``save(stream)``, as werkzeug's) as 0600."""
        with open_private(path, "wb") as handle:
            upload.save(handle)

    def paths(self, suffix: str) -> tuple[str, Path, Path]:
        """A fresh job id and the upload and pairing paths that go with it.

        Raises:
            ValueError: ``suffix`` is not a short extension like ``.csv``.
        """
        suffix = suffix.lower()
        if not UPLOAD_SUFFIX.fullmatch(suffix):
            raise ValueError(f"upload suffix {suffix!r} is not an extension like '.csv'")
        self._make_folder()
        job_id = secrets.token_urlsafe(12)
        return job_id, self.folder / f"{job_id}.upload{suffix}", self.output_path(job_id)

    # -- files ----------------------------------------------------------------------------

    @contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        """Hold the folder's lock, shared or exclusive (between threads and workers alike)."""
        self._make_folder()
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
        temporary = temporary_path(path)  # swept at start if a crash leaves it
        try:
            with open_private(temporary, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False, allow_nan=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
