"""Privacy deletes reach every copy: after delete or purge, no byte of a shopper's text or
reference is left anywhere under the instance folder, the roster folder or the temporary
folder, for every path a text takes (form, embed, API, upload, try box, correction), on
SQLite and PostgreSQL (whose tables are queried too).

Each test writes a unique marker through one path, checks that it *is* kept where that
path keeps it (so the check can fail), deletes or purges, and reads every byte again.
"""

from __future__ import annotations

import stat
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text, update

from matcher.matching import Matcher
from matcher.store import Database
from matcher.store.privacy import instance_copies, purge_expired
from matcher.store.schema import PairingRow
from web.jobs import Status

from .planner.conftest import job_id_of, login, make_app, post, upload, wait_for
from .test_web import post_form

PATHS = ["form", "embed", "api", "upload", "try-box", "correction"]


@pytest.fixture
def temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The process's temporary folder, moved under the test's, so it is searched too."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def site(
    tmp_path: Path, sample_matcher: Matcher, database_url: str, temporary_folder: Path
) -> Iterator[Flask]:
    yield make_app(tmp_path, sample_matcher, MATCHER_DATABASE_URL=database_url)


@pytest.fixture
def planner(site: Flask) -> FlaskClient:
    client = site.test_client()
    assert login(client).status_code == 303
    return client


def db_of(app: Flask) -> Database:
    database: Database = app.extensions["matcher.db"]
    return database


def bytes_holding(root: Path, needles: list[bytes]) -> dict[str, int]:
    """Every file under ``root`` holding one of ``needles``, with how many bytes of them."""
    found: dict[str, int] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            count = sum(data.count(needle) * len(needle) for needle in needles)
            if count:
                found[str(path.relative_to(root))] = count
    return found


def rows_holding(database: Database, needles: list[str]) -> dict[str, int]:
    """PostgreSQL: every table's rows, as text, searched for ``needles`` (bytes found)."""
    if database.is_sqlite:
        return {}
    found: dict[str, int] = {}
    with database.engine.connect() as connection:
        tables = connection.execute(
            text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        ).scalars()
        for table in list(tables):
            for (row,) in connection.execute(text(f'SELECT t::text FROM "{table}" t')):
                count = sum(row.count(n) * len(n.encode()) for n in needles)
                if count:
                    found[table] = found.get(table, 0) + count
    return found


def leftovers(app: Flask, tmp_path: Path, marker: str, ref: str) -> dict[str, int]:
    """Bytes of the marker text or the reference left in files (and PostgreSQL tables)."""
    needles = [marker, ref, marker.split()[-1]]
    held = bytes_holding(tmp_path, [n.encode("utf-8") for n in needles])
    held.update({f"table {k}": v for k, v in rows_holding(db_of(app), needles).items()})
    return held


def send(app: Flask, planner: FlaskClient, path: str, marker: str, ref: str) -> None:
    """The marker text (and reference) through one path, as a shopper or planner would."""
    client = app.test_client()
    if path == "form":
        status, _ = post_form(client, f"/?ref={ref}", text=marker, consent="yes")
        assert status == 200
    elif path == "embed":
        status, _ = post_form(client, f"/embed?ref={ref}", text=marker, consent="yes")
        assert status == 200
    elif path == "api":
        body = {"text": marker, "consent": True, "shopper_ref": ref}
        assert client.post("/api/v1/match", json=body).status_code == 200
    elif path == "upload":
        csv_body = f"id,text\n{ref},{marker}\nother-1,tea and novels on a rainy afternoon\n"
        job_id = job_id_of(upload(planner, "shoppers.csv", csv_body))
        assert wait_for(app, job_id).status is Status.DONE
    elif path == "try-box":
        assert post(planner, "/planner/try", {"text": marker}).status_code == 200
    elif path == "correction":
        # A shopper's own text, kept with consent, then filed from the try box as a correction.
        status, _ = post_form(client, f"/?ref={ref}", text=marker, consent="yes")
        assert status == 200
        fields = {"text": marker, "right": "chen-an", "wrong": "lin-yue", "confirm": "yes"}
        assert post(planner, "/planner/corrections", fields).status_code == 200


def age_everything(app: Flask, tmp_path: Path, days: int) -> datetime:
    """Move every pairing and file ``days`` into the past; returns the purge's 'now'."""
    with db_of(app).write() as session:
        session.execute(
            update(PairingRow).values(created_at=datetime.now(UTC) - timedelta(days=days))
        )
    return datetime.now(UTC) + timedelta(days=days)


@pytest.mark.parametrize("remove", ["delete", "purge"])
@pytest.mark.parametrize("path", PATHS)
def test_no_byte_of_a_shopper_is_left_after_delete_or_purge(
    site: Flask, planner: FlaskClient, tmp_path: Path, path: str, remove: str
) -> None:
    marker = f"zq{uuid.uuid4().hex} weekend hikes and 薰衣草{uuid.uuid4().hex[:8]}"
    ref = f"crm-{uuid.uuid4().hex}"
    send(site, planner, path, marker, ref)
    before = leftovers(site, tmp_path, marker, ref)
    if path == "try-box":
        assert before == {}  # tried, never kept
    else:
        assert before, f"the {path} path keeps the shopper somewhere"  # the check can fail
    if remove == "delete":
        response = post(planner, "/planner/privacy", {"action": "confirm-delete", "ref": ref})
        assert response.status_code == 200, response.get_data(as_text=True)
        assert "may still be in the database files" not in response.get_data(as_text=True)
    else:
        now = age_everything(site, tmp_path, 400)
        database = db_of(site)
        purged = purge_expired(database, now, copies=instance_copies(database, site.instance_path))
        assert purged.scrub is None or purged.scrub.complete
    db_of(site).dispose()  # whatever the pool held, the files must be clean without it
    after = leftovers(site, tmp_path, marker, ref)
    backend = "sqlite" if db_of(site).is_sqlite else "postgresql"
    print(
        f"privacy bytes: {backend} {path} {remove}: {sum(before.values())} bytes of the marker "
        f"before in {len(before)} place(s), {sum(after.values())} after"
    )
    assert after == {}


def test_files_holding_shoppers_are_private(
    site: Flask, planner: FlaskClient, tmp_path: Path
) -> None:
    """The database, its logs, batch files and corrections are readable by their owner only."""
    marker = f"zq{uuid.uuid4().hex} silk scarves"
    send(site, planner, "correction", marker, "crm-mode-1")
    send(site, planner, "upload", f"{marker} again", "crm-mode-2")
    holding = [tmp_path / name for name in bytes_holding(tmp_path, [b"crm-mode-", marker.encode()])]
    instance = Path(site.instance_path)
    holding += [p for p in instance.glob("matcher.db*") if not p.name.endswith("lock")]
    if db_of(site).is_sqlite:
        assert holding, "the SQLite file holds the correction and the upload"
    else:
        # On PostgreSQL the roster versions and the stored jobs are in the
        # database: no file of this machine holds what the shopper wrote.
        assert holding == []
    wide = {
        str(path.relative_to(tmp_path)): oct(path.stat().st_mode & 0o777)
        for path in holding
        if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077
    }
    assert wide == {}
