"""Reading planners' shopper files: encodings, delimiters, Excel, column names, duplicates.

The files are written the way Excel and CRMs write them (a GBK CSV is encoded
with Python's GBK codec, a UTF-16 one with a byte-order mark as Excel's
"Unicode text", the workbook by openpyxl), and read back through the same
functions ``matcher batch`` and the planner's uploads use.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from matcher.batch import BatchSummary, nothing_read, read_shoppers, run_batch
from matcher.batch_input import (
    count_rows,
    describe_input,
    find_column,
    guess_columns,
    read_rows,
    sniff_delimiter,
)
from matcher.batch_rows import BadRow, ShopperRow
from matcher.cli import cli
from matcher.encodings import encoding_of
from matcher.errors import BatchInputError
from matcher.matching import Matcher

ZH_ROWS = [
    ("m001", "周末喜欢一个人去茶馆坐一下午，看看书"),
    ("m002", "喜欢冲浪和帆船，夏天一定要去海边"),
    ("m003", "演唱会、卡拉OK，和朋友在霓虹灯下跳舞"),
]
EN_ROWS = [
    ("s1", "surfing and sailing at the beach, sea salt on my skin"),
    ("s2", "reading novels in the library with green tea and old paper"),
]


def csv_bytes(
    header: list[str], rows: list[tuple[str, ...]], *, delimiter: str = ",", encoding: str = "utf-8"
) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def xlsx(path: Path, header: list[object], rows: list[tuple[object, ...]]) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(header)
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)
    return path


def good(rows: list[ShopperRow | BadRow]) -> list[tuple[str, str]]:
    return [(row.id, row.text) for row in rows if isinstance(row, ShopperRow)]


# -- encodings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "prefix", "expected"),
    [
        pytest.param("utf-8", b"", "utf-8", id="utf-8"),
        pytest.param("utf-8", b"\xef\xbb\xbf", "utf-8-sig", id="utf-8-bom"),
        pytest.param("gbk", b"", "gb18030", id="gbk"),
        pytest.param("gb18030", b"", "gb18030", id="gb18030"),
        pytest.param("utf-16", b"", "utf-16", id="utf-16-bom"),
        pytest.param("utf-16-le", b"", "utf-16-le", id="utf-16-le-no-bom"),
    ],
)
def test_chinese_csv_is_read_in_its_encoding(
    tmp_path: Path, encoding: str, prefix: bytes, expected: str
) -> None:
    data = prefix + csv_bytes(["id", "text"], ZH_ROWS, encoding=encoding)
    assert data.decode(encoding.replace("utf-8", "utf-8-sig")).startswith("id")
    source = write(tmp_path / "会员.csv", data)

    assert describe_input(source).encoding == expected
    assert good(list(read_rows(source))) == ZH_ROWS


def test_a_short_gbk_file_is_not_taken_for_japanese() -> None:
    # charset-normalizer alone calls these few bytes Shift JIS; GB18030 comes first.
    assert encoding_of("id,text\nm1,喜欢爬山\n".encode("gbk")) == "gb18030"


def test_a_few_bad_bytes_in_utf8_are_bad_rows_not_a_refused_file(tmp_path: Path) -> None:
    data = b"id,text\r\nm1,\xe5\x96\x9c\xe6\xac\xa2\r\nm2,broken \xff\xfe here\r\nm3,fine\r\n"
    rows = list(read_rows(write(tmp_path / "in.csv", data)))
    assert good(rows) == [("m1", "喜欢"), ("m3", "fine")]
    [bad] = [row for row in rows if isinstance(row, BadRow)]
    assert (bad.line, bad.reason) == (3, "not valid UTF-8")


# -- delimiters, header names -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("id,text", ",", id="comma"),
        pytest.param("id;text", ";", id="semicolon"),
        pytest.param("id\ttext", "\t", id="tab"),
        pytest.param("id|text", "|", id="bar"),
        pytest.param("id", ",", id="one-column"),
        pytest.param('"a;b",text', ",", id="quoted-semicolon"),
    ],
)
def test_delimiter_is_sniffed_from_the_header(line: str, expected: str) -> None:
    assert sniff_delimiter(line) == expected


def test_semicolon_csv_with_commas_in_texts(tmp_path: Path) -> None:
    rows = [("s1", "beach, surf, sun"), ("s2", "books, tea")]
    source = write(tmp_path / "in.csv", csv_bytes(["id", "text"], rows, delimiter=";"))
    assert describe_input(source).delimiter == ";"
    assert good(list(read_rows(source))) == rows


def test_header_names_are_matched_whatever_their_case(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", csv_bytes([" ID ", "Text"], EN_ROWS))
    assert good(list(read_rows(source))) == EN_ROWS


def test_column_names_in_json_lines_are_matched_whatever_their_case(tmp_path: Path) -> None:
    lines = "".join(json.dumps({"ID": i, "Text": t}) + "\n" for i, t in EN_ROWS)
    source = write(tmp_path / "in.jsonl", lines.encode())
    assert describe_input(source).columns == ("ID", "Text")
    assert good(list(read_rows(source))) == EN_ROWS


def test_an_exact_name_wins_over_one_in_another_case() -> None:
    assert find_column(["TEXT", "text"], "text") == 1
    assert find_column(["Text", "TEXT"], "text") is None  # ambiguous: neither is chosen
    assert find_column(["id", "Text"], "TEXT") == 1


def test_mapping_other_column_names(tmp_path: Path) -> None:
    source = write(
        tmp_path / "crm.csv", csv_bytes(["会员编号", "城市", "喜好"], [("v1", "上海", "爬山")])
    )
    found = describe_input(source)
    assert found.columns == ("会员编号", "城市", "喜好")
    assert guess_columns(found.columns) == ("会员编号", "喜好")
    assert good(list(read_rows(source, id_column="会员编号", text_column="喜好"))) == [
        ("v1", "爬山")
    ]
    with pytest.raises(BatchInputError) as caught:
        read_rows(source)
    assert "crm.csv: no 'id' or 'text' column" in str(caught.value)
    assert "'会员编号', '城市', '喜好'" in str(caught.value)


def test_guess_columns_proposes_nothing_it_cannot_tell() -> None:
    assert guess_columns(["a", "b"]) == (None, None)
    assert guess_columns(["Member ID", "Comments"]) == ("Member ID", "Comments")


# -- Excel --------------------------------------------------------------------------------


def test_xlsx_first_sheet_is_read_with_numbers_as_ids(tmp_path: Path) -> None:
    source = xlsx(
        tmp_path / "会员.xlsx",
        ["ID", "Name", "Text"],
        [(1001, "Li", ZH_ROWS[0][1]), (None, None, None), (1002.0, "Wang", ZH_ROWS[1][1])],
    )
    found = describe_input(source)
    assert (found.format, found.columns) == ("xlsx", ("ID", "Name", "Text"))
    rows = list(read_rows(source))
    assert rows == [ShopperRow(2, "1001", ZH_ROWS[0][1]), ShopperRow(4, "1002", ZH_ROWS[1][1])]
    assert count_rows(source) == 2


def test_xlsx_bad_rows_name_the_sheet_row(tmp_path: Path) -> None:
    source = xlsx(tmp_path / "in.xlsx", ["id", "text"], [("a", "beach"), ("b", "   "), ("", "x")])
    rows = list(read_rows(source))
    assert [(r.line, r.id) for r in rows if isinstance(r, BadRow)] == [(3, "b"), (4, None)]


def test_a_file_that_is_not_a_workbook_is_refused_by_its_name(tmp_path: Path) -> None:
    source = write(tmp_path / "upload-3f9c.tmp.xlsx", b"id,text\nnot a zip\n")
    with pytest.raises(BatchInputError) as caught:
        describe_input(source, name="members.xlsx")
    assert str(caught.value).startswith("members.xlsx: not an Excel .xlsx workbook")
    assert "3f9c" not in str(caught.value)


# -- duplicates, counting, messages -------------------------------------------------------


def test_duplicate_ids_keep_the_first_and_report_the_others(tmp_path: Path) -> None:
    rows = [("a", "beach"), ("b", "books"), ("a", "concerts"), ("a", "tea")]
    rows_read = list(read_rows(write(tmp_path / "in.csv", csv_bytes(["id", "text"], rows))))
    assert good(rows_read) == [("a", "beach"), ("b", "books")]
    bad = [row for row in rows_read if isinstance(row, BadRow)]
    assert [(row.line, row.id) for row in bad] == [(4, "a"), (5, "a")]
    assert all("line 2" in row.reason and "duplicate" in row.reason for row in bad)


def test_the_header_is_never_counted_as_a_row(tmp_path: Path) -> None:
    rows = [(f"s{n}", f"text {n}") for n in range(20)]
    source = write(tmp_path / "in.csv", csv_bytes(["id", "text"], rows) + b"\r\n\r\n")
    assert count_rows(source) == 20
    jsonl = write(
        tmp_path / "in.jsonl", b"".join(json.dumps({"id": i}).encode() + b"\n" for i in "ab")
    )
    assert count_rows(jsonl) == 2


def test_run_batch_counts_rows_not_lines(fake_matcher: Matcher, tmp_path: Path) -> None:
    rows = [(f"s{n}", EN_ROWS[n % 2][1]) for n in range(20)]
    source = write(tmp_path / "in.csv", csv_bytes(["id", "text"], rows))
    seen: list[int] = []
    summary = run_batch(fake_matcher, source, tmp_path / "out.csv", on_row=seen.append)
    assert (summary.rows, summary.matched, len(seen)) == (20, 20, 20)
    assert seen[0] == 2  # the first shopper is on the file's second line


def test_errors_name_the_uploaded_file_not_the_saved_one(tmp_path: Path) -> None:
    source = write(tmp_path / "9f2kq0upload.csv", b"")
    with pytest.raises(BatchInputError) as caught:
        read_shoppers(source, name="shoppers.csv")
    assert str(caught.value) == "shoppers.csv: the file is empty"


def test_a_file_of_which_no_row_can_be_read_says_why(tmp_path: Path) -> None:
    summary = BatchSummary()
    for line in (2, 3):
        summary.add_bad(BadRow(line, None, "id is blank"))
    assert (
        nothing_read(summary, "in.csv")
        == "in.csv: no row could be read (2 bad rows; all: id is blank)"
    )
    assert nothing_read(BatchSummary(matched=1, bad=3), "in.csv") is None
    assert nothing_read(BatchSummary(), "in.csv") is None


# -- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gbk", "xlsx", "semicolon-utf16"])
def test_matcher_batch_reads_what_planners_have(
    roster_dir: Path, tmp_path: Path, kind: str
) -> None:
    rows = [("m1", "surfing at the beach"), ("m2", "reading in the library")]
    if kind == "gbk":
        source = write(
            tmp_path / "in.csv",
            csv_bytes(["ID", "Text"], [*rows, ("m3", "喜欢爬山")], encoding="gbk"),
        )
        rows.append(("m3", "喜欢爬山"))
    elif kind == "xlsx":
        source = xlsx(tmp_path / "in.xlsx", ["ID", "Text"], list(rows))
    else:
        source = write(
            tmp_path / "in.csv", csv_bytes(["id", "text"], rows, delimiter=";", encoding="utf-16")
        )
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli,
        ["batch", "--profiles", str(roster_dir), "--index-dir", str(tmp_path / "index"),
         "-q", str(source), "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [i for i, _ in rows]


def test_matcher_batch_fails_when_no_row_can_be_read(roster_dir: Path, tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", b"id,text\r\n,beach\r\n,books\r\n")
    result = CliRunner().invoke(
        cli,
        ["batch", "--profiles", str(roster_dir), "--index-dir", str(tmp_path / "index"),
         "-q", str(source), "-o", str(tmp_path / "out.csv")],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "in.csv: no row could be read (2 bad rows; all: id is blank)" in result.output
