"""Jobs in the database: their rows, their files as chunks, and the scratch folder.

Every server reads and writes jobs through here, so a job started on one
machine is seen, cancelled and downloaded on another. Changes that race
between machines (a worker saving progress, another failing it as
abandoned, a planner cancelling it, a privacy deletion stopping it) are
single conditional ``UPDATE`` statements (``... WHERE status IN (...)``),
so exactly one of them wins without any lock held across machines.

A file (the upload while its job is open, the pairings until the campaign's
retention ends) is a set of :class:`~matcher.store.schema.BatchJobFileRow`
chunks of :data:`CHUNK_BYTES`, replaced in one transaction. A worker reads
an upload from a private copy in its scratch folder (the instance folder's
``planner-batches``, 0700), deleted when the job ends; what a killed worker
left there is swept when the next one starts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import delete, func, select, update

from matcher.files import open_private
from matcher.store import Database
from matcher.store.schema import BatchJobFileRow, BatchJobRow

from .records import is_job_id

#: The size of a file's chunks in the database.
CHUNK_BYTES = 1 << 20


def moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def seconds(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).timestamp()


def chunks_of(handle: IO[bytes], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    while block := handle.read(size):
        yield block


class JobTable:
    """The jobs of one database, for :class:`~web.jobs.registry.JobRegistry` to build on."""

    db: Database
    scratch: Path

    def new_id(self) -> str:
        return secrets.token_urlsafe(12)

    # -- rows -----------------------------------------------------------------------------

    def _row(self, job_id: str) -> BatchJobRow | None:
        if not is_job_id(job_id):
            return None
        with self.db.read() as session:
            row = session.get(BatchJobRow, job_id)
            if row is not None:
                session.expunge(row)
            return row

    def _rows(self, limit: int | None = None) -> list[BatchJobRow]:
        query = select(BatchJobRow).order_by(BatchJobRow.created_at.desc(), BatchJobRow.id)
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as session:
            rows = list(session.scalars(query))
            session.expunge_all()
        return rows

    def _rows_to_sweep(self, open_statuses: Iterable[str]) -> list[BatchJobRow]:
        """The jobs the sweep may act on: open ones, and finished ones still holding a file.

        Finished jobs without files (most of them, over a campaign) are left
        alone, so a sweep costs what is live, not the whole history.
        """
        holding = select(BatchJobFileRow.job_id).distinct()
        query = select(BatchJobRow).where(
            BatchJobRow.status.in_(list(open_statuses)) | BatchJobRow.id.in_(holding)
        )
        with self.db.read() as session:
            rows = list(session.scalars(query))
            session.expunge_all()
        return rows

    def _insert(self, row: BatchJobRow, upload: Iterable[bytes]) -> None:
        with self.db.write() as session:
            session.add(row)
            session.flush()
            self._put_file(session, row.id, "upload", upload)

    def _update(self, job_id: str, statuses: Iterable[str], **values: Any) -> bool:
        """Set ``values`` on the job if its status is one of ``statuses``; whether it was."""
        with self.db.write() as session:
            result = session.execute(
                update(BatchJobRow)
                .where((BatchJobRow.id == job_id) & BatchJobRow.status.in_(list(statuses)))
                .values(**values)
            )
            return bool(getattr(result, "rowcount", 0))

    # -- files ----------------------------------------------------------------------------

    def _put_file(self, session: Any, job_id: str, kind: str, blocks: Iterable[bytes]) -> int:
        """Replace the job's ``kind`` file with ``blocks`` inside ``session``; bytes written."""
        session.execute(
            delete(BatchJobFileRow).where(
                (BatchJobFileRow.job_id == job_id) & (BatchJobFileRow.kind == kind)
            )
        )
        written = 0
        for seq, block in enumerate(blocks):
            session.add(BatchJobFileRow(job_id=job_id, kind=kind, seq=seq, data=block))
            written += len(block)
            session.flush()  # one chunk in memory at a time
        return written

    def _file_chunks(self, job_id: str, kind: str) -> Iterator[bytes]:
        """The file's chunks in order, each read on its own (large files stay out of memory)."""
        with self.db.read() as session:
            count = session.scalar(
                select(func.count()).where(
                    (BatchJobFileRow.job_id == job_id) & (BatchJobFileRow.kind == kind)
                )
            )
        for seq in range(int(count or 0)):
            with self.db.read() as session:
                data = session.scalar(
                    select(BatchJobFileRow.data).where(
                        (BatchJobFileRow.job_id == job_id)
                        & (BatchJobFileRow.kind == kind)
                        & (BatchJobFileRow.seq == seq)
                    )
                )
            if data is None:
                return  # deleted meanwhile (a privacy deletion, the sweep)
            yield bytes(data)

    def _has_file(self, job_ids: Iterable[str], kind: str) -> set[str]:
        wanted = list(job_ids)
        if not wanted:
            return set()
        with self.db.read() as session:
            return set(
                session.scalars(
                    select(BatchJobFileRow.job_id)
                    .where(BatchJobFileRow.job_id.in_(wanted) & (BatchJobFileRow.kind == kind))
                    .distinct()
                )
            )

    def _delete_files(self, job_id: str, kind: str | None = None) -> int:
        """Delete the job's files (one kind, or all); chunks deleted."""
        where = BatchJobFileRow.job_id == job_id
        if kind is not None:
            where = where & (BatchJobFileRow.kind == kind)
        with self.db.write() as session:
            result = session.execute(delete(BatchJobFileRow).where(where))
            return int(getattr(result, "rowcount", 0) or 0)

    def _copy_out(self, job_id: str, kind: str, path: Path) -> None:
        """Write the job's file to ``path`` (created 0600): a worker reads it there."""
        with open_private(path, "wb") as handle:
            for block in self._file_chunks(job_id, kind):
                handle.write(block)

    # -- the scratch folder ---------------------------------------------------------------

    def _make_scratch(self) -> None:
        """The scratch folder holds shoppers' files: readable by the server's user only."""
        if not self.scratch.is_dir():
            self.scratch.mkdir(parents=True, mode=0o700, exist_ok=True)
        elif self.scratch.stat().st_mode & 0o077:
            with contextlib.suppress(PermissionError):
                self.scratch.chmod(0o700)

    def _scratch_files(self) -> list[Path]:
        try:
            return [self.scratch / name for name in os.listdir(self.scratch)]
        except FileNotFoundError:
            return []
