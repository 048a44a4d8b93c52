"""A batch under the roster's quotas and shares: every row assigned within them, the cost reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matcher.batch import run_batch
from matcher.capacity import InfeasibleLimits
from matcher.index import build_index
from matcher.matching import Matcher
from matcher.profiles import load_profiles

from .conftest import write_roster
from .fakes import HashingEncoder
from .test_batch import LIBRARY_TEXT, OCEAN_TEXT, STAGE_TEXT


def matcher_with(tmp_path: Path, extra: dict[str, str]) -> Matcher:
    folder = write_roster(tmp_path / "profiles")
    for name, lines in extra.items():
        path = folder / f"{name}.yaml"
        path.write_text(path.read_text() + lines)
    encoder = HashingEncoder()
    index, _ = build_index(load_profiles(folder), encoder)
    return Matcher(encoder, index)


def shoppers(path: Path, texts: list[str]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for n, text in enumerate(texts):
            handle.write(json.dumps({"id": f"s{n}", "text": text}) + "\n")
    return path


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_quota_holds_and_the_rest_go_to_their_next_best(tmp_path: Path) -> None:
    matcher = matcher_with(tmp_path, {"ocean": "quota: 2\n"})
    source = shoppers(tmp_path / "in.jsonl", [OCEAN_TEXT] * 5 + [LIBRARY_TEXT, STAGE_TEXT])
    out = tmp_path / "out.jsonl"
    summary = run_batch(matcher, source, out, k=2)
    rows = records(out)
    assigned = [row["assigned"] for row in rows]
    assert assigned.count("ocean") == 2
    # Their best fit is still shown first: the ranking is by fit, the assignment beside it.
    assert all(row["matches"][0]["celebrity_id"] == "ocean" for row in rows[:5])  # type: ignore[index]
    moved = [row for row in rows[:5] if row["assigned"] != "ocean"]
    assert len(moved) == 3 and all(row["assignment"] == "full" for row in moved)
    assert [row["assigned"] for row in rows[5:]] == ["library", "stage"]
    report = summary.assignment
    assert report is not None
    assert (report.shoppers, report.moved, report.unpaired) == (7, 3, 0)
    assert report.counts["ocean"] == 2 and report.upper["ocean"] == 2
    assert report.mean_assigned < report.mean_best


def test_quota_zero_is_never_assigned_and_no_room_leaves_a_row_unassigned(tmp_path: Path) -> None:
    matcher = matcher_with(
        tmp_path, {"ocean": "quota: 0\n", "library": "quota: 1\n", "stage": "quota: 1\n"}
    )
    source = shoppers(tmp_path / "in.jsonl", [OCEAN_TEXT, LIBRARY_TEXT, STAGE_TEXT])
    out = tmp_path / "out.jsonl"
    summary = run_batch(matcher, source, out)
    assigned = [row["assigned"] for row in records(out)]
    assert "ocean" not in assigned
    assert sorted(a for a in assigned if a) == ["library", "stage"]
    assert assigned.count(None) == 1
    assert summary.assignment is not None and summary.assignment.unpaired == 1


def test_a_minimum_share_is_met(tmp_path: Path) -> None:
    matcher = matcher_with(tmp_path, {"stage": "min_share: 0.5\n"})
    source = shoppers(tmp_path / "in.csv.jsonl", [OCEAN_TEXT] * 3 + [LIBRARY_TEXT] * 3)
    out = tmp_path / "out.csv"
    run_batch(matcher, source, out)
    import csv

    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(row["assigned"] == "stage" for row in rows) == 3
    assert {row["assignment"] for row in rows if row["assigned"] == "stage"} == {"balanced"}


def test_limits_that_cannot_hold_for_this_batch_are_refused(tmp_path: Path) -> None:
    matcher = matcher_with(tmp_path, {"stage": "min_share: 0.5\nquota: 1\n"})
    source = shoppers(tmp_path / "in.jsonl", [OCEAN_TEXT] * 4)
    with pytest.raises(InfeasibleLimits, match="stage: min_share 0.5 of 4 shoppers is 2"):
        run_batch(matcher, source, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
