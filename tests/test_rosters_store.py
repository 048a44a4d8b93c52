"""Published rosters in the database: versions, history, drafts, the shared secret, privacy.

Run on SQLite and, when configured, PostgreSQL (``database`` in conftest.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from matcher.errors import InputError, ProfileError
from matcher.feedback import Correction
from matcher.profiles import load_profiles
from matcher.store import Database, create_campaign, default_campaign_settings
from matcher.store.privacy import delete_shopper, instance_copies, purge_expired
from matcher.store.rosters import (
    RosterCopies,
    content_hash,
    discard_draft,
    draft,
    history,
    import_folder,
    publish,
    publish_draft,
    published,
    published_stamp,
    save_draft,
    version,
)
from matcher.store.secret import instance_secret

from .conftest import SAMPLE_PROFILES
from .processes import run_together

SHOPPER = "I restore old sailing boats every Sunday with my grandfather in Xiamen."


@pytest.fixture
def campaign_id(database: Database, roster_dir: Path) -> int:
    return create_campaign(database, default_campaign_settings(str(roster_dir))).id


def test_nothing_is_published_before_the_first_publish(
    database: Database, campaign_id: int
) -> None:
    assert published(database, campaign_id) is None
    assert published_stamp(database, campaign_id) is None
    assert history(database, campaign_id) == []


def test_publish_makes_numbered_versions_and_the_newest_is_served(
    database: Database, campaign_id: int, roster_dir: Path
) -> None:
    roster = load_profiles(roster_dir)
    first = publish(database, campaign_id, roster.profiles, author="ana", note="launch")
    assert (first.number, first.author, first.note) == (1, "ana", "launch")
    assert first.profiles == roster.profiles
    assert first.changes["added"] == [p.id for p in roster.profiles]
    fewer = [p for p in roster.profiles if p.id != roster.profiles[-1].id]
    second = publish(database, campaign_id, fewer, author="bo")
    assert second.number == 2
    assert second.changes["removed"] == [roster.profiles[-1].id]
    assert second.changes["added"] == []
    served = published(database, campaign_id)
    assert served is not None and served.number == 2 and served.profiles == tuple(fewer)
    assert published_stamp(database, campaign_id) == (2, second.content_hash)
    assert [v.number for v in history(database, campaign_id)] == [2, 1]
    old = version(database, campaign_id, 1)
    assert old is not None and old.profiles == roster.profiles
    assert version(database, campaign_id, 3) is None
    assert first.content_hash != second.content_hash
    now = datetime.now(UTC)
    assert now - timedelta(minutes=5) < second.published_at <= now


def test_the_content_hash_covers_profiles_and_corrections(
    database: Database, campaign_id: int, roster_dir: Path
) -> None:
    roster = load_profiles(roster_dir)
    target = roster.profiles[0].id
    plain = publish(database, campaign_id, roster.profiles, author="ana")
    again = publish(database, campaign_id, roster.profiles, author="ana")
    assert again.content_hash == plain.content_hash, "the same roster, the same hash"
    corrected = publish(
        database,
        campaign_id,
        roster.profiles,
        corrections=[Correction("tea and essays", target, None, "2026-12-01T00:00:00+00:00")],
        author="ana",
    )
    assert corrected.content_hash != plain.content_hash
    assert corrected.changes["corrections_added"] == 1
    kept = publish(database, campaign_id, roster.profiles, author="ana")
    assert kept.corrections == corrected.corrections, "corrections=None keeps the served ones"
    emptied = publish(database, campaign_id, roster.profiles, corrections=(), author="ana")
    assert emptied.corrections == () and emptied.content_hash == plain.content_hash


def test_a_profile_edit_and_a_deactivation_are_named_in_the_changes(
    database: Database, campaign_id: int, roster_dir: Path
) -> None:
    roster = load_profiles(roster_dir)
    publish(database, campaign_id, roster.profiles, author="ana")
    first, second, *rest = roster.profiles
    edited = first.model_copy(update={"tagline": "A new line."})
    off = second.model_copy(update={"active": False})
    changed = publish(database, campaign_id, [edited, off, *rest], author="ana")
    assert changed.changes["edited"] == [first.id]
    assert changed.changes["deactivated"] == [second.id]
    assert changed.active_ids == (first.id, *(p.id for p in rest))


@pytest.mark.parametrize(
    "profiles, expected",
    [
        pytest.param([{"id": "Bad Id", "name": "x"}], "profile 1: id", id="bad-fields"),
        pytest.param("duplicate", "the same id as another profile", id="duplicate-ids"),
        pytest.param("inactive", "no profile is active", id="none-active"),
        pytest.param([], "no profiles", id="empty"),
    ],
)
def test_an_invalid_roster_is_refused_and_nothing_is_published(
    database: Database, campaign_id: int, roster_dir: Path, profiles: object, expected: str
) -> None:
    roster = load_profiles(roster_dir)
    if profiles == "duplicate":
        profiles = [roster.profiles[0], roster.profiles[0]]
    elif profiles == "inactive":
        profiles = [p.model_copy(update={"active": False}) for p in roster.profiles]
    with pytest.raises(ProfileError) as raised:
        publish(database, campaign_id, profiles, author="ana")  # type: ignore[arg-type]
    assert expected in str(raised.value)
    assert published(database, campaign_id) is None


def test_a_correction_must_name_a_celebrity_of_the_roster(
    database: Database, campaign_id: int, roster_dir: Path
) -> None:
    roster = load_profiles(roster_dir)
    with pytest.raises(ProfileError, match="corrections:1: right"):
        publish(
            database,
            campaign_id,
            roster.profiles,
            corrections=[{"text": "tea", "right": "nobody"}],
            author="ana",
        )


def test_publishing_for_an_unknown_campaign_is_refused(
    database: Database, roster_dir: Path
) -> None:
    with pytest.raises(InputError, match="no campaign"):
        publish(database, 999, load_profiles(roster_dir).profiles, author="ana")


def test_a_folder_is_imported_once_with_its_corrections(
    database: Database, campaign_id: int, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "sample"
    shutil.copytree(SAMPLE_PROFILES, folder, ignore=shutil.ignore_patterns(".index"))
    (folder / "corrections.jsonl").write_text(
        '{"text": "tea and essays", "right": "chen-an", "created": "2026-12-01T00:00:00+00:00"}\n'
    )
    first = import_folder(database, campaign_id, folder, only_if_none=True)
    assert first is not None and first.number == 1 and first.author == "import"
    assert [c.right for c in first.corrections] == ["chen-an"]
    assert len(first.profiles) == len(load_profiles(SAMPLE_PROFILES))
    assert import_folder(database, campaign_id, folder, only_if_none=True) is None
    assert import_folder(database, campaign_id, folder) is None, "unchanged: nothing new"
    (folder / "corrections.jsonl").unlink()
    again = import_folder(database, campaign_id, folder)
    assert again is not None and again.number == 2 and again.corrections == ()


def _import(url: str, campaign_id: int) -> None:  # pragma: no cover - child process
    db = Database(url)
    try:
        import_folder(db, campaign_id, SAMPLE_PROFILES, only_if_none=True)
    finally:
        db.dispose()


def _publish(url: str, campaign_id: int, n: int) -> None:  # pragma: no cover - child process
    db = Database(url)
    try:
        publish(db, campaign_id, load_profiles(SAMPLE_PROFILES).profiles, author=f"p{n}")
    finally:
        db.dispose()


def test_workers_starting_together_import_once_and_racing_publishes_all_land(
    database: Database, database_url: str, campaign_id: int
) -> None:
    outcomes = run_together(_import, [(database_url, campaign_id)] * 3)
    assert outcomes == {0: "ok", 1: "ok", 2: "ok"}, outcomes
    assert [v.number for v in history(database, campaign_id)] == [1]
    outcomes = run_together(_publish, [(database_url, campaign_id, n) for n in range(3)])
    assert outcomes == {0: "ok", 1: "ok", 2: "ok"}, outcomes
    versions = history(database, campaign_id)
    assert [v.number for v in versions] == [4, 3, 2, 1]
    assert sorted(v.author for v in versions[:3]) == ["p0", "p1", "p2"]


def test_a_draft_is_kept_published_and_discarded(
    database: Database, campaign_id: int, roster_dir: Path
) -> None:
    roster = load_profiles(roster_dir)
    base = publish(database, campaign_id, roster.profiles, author="ana")
    assert draft(database, campaign_id) is None
    edited = [roster.profiles[0].model_copy(update={"tagline": "Edited."}), *roster.profiles[1:]]
    save_draft(database, campaign_id, edited, author="ana", base_number=base.number)
    kept = draft(database, campaign_id)
    assert kept is not None and kept.profiles == tuple(edited) and kept.base_number == 1
    assert published(database, campaign_id) == base, "a draft is not served"
    new = publish_draft(database, campaign_id, author="ana", note="tagline")
    assert new.number == 2 and new.changes["edited"] == [roster.profiles[0].id]
    assert draft(database, campaign_id) is None
    with pytest.raises(InputError, match="no draft"):
        publish_draft(database, campaign_id, author="ana")
    save_draft(database, campaign_id, edited, author="ana", base_number=2)
    discard_draft(database, campaign_id)
    assert draft(database, campaign_id) is None


def test_every_worker_gets_one_secret_per_database(database: Database, tmp_path: Path) -> None:
    first = instance_secret(database)
    assert len(first) == 64
    assert instance_secret(database) == first
    assert instance_secret(database, seed=lambda: "another") == first, "made once"
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    other.migrate()
    try:
        assert instance_secret(other, seed=lambda: "from-the-old-file") == "from-the-old-file"
    finally:
        other.dispose()


def test_a_privacy_delete_and_the_purge_reach_every_roster_version(
    database: Database, campaign_id: int, roster_dir: Path, tmp_path: Path
) -> None:
    roster = load_profiles(roster_dir)
    target = roster.profiles[0].id
    now = datetime.now(UTC)
    old = (now - timedelta(days=400)).isoformat(timespec="seconds")
    fresh = now.isoformat(timespec="seconds")
    quoted = Correction(SHOPPER, target, None, fresh)
    expired = Correction("An old test text about tea.", target, None, old)
    test_text = Correction("A planner's own test text.", target, None, fresh)
    publish(database, campaign_id, roster.profiles, corrections=[quoted], author="ana")
    served = publish(
        database, campaign_id, roster.profiles, corrections=[quoted, expired, test_text], author="a"
    )
    copies = instance_copies(database, tmp_path / "instance")
    assert any(isinstance(copy, RosterCopies) for copy in copies)

    deleted = delete_shopper(database, "ref-1", texts=["sailing boats every Sunday"], copies=copies)
    assert deleted.copies["published rosters"] == 2, "both versions held the text"
    for stored in history(database, campaign_id):
        assert all(SHOPPER not in c.text for c in stored.corrections)
    now_served = published(database, campaign_id)
    assert now_served is not None and now_served.number == served.number
    assert now_served.corrections == (expired, test_text)
    assert now_served.content_hash == content_hash(roster.profiles, [expired, test_text])
    assert published_stamp(database, campaign_id) == (served.number, now_served.content_hash)

    purged = purge_expired(database, copies=copies)
    assert purged.copies["published rosters"] == 1
    after = published(database, campaign_id)
    assert after is not None and after.corrections == (test_text,)


def test_the_cli_publishes_a_folder_and_lists_the_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import shutil

    from click.testing import CliRunner

    from matcher.cli import cli

    monkeypatch.setenv("MATCHER_INSTANCE_DIR", str(tmp_path / "instance"))
    url = f"sqlite:///{tmp_path / 'matcher.db'}"
    folder = tmp_path / "sample"
    shutil.copytree(SAMPLE_PROFILES, folder, ignore=shutil.ignore_patterns(".index"))
    runner = CliRunner()
    publish_cli = ["roster", "publish", "--database", url, "--profiles", str(folder)]
    first = runner.invoke(cli, [*publish_cli, "--author", "ana", "--note", "launch"])
    assert first.exit_code == 0, first.output
    assert f"default: version 1 published from {folder}" in first.output
    again = runner.invoke(cli, publish_cli)
    assert again.exit_code == 0 and "nothing published" in again.output
    path = folder / "xu-mo.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("active: true", "active: false"))
    second = runner.invoke(cli, [*publish_cli, "--author", "bo"])
    assert second.exit_code == 0 and "version 2 published" in second.output
    listed = runner.invoke(cli, ["roster", "history", "--database", url])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["2", "1"]
    assert "bo" in lines[0] and "6/7 active" in lines[0] and "deactivated xu-mo" in lines[0]
    assert lines[1].endswith("\tlaunch")
    as_json = runner.invoke(cli, ["roster", "history", "--database", url, "--json"])
    records = [json.loads(line) for line in as_json.output.splitlines()]
    assert records[0]["changes"]["deactivated"] == ["xu-mo"] and records[1]["author"] == "ana"

    (folder / "broken.yaml").write_text("id: Not An Id\n", encoding="utf-8")
    broken = runner.invoke(cli, publish_cli)
    assert broken.exit_code == 1
    assert "broken.yaml" in broken.output and "Traceback" not in broken.output
    listed = runner.invoke(cli, ["roster", "history", "--database", url])
    assert len(listed.output.splitlines()) == 2, "nothing was published"
