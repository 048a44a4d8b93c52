"""``matcher batch`` on Ray: the local batch's output, row for row, from a real local cluster.

The integration tests start one local Ray cluster (two CPUs, no dashboard)
for the module and run the real default model in two Ray workers against the
same model in this process (``run_batch``): the same celebrities in the same
order with the same scores, the same bad rows with the same lines and
messages, the same assignment under quotas. The pure pieces (Parquet row
checks, the output types, the index shipped to a worker) are tested with the
fake encoder.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from matcher.batch import run_batch
from matcher.batch_rows import BadRow, ShopperRow
from matcher.distributed.run import (
    RayBatchSummary,
    check_address,
    connect,
    output_kind,
    run_batch_on_ray,
)
from matcher.distributed.sources import parquet_row
from matcher.distributed.worker import MatcherPayload
from matcher.encoders import DEFAULT_MODEL, Encoder
from matcher.errors import BatchInputError, ConfigError
from matcher.matching import MODELS_DIR, Matcher, load_matcher

from .conftest import SAMPLE_PROFILES
from .fakes import HashingEncoder

# Ray's own code warns of its own deprecated defaults (DataContext in 2.60),
# which nothing here sets.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")

EVAL_SET = Path(__file__).resolve().parent.parent / "benchmarks" / "eval_set.jsonl"
TOLERANCE = 1e-6


def eval_texts(count: int) -> list[str]:
    """Real shopper texts from the labelled set, English and Chinese."""
    lines = EVAL_SET.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[:: max(1, len(lines) // count)]][:count]


# -- pure pieces, with the fake encoder ----------------------------------------------


@pytest.mark.parametrize(
    ("raw_id", "text", "expected"),
    [
        pytest.param("s1", "  I love tea ", ShopperRow(7, "s1", "I love tea"), id="good"),
        pytest.param(42, "tea", ShopperRow(7, "42", "tea"), id="numeric-id"),
        pytest.param(None, "tea", BadRow(7, None, "id is blank"), id="no-id"),
        pytest.param("  ", "tea", BadRow(7, None, "id is blank"), id="blank-id"),
        pytest.param(
            True, "tea", BadRow(7, None, "'id' is not a string or a number"), id="bool-id"
        ),
        pytest.param("s1", 5, BadRow(7, "s1", "'text' is not a string"), id="number-text"),
        pytest.param(
            "s1", None, BadRow(7, "s1", "text is blank: say what the shopper likes"), id="no-text"
        ),
        pytest.param(
            "s1",
            "x" * 1001,
            BadRow(7, "s1", "text is 1001 characters long; the limit is 1000"),
            id="long",
        ),
    ],
)
def test_a_parquet_row_is_checked_like_a_json_lines_record(
    raw_id: object, text: object, expected: ShopperRow | BadRow
) -> None:
    row = parquet_row(7, raw_id, text, id_column="id", text_column="text", max_chars=1000)
    assert row == expected


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.csv", "csv"), ("a.TSV", "csv"), ("a.jsonl", "jsonl"), ("a.parquet", "parquet")],
)
def test_output_kind_by_extension(name: str, kind: str) -> None:
    assert output_kind(name) == kind


def test_unknown_output_kind_names_the_choices() -> None:
    with pytest.raises(BatchInputError, match=r"out\.xlsx: unknown output type '\.xlsx'; use"):
        output_kind("out.xlsx")


def test_the_shipped_index_scores_exactly_as_the_drivers(fake_matcher: Matcher) -> None:
    import pickle

    import numpy as np

    payload = pickle.loads(pickle.dumps(MatcherPayload.of(fake_matcher)))
    copy = payload.matcher(HashingEncoder())
    texts = ["I love the sea and sailing", "quiet libraries and old books", "karaoke nights"]
    queries = fake_matcher.encoder.encode(texts)
    assert np.array_equal(
        copy.index.facet_scores(queries), fake_matcher.index.facet_scores(queries)
    )
    assert copy.match_many(texts, 3) == fake_matcher.match_many(texts, 3)
    assert copy.confidence == fake_matcher.confidence


@pytest.mark.parametrize(
    "address", ["nonsense", "host-without-port", ":6379"], ids=["word", "no-port", "no-host"]
)
def test_a_malformed_address_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        check_address(address)


def test_an_address_where_nothing_listens_is_a_clear_error_at_once() -> None:
    # Before any cluster of this module starts: joining one is what fails.
    with pytest.raises(ConfigError) as caught:
        connect("127.0.0.1:1")
    message = str(caught.value)
    assert message.startswith("cannot reach the Ray cluster at 127.0.0.1:1: ")
    assert "ray start --head" in message


def test_the_command_says_so_in_one_line_before_loading_the_model(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from matcher.cli import cli

    source = tmp_path / "in.csv"
    source.write_text("id,text\ns1,I love tea\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["batch", "--ray-address", "127.0.0.1:1", str(source), "-o", str(tmp_path / "out.csv")],
    )
    assert result.exit_code == 1, result.output
    assert "Error: cannot reach the Ray cluster at 127.0.0.1:1" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.csv").exists()


# -- on a real local cluster, with the real model --------------------------------------


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray-index")


@pytest.fixture(scope="module")
def matcher(real_encoder: Encoder, index_dir: Path) -> Matcher:
    matcher, _ = load_matcher(SAMPLE_PROFILES, encoder=real_encoder, index_dir=index_dir)
    return matcher


GOOD_TEXTS = eval_texts(24)


def csv_input(path: Path) -> Path:
    """24 real texts with bad rows among them, one a quoted cell over two lines."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for n, text in enumerate(GOOD_TEXTS):
            writer.writerow([f"s{n}", text])
            if n == 3:
                writer.writerow(["blank", "   "])
            if n == 7:
                writer.writerow(["", "no id for this one"])
            if n == 11:
                writer.writerow(["long", "tea " * 300])
            if n == 15:
                writer.writerow(["nul", "tea\x00time"])
            if n == 18:
                writer.writerow(["two-lines", "Mountains at dawn,\nand a flask of oolong."])
    return path


def jsonl_input(path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for n, text in enumerate(GOOD_TEXTS):
            handle.write(json.dumps({"id": f"s{n}", "text": text}, ensure_ascii=False) + "\n")
            if n == 2:
                handle.write('{"id": "broken", "text": \n')
            if n == 5:
                handle.write(json.dumps(["not", "an", "object"]) + "\n")
            if n == 9:
                handle.write(json.dumps({"id": ["a"], "text": "tea"}) + "\n")
            if n == 13:
                handle.write(json.dumps({"id": "n", "text": 12}) + "\n")
            if n == 17:
                handle.write(json.dumps({"id": "blank", "text": ""}) + "\n")
    return path


def parquet_input(path: Path) -> Path:
    """The CSV's rows as Parquet, in two row groups, so row numbers cross a group."""
    import pyarrow
    import pyarrow.parquet as pq

    ids: list[str | None] = []
    texts: list[str | None] = []
    for n, text in enumerate(GOOD_TEXTS):
        ids.append(f"s{n}")
        texts.append(text)
        if n == 3:
            ids.append("blank")
            texts.append(None)
        if n == 7:
            ids.append(None)
            texts.append("no id for this one")
        if n == 11:
            ids.append("long")
            texts.append("tea " * 300)
    table = pyarrow.table({"id": ids, "text": texts})
    pq.write_table(table, path, row_group_size=10)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def same_pairings(local: list[dict[str, object]], remote: list[dict[str, object]], k: int) -> None:
    """Row for row: the same shopper, celebrities, order and verdict; scores to float tolerance."""
    assert len(remote) == len(local)
    for mine, theirs in zip(local, remote, strict=True):
        assert theirs["id"] == mine["id"]
        for rank in range(1, k + 1):
            assert theirs[f"celebrity_{rank}"] == mine[f"celebrity_{rank}"], mine["id"]
            assert float(theirs[f"score_{rank}"]) == pytest.approx(
                float(mine[f"score_{rank}"]), abs=TOLERANCE
            )
            assert theirs[f"reasons_{rank}"] == mine[f"reasons_{rank}"]
        assert str(theirs["confident"]).lower() == str(mine["confident"]).lower()
        assert (theirs["assigned"] or "") == (mine["assigned"] or "")
        assert (theirs["assignment"] or "") == (mine["assignment"] or "")


def on_ray(matcher: Matcher, index_dir: Path, source: Path, output: Path) -> RayBatchSummary:
    return run_batch_on_ray(
        matcher,
        DEFAULT_MODEL,
        source,
        output,
        workers=2,
        threads=1,
        cache_dir=index_dir / MODELS_DIR,
        # Small blocks, so both workers get some of a few dozen rows.
        rows_per_call=4,
    )


@pytest.mark.slow
def test_csv_on_ray_is_the_local_batch_row_for_row(
    ray_cluster: None, matcher: Matcher, index_dir: Path, tmp_path: Path
) -> None:
    source = csv_input(tmp_path / "shoppers.csv")
    local = run_batch(matcher, source, tmp_path / "local.csv")
    remote = on_ray(matcher, index_dir, source, tmp_path / "ray.csv")
    same_pairings(read_csv(tmp_path / "local.csv"), read_csv(tmp_path / "ray.csv"), 3)
    assert remote.matched == local.matched == len(GOOD_TEXTS) + 1
    assert remote.bad_rows == local.bad_rows
    assert [row.reason for row in local.bad_rows][:2] == [
        "text is blank: say what the shopper likes",
        "id is blank",
    ]
    # Both workers matched rows, each with its own encoder.
    assert len(remote.worker_peak_rss) == 2


@pytest.mark.slow
def test_jsonl_on_ray_is_the_local_batch_row_for_row(
    ray_cluster: None, matcher: Matcher, index_dir: Path, tmp_path: Path
) -> None:
    source = jsonl_input(tmp_path / "shoppers.jsonl")
    local = run_batch(matcher, source, tmp_path / "local.jsonl")
    remote = on_ray(matcher, index_dir, source, tmp_path / "ray.jsonl")
    mine = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    theirs = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert (
        [r["id"] for r in theirs]
        == [r["id"] for r in mine]
        == [f"s{n}" for n in range(len(GOOD_TEXTS))]
    )
    for a, b in zip(mine, theirs, strict=True):
        assert [m["celebrity_id"] for m in b["matches"]] == [
            m["celebrity_id"] for m in a["matches"]
        ]
        assert [m["score"] for m in b["matches"]] == pytest.approx(
            [m["score"] for m in a["matches"]], abs=TOLERANCE
        )
        assert (b["confident"], b["assigned"], b["assignment"]) == (
            a["confident"],
            a["assigned"],
            a["assignment"],
        )
    assert remote.bad_rows == local.bad_rows
    assert len(local.bad_rows) == 5
    assert local.bad_rows[0].reason.startswith("not valid JSON")


@pytest.mark.slow
def test_parquet_on_ray_pairs_as_the_local_batch_of_the_same_rows(
    ray_cluster: None, matcher: Matcher, index_dir: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    source = parquet_input(tmp_path / "shoppers.parquet")
    as_csv = tmp_path / "shoppers.csv"
    with open(as_csv, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for record in pq.read_table(source).to_pylist():
            writer.writerow([record["id"] or "", record["text"] or ""])
    local = run_batch(matcher, as_csv, tmp_path / "local.csv")
    remote = on_ray(matcher, index_dir, source, tmp_path / "ray.parquet")
    same_pairings(
        read_csv(tmp_path / "local.csv"), pq.read_table(tmp_path / "ray.parquet").to_pylist(), 3
    )
    # The same rows refused for the same reasons; a Parquet row's number is
    # its place in the file, the CSV's line one more (its header).
    assert [(r.line, r.id, r.reason) for r in remote.bad_rows] == [
        (r.line - 1, r.id, r.reason) for r in local.bad_rows
    ]
    assert [r.line for r in remote.bad_rows] == [5, 10, 15]


def quota_roster(folder: Path) -> Path:
    shutil.copytree(SAMPLE_PROFILES, folder)
    for name, lines in {
        "chen-an": "quota: 2\n",
        "zhao-feng": "quota: 1\n",
        "su-qing": "min_share: 0.25\n",
    }.items():
        path = folder / f"{name}.yaml"
        path.write_text(
            path.read_text(encoding="utf-8").rstrip("\n") + "\n" + lines, encoding="utf-8"
        )
    return folder


@pytest.mark.slow
def test_quotas_on_ray_give_the_local_assignment(
    ray_cluster: None, real_encoder: Encoder, index_dir: Path, tmp_path: Path
) -> None:
    matcher, _ = load_matcher(
        quota_roster(tmp_path / "profiles"), encoder=real_encoder, index_dir=index_dir
    )
    source = csv_input(tmp_path / "shoppers.csv")
    local = run_batch(matcher, source, tmp_path / "local.csv")
    remote = on_ray(matcher, index_dir, source, tmp_path / "ray.csv")
    mine, theirs = read_csv(tmp_path / "local.csv"), read_csv(tmp_path / "ray.csv")
    same_pairings(mine, theirs, 3)
    assert local.assignment is not None and remote.assignment is not None
    assert remote.assignment.to_dict() == local.assignment.to_dict()
    # The limits did something: a quota is full, and some shoppers were moved.
    assert local.assignment.counts["zhao-feng"] <= 1
    assert local.assignment.moved > 0
    assert {row["assignment"] for row in theirs} >= {"best"}
