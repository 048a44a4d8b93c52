"""Every worker follows the roster folder: a correction filed by one shows up in all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import Flask

from matcher.feedback import add_correction
from matcher.matching import Matcher
from web import create_app, roster

from .conftest import SAMPLE_PROFILES

TEXT = "Sunday mornings I restore old furniture and listen to vinyl."


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One index folder for these tests: it is keyed by content, so sharing it is safe."""
    return tmp_path_factory.mktemp("index")


@pytest.fixture
def worker(
    tmp_path: Path,
    index_dir: Path,
    sample_matcher: Matcher,
    monkeypatch: pytest.MonkeyPatch,
) -> Flask:
    """An app that loaded its own matcher from a roster folder, as a gunicorn worker does."""
    folder = tmp_path / "profiles"
    shutil.copytree(SAMPLE_PROFILES, folder, ignore=shutil.ignore_patterns(".index"))
    monkeypatch.setattr(roster, "CHECK_INTERVAL", 0.0)
    return create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "MATCHER_PROFILES": str(folder),
            "MATCHER_INDEX_DIR": str(index_dir),
        }
    )


def best(app: Flask) -> str:
    response = app.test_client().post("/api/v1/match", json={"text": TEXT, "top_k": 7})
    assert response.status_code == 200
    return str(response.get_json()["matches"][0]["celebrity_id"])


def test_a_correction_filed_elsewhere_reaches_this_worker(worker: Flask) -> None:
    before = best(worker)
    target = next(p.id for p in worker.extensions["matcher"].index.profiles if p.id != before)
    folder = worker.config["MATCHER_PROFILES"]
    # Another worker (or the CLI) files the correction straight into the folder.
    add_correction(
        folder, TEXT, target, [p.id for p in worker.extensions["matcher"].index.profiles]
    )
    assert best(worker) == target


def test_a_broken_edit_keeps_the_previous_roster_serving(worker: Flask) -> None:
    before = best(worker)
    loaded = worker.extensions["matcher"]
    Path(worker.config["MATCHER_PROFILES"], "zz-broken.yaml").write_text(
        "id: [\n", encoding="utf-8"
    )
    assert best(worker) == before
    assert worker.extensions["matcher"] is loaded


def test_an_unchanged_folder_is_not_reloaded(worker: Flask) -> None:
    loaded = worker.extensions["matcher"]
    best(worker)
    best(worker)
    assert worker.extensions["matcher"] is loaded
