"""Shared fixtures: a tiny roster on disk, a fake and the real encoder, CLI runner, app."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from matcher.encoders import DEFAULT_MODEL, Encoder, load_encoder
from matcher.index import build_index
from matcher.matching import Matcher, load_matcher
from matcher.profiles import load_profiles
from matcher.store import Database

from .fakes import HashingEncoder

os.environ["HF_HUB_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PROFILES = REPO / "profiles"

TINY_ROSTER = {
    "ocean.yaml": """\
        id: ocean
        name: Ocean Star
        name_zh: 海星
        tagline: Salt and waves.
        facets:
          style: surf shorts, sandals and sun hats
          lifestyle: sailing surfing swimming at the beach every morning
          scent: sea salt and driftwood
        tags: [sea, sport]
        """,
    "library.yaml": """\
        id: library
        name: Quiet Reader
        name_zh: 静读
        tagline: Pages and tea.
        facets:
          style: wool cardigans and round glasses
          lifestyle: reading novels in a library with green tea
          scent: old paper and tea leaves
        tags: [books]
        """,
    "stage.yaml": """\
        id: stage
        name: Stage Light
        name_zh: 舞台
        tagline: Dance all night.
        facets:
          style: sequins and neon sneakers
          lifestyle: dancing at concerts and karaoke with friends
          scent: candy berries and sparkling citrus
        tags: [party]
        """,
}


def write_roster(folder: Path, files: dict[str, str] | None = None) -> Path:
    """Write profile files (dedented) into ``folder`` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in (files or TINY_ROSTER).items():
        (folder / name).write_text(textwrap.dedent(body), encoding="utf-8")
    return folder


@pytest.fixture
def roster_dir(tmp_path: Path) -> Path:
    """A three-celebrity roster in a temporary folder."""
    return write_roster(tmp_path / "profiles")


@pytest.fixture
def fake_encoder() -> HashingEncoder:
    return HashingEncoder()


@pytest.fixture
def fake_matcher(roster_dir: Path, fake_encoder: HashingEncoder) -> Matcher:
    index, _ = build_index(load_profiles(roster_dir), fake_encoder)
    return Matcher(fake_encoder, index)


@pytest.fixture(scope="session")
def real_encoder() -> Encoder:
    """The default encoder (the packaged multilingual Universal Sentence Encoder), loaded once."""
    return load_encoder(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def sample_matcher(real_encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Matcher:
    """The real model and real FAISS on the shipped sample roster."""
    matcher, _ = load_matcher(
        SAMPLE_PROFILES, encoder=real_encoder, index_dir=tmp_path_factory.mktemp("index")
    )
    return matcher


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# -- databases ------------------------------------------------------------------------
#
# Database tests run on SQLite and, when MATCHER_TEST_POSTGRES_URL names a server
# (scripts/test starts one), on PostgreSQL too: each test in a schema of its own.

POSTGRES_URL = os.environ.get("MATCHER_TEST_POSTGRES_URL")
DATABASES = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]


def pytest_report_header() -> str:
    if POSTGRES_URL:
        return "databases: SQLite and PostgreSQL"
    return "databases: SQLite only (set MATCHER_TEST_POSTGRES_URL, as scripts/test does)"


def postgres_schema_url(base: str, schema: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(base)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'matcher.db'}"
        return
    import secrets

    from sqlalchemy import create_engine

    assert POSTGRES_URL is not None
    schema = f"test_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield postgres_schema_url(POSTGRES_URL, schema)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database (see ``database_url``)."""
    db = Database(database_url)
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests of what only SQLite has (pragmas, its files): no PostgreSQL twin."""
    return f"sqlite:///{tmp_path / 'matcher.db'}"


@pytest.fixture
def sqlite_database(sqlite_url: str) -> Iterator[Database]:
    db = Database(sqlite_url)
    db.migrate()
    yield db
    db.dispose()


# -- web apps ----------------------------------------------------------------------------

PLANNER_PASSWORD = "s3cret"
#: Apps made by the running test, whose database connections close when it ends.
_apps: list[Any] = []


@pytest.fixture(autouse=True)
def close_databases() -> Iterator[None]:
    yield
    while _apps:
        _apps.pop().extensions["matcher.db"].dispose()


def make_app(tmp_path: Path, matcher: Matcher, **config: Any) -> Flask:
    """The web app on ``matcher``, with a planner account and a copy of the sample roster.

    ``config`` overrides any setting, e.g. ``MATCHER_DATABASE_URL``. Rosters of
    new campaigns must lie inside ``tmp_path``; the instance folder is ``tmp_path/instance``.
    """
    import shutil

    from web import create_app

    profiles = tmp_path / "profiles"
    if not profiles.exists():
        shutil.copytree(SAMPLE_PROFILES, profiles)
    settings = {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "MATCHER_PROFILES": str(profiles),
        "MATCHER_INDEX_DIR": None,
        "MATCHER_PLANNER_USER": "planner",
        "MATCHER_PLANNER_PASSWORD": PLANNER_PASSWORD,
        "MATCHER_EMBED_ORIGINS": None,
        "MATCHER_ROSTERS_DIR": str(tmp_path),
    }
    settings.update(config)
    app = create_app(settings, matcher=matcher)
    _apps.append(app)
    return app


@pytest.fixture
def app(tmp_path: Path, sample_matcher: Matcher) -> Flask:
    """The app on the real model and the sample roster, with a SQLite database."""
    return make_app(tmp_path, sample_matcher)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def db_app(tmp_path: Path, sample_matcher: Matcher, database_url: str) -> Flask:
    """The app on each test database (SQLite, and PostgreSQL when configured)."""
    return make_app(tmp_path, sample_matcher, MATCHER_DATABASE_URL=database_url)


@pytest.fixture
def db(db_app: Flask) -> Database:
    """The database of ``db_app``."""
    database: Database = db_app.extensions["matcher.db"]
    return database
