"""Tests for the ``matcher`` command line.

Commands that match load the real packaged model (``load_encoder`` caches it,
so it loads once per run); every such test passes ``--index-dir`` (or
``MATCHER_INDEX_DIR``) in ``tmp_path`` so the shipped ``profiles/.index`` is
never written. Errors must be one readable line and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from matcher.cli import EXIT_BAD_ROWS, cli
from matcher.matching import DEFAULT_TOP_K, MAX_TEXT_CHARS
from matcher.profiles import load_profiles

from .conftest import SAMPLE_PROFILES, TINY_ROSTER

# Clear shoppers for the tiny roster, worded differently from its profiles.
OCEAN_SHOPPER = "I go surfing every morning and love the smell of the sea"
LIBRARY_SHOPPER = "Curled up with a novel and a cup of green tea"
STAGE_SHOPPER = "Singing karaoke and dancing at concerts all night"
INTENDED = {OCEAN_SHOPPER: "ocean", LIBRARY_SHOPPER: "library", STAGE_SHOPPER: "stage"}

#: Put inside bad rows' texts; it must never reach the rejects file or the terminal.
SECRET = "PRIVATEMARKER"

ERROR_LINE = re.compile(
    r"^error: (?P<file>[^:]+?)(?::(?P<line>\d+))?: (?P<field>[^:]+): (?P<problem>.+)$"
)
COUNTS = re.compile(r"(\d+) embedded, (\d+) unchanged, (\d+) removed")


# --- helpers ---------------------------------------------------------------------------


def clean_exit(result: Result) -> None:
    """The command ended by exiting, not by an exception escaping it."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output


def one_line_error(result: Result) -> str:
    """Check a failure is a single readable line, and return it."""
    assert result.exit_code != 0, result.output
    clean_exit(result)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def matching_args(roster: Path, tmp_path: Path) -> list[str]:
    return ["--profiles", str(roster), "--index-dir", str(tmp_path / "index")]


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def counts(output: str) -> tuple[int, int, int]:
    found = COUNTS.search(output)
    assert found, output
    embedded, unchanged, removed = (int(n) for n in found.groups())
    return embedded, unchanged, removed


# --- help ------------------------------------------------------------------------------


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    commands = result.output.split("Commands:", 1)[1]
    listed = {line.split()[0] for line in commands.splitlines() if line.strip()}
    assert {"batch", "index", "match", "profiles"} <= listed


@pytest.mark.parametrize("command", ["batch", "index", "match", "profiles", "profiles check"])
def test_every_command_has_help(runner: CliRunner, command: str) -> None:
    result = runner.invoke(cli, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_help_imports_no_heavy_library() -> None:
    """``matcher --help`` stays instant: no model, index or web code is imported."""
    code = textwrap.dedent(
        """
        import sys
        from matcher.cli import cli
        try:
            cli(["--help"])
        except SystemExit:
            pass
        heavy = {"torch", "sentence_transformers", "faiss", "flask"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


# --- profiles check --------------------------------------------------------------------


def test_profiles_check_passes_on_the_shipped_roster(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["profiles", "check", "--profiles", str(SAMPLE_PROFILES)])
    assert result.exit_code == 0, result.output
    shipped = len(list(SAMPLE_PROFILES.glob("*.yaml")))
    assert f"{shipped} profiles OK" in result.output


def test_profiles_check_passes_on_the_tiny_roster(runner: CliRunner, roster_dir: Path) -> None:
    result = runner.invoke(cli, ["profiles", "check", "--profiles", str(roster_dir)])
    assert result.exit_code == 0, result.output
    assert f"{len(TINY_ROSTER)} profiles OK" in result.output


def profile_text(celebrity_id: str, *, tagline: bool = True) -> str:
    """A valid profile; the line numbers below are the ones the broken files rely on."""
    lines = [
        f"id: {celebrity_id}",  # 1
        "name: Test Person",  # 2
        "name_zh: 测试",  # 3
        "tagline: Plain and simple.",  # 4
        "facets:",  # 5
        "  style: plain white shirts",  # 6
        "  scent: fresh linen",  # 7
        "tags: [test]",  # 8
    ]
    if not tagline:
        del lines[3]
    return "\n".join(lines) + "\n"


#: file name -> (content, broken field as shown, line of the problem or None)
BROKEN_FILES: dict[str, tuple[bytes, str, int | None]] = {
    "unknown-key.yaml": ((profile_text("unknown-key") + "colour: red\n").encode(), "colour", 9),
    "missing-field.yaml": (profile_text("missing-field", tagline=False).encode(), "tagline", None),
    "zz-copy-of-ocean.yaml": (profile_text("ocean").encode(), "id", 1),
    "empty-facet.yaml": (
        profile_text("empty-facet").replace("plain white shirts", '""').encode(),
        "facets.style",
        6,
    ),
    "bad-bytes.yaml": (
        profile_text("bad-bytes").encode().replace("测试".encode(), b"\xff\xfe"),
        "(file)",
        3,
    ),
    "syntax-error.yaml": (
        profile_text("syntax-error").replace("Test Person", "Test: Person").encode(),
        "(file)",
        2,
    ),
}


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param("unknown-key.yaml", id="unknown-key"),
        pytest.param("missing-field.yaml", id="missing-field"),
        pytest.param("zz-copy-of-ocean.yaml", id="duplicate-id-across-files"),
        pytest.param("empty-facet.yaml", id="empty-facet"),
        pytest.param("bad-bytes.yaml", id="invalid-utf8"),
        pytest.param("syntax-error.yaml", id="yaml-syntax-error"),
    ],
)
def test_profiles_check_reports_a_broken_file(
    runner: CliRunner, roster_dir: Path, broken: str
) -> None:
    content, field, line = BROKEN_FILES[broken]
    (roster_dir / broken).write_bytes(content)

    result = runner.invoke(cli, ["profiles", "check", "--profiles", str(roster_dir)])

    assert result.exit_code == 1, result.output
    error = one_line_error(result)
    parsed = ERROR_LINE.match(error)
    assert parsed, error
    assert parsed["file"] == broken
    assert parsed["field"] == field
    if line is not None:
        assert parsed["line"] == str(line), error
    assert error in result.stderr
    if broken == "zz-copy-of-ocean.yaml":
        assert "ocean.yaml" in parsed["problem"], "name the file that holds the id first"


def test_profiles_check_reports_every_problem_at_once(runner: CliRunner, roster_dir: Path) -> None:
    for name, (content, _, _) in BROKEN_FILES.items():
        (roster_dir / name).write_bytes(content)

    result = runner.invoke(cli, ["profiles", "check", "--profiles", str(roster_dir)])

    assert result.exit_code == 1, result.output
    clean_exit(result)
    lines = [line for line in result.output.splitlines() if line.strip()]
    parsed = [ERROR_LINE.match(line) for line in lines]
    assert all(parsed), result.output
    found = {(m["file"], m["field"]) for m in parsed if m}
    assert found == {(name, field) for name, (_, field, _) in BROKEN_FILES.items()}
    assert len(lines) == len(BROKEN_FILES)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty-file"),
        pytest.param(b"- id: ocean\n- id: stage\n", id="list-not-mapping"),
        pytest.param(b"just some words\n", id="plain-text"),
    ],
)
def test_profiles_check_refuses_a_file_that_is_not_a_mapping(
    runner: CliRunner, roster_dir: Path, content: bytes
) -> None:
    (roster_dir / "odd.yaml").write_bytes(content)

    result = runner.invoke(cli, ["profiles", "check", "--profiles", str(roster_dir)])

    error = one_line_error(result)
    parsed = ERROR_LINE.match(error)
    assert parsed and parsed["file"] == "odd.yaml", error


# --- missing roster --------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["profiles", "check"], id="profiles-check"),
        pytest.param(["index"], id="index"),
        pytest.param(["match", OCEAN_SHOPPER], id="match"),
        pytest.param(["batch", "-q", "{input}", "-o", "{output}"], id="batch"),
    ],
)
def test_nonexistent_profiles_folder_is_one_line(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "no-such-roster"
    source = tmp_path / "in.csv"
    source.write_text(f"id,text\ns1,{OCEAN_SHOPPER}\n", encoding="utf-8")
    args = [
        a.format(input=source, output=tmp_path / "out.jsonl") if "{" in a else a for a in command
    ]
    options = ["--profiles", str(missing)]
    if command[0] != "profiles":
        options += ["--index-dir", str(tmp_path / "index")]

    result = runner.invoke(cli, [*args, *options])

    assert result.exit_code == 1, result.output
    error = one_line_error(result)
    assert str(missing) in error
    assert "not found" in error
    assert not (tmp_path / "out.jsonl").exists()
    assert not missing.exists()


# --- index -----------------------------------------------------------------------------


def test_index_embeds_once_then_only_what_changed(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    args = ["index", *matching_args(roster_dir, tmp_path)]
    ids = sorted(p.id for p in load_profiles(roster_dir))

    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert counts(first.output) == (len(ids), 0, 0)
    assert sorted(re.findall(r"embedding (\S+)", first.stderr)) == ids
    assert (tmp_path / "index" / "manifest.json").is_file()

    second = runner.invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert counts(second.output) == (0, len(ids), 0)
    assert "embedding" not in second.stderr

    library = roster_dir / "library.yaml"
    library.write_text(
        library.read_text(encoding="utf-8").replace("old paper", "fresh ink"), encoding="utf-8"
    )
    third = runner.invoke(cli, args)
    assert third.exit_code == 0, third.output
    assert counts(third.output) == (1, len(ids) - 1, 0)
    assert re.findall(r"embedding (\S+)", third.stderr) == ["library"]


def test_index_ignores_edits_to_fields_that_are_not_embedded(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    args = ["index", *matching_args(roster_dir, tmp_path)]
    assert runner.invoke(cli, args).exit_code == 0
    stage = roster_dir / "stage.yaml"
    stage.write_text(
        stage.read_text(encoding="utf-8").replace("Dance all night.", "Sing all night."),
        encoding="utf-8",
    )

    result = runner.invoke(cli, args)

    assert result.exit_code == 0, result.output
    assert counts(result.output) == (0, len(TINY_ROSTER), 0)


def test_index_drops_a_deleted_profile(runner: CliRunner, roster_dir: Path, tmp_path: Path) -> None:
    args = ["index", *matching_args(roster_dir, tmp_path)]
    assert runner.invoke(cli, args).exit_code == 0
    (roster_dir / "stage.yaml").unlink()

    result = runner.invoke(cli, args)

    assert result.exit_code == 0, result.output
    assert counts(result.output) == (0, len(TINY_ROSTER) - 1, 1)


def test_index_on_a_broken_roster_is_an_error(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    content, field, line = BROKEN_FILES["unknown-key.yaml"]
    (roster_dir / "unknown-key.yaml").write_bytes(content)

    result = runner.invoke(cli, ["index", *matching_args(roster_dir, tmp_path)])

    assert result.exit_code == 1, result.output
    parsed = ERROR_LINE.match(one_line_error(result))
    assert parsed and (parsed["file"], parsed["field"]) == ("unknown-key.yaml", field)
    assert not (tmp_path / "index" / "manifest.json").exists()


# --- match -----------------------------------------------------------------------------


def test_match_shows_the_best_celebrity_first(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["match", *matching_args(roster_dir, tmp_path), OCEAN_SHOPPER])

    assert result.exit_code == 0, result.output
    ocean = load_profiles(roster_dir).get("ocean")
    ranked = [line for line in result.stdout.splitlines() if re.match(r"^\d+\. ", line)]
    assert ranked[0].startswith(f"1. {ocean.name}")
    assert len(ranked) == min(DEFAULT_TOP_K, len(TINY_ROSTER))
    assert any(facet in result.stdout for facet in ocean.facets.values())


def test_match_json_is_one_object_per_text(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    texts = list(INTENDED)
    result = runner.invoke(cli, ["match", *matching_args(roster_dir, tmp_path), "--json", *texts])

    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert [r["text"] for r in records] == texts
    for record in records:
        matches = record["matches"]
        assert isinstance(matches, list)
        assert len(matches) == min(DEFAULT_TOP_K, len(TINY_ROSTER))
        assert matches[0]["celebrity_id"] == INTENDED[str(record["text"])]
        assert [m["rank"] for m in matches] == list(range(1, len(matches) + 1))
        assert all(m["reasons"] for m in matches)


def test_match_marks_unsure_answers(runner: CliRunner, roster_dir: Path, tmp_path: Path) -> None:
    args = ["match", *matching_args(roster_dir, tmp_path)]
    result = runner.invoke(cli, [*args, "--json", OCEAN_SHOPPER, "asdfgh"])
    assert result.exit_code == 0, result.output
    sure, unsure = json_lines(result.stdout)
    assert sure["confident"] is True and "reason" not in sure
    assert (unsure["confident"], unsure["reason"]) == (False, "no_content")
    assert unsure["matches"], "the ranking is still given"

    result = runner.invoke(cli, [*args, OCEAN_SHOPPER, "asdfgh"])
    assert result.exit_code == 0, result.output
    first, second = result.stdout.split("[2]")
    assert "unsure" not in first
    assert "unsure (no_content)" in second


def test_match_text_is_stripped(runner: CliRunner, roster_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["match", *matching_args(roster_dir, tmp_path), "--json", f"  {OCEAN_SHOPPER}\n"]
    )
    assert result.exit_code == 0, result.output
    [record] = json_lines(result.stdout)
    assert record["text"] == OCEAN_SHOPPER


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        pytest.param("1", 1, id="top-1"),
        pytest.param("2", 2, id="top-2"),
        pytest.param(str(len(TINY_ROSTER) + 5), len(TINY_ROSTER), id="top-capped-at-roster"),
    ],
)
@pytest.mark.parametrize("flag", ["--top", "-k"])
def test_match_top(
    runner: CliRunner, roster_dir: Path, tmp_path: Path, top: str, expected: int, flag: str
) -> None:
    result = runner.invoke(
        cli, ["match", *matching_args(roster_dir, tmp_path), "--json", flag, top, STAGE_SHOPPER]
    )

    assert result.exit_code == 0, result.output
    [record] = json_lines(result.stdout)
    matches = record["matches"]
    assert isinstance(matches, list)
    assert len(matches) == expected
    assert len({m["celebrity_id"] for m in matches}) == expected
    assert matches[0]["celebrity_id"] == "stage"


@pytest.mark.parametrize(
    "top",
    [
        pytest.param("0", id="zero"),
        pytest.param("-1", id="negative"),
        pytest.param("two", id="word"),
    ],
)
def test_match_bad_top_is_a_usage_error(
    runner: CliRunner, roster_dir: Path, tmp_path: Path, top: str
) -> None:
    result = runner.invoke(
        cli, ["match", *matching_args(roster_dir, tmp_path), "--top", top, OCEAN_SHOPPER]
    )
    assert result.exit_code == 2, result.output
    clean_exit(result)
    assert "--top" in result.output


@pytest.mark.parametrize(
    ("text", "word"),
    [
        pytest.param("", "blank", id="empty-text"),
        pytest.param("   ", "blank", id="spaces-only"),
        pytest.param("\t\n", "blank", id="whitespace-only"),
        pytest.param("x" * (MAX_TEXT_CHARS + 1), str(MAX_TEXT_CHARS), id="over-long-text"),
    ],
)
def test_match_bad_text_is_one_line(
    runner: CliRunner, roster_dir: Path, tmp_path: Path, text: str, word: str
) -> None:
    result = runner.invoke(cli, ["match", *matching_args(roster_dir, tmp_path), text])

    error = one_line_error(result)
    assert word in error
    assert "x" * 50 not in error, "the error should not echo the shopper's text"


def test_match_with_one_bad_text_among_good_ones_fails(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        cli, ["match", *matching_args(roster_dir, tmp_path), "--json", OCEAN_SHOPPER, "  "]
    )
    assert "blank" in one_line_error(result)


def test_match_honours_matcher_profiles_env(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        cli,
        ["match", "--json", "--top", "9", LIBRARY_SHOPPER],
        env={"MATCHER_PROFILES": str(roster_dir), "MATCHER_INDEX_DIR": None},
    )

    assert result.exit_code == 0, result.output
    [record] = json_lines(result.stdout)
    matches = record["matches"]
    assert isinstance(matches, list)
    # Only the tiny roster's celebrities, not the shipped ones from ./profiles.
    assert {m["celebrity_id"] for m in matches} == {p.id for p in load_profiles(roster_dir)}
    assert matches[0]["celebrity_id"] == "library"
    # The index defaults to PROFILES/.index, in the roster the variable names.
    assert (roster_dir / ".index" / "manifest.json").is_file()


def test_match_honours_matcher_index_dir_env(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    index_dir = tmp_path / "elsewhere"
    result = runner.invoke(
        cli,
        ["match", "--profiles", str(roster_dir), OCEAN_SHOPPER],
        env={"MATCHER_INDEX_DIR": str(index_dir)},
    )
    assert result.exit_code == 0, result.output
    assert (index_dir / "manifest.json").is_file()
    assert not (roster_dir / ".index").exists()


def test_match_on_the_shipped_roster(runner: CliRunner, tmp_path: Path) -> None:
    text = "Backpacking through the mountains, camping in a tent and riding a motorcycle"
    result = runner.invoke(
        cli, ["match", *matching_args(SAMPLE_PROFILES, tmp_path), "--json", "--top", "2", text]
    )
    assert result.exit_code == 0, result.output
    [record] = json_lines(result.stdout)
    matches = record["matches"]
    assert isinstance(matches, list) and len(matches) == 2
    assert matches[0]["celebrity_id"] == "zhao-feng"


# --- batch -----------------------------------------------------------------------------


def write_shoppers(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows(rows)
    return path


GOOD_SHOPPERS = [("s1", OCEAN_SHOPPER), ("s2", LIBRARY_SHOPPER), ("s3", STAGE_SHOPPER)]


@pytest.mark.parametrize(
    "quiet", [pytest.param(["-q"], id="quiet"), pytest.param([], id="progress")]
)
def test_batch_writes_every_row_and_exits_0(
    runner: CliRunner, roster_dir: Path, tmp_path: Path, quiet: list[str]
) -> None:
    source = write_shoppers(tmp_path / "in.csv", GOOD_SHOPPERS)
    out = tmp_path / "out.jsonl"

    result = runner.invoke(
        cli, ["batch", *matching_args(roster_dir, tmp_path), *quiet, str(source), "-o", str(out)]
    )

    assert result.exit_code == 0, result.output
    clean_exit(result)
    records = json_lines(out.read_text(encoding="utf-8"))
    assert [r["id"] for r in records] == [i for i, _ in GOOD_SHOPPERS]
    for record, (_, text) in zip(records, GOOD_SHOPPERS, strict=True):
        matches = record["matches"]
        assert isinstance(matches, list)
        assert len(matches) == min(DEFAULT_TOP_K, len(TINY_ROSTER))
        assert matches[0]["celebrity_id"] == INTENDED[text]
    assert f"{len(GOOD_SHOPPERS)} shoppers paired" in result.stderr
    assert not (tmp_path / "out.jsonl.rejects.csv").exists()
    assert result.stdout == "", "pairings go to the file; stdout stays clean"


def test_batch_csv_output_with_options(runner: CliRunner, roster_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "crm.jsonl"
    source.write_text(
        "".join(json.dumps({"who": i, "likes": t}) + "\n" for i, t in GOOD_SHOPPERS),
        encoding="utf-8",
    )
    out = tmp_path / "pairings.csv"

    result = runner.invoke(
        cli,
        [
            "batch",
            *matching_args(roster_dir, tmp_path),
            "-q",
            "--id-column",
            "who",
            "--text-column",
            "likes",
            "--top",
            "1",
            "--batch-size",
            "2",
            str(source),
            "--output",
            str(out),
        ],
    )

    assert result.exit_code == 0, result.output
    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["celebrity_1"]) for r in rows] == [
        (i, INTENDED[t]) for i, t in GOOD_SHOPPERS
    ]
    assert "celebrity_2" not in rows[0]


def test_batch_with_bad_rows_exits_3_and_writes_rejects(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(
        b"id,text\r\n"  # 1
        + f"s1,{OCEAN_SHOPPER}\r\n".encode()  # 2
        + b"b-blank,   \r\n"  # 3
        + b","
        + SECRET.encode()
        + b" with no id\r\n"  # 4
        + f"s2,{LIBRARY_SHOPPER}\r\n".encode()  # 5
        + b"b-long,"
        + (SECRET + " ").encode() * 100
        + b"\r\n"  # 6
        + b"b-bytes,caf\xff\xfe "
        + SECRET.encode()
        + b"\r\n"  # 7
        + b"=cmd|' /C calc'!A0,\r\n"  # 8: a formula id with a blank text
        + f"s3,{STAGE_SHOPPER}\r\n".encode()  # 9
    )
    out = tmp_path / "out.jsonl"

    result = runner.invoke(
        cli, ["batch", *matching_args(roster_dir, tmp_path), "-q", str(source), "-o", str(out)]
    )

    assert result.exit_code == EXIT_BAD_ROWS == 3, result.output
    clean_exit(result)
    assert [r["id"] for r in json_lines(out.read_text(encoding="utf-8"))] == ["s1", "s2", "s3"]
    rejects = tmp_path / "out.jsonl.rejects.csv"
    assert rejects.is_file()
    raw = rejects.read_text(encoding="utf-8")
    assert SECRET not in raw
    assert SECRET not in result.output
    with open(rejects, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["line", "id", "reason"]
        rows = list(reader)
    assert [(r["line"], r["id"]) for r in rows] == [
        ("3", "b-blank"),
        ("4", ""),
        ("6", "b-long"),
        ("7", ""),
        ("8", "'=cmd|' /C calc'!A0"),
    ]
    assert all(r["reason"] for r in rows)
    for row in rows:
        assert f"line {row['line']}" in result.stderr
    assert str(rejects) in result.stderr


def test_batch_jsonl_bad_rows_go_to_rejects(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        json.dumps({"id": "s1", "text": OCEAN_SHOPPER}).encode()
        + b"\n"
        + b'{"id": "b1", "text": "'
        + SECRET.encode()
        + b"\n"  # broken JSON
        + b'["'
        + SECRET.encode()
        + b'"]\n'  # not an object
        + b'{"id": "b3", "text": 7}\n'
        + b"\n"
        + json.dumps({"id": "s2", "text": STAGE_SHOPPER}).encode()
        + b"\n"
    )
    out = tmp_path / "out.csv"

    result = runner.invoke(
        cli, ["batch", *matching_args(roster_dir, tmp_path), "-q", str(source), "-o", str(out)]
    )

    assert result.exit_code == 3, result.output
    with open(out, encoding="utf-8", newline="") as handle:
        assert [r["id"] for r in csv.DictReader(handle)] == ["s1", "s2"]
    rejects = tmp_path / "out.csv.rejects.csv"
    assert SECRET not in rejects.read_text(encoding="utf-8")
    with open(rejects, encoding="utf-8", newline="") as handle:
        assert [(r["line"], r["id"]) for r in csv.DictReader(handle)] == [
            ("2", ""),
            ("3", ""),
            ("4", "b3"),
        ]


def test_batch_clean_rerun_removes_stale_rejects(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    stale = tmp_path / "out.jsonl.rejects.csv"
    stale.write_text("line,id,reason\n3,old,text is blank\n", encoding="utf-8")
    source = write_shoppers(tmp_path / "in.csv", GOOD_SHOPPERS)

    result = runner.invoke(
        cli, ["batch", *matching_args(roster_dir, tmp_path), "-q", str(source), "-o", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert not stale.exists()


@pytest.mark.parametrize(
    ("content", "named"),
    [
        pytest.param(b"customer,likes\r\na,surfing\r\n", "'id'", id="missing-column"),
        pytest.param(b"", "empty", id="empty-file"),
        pytest.param(b"i\xffd,text\r\na,surfing\r\n", "UTF-8", id="non-utf8-header"),
    ],
)
def test_batch_unreadable_input_is_one_line(
    runner: CliRunner, roster_dir: Path, tmp_path: Path, content: bytes, named: str
) -> None:
    # Build the index first, so the only output left is the error itself.
    built = runner.invoke(cli, ["index", *matching_args(roster_dir, tmp_path)])
    assert built.exit_code == 0, built.output
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    out = tmp_path / "out.jsonl"

    result = runner.invoke(
        cli, ["batch", *matching_args(roster_dir, tmp_path), "-q", str(source), "-o", str(out)]
    )

    assert result.exit_code == 1, result.output
    error = one_line_error(result)
    assert "in.csv" in error and named in error
    assert not out.exists()
    assert not (tmp_path / "out.jsonl.rejects.csv").exists()


@pytest.mark.parametrize(
    ("in_name", "out_name", "named"),
    [
        pytest.param("in.txt", "out.jsonl", "in.txt", id="unknown-input-type"),
        pytest.param("in.csv", "out.xlsx", "out.xlsx", id="unknown-output-type"),
    ],
)
def test_batch_unknown_file_type_is_one_line(
    runner: CliRunner, roster_dir: Path, tmp_path: Path, in_name: str, out_name: str, named: str
) -> None:
    source = write_shoppers(tmp_path / in_name, GOOD_SHOPPERS)

    result = runner.invoke(
        cli,
        [
            "batch",
            *matching_args(roster_dir, tmp_path),
            "-q",
            str(source),
            "-o",
            str(tmp_path / out_name),
        ],
    )

    assert result.exit_code == 1, result.output
    assert named in one_line_error(result)
    assert not (tmp_path / out_name).exists()


def test_batch_missing_input_is_a_usage_error(
    runner: CliRunner, roster_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        cli,
        [
            "batch",
            *matching_args(roster_dir, tmp_path),
            str(tmp_path / "nowhere.csv"),
            "-o",
            str(tmp_path / "out.jsonl"),
        ],
    )
    assert result.exit_code == 2, result.output
    clean_exit(result)
    assert "nowhere.csv" in result.output


def test_batch_requires_an_output(runner: CliRunner, roster_dir: Path, tmp_path: Path) -> None:
    source = write_shoppers(tmp_path / "in.csv", GOOD_SHOPPERS)
    result = runner.invoke(cli, ["batch", *matching_args(roster_dir, tmp_path), str(source)])
    assert result.exit_code == 2, result.output
    assert "--output" in result.output


def test_models_list_names_every_model_and_how_to_install_it(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATCHER_MODEL_CACHE", str(tmp_path))  # nothing fetched here
    result = runner.invoke(cli, ["models", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(
        "use-multilingual-v3 (use, use-multilingual)  runtimes: full*, int8, numpy  installed"
    )
    gemma = next(line for line in lines if line.startswith("embeddinggemma-300m"))
    assert "runtimes: int8*, full, bf16  run `matcher models fetch embeddinggemma-300m`" in gemma
    assert lines[-1].startswith("sentence-transformers  runtimes: full*, int8  installed")

    result = runner.invoke(cli, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in map(json.loads, result.output.splitlines())}
    assert rows["multilingual-e5-small"] == {
        "name": "multilingual-e5-small",
        "aliases": ["e5"],
        "runtimes": ["full"],
        "default_runtime": "full",
        "installed": True,
        "install": None,
        "description": rows["multilingual-e5-small"]["description"],
    }
    assert rows["embeddinggemma-300m"]["installed"] is False
    assert (
        rows["embeddinggemma-300m"]["install"] == "run `matcher models fetch embeddinggemma-300m`"
    )
