"""Every worker, on every machine, serves the published roster: a publish by one reaches all.

Two "machines" here are two apps with their own instance folders (their own
index caches) on one database; each loads its own matcher as a server does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import Flask

from matcher.feedback import Correction
from matcher.index import MANIFEST
from matcher.matching import Matcher
from matcher.store import find_campaign
from matcher.store.privacy import delete_shopper, instance_copies
from matcher.store.rosters import publish, published
from web import create_app, roster
from web.campaigns import database

from .conftest import SAMPLE_PROFILES

TEXT = "Sunday mornings I restore old furniture and listen to vinyl."


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One index folder for the roster folder: it is keyed by content, so sharing it is safe."""
    return tmp_path_factory.mktemp("index")


def machine(tmp_path: Path, name: str, index_dir: Path, database_url: str) -> Flask:
    """An app that loaded its own matcher, as a server on its own machine does."""
    folder = tmp_path / "profiles"
    if not folder.exists():
        shutil.copytree(SAMPLE_PROFILES, folder, ignore=shutil.ignore_patterns(".index"))
    return create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / name),
            "MATCHER_PROFILES": str(folder),
            "MATCHER_INDEX_DIR": str(index_dir),
            "MATCHER_DATABASE_URL": database_url,
        }
    )


@pytest.fixture
def machines(
    tmp_path: Path, index_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> list[Flask]:
    monkeypatch.setattr(roster, "CHECK_INTERVAL", 0.0)
    apps = [machine(tmp_path, name, index_dir, database_url) for name in ("one", "two")]
    yield apps  # type: ignore[misc]
    for app in apps:
        database(app).dispose()


def ranked(app: Flask, text: str = TEXT) -> list[str]:
    response = app.test_client().post("/api/v1/match", json={"text": text, "top_k": 7})
    assert response.status_code == 200, response.get_data(as_text=True)
    return [m["celebrity_id"] for m in response.get_json()["matches"]]


def campaign_id(app: Flask) -> int:
    campaign = find_campaign(database(app), "default")
    assert campaign is not None
    return campaign.id


def test_both_machines_start_on_one_imported_version(machines: list[Flask]) -> None:
    one, two = machines
    version = published(database(one), campaign_id(one))
    assert version is not None and version.number == 1 and version.author == "import"
    assert ranked(one) == ranked(two)
    for app in machines:
        cached = Path(app.instance_path) / roster.INDEX_CACHE
        folders = [p.name for p in cached.iterdir() if p.is_dir()]
        assert folders == [
            roster.cache_name(version.content_hash, app.extensions["matcher"].encoder.model_id)
        ]
        assert (cached / folders[0] / MANIFEST).is_file()


def test_a_publish_on_one_machine_is_served_by_the_other(machines: list[Flask]) -> None:
    one, two = machines
    before = ranked(two)
    version = published(database(one), campaign_id(one))
    assert version is not None
    # Deactivate the best fit through the first machine's database.
    profiles = [
        p.model_copy(update={"active": False}) if p.id == before[0] else p for p in version.profiles
    ]
    loaded = two.extensions["matcher"]
    publish(database(one), campaign_id(one), profiles, author="ana", note="off")
    after = ranked(two)
    assert before[0] not in after and after == before[1:]
    assert two.extensions["matcher"] is not loaded
    assert two.extensions["matcher"].encoder is loaded.encoder
    assert ranked(one) == after


def test_a_correction_published_elsewhere_reaches_this_worker(machines: list[Flask]) -> None:
    one, two = machines
    before = ranked(two)
    target = before[-1]
    version = published(database(one), campaign_id(one))
    assert version is not None
    correction = Correction(TEXT, target, before[0], "2026-12-01T00:00:00+00:00")
    publish(database(one), campaign_id(one), version.profiles, corrections=[correction], author="a")
    assert ranked(two)[0] == target


def test_a_privacy_delete_reloads_the_rewritten_version(machines: list[Flask]) -> None:
    one, two = machines
    before = ranked(two)
    target = before[-1]
    version = published(database(one), campaign_id(one))
    assert version is not None
    correction = Correction(TEXT, target, None, "2026-12-01T00:00:00+00:00")
    publish(database(one), campaign_id(one), version.profiles, corrections=[correction], author="a")
    assert ranked(two)[0] == target
    copies = instance_copies(database(one), one.instance_path)
    deleted = delete_shopper(database(one), "ref", texts=[TEXT], copies=copies)
    assert deleted.copies["published rosters"] == 1
    assert ranked(two) == before, "the served version lost the correction, and its vector"


def test_an_unchanged_roster_is_not_reloaded(machines: list[Flask]) -> None:
    _, two = machines
    loaded = two.extensions["matcher"]
    ranked(two)
    ranked(two)
    assert two.extensions["matcher"] is loaded


def test_a_machine_that_starts_later_serves_the_same_version(
    machines: list[Flask], tmp_path: Path, index_dir: Path, database_url: str
) -> None:
    one, _ = machines
    version = published(database(one), campaign_id(one))
    assert version is not None
    profiles = [p.model_copy(update={"active": p.id != "xu-mo"}) for p in version.profiles]
    publish(database(one), campaign_id(one), profiles, author="ana")
    late = machine(tmp_path, "late", index_dir, database_url)
    try:
        assert "xu-mo" not in late.extensions["matcher"].index.celebrity_ids
        assert ranked(late) == ranked(one)
        assert published(database(late), campaign_id(late)).number == 2  # type: ignore[union-attr]
    finally:
        database(late).dispose()


def test_a_corrupt_cached_index_is_rebuilt_never_served(
    machines: list[Flask], sample_matcher: Matcher
) -> None:
    one, _ = machines
    version = published(database(one), campaign_id(one))
    assert version is not None
    root = Path(one.instance_path) / roster.INDEX_CACHE
    folder = root / roster.cache_name(version.content_hash, sample_matcher.encoder.model_id)
    vectors = next(folder.glob("facets-*.faiss"))
    vectors.write_bytes(b"not an index")
    index = roster.version_index(version, sample_matcher.encoder, root)
    assert index.celebrity_ids == sample_matcher.index.celebrity_ids
    assert next(folder.glob("facets-*.faiss")).read_bytes() != b"not an index"
    left = [p.name for p in root.iterdir() if p.name.startswith((".building-", ".stale-"))]
    assert left == [], "no build left behind"


def test_a_server_started_on_another_folder_publishes_it(
    machines: list[Flask], tmp_path: Path, database_url: str
) -> None:
    one, _ = machines
    other = tmp_path / "other-profiles"
    shutil.copytree(SAMPLE_PROFILES, other, ignore=shutil.ignore_patterns(".index"))
    path = other / "xu-mo.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("active: true", "active: false"))
    moved = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "moved"),
            "MATCHER_PROFILES": str(other),
            "MATCHER_INDEX_DIR": str(tmp_path / "moved-index"),
            "MATCHER_DATABASE_URL": database_url,
        }
    )
    try:
        version = published(database(moved), campaign_id(moved))
        assert version is not None and version.number == 2 and version.author == "import"
        assert version.changes["deactivated"] == ["xu-mo"]
        assert "xu-mo" not in ranked(moved) and "xu-mo" not in ranked(one)
    finally:
        database(moved).dispose()
