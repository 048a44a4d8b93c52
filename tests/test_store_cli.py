"""The database commands: ``db``, ``campaign``, ``privacy`` and ``pairings``."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from matcher.cli import cli
from matcher.matching import Matcher
from matcher.store import Database, get_campaign, list_campaigns

from .conftest import write_roster
from .test_store import TEXTS, make_campaign, record, rows, set_created, utc


@pytest.fixture(autouse=True)
def rosters_inside_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Campaign rosters must be inside MATCHER_ROSTERS_DIR; the tests make theirs in tmp_path."""
    monkeypatch.setenv("MATCHER_ROSTERS_DIR", str(tmp_path))


def invoke(runner: CliRunner, url: str, *args: str, input: str | None = None) -> Result:
    return runner.invoke(cli, [*args, "--database", url], input=input)


def assert_one_line_error(result: Result, *fragments: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 or code == 2, result.output  # usage errors print a usage line too
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_db_upgrade_creates_the_default_campaign(
    runner: CliRunner, database_url: str, roster_dir: Path
) -> None:
    result = runner.invoke(
        cli, ["db", "upgrade", "--database", database_url, "--profiles", str(roster_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "schema at revision 0007" in result.output
    again = invoke(runner, database_url, "db", "upgrade")
    assert again.exit_code == 0, again.output

    db = Database(database_url)
    [campaign] = list_campaigns(db)
    assert (campaign.slug, campaign.profiles_dir, campaign.store_text) == (
        "default",
        str(roster_dir),
        True,
    )
    db.dispose()


def test_the_default_database_is_in_the_instance_folder(runner: CliRunner, tmp_path: Path) -> None:
    env = {"MATCHER_INSTANCE_DIR": str(tmp_path / "instance"), "MATCHER_DATABASE_URL": None}
    result = runner.invoke(cli, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "instance" / "matcher.db").is_file()

    env = {"MATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}"}
    result = runner.invoke(cli, ["campaign", "list"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").is_file()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("mysql://u@h/db", "'mysql' is not supported", id="unsupported"),
        pytest.param("sqlite:///:memory:", "not memory", id="memory"),
        pytest.param("postgresql://u:pw@/x?host=/nonexistent&port=1", "cannot reach", id="down"),
    ],
)
def test_an_unusable_database_is_one_line(runner: CliRunner, url: str, message: str) -> None:
    result = invoke(runner, url, "campaign", "list")
    assert_one_line_error(result, message)
    assert ":pw@" not in result.output


def test_campaign_add_list_and_set(
    runner: CliRunner, database_url: str, roster_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATCHER_PROFILES", "profiles")
    added = invoke(
        runner,
        database_url,
        "campaign",
        "add",
        "spring",
        "--name",
        "Spring launch",
        "--brand",
        "Lueur",
        "--profiles",
        str(roster_dir),
        "--origin",
        "https://shop.example",
        "--origin",
        "https://m.shop.example:443",
        "--retention-days",
        "30",
        "--store-text",
    )
    assert added.exit_code == 0, added.output
    assert added.output == "created campaign spring\n"

    listed = invoke(runner, database_url, "campaign", "list")
    assert listed.exit_code == 0, listed.output
    # The default campaign is there too, as ``matcher serve`` would have made it.
    assert listed.output == (
        "default\tLueur launch (Lueur)\tprofiles\t180 days, keeps text with consent\n"
        f"spring\tSpring launch (Lueur)\t{roster_dir}\t30 days, keeps text with consent\n"
    )
    as_json = invoke(runner, database_url, "campaign", "list", "--json")
    [_, line] = as_json.output.splitlines()
    described = json.loads(line)
    assert described["embed_origins"] == ["https://shop.example", "https://m.shop.example"]
    assert described["retention_days"] == 30 and described["store_text"] is True

    changed = invoke(
        runner, database_url, "campaign", "set", "spring", "--no-store-text", "--name", "Relaunch"
    )
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.output)["name"] == "Relaunch"
    db = Database(database_url)
    campaign = get_campaign(db, "spring")
    assert (campaign.name, campaign.store_text, campaign.retention_days) == ("Relaunch", False, 30)
    db.dispose()


@pytest.mark.parametrize(
    ("args", "fragments", "code"),
    [
        pytest.param(["Bad_Slug"], ["slug:"], 1, id="bad-slug"),
        pytest.param(["ok", "--retention-days", "0"], ["retention_days:"], 1, id="retention"),
        pytest.param(["ok", "--origin", "ftp://x"], ["embed_origins:", "ftp://x"], 1, id="origin"),
        pytest.param(["ok", "--name", " "], ["name:"], 1, id="blank-name"),
        pytest.param(["spring"], ["slug: a campaign 'spring' already exists"], 1, id="taken"),
        pytest.param(["ok", "--retention-days", "soon"], ["soon"], 2, id="not-a-number"),
    ],
)
def test_campaign_add_errors(
    runner: CliRunner,
    database_url: str,
    roster_dir: Path,
    args: list[str],
    fragments: list[str],
    code: int,
) -> None:
    db = Database(database_url)
    db.migrate()
    make_campaign(db)
    base = ["--name", "N", "--brand", "B", "--profiles", str(roster_dir)]
    result = invoke(runner, database_url, "campaign", "add", *base, *args)
    assert_one_line_error(result, *fragments, code=code)
    assert "ok" not in [c.slug for c in list_campaigns(db)]
    db.dispose()


def test_campaign_add_refuses_a_folder_that_is_not_a_roster(
    runner: CliRunner, database_url: str, tmp_path: Path
) -> None:
    missing = invoke(
        runner,
        database_url,
        "campaign",
        "add",
        "ok",
        "--name",
        "N",
        "--brand",
        "B",
        "--profiles",
        str(tmp_path / "nowhere"),
    )
    assert_one_line_error(missing, "--profiles", "nowhere is not a folder", code=2)
    broken = write_roster(tmp_path / "broken", {"a.yaml": "id: a\nname: A\nfacets: 3\n"})
    invalid = invoke(
        runner,
        database_url,
        "campaign",
        "add",
        "ok",
        "--name",
        "N",
        "--brand",
        "B",
        "--profiles",
        str(broken),
    )
    assert invalid.exit_code == 2, invalid.output
    assert "cannot be used as a roster" in invalid.output and "a.yaml" in invalid.output
    assert "Traceback" not in invalid.output
    db = Database(database_url)
    db.migrate()
    assert "ok" not in [c.slug for c in list_campaigns(db)]
    db.dispose()


def test_campaign_add_keeps_rosters_inside_the_rosters_root(
    runner: CliRunner, database_url: str, tmp_path: Path, roster_dir: Path
) -> None:
    root = tmp_path / "rosters"
    root.mkdir()
    result = runner.invoke(
        cli,
        [
            "campaign",
            "add",
            "ok",
            "--name",
            "N",
            "--brand",
            "B",
            "--profiles",
            str(roster_dir),
            "--database",
            database_url,
        ],
        env={"MATCHER_ROSTERS_DIR": str(root)},
    )
    assert_one_line_error(result, "--profiles", f"inside {root.resolve()}", code=2)


def test_campaign_add_takes_a_relative_folder_inside_the_rosters_root(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MATCHER_ROSTERS_DIR")
    monkeypatch.setenv("MATCHER_INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.delenv("MATCHER_DATABASE_URL", raising=False)
    write_roster(tmp_path / "instance" / "rosters" / "spring")
    args = ["campaign", "add", "spring", "--name", "Spring pop-up", "--brand", "Lueur"]
    added = runner.invoke(cli, [*args, "--profiles", "spring"])
    assert added.exit_code == 0, added.output
    elsewhere = write_roster(tmp_path / "elsewhere")
    refused = runner.invoke(cli, [*args[:2], "autumn", *args[3:], "--profiles", str(elsewhere)])
    assert refused.exit_code == 2 and "must be a folder inside" in refused.output


def test_a_fresh_instance_lists_and_exports_the_default_campaign(
    runner: CliRunner, tmp_path: Path
) -> None:
    env = {"MATCHER_INSTANCE_DIR": str(tmp_path / "instance"), "MATCHER_DATABASE_URL": None}
    listed = runner.invoke(cli, ["campaign", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith("default\tLueur launch (Lueur)\t")
    exported = runner.invoke(cli, ["pairings", "export", "--campaign", "default"], env=env)
    assert exported.exit_code == 0, exported.output
    assert exported.output.splitlines()[0].startswith("created_at,")


def test_campaign_add_needs_name_brand_and_roster(runner: CliRunner, database_url: str) -> None:
    result = invoke(runner, database_url, "campaign", "add", "spring", "--name", "N")
    assert_one_line_error(result, "needs --brand, --profiles", code=2)


@pytest.mark.parametrize(
    ("args", "fragments", "code"),
    [
        pytest.param(["spring", "--retention-days", "0"], ["retention_days:"], 1, id="invalid"),
        pytest.param(["winter", "--name", "x"], ["no campaign 'winter'"], 1, id="missing"),
        pytest.param(["spring"], ["name at least one setting"], 2, id="nothing-to-change"),
    ],
)
def test_campaign_set_errors(
    runner: CliRunner, database_url: str, args: list[str], fragments: list[str], code: int
) -> None:
    db = Database(database_url)
    db.migrate()
    before = make_campaign(db)
    result = invoke(runner, database_url, "campaign", "set", *args)
    assert_one_line_error(result, *fragments, code=code)
    assert get_campaign(db, "spring") == before
    db.dispose()


@pytest.fixture
def stored(database: Database, fake_matcher: Matcher) -> Database:
    """Two campaigns; shopper "me" in both, others alongside, at chosen days."""
    spring = make_campaign(database, store_text=True)
    autumn = make_campaign(database, "autumn", store_text=True, retention_days=10)
    record(database, spring, fake_matcher, ["我的秘密 sailing surfing"], refs=["me"])
    record(database, autumn, fake_matcher, [TEXTS["library"]], refs=["me"])
    record(database, spring, fake_matcher, [TEXTS["stage"]], refs=["=HYPERLINK(evil)"])
    record(database, spring, fake_matcher, [TEXTS["ocean"]], refs=["you"])
    set_created(database, ["me"], utc(2026, 3, 1, 9))
    set_created(database, ["=HYPERLINK(evil)"], utc(2026, 3, 2, 9))
    set_created(database, ["you"], utc(2026, 3, 3, 9))
    return database


def test_privacy_export(runner: CliRunner, stored: Database, tmp_path: Path) -> None:
    url = stored.url.render_as_string(hide_password=False)
    result = invoke(runner, url, "privacy", "export", "me")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["shopper_ref"] == "me"
    assert sorted((p["campaign"], p["text"]) for p in document["pairings"]) == [
        ("autumn", TEXTS["library"]),
        ("spring", "我的秘密 sailing surfing"),
    ]
    assert "我的秘密" in result.stdout  # readable, not \\u-escaped

    target = tmp_path / "me.json"
    result = invoke(runner, url, "privacy", "export", "me", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text(encoding="utf-8"))["pairings"] == document["pairings"]
    assert f"wrote 2 pairings to {target}" in result.stderr


def test_privacy_delete(runner: CliRunner, stored: Database) -> None:
    url = stored.url.render_as_string(hide_password=False)
    refused = invoke(runner, url, "privacy", "delete", "me", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert len(rows(stored)) == 4

    result = invoke(runner, url, "privacy", "delete", "me", "--yes")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("deleted 2 pairings of me; ")
    assert sorted(row.shopper_ref for row in rows(stored)) == ["=HYPERLINK(evil)", "you"]
    assert "我的秘密" not in invoke(runner, url, "privacy", "export", "me").output


def test_privacy_purge(runner: CliRunner, stored: Database) -> None:
    url = stored.url.render_as_string(hide_password=False)
    set_created(stored, ["you"], datetime.now(UTC) - timedelta(days=1))
    # Past spring's 180 days (and autumn's 10): both of "me" and the formula shopper.
    set_created(stored, ["me", "=HYPERLINK(evil)"], datetime.now(UTC) - timedelta(days=200))

    dry = invoke(runner, url, "privacy", "purge", "--dry-run")
    assert dry.exit_code == 0, dry.output
    expected_spring = 2
    assert f"spring: would delete {expected_spring} pairings" in dry.output
    assert "autumn: would delete 1 pairing" in dry.output
    assert len(rows(stored)) == 4

    result = invoke(runner, url, "privacy", "purge")
    assert result.exit_code == 0, result.output
    assert f"spring: deleted {expected_spring} pairings" in result.output
    assert "autumn: deleted 1 pairing" in result.output
    assert "you" in {row.shopper_ref for row in rows(stored)}
    again = invoke(runner, url, "privacy", "purge")
    assert again.output == (
        "spring: deleted 0 pairings\nautumn: deleted 0 pairings\ndefault: deleted 0 pairings\n"
    )


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_pairings_export(runner: CliRunner, stored: Database, tmp_path: Path) -> None:
    url = stored.url.render_as_string(hide_password=False)
    result = invoke(runner, url, "pairings", "export")
    assert result.exit_code == 0, result.output
    exported = _csv(result.stdout)
    assert [(r["campaign"], r["shopper_ref"]) for r in exported] == [
        ("spring", "me"),
        ("autumn", "me"),
        ("spring", "'=HYPERLINK(evil)"),
        ("spring", "you"),
    ]
    assert "秘密" not in result.output and TEXTS["library"] not in result.output

    spring_only = invoke(runner, url, "pairings", "export", "--campaign", "spring")
    assert [r["shopper_ref"] for r in _csv(spring_only.stdout)] == [
        "me",
        "'=HYPERLINK(evil)",
        "you",
    ]
    days = invoke(
        runner, url, "pairings", "export", "--since", "2026-03-02", "--until", "2026-03-02"
    )
    assert [r["shopper_ref"] for r in _csv(days.stdout)] == ["'=HYPERLINK(evil)"]
    until = invoke(runner, url, "pairings", "export", "--until", "2026-03-02")
    assert len(_csv(until.stdout)) == 3

    target = tmp_path / "out.csv"
    written = invoke(runner, url, "pairings", "export", "--since", "2026-03-03", "-o", str(target))
    assert written.exit_code == 0, written.output
    assert f"wrote 1 pairing to {target}" in written.stderr
    assert [r["shopper_ref"] for r in _csv(target.read_text(encoding="utf-8"))] == ["you"]


@pytest.mark.parametrize(
    ("args", "fragments", "code"),
    [
        pytest.param(["--since", "03/01/2026"], ["--since", "not a date"], 2, id="bad-since"),
        pytest.param(["--until", "2026-02-30"], ["--until", "not a date"], 2, id="bad-until"),
        pytest.param(
            ["--since", "2026-03-02", "--until", "2026-03-01"], ["--since is after --until"], 1,
            id="since-after-until",
        ),
        pytest.param(["--campaign", "winter"], ["no campaign 'winter'"], 1, id="no-campaign"),
    ],
)  # fmt: skip
def test_pairings_export_errors(
    runner: CliRunner, stored: Database, args: list[str], fragments: list[str], code: int
) -> None:
    url = stored.url.render_as_string(hide_password=False)
    result = invoke(runner, url, "pairings", "export", *args)
    assert_one_line_error(result, *fragments, code=code)
    assert "shopper_ref" not in result.output
