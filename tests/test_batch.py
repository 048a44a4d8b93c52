"""Tests for streaming batch matching: formats, bad rows, formula injection, memory, atomicity.

Pure-logic tests use the hashing fake over the three-celebrity ``roster_dir``
(ocean, library, stage); its texts share words with exactly one celebrity so
the expected pairing follows from the words chosen. The integration test at
the end runs the real model on the shipped roster.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from matcher.batch import (
    FORMULA_PREFIXES,
    MAX_KEPT_BAD_ROWS,
    BadRow,
    CsvPairingWriter,
    Paired,
    ShopperRow,
    best_placed,
    escape_cell,
    input_format,
    match_rows,
    read_shoppers,
    run_batch,
)
from matcher.errors import BatchInputError, InputError
from matcher.index import build_index
from matcher.matching import MAX_TEXT_CHARS, Match, Matcher, Reason
from matcher.profiles import load_profiles

from .conftest import TINY_ROSTER, write_roster
from .fakes import HashingEncoder

# Texts that share words with exactly one tiny-roster celebrity.
OCEAN_TEXT = "surfing and sailing at the beach, sea salt on my skin"
LIBRARY_TEXT = "reading novels in the library with green tea and old paper"
STAGE_TEXT = "dancing at concerts and karaoke with friends in neon sneakers"
GOOD_ROWS = [("s1", OCEAN_TEXT), ("s2", LIBRARY_TEXT), ("s3", STAGE_TEXT)]
EXPECTED_TOP = {"s1": "ocean", "s2": "library", "s3": "stage"}

#: Put inside bad rows' texts; it must never appear in a bad-row reason.
SECRET = "PRIVATEMARKER"


# --- helpers ---------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[tuple[str, ...]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def write_input(path: Path, rows: list[tuple[str, str]]) -> Path:
    """Write ``(id, text)`` rows in the format the file extension names."""
    if input_format(path) == "csv":
        return write_csv(path, ["id", "text"], rows)
    return write_jsonl(path, [{"id": i, "text": t} for i, t in rows])


def read_output(path: Path) -> list[tuple[str, list[str]]]:
    """``(id, [celebrity ids best first])`` for each output row, in file order."""
    if input_format(path) == "jsonl":
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [(r["id"], [m["celebrity_id"] for m in r["matches"]]) for r in records]
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        ranks = sorted(
            int(key.removeprefix("celebrity_")) for key in row if key.startswith("celebrity_")
        )
        out.append((row["id"], [row[f"celebrity_{rank}"] for rank in ranks]))
    return out


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def leftovers(folder: Path) -> list[str]:
    """Files in ``folder`` other than the ones a test wrote (e.g. a ``.part`` file)."""
    return sorted(p.name for p in folder.iterdir() if p.is_file())


@pytest.fixture
def roster_facets(roster_dir: Path) -> dict[str, set[str]]:
    return {p.id: set(p.facets.values()) for p in load_profiles(roster_dir)}


# --- formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("shoppers.csv", "csv", id="csv"),
        pytest.param("SHOPPERS.CSV", "csv", id="csv-upper-case"),
        pytest.param("shoppers.tsv", "csv", id="tsv"),
        pytest.param("shoppers.jsonl", "jsonl", id="jsonl"),
        pytest.param("shoppers.ndjson", "jsonl", id="ndjson"),
        pytest.param("Shoppers.XLSX", "xlsx", id="xlsx"),
    ],
)
def test_input_format_from_extension(name: str, expected: str) -> None:
    assert input_format(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("shoppers.txt", id="txt"),
        pytest.param("shoppers.json", id="json"),
        pytest.param("shoppers.xls", id="old-excel"),
        pytest.param("shoppers", id="no-extension"),
    ],
)
def test_unknown_extension_is_batch_input_error(name: str) -> None:
    with pytest.raises(BatchInputError, match=name):
        input_format(name)


@pytest.mark.parametrize("in_name", ["in.csv", "in.jsonl"])
@pytest.mark.parametrize("out_name", ["out.csv", "out.jsonl"])
def test_formats_round_trip_in_input_order(
    fake_matcher: Matcher, tmp_path: Path, in_name: str, out_name: str
) -> None:
    rows = [(f"shopper-{n}-{i}", text) for n in range(4) for i, (_, text) in enumerate(GOOD_ROWS)]
    source = write_input(tmp_path / in_name, rows)
    out = tmp_path / out_name

    summary = run_batch(fake_matcher, source, out, k=2, batch_size=5)

    assert summary.matched == len(rows)
    assert summary.bad == 0
    pairings = read_output(out)
    assert [shopper_id for shopper_id, _ in pairings] == [shopper_id for shopper_id, _ in rows]
    for (_, text), (_, celebrities) in zip(rows, pairings, strict=True):
        # Batching must not change the answer a single match gives.
        assert celebrities == [m.celebrity_id for m in fake_matcher.match(text, 2)]


def test_jsonl_output_row_shape(
    fake_matcher: Matcher, tmp_path: Path, roster_facets: dict[str, set[str]]
) -> None:
    source = write_input(tmp_path / "in.csv", GOOD_ROWS)
    out = tmp_path / "out.jsonl"

    run_batch(fake_matcher, source, out, k=2)

    records = read_jsonl(out)
    assert [r["id"] for r in records] == [shopper_id for shopper_id, _ in GOOD_ROWS]
    for record in records:
        assert set(record) == {"id", "matches", "confident", "assigned", "assignment"}
        assert record["confident"] is True
        # Without quotas or shares, everyone is assigned their best fit.
        assert record["assigned"] == EXPECTED_TOP[str(record["id"])]
        assert record["assignment"] == "best"
        matches = record["matches"]
        assert isinstance(matches, list) and len(matches) == 2
        assert matches[0]["celebrity_id"] == EXPECTED_TOP[str(record["id"])]
        assert [m["rank"] for m in matches] == [1, 2]
        assert matches[0]["score"] >= matches[1]["score"]
        assert len({m["celebrity_id"] for m in matches}) == 2
        for match in matches:
            assert {"celebrity_id", "score", "reasons"} <= set(match)
            assert isinstance(match["score"], float)
            assert match["reasons"], "every match should quote at least one facet"
            for reason in match["reasons"]:
                assert set(reason) == {"facet", "score", "quote"}
                assert reason["quote"] in roster_facets[match["celebrity_id"]]


def test_csv_output_columns_and_values(
    fake_matcher: Matcher, tmp_path: Path, roster_dir: Path, roster_facets: dict[str, set[str]]
) -> None:
    source = write_input(tmp_path / "in.jsonl", GOOD_ROWS)
    out = tmp_path / "out.csv"

    run_batch(fake_matcher, source, out, k=2)

    with open(out, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[0] == "id"
    assert header[-5:] == ["margin", "confident", "reason", "assigned", "assignment"]
    for rank in (1, 2):
        assert {f"celebrity_{rank}", f"name_{rank}", f"score_{rank}", f"reasons_{rank}"} <= set(
            header
        )
    assert "celebrity_3" not in header
    rows = read_csv_rows(out)
    assert [r["id"] for r in rows] == [shopper_id for shopper_id, _ in GOOD_ROWS]
    names = {p.id: p.name for p in load_profiles(roster_dir)}
    for row in rows:
        assert row["celebrity_1"] == EXPECTED_TOP[row["id"]]
        assert row["name_1"] == names[row["celebrity_1"]]
        assert float(row["score_1"]) >= float(row["score_2"])
        assert float(row["margin"]) >= 0
        assert (row["confident"], row["reason"]) == ("true", "")
        assert (row["assigned"], row["assignment"]) == (EXPECTED_TOP[row["id"]], "best")
        for rank in (1, 2):
            quotes = [part.split(": ", 1)[1] for part in row[f"reasons_{rank}"].split("; ")]
            assert set(quotes) <= roster_facets[row[f"celebrity_{rank}"]]


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        pytest.param(1, 1, id="top-1"),
        pytest.param(2, 2, id="top-2"),
        pytest.param(len(TINY_ROSTER), len(TINY_ROSTER), id="top-roster-size"),
        pytest.param(len(TINY_ROSTER) + 7, len(TINY_ROSTER), id="top-capped-at-roster"),
    ],
)
@pytest.mark.parametrize("out_name", ["out.csv", "out.jsonl"])
def test_top_k_respected(
    fake_matcher: Matcher, tmp_path: Path, k: int, expected: int, out_name: str
) -> None:
    source = write_input(tmp_path / "in.csv", GOOD_ROWS)
    out = tmp_path / out_name

    run_batch(fake_matcher, source, out, k=k)

    for shopper_id, celebrities in read_output(out):
        assert len(celebrities) == expected
        assert len(set(celebrities)) == expected
        assert celebrities[0] == EXPECTED_TOP[shopper_id]


@pytest.mark.parametrize(
    "k",
    [pytest.param(0, id="zero"), pytest.param(-1, id="negative"), pytest.param(True, id="bool")],
)
def test_bad_k_is_refused_without_output(fake_matcher: Matcher, tmp_path: Path, k: int) -> None:
    source = write_input(tmp_path / "in.csv", GOOD_ROWS)
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError, match="top_k"):
        run_batch(fake_matcher, source, out, k=k)
    assert not out.exists()


# --- columns ---------------------------------------------------------------------------


def test_csv_columns_are_configurable(fake_matcher: Matcher, tmp_path: Path) -> None:
    rows = [(f"c-{shopper_id}", "ignored", text) for shopper_id, text in GOOD_ROWS]
    source = write_csv(tmp_path / "crm.csv", ["customer", "note", "likes"], rows)
    out = tmp_path / "out.jsonl"

    summary = run_batch(fake_matcher, source, out, id_column="customer", text_column="likes")

    assert summary.matched == len(rows)
    pairings = read_output(out)
    assert [shopper_id for shopper_id, _ in pairings] == [r[0] for r in rows]
    assert [c[0] for _, c in pairings] == [EXPECTED_TOP[i] for i, _ in GOOD_ROWS]


def test_jsonl_columns_are_configurable(fake_matcher: Matcher, tmp_path: Path) -> None:
    records: list[dict[str, object]] = [
        {"customer": f"c-{i}", "likes": t, "text": "", "id": ""} for i, t in GOOD_ROWS
    ]
    source = write_jsonl(tmp_path / "crm.jsonl", records)
    out = tmp_path / "out.csv"

    summary = run_batch(fake_matcher, source, out, id_column="customer", text_column="likes")

    assert summary.bad == 0
    pairings = read_output(out)
    assert [shopper_id for shopper_id, _ in pairings] == [r["customer"] for r in records]
    assert [c[0] for _, c in pairings] == [EXPECTED_TOP[i] for i, _ in GOOD_ROWS]


def test_csv_header_with_bom_and_padding_is_read(fake_matcher: Matcher, tmp_path: Path) -> None:
    # Excel writes a byte-order mark; hand-made files pad column names.
    source = tmp_path / "excel.csv"
    source.write_bytes(
        b"\xef\xbb\xbf id , text \r\n" + f"s1,{OCEAN_TEXT}\r\ns2,{LIBRARY_TEXT}\r\n".encode()
    )
    out = tmp_path / "out.jsonl"

    summary = run_batch(fake_matcher, source, out)

    assert summary.matched == 2
    assert read_output(out)[0][0] == "s1"


@pytest.mark.parametrize(
    ("header", "id_column", "text_column", "missing"),
    [
        pytest.param(["id", "likes"], "id", "text", ["text"], id="no-text-column"),
        pytest.param(["customer", "text"], "id", "text", ["id"], id="no-id-column"),
        pytest.param(["customer", "likes"], "id", "text", ["id", "text"], id="neither"),
        pytest.param(["id", "text"], "id", "likes", ["likes"], id="configured-column-absent"),
    ],
)
def test_missing_column_names_it_and_lists_the_columns(
    fake_matcher: Matcher,
    tmp_path: Path,
    header: list[str],
    id_column: str,
    text_column: str,
    missing: list[str],
) -> None:
    source = write_csv(tmp_path / "in.csv", header, [("a", OCEAN_TEXT)])
    out = tmp_path / "out.jsonl"

    with pytest.raises(BatchInputError) as caught:
        run_batch(fake_matcher, source, out, id_column=id_column, text_column=text_column)

    message = str(caught.value)
    assert "\n" not in message
    assert "in.csv" in message
    for column in missing:
        assert repr(column) in message
    for present in header:
        assert repr(present) in message
    assert not out.exists()
    assert leftovers(tmp_path) == ["in.csv"]


# --- bad rows --------------------------------------------------------------------------

TOO_LONG = (SECRET + " ") * (MAX_TEXT_CHARS // len(SECRET) + 1)  # over the default limit
LIMIT = str(MAX_TEXT_CHARS)

CSV_BAD_ROWS = [
    pytest.param(b"b1,", "b1", "blank", id="blank-text"),
    pytest.param(b"b1", "b1", "blank", id="missing-text-cell"),
    pytest.param(b'b1,"   \t  "', "b1", "blank", id="whitespace-only-text"),
    pytest.param(b",surfing " + SECRET.encode(), None, "id", id="blank-id"),
    pytest.param(b"   ,surfing " + SECRET.encode(), None, "id", id="whitespace-only-id"),
    pytest.param(b"b1," + TOO_LONG.encode(), "b1", LIMIT, id="over-long-text"),
    pytest.param(b"b1,surfing \xff\xfe " + SECRET.encode(), None, "utf-8", id="invalid-utf8-text"),
    pytest.param(b"b\xff1,surfing", None, "utf-8", id="invalid-utf8-id"),
    pytest.param(b"b1," + b"y" * 140_000, None, "csv", id="field-over-csv-limit"),
]


@pytest.mark.parametrize(("bad_line", "bad_id", "reason_word"), CSV_BAD_ROWS)
def test_csv_bad_row_is_reported_and_good_rows_written(
    fake_matcher: Matcher,
    tmp_path: Path,
    bad_line: bytes,
    bad_id: str | None,
    reason_word: str,
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(
        b"id,text\r\n"
        + f"g1,{OCEAN_TEXT}\r\n".encode()
        + bad_line
        + b"\r\n"
        + b"\r\n"  # a wholly empty line: skipped, not reported
        + f"g2,{STAGE_TEXT}\r\n".encode()
    )
    out = tmp_path / "out.jsonl"
    seen: list[BadRow] = []

    summary = run_batch(fake_matcher, source, out, on_bad_row=seen.append)

    assert summary.matched == 2
    assert summary.bad == 1
    assert seen == summary.bad_rows
    [bad] = summary.bad_rows
    assert bad.line == 3
    assert bad.id == bad_id
    assert reason_word in bad.reason.lower()
    assert SECRET not in bad.reason
    assert [shopper_id for shopper_id, _ in read_output(out)] == ["g1", "g2"]


JSONL_BAD_ROWS = [
    pytest.param(
        b'{"id": "b1", "text": "surfing ' + SECRET.encode(), None, "json", id="broken-json"
    ),
    pytest.param(b"{'id': 'b1', 'text': 'surfing'}", None, "json", id="single-quoted-json"),
    pytest.param(b'["b1", "surfing"]', None, "object", id="json-array"),
    pytest.param(b'"surfing ' + SECRET.encode() + b'"', None, "object", id="json-string"),
    pytest.param(b"42", None, "object", id="json-number"),
    pytest.param(b"null", None, "object", id="json-null"),
    pytest.param(b'{"id": "b1", "text": 42}', "b1", "string", id="number-text"),
    pytest.param(b'{"id": "b1", "text": ["surfing"]}', "b1", "string", id="list-text"),
    pytest.param(b'{"id": "b1", "text": {"likes": "surf"}}', "b1", "string", id="object-text"),
    pytest.param(b'{"id": "b1", "text": ""}', "b1", "blank", id="empty-text"),
    pytest.param(b'{"id": "b1", "text": " \\t\\n "}', "b1", "blank", id="whitespace-only-text"),
    pytest.param(b'{"id": "b1", "text": null}', "b1", "blank", id="null-text"),
    pytest.param(b'{"id": "b1"}', "b1", "blank", id="missing-text"),
    pytest.param(b'{"id": "", "text": "surfing"}', None, "id", id="blank-id"),
    pytest.param(b'{"text": "surfing"}', None, "id", id="missing-id"),
    pytest.param(
        json.dumps({"id": "b1", "text": TOO_LONG}).encode(), "b1", LIMIT, id="over-long-text"
    ),
    pytest.param(
        b'{"id": "b1", "text": "surfing \xff\xfe ' + SECRET.encode() + b'"}',
        None,
        "utf-8",
        id="invalid-utf8",
    ),
]


@pytest.mark.parametrize(("bad_line", "bad_id", "reason_word"), JSONL_BAD_ROWS)
def test_jsonl_bad_row_is_reported_and_good_rows_written(
    fake_matcher: Matcher,
    tmp_path: Path,
    bad_line: bytes,
    bad_id: str | None,
    reason_word: str,
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        json.dumps({"id": "g1", "text": OCEAN_TEXT}).encode()
        + b"\n"
        + bad_line
        + b"\n"
        + b"\n"  # wholly empty
        + b"   \n"  # whitespace only: also empty
        + json.dumps({"id": "g2", "text": STAGE_TEXT}).encode()
        + b"\n"
    )
    out = tmp_path / "out.csv"

    summary = run_batch(fake_matcher, source, out)

    assert summary.matched == 2
    [bad] = summary.bad_rows
    assert (bad.line, bad.id) == (2, bad_id)
    assert reason_word in bad.reason.lower()
    assert SECRET not in bad.reason
    assert [shopper_id for shopper_id, _ in read_output(out)] == ["g1", "g2"]


def test_many_bad_rows_keep_their_line_numbers_and_good_rows_their_order(
    fake_matcher: Matcher, tmp_path: Path
) -> None:
    lines = [
        b"id,text",  # 1
        f"g1,{OCEAN_TEXT}".encode(),  # 2
        b"b-blank,",  # 3
        b"",  # 4: empty, skipped silently
        f'g2,"{LIBRARY_TEXT}\r\nsecond line of the same quoted cell"'.encode(),  # 5-6
        b'b-space,"    "',  # 7
        b"," + SECRET.encode(),  # 8
        b"b-long," + TOO_LONG.encode(),  # 9
        b"b-utf8,caf\xff\xfe " + SECRET.encode(),  # 10
        b"",  # 11
        b"",  # 12
        f"g3,{STAGE_TEXT}".encode(),  # 13
    ]
    source = tmp_path / "in.csv"
    source.write_bytes(b"\r\n".join(lines) + b"\r\n")
    out = tmp_path / "out.csv"
    lines_seen: list[int] = []

    summary = run_batch(fake_matcher, source, out, batch_size=2, on_row=lines_seen.append)

    assert [(b.line, b.id) for b in summary.bad_rows] == [
        (3, "b-blank"),
        (7, "b-space"),
        (8, None),
        (9, "b-long"),
        (10, None),
    ]
    assert summary.bad == 5
    assert summary.matched == 3
    assert [shopper_id for shopper_id, _ in read_output(out)] == ["g1", "g2", "g3"]
    assert lines_seen == sorted(lines_seen)
    assert lines_seen[-1] == 13
    for bad in summary.bad_rows:
        assert SECRET not in bad.reason


def test_wholly_empty_lines_are_skipped_silently(fake_matcher: Matcher, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(
        b"id,text\n\n\r\n" + f"s1,{OCEAN_TEXT}\n\n\n".encode() + f"s2,{STAGE_TEXT}\n\n".encode()
    )
    out = tmp_path / "out.jsonl"

    summary = run_batch(fake_matcher, source, out)

    assert summary.bad == 0
    assert summary.bad_rows == []
    assert [shopper_id for shopper_id, _ in read_output(out)] == ["s1", "s2"]


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(40, id="shorter-than-default"),
        pytest.param(MAX_TEXT_CHARS + 500, id="longer-than-default"),
    ],
)
def test_over_long_text_uses_the_matchers_limit(
    roster_dir: Path, fake_encoder: HashingEncoder, tmp_path: Path, limit: int
) -> None:
    """The batch refuses exactly what the matcher it is given refuses."""
    index, _ = build_index(load_profiles(roster_dir), fake_encoder)
    matcher = Matcher(fake_encoder, index, max_chars=limit)
    fits = "surfing sailing beach " + "x" * (limit - 22)
    too_long = fits + "y"
    assert len(fits) == limit and len(too_long) == limit + 1
    with pytest.raises(InputError):
        matcher.match(too_long)
    source = write_input(tmp_path / "in.csv", [("fits", fits), ("too-long", too_long)])
    out = tmp_path / "out.jsonl"

    summary = run_batch(matcher, source, out)

    assert [(b.line, b.id) for b in summary.bad_rows] == [(3, "too-long")]
    assert str(limit) in summary.bad_rows[0].reason
    assert [shopper_id for shopper_id, _ in read_output(out)] == ["fits"]


def test_summary_keeps_the_first_bad_rows_and_counts_all(
    fake_matcher: Matcher, tmp_path: Path
) -> None:
    extra = 5
    rows = [(f"b{n}", "") for n in range(MAX_KEPT_BAD_ROWS + extra)] + [("g1", OCEAN_TEXT)]
    source = write_input(tmp_path / "in.csv", rows)
    seen: list[BadRow] = []

    summary = run_batch(fake_matcher, source, tmp_path / "out.jsonl", on_bad_row=seen.append)

    assert summary.bad == MAX_KEPT_BAD_ROWS + extra
    assert len(summary.bad_rows) == MAX_KEPT_BAD_ROWS
    assert len(seen) == MAX_KEPT_BAD_ROWS + extra
    assert summary.bad_rows[0].id == "b0"
    assert seen[-1].id == f"b{MAX_KEPT_BAD_ROWS + extra - 1}"
    assert summary.matched == 1


# --- unreadable files ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "empty", id="empty-file"),
        pytest.param(b"\xef\xbb\xbf", "empty", id="bom-only"),
        pytest.param(b"i\xffd,text\r\na,surfing\r\n", "utf-8", id="non-utf8-header"),
        pytest.param(b"\xff\xfei\x00d\x00,\x00t\x00\r\n", "no 'text' column", id="utf16-no-text"),
    ],
)
def test_unreadable_csv_is_batch_input_error(
    fake_matcher: Matcher, tmp_path: Path, content: bytes, message: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    out = tmp_path / "out.jsonl"

    with pytest.raises(BatchInputError) as caught:
        run_batch(fake_matcher, source, out)

    assert message in str(caught.value).lower()
    assert "in.csv" in str(caught.value)
    assert leftovers(tmp_path) == ["in.csv"]


def test_missing_input_file_is_batch_input_error(fake_matcher: Matcher, tmp_path: Path) -> None:
    with pytest.raises(BatchInputError, match="nowhere.csv"):
        run_batch(fake_matcher, tmp_path / "nowhere.csv", tmp_path / "out.jsonl")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("in_name", "out_name", "named"),
    [
        pytest.param("in.txt", "out.jsonl", "in.txt", id="unknown-input-type"),
        pytest.param("in.csv", "out.xlsx", "out.xlsx", id="unknown-output-type"),
        pytest.param("in.csv", "out", "out", id="output-without-extension"),
    ],
)
def test_unknown_extension_in_run_batch(
    fake_matcher: Matcher, tmp_path: Path, in_name: str, out_name: str, named: str
) -> None:
    write_csv(tmp_path / in_name, ["id", "text"], GOOD_ROWS)

    with pytest.raises(BatchInputError, match=named):
        run_batch(fake_matcher, tmp_path / in_name, tmp_path / out_name)

    assert leftovers(tmp_path) == [in_name]


# --- formula injection -----------------------------------------------------------------


@pytest.mark.parametrize("prefix", [pytest.param(p, id=repr(p)) for p in FORMULA_PREFIXES])
def test_escape_cell_prefixes_formulas(prefix: str) -> None:
    value = prefix + 'HYPERLINK("http://evil.example")'
    assert escape_cell(value) == "'" + value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("alice", id="plain"),
        pytest.param("", id="empty"),
        pytest.param("a=b", id="equals-inside"),
        pytest.param("shopper-42", id="dash-inside"),
        pytest.param("'=quoted", id="already-quoted"),
        pytest.param("海星", id="chinese"),
    ],
)
def test_escape_cell_leaves_plain_values(value: str) -> None:
    assert escape_cell(value) == value


@pytest.mark.parametrize(
    "formula_id",
    [
        pytest.param('=HYPERLINK("http://evil.example","x")', id="equals"),
        pytest.param("+1+2", id="plus"),
        pytest.param("-2+3", id="minus"),
        pytest.param("@SUM(A1:A9)", id="at"),
    ],
)
def test_formula_ids_are_escaped_in_csv_output_only(
    fake_matcher: Matcher, tmp_path: Path, formula_id: str
) -> None:
    source = write_input(tmp_path / "in.csv", [("plain", OCEAN_TEXT), (formula_id, STAGE_TEXT)])

    run_batch(fake_matcher, source, tmp_path / "out.csv")
    run_batch(fake_matcher, source, tmp_path / "out.jsonl")

    assert [r["id"] for r in read_csv_rows(tmp_path / "out.csv")] == ["plain", "'" + formula_id]
    # JSON is not opened by spreadsheets: the id stays exactly as given.
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["plain", formula_id]


def _match(celebrity_id: str, name: str, facet: str, quote: str) -> Match:
    return Match(
        celebrity_id=celebrity_id,
        name=name,
        name_zh="名",
        score=0.5,
        margin=0.1,
        rank=1,
        reasons=(Reason(facet, 0.5, quote),),
    )


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_formula_reason_cell_is_escaped(tmp_path: Path, prefix: str) -> None:
    out = tmp_path / "out.csv"
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = CsvPairingWriter(handle, 1)
        writer.write(
            best_placed(
                Paired(
                    ShopperRow(2, "s1", "x"), [_match("ocean", "Ocean", prefix + "cmd", "quote")]
                )
            )
        )
        writer.close()

    [row] = read_csv_rows(out)
    assert row["reasons_1"].startswith("'" + prefix + "cmd")
    assert row["reasons_1"].endswith("quote")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param('=HYPERLINK("http://evil.example","Ocean")', id="equals"),
        pytest.param("@oceanstar", id="at-handle"),
    ],
)
def test_formula_celebrity_name_is_escaped_in_csv_output(
    tmp_path: Path, fake_encoder: HashingEncoder, name: str
) -> None:
    """Names come from profile files, which the CSV escaping already distrusts for reasons."""
    profile = TINY_ROSTER["ocean.yaml"].replace("name: Ocean Star", f"name: '{name}'")
    roster = write_roster(tmp_path / "roster", {**TINY_ROSTER, "ocean.yaml": profile})
    index, _ = build_index(load_profiles(roster), fake_encoder)
    assert index.profiles[[p.id for p in index.profiles].index("ocean")].name == name
    source = write_input(tmp_path / "in.csv", [("s1", OCEAN_TEXT)])

    run_batch(Matcher(fake_encoder, index), source, tmp_path / "out.csv", k=1)

    [row] = read_csv_rows(tmp_path / "out.csv")
    assert row["celebrity_1"] == "ocean"
    assert row["name_1"] == "'" + name


@pytest.mark.parametrize("out_name", ["out.csv", "out.jsonl"])
def test_formula_looking_text_is_still_matched(
    fake_matcher: Matcher, tmp_path: Path, out_name: str
) -> None:
    formula_text = "=HYPERLINK(surfing+sailing@beach)"
    source = write_input(tmp_path / "in.csv", [("f1", formula_text), ("s3", STAGE_TEXT)])

    summary = run_batch(fake_matcher, source, tmp_path / out_name, k=1)

    assert summary.bad == 0
    assert read_output(tmp_path / out_name) == [("f1", ["ocean"]), ("s3", ["stage"])]


# --- streaming -------------------------------------------------------------------------


class CountingRows:
    """A lazy stream of synthetic rows that records how many have been pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pulled = 0

    def __iter__(self) -> Iterator[ShopperRow | BadRow]:
        texts = [OCEAN_TEXT, LIBRARY_TEXT, STAGE_TEXT]
        for n in range(self.total):
            self.pulled += 1
            yield ShopperRow(n + 2, f"s{n}", f"{texts[n % 3]} number {n}")


def test_match_rows_streams_lazily_in_batches(fake_matcher: Matcher) -> None:
    encoder = fake_matcher.encoder
    assert isinstance(encoder, HashingEncoder)
    total, batch_size = 10_000, 64
    rows = CountingRows(total)
    calls_before = len(encoder.calls)

    results = match_rows(fake_matcher, rows, k=1, batch_size=batch_size)
    first = next(results)
    pulled_at_first = rows.pulled
    rest = list(results)

    assert batch_size <= pulled_at_first < 2 * batch_size, "input must be read a batch at a time"
    assert isinstance(first, Paired) and first.row.id == "s0"
    assert len(rest) + 1 == total
    assert [p.row.id for p in rest if isinstance(p, Paired)] == [f"s{n}" for n in range(1, total)]
    sizes = [len(call) for call in encoder.calls[calls_before:]]
    assert sum(sizes) == total
    assert max(sizes) <= batch_size
    assert sizes[:-1] == [batch_size] * (len(sizes) - 1)
    expected_top = {0: "ocean", 1: "library", 2: "stage"}
    for n, paired in enumerate([first, *rest]):
        assert isinstance(paired, Paired)
        assert paired.matches[0].celebrity_id == expected_top[n % 3]


def test_match_rows_passes_bad_rows_through_in_place(fake_matcher: Matcher) -> None:
    encoder = fake_matcher.encoder
    assert isinstance(encoder, HashingEncoder)
    rows: list[ShopperRow | BadRow] = []
    for n in range(10):
        rows.append(ShopperRow(2 * n + 1, f"g{n}", OCEAN_TEXT))
        rows.append(BadRow(2 * n + 2, f"b{n}", "text is blank"))
    calls_before = len(encoder.calls)

    results = list(match_rows(fake_matcher, iter(rows), k=1, batch_size=3))

    assert [r.row.line if isinstance(r, Paired) else r.line for r in results] == list(range(1, 21))
    assert [r for r in results if isinstance(r, BadRow)] == [
        r for r in rows if isinstance(r, BadRow)
    ]
    # Bad rows do not count towards the encoder batch.
    assert [len(c) for c in encoder.calls[calls_before:]] == [3, 3, 3, 1]


def test_run_batch_embeds_in_batches_of_the_given_size(
    fake_matcher: Matcher, tmp_path: Path
) -> None:
    encoder = fake_matcher.encoder
    assert isinstance(encoder, HashingEncoder)
    rows = [(f"s{n}", GOOD_ROWS[n % 3][1]) for n in range(23)]
    source = write_input(tmp_path / "in.jsonl", rows)
    calls_before = len(encoder.calls)

    run_batch(fake_matcher, source, tmp_path / "out.jsonl", batch_size=5)

    assert [len(c) for c in encoder.calls[calls_before:]] == [5, 5, 5, 5, 3]


# --- atomic output ---------------------------------------------------------------------


class FailingEncoder(HashingEncoder):
    """The hashing fake, failing on a chosen encode call (a crash midway through a batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_on_call: int | None = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.fail_on_call is not None and len(self.calls) + 1 >= self.fail_on_call:
            raise RuntimeError("encoder crashed")
        return super().encode(texts)


@pytest.fixture
def failing_matcher(roster_dir: Path) -> Matcher:
    encoder = FailingEncoder()
    index, _ = build_index(load_profiles(roster_dir), encoder)
    # The roster is embedded; fail on the third matching call.
    encoder.fail_on_call = len(encoder.calls) + 3
    return Matcher(encoder, index)


@pytest.mark.parametrize("out_name", ["out.csv", "out.jsonl"])
def test_no_partial_output_when_matching_fails(
    failing_matcher: Matcher, tmp_path: Path, out_name: str
) -> None:
    source = write_input(tmp_path / "in.csv", [(f"s{n}", OCEAN_TEXT) for n in range(10)])
    out = tmp_path / out_name
    written: list[int] = []

    with pytest.raises(RuntimeError, match="encoder crashed"):
        run_batch(failing_matcher, source, out, batch_size=2, on_row=written.append)

    assert len(written) == 4, "two batches were matched before the crash"
    assert not out.exists()
    assert leftovers(tmp_path) == ["in.csv"]


def test_failed_run_keeps_the_previous_output(failing_matcher: Matcher, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.csv", [(f"s{n}", OCEAN_TEXT) for n in range(10)])
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "from-last-week", "matches": []}\n', encoding="utf-8")

    with pytest.raises(RuntimeError):
        run_batch(failing_matcher, source, out, batch_size=2)

    assert read_jsonl(out) == [{"id": "from-last-week", "matches": []}]
    assert leftovers(tmp_path) == ["in.csv", "out.jsonl"]


def test_output_appears_only_when_the_batch_finishes(fake_matcher: Matcher, tmp_path: Path) -> None:
    rows = [(f"s{n}", GOOD_ROWS[n % 3][1]) for n in range(7)]
    source = write_input(tmp_path / "in.csv", rows)
    out = tmp_path / "out.csv"
    visible_during_run: list[bool] = []

    run_batch(
        fake_matcher,
        source,
        out,
        batch_size=2,
        on_row=lambda _line: visible_during_run.append(out.exists()),
    )

    assert visible_during_run == [False] * len(rows)
    assert [shopper_id for shopper_id, _ in read_output(out)] == [i for i, _ in rows]
    assert leftovers(tmp_path) == ["in.csv", "out.csv"]


# --- read_shoppers ---------------------------------------------------------------------


def test_read_shoppers_is_lazy_and_strips(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", ["id", "text"], [("  s1  ", f"  {OCEAN_TEXT}  ")])
    rows = read_shoppers(source)
    assert isinstance(rows, Iterator)
    assert list(rows) == [ShopperRow(2, "s1", OCEAN_TEXT)]


def test_tsv_input_is_tab_separated(fake_matcher: Matcher, tmp_path: Path) -> None:
    source = tmp_path / "in.tsv"
    source.write_text(f"id\ttext\ns1\t{OCEAN_TEXT}, with a comma\n", encoding="utf-8")
    assert list(read_shoppers(source)) == [ShopperRow(2, "s1", f"{OCEAN_TEXT}, with a comma")]


# --- integration: the real model on the shipped roster ----------------------------------

#: One clear shopper per shipped celebrity, paraphrased rather than copied from the profiles.
SHOPPERS_FOR = {
    "chen-an": "I unwind with a pot of oolong, a quiet book and a few minutes of meditation "
    "before work",
    "gu-yan": "I run my own startup, wear a sharp dark suit to close deals and love a smoky "
    "evening cologne",
    "lin-yue": "I adore traditional Chinese opera, silk cheongsam dresses, pearls and antique "
    "porcelain",
    "su-qing": "Looking for a rose perfume as an anniversary present for my girlfriend, she "
    "loves romantic candlelit dates",
    "tang-xiaoxi": "I'm a student who loves K-pop idols, bubble tea with friends, karaoke and "
    "sweet fruity candy scents",
    "xu-mo": "I make techno in my studio, spray graffiti and skate around the city at night "
    "in baggy deconstructed clothes",
    "zhao-feng": "Backpacking through the mountains, camping in a tent and riding a motorcycle "
    "across remote highlands",
}


@pytest.mark.slow
@pytest.mark.parametrize("out_name", ["pairings.csv", "pairings.jsonl"])
def test_real_model_pairs_clear_shoppers(
    sample_matcher: Matcher, tmp_path: Path, out_name: str
) -> None:
    assert set(SHOPPERS_FOR) <= set(sample_matcher.index.celebrity_ids)
    rows = [(f"for-{celebrity_id}", text) for celebrity_id, text in SHOPPERS_FOR.items()]
    source = write_input(tmp_path / "shoppers.csv", rows)
    out = tmp_path / out_name

    summary = run_batch(sample_matcher, source, out, k=3, batch_size=3)

    assert summary.matched == len(rows) and summary.bad == 0
    pairings = read_output(out)
    assert [shopper_id for shopper_id, _ in pairings] == [i for i, _ in rows]
    for shopper_id, celebrities in pairings:
        assert len(celebrities) == 3
        assert celebrities[0] == shopper_id.removeprefix("for-"), (shopper_id, celebrities)


@pytest.mark.slow
def test_real_model_batch_agrees_with_single_matches(
    sample_matcher: Matcher, tmp_path: Path
) -> None:
    rows = [(celebrity_id, text) for celebrity_id, text in SHOPPERS_FOR.items()]
    source = write_input(tmp_path / "shoppers.jsonl", rows)
    out = tmp_path / "pairings.jsonl"

    run_batch(sample_matcher, source, out, k=2, batch_size=4)

    for (_, text), record in zip(rows, read_jsonl(out), strict=True):
        single = sample_matcher.match(text, 2)
        matches = record["matches"]
        assert isinstance(matches, list)
        assert [m["celebrity_id"] for m in matches] == [m.celebrity_id for m in single]
        assert np.allclose([m["score"] for m in matches], [m.score for m in single], atol=2e-4)


@pytest.mark.parametrize("out_name", ["out.csv", "out.jsonl"])
def test_unsure_rows_are_written_and_marked(
    fake_matcher: Matcher, tmp_path: Path, out_name: str
) -> None:
    rows = [("s1", OCEAN_TEXT), ("s2", "asdfgh"), ("s3", "test")]
    source = write_input(tmp_path / "in.csv", rows)
    out = tmp_path / out_name

    summary = run_batch(fake_matcher, source, out, k=2)

    assert (summary.matched, summary.unsure, summary.bad) == (3, 2, 0)
    if out_name.endswith(".csv"):
        marks = [(r["id"], r["confident"], r["reason"]) for r in read_csv_rows(out)]
        assert marks == [
            ("s1", "true", ""),
            ("s2", "false", "no_content"),
            ("s3", "false", "too_short"),
        ]
    else:
        records = read_jsonl(out)
        assert [{k: r.get(k) for k in ("id", "confident", "reason")} for r in records] == [
            {"id": "s1", "confident": True, "reason": None},
            {"id": "s2", "confident": False, "reason": "no_content"},
            {"id": "s3", "confident": False, "reason": "too_short"},
        ]
        assert all(len(r["matches"]) == 2 for r in records)  # type: ignore[arg-type]
