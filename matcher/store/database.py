"""The database connection: SQLite by default, PostgreSQL by URL.

SQLite is set up for several web workers writing to one file:

- write-ahead logging, so readers never wait for a writer;
- a busy timeout, so a writer waits for the lock instead of failing;
- every write transaction starts with ``BEGIN IMMEDIATE``. A deferred
  transaction that reads first and writes later must upgrade its lock, and
  two of them doing so at once deadlock (one gets ``SQLITE_BUSY`` at once,
  whatever the timeout); taking the write lock up front makes writers queue;
- ``synchronous=FULL``: a commit is on disk before the shopper gets the answer;
- ``secure_delete``: deleted rows are overwritten with zeros, so a deleted
  shopper's text does not linger in free pages (:meth:`Database.scrub` then
  empties the write-ahead log);
- the file is created 0600 before SQLite opens it, so its logs are too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError
from ..files import PRIVATE_MODE, locked

log = logging.getLogger(__name__)

#: How long (ms) a SQLite writer waits for another worker's transaction.
BUSY_TIMEOUT_MS = 15_000
#: How long (ms) each of :meth:`Database.scrub`'s checkpoint attempts waits for readers.
SCRUB_WAIT_MS = 200
#: How long (s) a process keeps retrying a scrub that a reader held up.
SCRUB_RETRY_FOR = 600.0
#: Suffix of the marker file that says a scrub is owed.
SCRUB_PENDING = "-scrub-pending"
#: Distinguishes this project's migration lock among PostgreSQL advisory locks.
MIGRATION_LOCK = 0x6D61746368  # "match"
DATABASE_FILE = "matcher.db"


def default_database_url(instance_dir: str | Path) -> str:
    """The embedded default: a SQLite file in the instance folder."""
    return f"sqlite:///{Path(instance_dir).resolve() / DATABASE_FILE}"


@dataclass(frozen=True)
class ScrubReport:
    """What :meth:`Database.scrub` managed: whether deleted bytes are gone from the files."""

    complete: bool
    detail: str


class Database:
    """An engine and session factory for one database URL.

    Use :meth:`write` for transactions that change data and :meth:`read`
    for reports; call :meth:`migrate` once at start-up.
    """

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        try:
            self.url = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"database URL {str(url)!r} is not a URL: {exc}") from None
        self.backend = self.url.get_backend_name()
        if self.backend not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"database {self.backend!r} is not supported: use sqlite:///FILE or postgresql://…"
            )
        # hide_parameters: SQL logs and database errors never show values (shopper text).
        options: dict[str, Any] = {
            "echo": echo,
            "pool_pre_ping": self.backend != "sqlite",
            "hide_parameters": True,
        }
        if self.is_sqlite:
            database = self.url.database
            if not database or database == ":memory:":
                raise ConfigError("SQLite needs a file (sqlite:///path/matcher.db), not memory")
            _private_database_file(Path(database))
            options["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000}
        elif self.url.drivername == "postgresql":
            # psycopg 3 is the driver this project installs.
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.engine: Engine = create_engine(self.url, **options)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._writer = sessionmaker(
            self.engine.execution_options(matcher_write=True), expire_on_commit=False
        )
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._retry_lock = threading.Lock()
        self._retrying: threading.Thread | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    def describe(self) -> str:
        """The URL with any password hidden, for messages."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any error.

        After the commit, a scrub left unfinished by a reader is tried again
        (:meth:`scrub`), so it completes soon after that reader ends.
        """
        with self._writer.begin() as session:
            yield session
        if self.is_sqlite and self._scrub_marker.exists():
            self._try_owed_scrub()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session:
            yield session

    def migrate(self) -> None:
        """Bring the schema up to date (Alembic ``upgrade head``); safe to run from many workers."""
        from .migrate import upgrade

        try:
            if self.is_sqlite:
                # The first connection to a new file switches it to write-ahead
                # logging, which needs the file to itself: SQLite answers a second
                # process "database is locked" at once, without waiting, when it
                # asks for the same switch meanwhile. Workers take turns here.
                with locked(Path(f"{self.url.database}.migrate-lock")):
                    upgrade(self)
            else:
                upgrade(self)
            if self.is_sqlite and self._scrub_marker.exists():
                self._try_owed_scrub()  # owed by a process that stopped meanwhile
        except OperationalError as exc:
            # The driver's message can run over several lines; its first says what failed.
            reason = str(exc.orig).strip().splitlines()[0]
            raise ConfigError(f"cannot reach database {self.describe()}: {reason}") from None

    @property
    def _scrub_marker(self) -> Path:
        """Present while a scrub is owed: a reader kept the checkpoint from finishing."""
        return Path(f"{self.url.database}{SCRUB_PENDING}")

    def scrub(self, attempts: int = 20) -> ScrubReport:
        """Make deleted rows unrecoverable from the database files.

        SQLite: rows were zeroed in place (``secure_delete``), but older copies
        of their pages sit in the write-ahead log until a checkpoint; a
        ``TRUNCATE`` checkpoint writes the log back and empties it. It waits
        for readers that still see old pages, retrying a while. A checkpoint
        cannot pass a reader, so when one holds on, the scrub says so
        (``complete`` false) and is owed: a marker file beside the database
        (``matcher.db-scrub-pending``, holding nothing) makes every later write
        of any process, and every start, try again until it succeeds; this
        process also retries in the background for :data:`SCRUB_RETRY_FOR`
        seconds. PostgreSQL: ``VACUUM`` frees the deleted row versions for reuse.
        """
        if self.is_sqlite:
            for attempt in range(attempts):
                if self._checkpoint(SCRUB_WAIT_MS):
                    self._scrub_marker.unlink(missing_ok=True)
                    return ScrubReport(True, "write-ahead log checkpointed and emptied")
                if attempt + 1 < attempts:
                    time.sleep(0.1)
            self._scrub_marker.touch()
            self._retry_scrub_in_background()
            return ScrubReport(
                False,
                "the write-ahead log is still in use by a reader, so deleted text may remain in "
                "it; it is emptied as soon as the reader ends (at the next write or start), or "
                "run the command again",
            )
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM pairings")
            connection.exec_driver_sql("VACUUM batches")
        return ScrubReport(True, "deleted rows vacuumed")

    def _checkpoint(self, wait_ms: int) -> bool:
        """One ``TRUNCATE`` checkpoint, waiting ``wait_ms`` for readers: whether it completed."""
        with self.engine.connect() as connection:
            # The checkpoint waits for readers through the busy handler: with the
            # full busy timeout, a scrub's 20 attempts would take five minutes.
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms}")
            try:
                busy, _log, _done = connection.exec_driver_sql(
                    "PRAGMA wal_checkpoint(TRUNCATE)"
                ).one()
            except OperationalError:
                return False  # another checkpoint or a writer held the lock throughout
            finally:
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return not busy

    def _finish_scrub(self, wait_ms: int = 0) -> bool:
        """Try an owed scrub once (by default without waiting): whether none is owed any more."""
        if not self._checkpoint(wait_ms):
            return False
        self._scrub_marker.unlink(missing_ok=True)
        log.info("the owed scrub of %s is done", self.describe())
        return True

    def _try_owed_scrub(self) -> None:
        """:meth:`_finish_scrub` where a failure must not fail the caller (a committed write)."""
        try:
            self._finish_scrub()
        except Exception as exc:
            log.warning("the owed scrub could not be tried: %s", type(exc).__name__)

    def _retry_scrub_in_background(self) -> None:
        def retry() -> None:
            deadline = time.monotonic() + SCRUB_RETRY_FOR
            while time.monotonic() < deadline and self._scrub_marker.exists():
                time.sleep(0.5)
                try:
                    if self._finish_scrub(SCRUB_WAIT_MS):
                        return
                except Exception as exc:  # a disposed engine, a removed file
                    log.warning("retrying the scrub stopped: %s", type(exc).__name__)
                    return

        with self._retry_lock:
            if self._retrying is not None and self._retrying.is_alive():
                return
            self._retrying = threading.Thread(target=retry, name="scrub-retry", daemon=True)
            self._retrying.start()

    def dispose(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


def _private_database_file(path: Path) -> None:
    """Create the SQLite file (and its folder) readable by its owner only, before SQLite does.

    SQLite gives the write-ahead log and shared-memory files the mode of the
    database file, so all three are 0600. Files made by earlier versions
    (0644) are narrowed.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
    except FileExistsError:
        pass
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if name.stat().st_mode & 0o077:
                os.chmod(name, PRIVATE_MODE)
        except (FileNotFoundError, PermissionError):
            continue  # absent, or another user's file: SQLite reports what matters


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN, rather than the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            f"busy_timeout = {BUSY_TIMEOUT_MS}",
            "journal_mode = WAL",
            "synchronous = FULL",
            "foreign_keys = ON",
            "secure_delete = ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("matcher_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
