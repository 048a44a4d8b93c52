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
  empties the write-ahead log).
"""

from __future__ import annotations

import logging
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
from ..files import locked

log = logging.getLogger(__name__)

#: How long (ms) a SQLite writer waits for another worker's transaction.
BUSY_TIMEOUT_MS = 15_000
#: How long (ms) each of :meth:`Database.scrub`'s checkpoint attempts waits for readers.
SCRUB_WAIT_MS = 200
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
            Path(database).parent.mkdir(parents=True, exist_ok=True)
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

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    def describe(self) -> str:
        """The URL with any password hidden, for messages."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any error."""
        with self._writer.begin() as session:
            yield session

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
        except OperationalError as exc:
            # The driver's message can run over several lines; its first says what failed.
            reason = str(exc.orig).strip().splitlines()[0]
            raise ConfigError(f"cannot reach database {self.describe()}: {reason}") from None

    def scrub(self, attempts: int = 20) -> ScrubReport:
        """Make deleted rows unrecoverable from the database files.

        SQLite: rows were zeroed in place (``secure_delete``), but older copies
        of their pages sit in the write-ahead log until a checkpoint; a
        ``TRUNCATE`` checkpoint writes the log back and empties it. It waits
        for readers that still see old pages, retrying a while. PostgreSQL:
        ``VACUUM`` frees the deleted row versions for reuse.
        """
        if self.is_sqlite:
            for _ in range(attempts):
                with self.engine.connect() as connection:
                    # The checkpoint waits for readers through the busy handler: with
                    # the full busy timeout, 20 attempts would take five minutes.
                    connection.exec_driver_sql(f"PRAGMA busy_timeout = {SCRUB_WAIT_MS}")
                    try:
                        busy, _log, _done = connection.exec_driver_sql(
                            "PRAGMA wal_checkpoint(TRUNCATE)"
                        ).one()
                    finally:
                        connection.exec_driver_sql(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                if not busy:
                    return ScrubReport(True, "write-ahead log checkpointed and emptied")
                time.sleep(0.1)
            return ScrubReport(
                False, "the write-ahead log is still in use by a reader; run the command again"
            )
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM pairings")
            connection.exec_driver_sql("VACUUM batches")
        return ScrubReport(True, "deleted rows vacuumed")

    def dispose(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


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
