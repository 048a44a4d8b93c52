"""``matcher cast`` through click's runner, with the real default model (loaded once per session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from matcher.cli import cli
from matcher.encoders import Encoder

POOL = Path(__file__).parent.parent / "pools" / "lueur"
BRIEF = str(POOL / "brief.yaml")
CANDIDATES = str(POOL / "candidates.jsonl")

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pools' vectors are kept in the test's folder, never in the real model cache."""
    folder = tmp_path / "model-cache"
    monkeypatch.setenv("MATCHER_MODEL_CACHE", str(folder))
    return folder


@pytest.fixture(autouse=True)
def model(real_encoder: Encoder) -> Encoder:
    """The command loads the same (cached) encoder; loading it here keeps tests from timing it."""
    return real_encoder


def intended() -> set[str]:
    return set(yaml.safe_load((POOL / "intended.yaml").read_text(encoding="utf-8"))["intended"])


def test_cast_prints_each_face_with_its_facet_and_quote(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["cast", "--brief", BRIEF, "--pool", CANDIDATES, "-q"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "Maison Aurelle · Lueur: 7 faces from 62 candidates (greedy; objective"
    )
    faces = [line for line in lines if line[:2] in {f"{n}." for n in range(1, 8)}]
    assert len(faces) == 7
    assert any("Lu Yuan 陆远  freedom" in line for line in faces)
    assert "coverage:" in lines
    assert any(line.strip().startswith("freedom") for line in lines[lines.index("coverage:") :])
    assert "“" in result.stdout  # the quotes


def test_cast_json_with_k_and_exact(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["cast", "--brief", BRIEF, "--pool", CANDIDATES, "-k", "7", "--exact", "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["method"] == "exact" and record["k"] == 7
    assert len(set(record["ids"]) & intended()) >= 6
    assert {face["facet"] for face in record["faces"]} == {c["facet"] for c in record["coverage"]}
    assert record["objective"] == pytest.approx(record["bound"], abs=1e-6)


def test_cast_fewer_faces_in_chinese(runner: CliRunner) -> None:
    result = runner.invoke(
        cli,
        ["cast", "--brief", BRIEF, "--pool", CANDIDATES, "-k", "3", "--lang", "zh", "--json", "-q"],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert len(record["ids"]) == 3
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in face["quote"]) for face in record["faces"])


def test_cast_with_a_shopper_sample(runner: CliRunner, tmp_path: Path) -> None:
    shoppers = tmp_path / "shoppers.csv"
    shoppers.write_text(
        "id,text\n1,Weekends I'm off trekking between mountain huts.\n2,\n3,周末喜欢一个人去茶馆看书\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        cli,
        [
            "cast",
            "--brief",
            BRIEF,
            "--pool",
            CANDIDATES,
            "--shoppers",
            str(shoppers),
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 shopper row(s) skipped (first: shoppers.csv:3:" in result.stderr
    record = json.loads(result.stdout)
    assert sum(face["share"] for face in record["faces"]) == pytest.approx(1.0)
    assert "trekking" not in result.stderr  # shopper text is never echoed


@pytest.mark.parametrize(
    ("brief", "pool_line", "expected"),
    [
        pytest.param(
            "k: 0\nfacets:\n  a:\n    en: x\n",
            None,
            "error: brief.yaml:1: k: Input should be greater than or equal to 1",
            id="bad-k",
        ),
        pytest.param(
            "k: 2\nfacets:\n  a:\n    en: x\nmust_include: [nobody]\n",
            None,
            "error: brief.yaml:5: must_include: nobody is not a candidate in the pool",
            id="unknown-forced-face",
        ),
        pytest.param(
            "k: 2\nfacets:\n  a:\n    en: x\n",
            '{"id": "a", "name_zh": "甲", "tagline": "t", "facets": {"style": "x"}, "tags": []}',
            "error: pool.jsonl:2: name: is required but missing",
            id="bad-pool-line",
        ),
    ],
)
def test_cast_errors_are_one_line_each(
    runner: CliRunner, tmp_path: Path, brief: str, pool_line: str | None, expected: str
) -> None:
    (tmp_path / "brief.yaml").write_text(brief, encoding="utf-8")
    good = '{"id": "b", "name": "B", "name_zh": "乙", "tagline": "t", "facets": {"style": "x y"}, "tags": []}'
    lines = [good] + (
        [pool_line]
        if pool_line
        else [
            '{"id": "c", "name": "C", "name_zh": "丙", "tagline": "t", "facets": {"style": "z"}, "tags": []}'
        ]
    )
    (tmp_path / "pool.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(
        cli,
        [
            "cast",
            "--brief",
            str(tmp_path / "brief.yaml"),
            "--pool",
            str(tmp_path / "pool.jsonl"),
            "-q",
        ],
    )
    assert result.exit_code == 1, result.output
    assert expected in result.stderr.splitlines()
    assert "Traceback" not in result.output


def test_cast_refuses_what_cannot_be_met_in_one_line(runner: CliRunner, tmp_path: Path) -> None:
    missing = runner.invoke(
        cli, ["cast", "--brief", str(tmp_path / "none.yaml"), "--pool", CANDIDATES]
    )
    assert missing.exit_code == 1
    assert "none.yaml: (file): cannot be read" in missing.stderr
    result = runner.invoke(cli, ["cast", "--brief", BRIEF, "--pool", CANDIDATES, "-k", "51"])
    assert result.exit_code == 1 and "k: must be between 1 and 50, got 51" in result.stderr
    assert "Traceback" not in result.output


def test_a_pool_is_embedded_once_and_its_vectors_kept(runner: CliRunner, tmp_path: Path) -> None:
    args = [
        "cast",
        "--brief",
        BRIEF,
        "--pool",
        CANDIDATES,
        "--json",
        "-q",
        "--cache-dir",
        str(tmp_path / "kept"),
    ]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    kept = list((tmp_path / "kept").glob("pool-*.npy"))
    assert len(kept) == 1
    again = runner.invoke(cli, [*args, "-k", "5"])
    assert again.exit_code == 0, again.output
    assert list((tmp_path / "kept").glob("pool-*.npy")) == kept
    kept[0].write_bytes(b"not numpy")
    broken = runner.invoke(cli, args)
    assert broken.exit_code == 0, broken.output
    assert json.loads(broken.stdout)["ids"] == json.loads(first.stdout)["ids"]
