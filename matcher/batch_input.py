"""Reading the shopper files planners have: CSV in any of their encodings, Excel, JSON Lines.

A planner's file comes out of Excel or a CRM, not out of a script, so it is
read the way they made it:

- **Encoding**, detected from the file: a byte-order mark first (UTF-8,
  UTF-16, UTF-32), then UTF-16 without a mark (its NUL bytes give it away),
  then UTF-8 if the start of the file is valid UTF-8, then GB18030 (which
  reads GBK and GB2312, Chinese Excel's "CSV" default) if the start decodes
  cleanly as such, then what charset-normalizer finds among Big5, Shift JIS
  and EUC-KR. Anything else is read as UTF-8, so that a few bad bytes make
  bad rows (reported with their line) rather than a refused file.
- **Delimiter**, sniffed from the header line: comma, semicolon (European
  Excel), tab or a vertical bar, whichever splits it into the most columns;
  ``.tsv`` files are tab-separated.
- **Excel** ``.xlsx``: the first sheet, read by python-calamine (a Rust
  reader, about 30 times openpyxl's speed; it holds the sheet's cells in
  memory, some 50 bytes a cell), its first non-empty row being the header;
  numbers that are whole (an id typed as a number) are written without ``.0``.
- **Columns**, found by name without regard to case or surrounding spaces
  (``ID``, ``Text``); :func:`guess_columns` proposes an id and a text column
  among the header's names for a planner to confirm.
- **Duplicate ids**: the first row with an id is matched, every later one is
  a bad row naming the line of the first (the ids seen are kept in memory,
  about 100 bytes a row).
- **Counting**: :func:`count_rows` counts data rows only (never the header,
  never wholly empty rows), so a progress bar of 20 shoppers ends at 20.

Encodings are worked out in :mod:`matcher.encodings`, workbooks opened in
:mod:`matcher.batch_xlsx`; this module turns either into rows.

Every message names the file by the name given (the name the planner
uploaded, never a temporary file's) and the line: for CSV and JSON Lines the
line of the file where the row ends, for Excel the sheet's row number.
Messages never quote a row's text, which is personal data.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .batch_rows import BadRow, ShopperRow
from .batch_xlsx import cell_text, open_sheet, sheet_header
from .encodings import encoding_label, encoding_of
from .errors import BatchInputError, InputError
from .limits import MAX_TEXT_CHARS
from .text import validate_text

#: How much of a file is looked at to tell its encoding and delimiter.
SAMPLE_BYTES = 256 * 1024
#: Delimiters tried on a CSV header, in order of preference when they tie.
DELIMITERS = (",", ";", "\t", "|")
#: File types by extension.
FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
}
#: Header names taken for the shopper id and the text when proposing a mapping (case-folded).
ID_NAMES = (
    "id",
    "shopper_id",
    "shopper id",
    "member_id",
    "member id",
    "customer_id",
    "customer id",
    "user_id",
    "ref",
    "编号",
    "会员id",
    "会员编号",
    "用户id",
    "客户id",
    "客户编号",
)
TEXT_NAMES = (
    "text",
    "likes",
    "comment",
    "comments",
    "answer",
    "description",
    "文本",
    "内容",
    "喜好",
    "留言",
    "描述",
    "回答",
)


#: What the encodings are called in messages.
@dataclass(frozen=True)
class InputFile:
    """A shopper file as it was found: its type, encoding, delimiter and columns.

    ``columns`` is the header (CSV, Excel), or the keys of the first objects
    (JSON Lines); ``name`` is what messages call the file.
    """

    path: Path
    name: str
    format: str
    encoding: str | None = None
    delimiter: str | None = None
    columns: tuple[str, ...] = ()

    @property
    def encoding_label(self) -> str:
        return encoding_label(self.encoding or "")


def input_format(path: str | Path, name: str | None = None) -> str:
    """``"csv"``, ``"jsonl"`` or ``"xlsx"`` from a file name, or :class:`BatchInputError`."""
    shown = name or Path(path).name
    suffix = Path(name or path).suffix.lower()
    found = FORMATS.get(suffix)
    if found is None:
        hint = " (save it from Excel as .xlsx or CSV)" if suffix == ".xls" else ""
        raise BatchInputError(
            f"{shown}: unknown file type {suffix or '(none)'!r}; use .csv, .tsv, .xlsx or "
            f".jsonl{hint}"
        )
    return found


def describe_input(path: str | Path, *, name: str | None = None) -> InputFile:
    """Look at a shopper file: its type, encoding, delimiter and column names.

    Raises:
        BatchInputError: the file cannot be read at all (missing, unknown type,
            empty, an unreadable header).
    """
    path = Path(path)
    shown = name or path.name
    fmt = input_format(path, name)
    if fmt == "xlsx":
        return InputFile(path, shown, fmt, columns=tuple(sheet_header(path, shown)[1]))
    encoding = detect_encoding(path, shown)
    if fmt == "jsonl":
        return InputFile(path, shown, fmt, encoding, columns=tuple(_jsonl_keys(path, encoding)))
    tab = Path(name or path).suffix.lower() == ".tsv"
    with _open_text(path, shown, encoding) as handle:
        first = _first_line(handle)
    delimiter = "\t" if tab else sniff_delimiter(first)
    with _open_text(path, shown, encoding) as handle:
        reader = csv.reader(handle, _dialect(delimiter))
        header = _csv_header(reader, shown, encoding)
    return InputFile(path, shown, fmt, encoding, delimiter, tuple(header))


def detect_encoding(path: Path, name: str | None = None) -> str:
    """The encoding a text file is read with (a Python codec name); see the module docs."""
    try:
        with open(path, "rb") as handle:
            sample = handle.read(SAMPLE_BYTES)
            more = bool(handle.read(1))
    except OSError as exc:
        raise BatchInputError(f"cannot read {name or path.name}: {exc.strerror}") from exc
    return encoding_of(sample, complete=not more)


def sniff_delimiter(header_line: str) -> str:
    """The delimiter that splits a CSV header line into the most columns (comma on a tie)."""
    best, most = ",", 1
    for delimiter in DELIMITERS:
        try:
            cells = next(csv.reader([header_line], _dialect(delimiter)), [])
        except csv.Error:
            continue
        if len(cells) > most:
            best, most = delimiter, len(cells)
    return best


def find_column(columns: Sequence[str], wanted: str) -> int | None:
    """Where column ``wanted`` is: an exact name first, else one differing only in case."""
    names = [column.strip() for column in columns]
    wanted = wanted.strip()
    if wanted in names:
        return names.index(wanted)
    folded = [name.casefold() for name in names]
    if folded.count(wanted.casefold()) == 1:
        return folded.index(wanted.casefold())
    return None


def guess_columns(columns: Sequence[str]) -> tuple[str | None, str | None]:
    """An id column and a text column proposed among ``columns`` (``None`` when no name fits)."""
    folded = [column.strip().casefold() for column in columns]

    def first(names: Sequence[str]) -> str | None:
        for name in names:
            if name in folded:
                return columns[folded.index(name)].strip()
        return None

    return first(ID_NAMES), first(TEXT_NAMES)


def missing_columns(found: InputFile, id_column: str, text_column: str) -> list[str]:
    """The asked-for columns that ``found`` does not have (JSON Lines never misses any)."""
    if found.format == "jsonl":
        return []
    return [c for c in (id_column, text_column) if find_column(found.columns, c) is None]


def check_columns(found: InputFile, id_column: str, text_column: str) -> None:
    """Raise :class:`BatchInputError` naming the columns ``found`` lacks, and those it has."""
    missing = missing_columns(found, id_column, text_column)
    if missing:
        raise BatchInputError(
            f"{found.name}: no {' or '.join(repr(c) for c in missing)} column; "
            f"the columns are {', '.join(repr(c) for c in found.columns)} "
            "(the id and text columns can be named explicitly)"
        )


class ShopperRows(Iterator[ShopperRow | BadRow]):
    """The rows of an open input; :meth:`close` closes the file even before the first row."""

    def __init__(self, handle: Any, rows: Iterator[ShopperRow | BadRow]) -> None:
        self._handle = handle
        self._rows = rows

    def __next__(self) -> ShopperRow | BadRow:
        return next(self._rows)

    def close(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()
        self._handle.close()


def read_rows(
    path: str | Path,
    *,
    id_column: str = "id",
    text_column: str = "text",
    max_chars: int = MAX_TEXT_CHARS,
    name: str | None = None,
    unique: bool = True,
) -> ShopperRows:
    """Stream the rows of a CSV, Excel or JSON Lines file of shoppers.

    The file is opened and its header checked at once, so a file that cannot
    be used fails before any (slow) model loading; rows are then read lazily.

    Args:
        name: what messages call the file (the uploaded file's name); the
            path's own name by default.
        unique: report a repeated id as a bad row (the first one is kept).

    Returns:
        An iterator of :class:`ShopperRow` for each usable row and :class:`BadRow`
        for each row that is not; wholly empty rows are skipped.

    Raises:
        BatchInputError: the file cannot be read at all (missing, unknown type,
            missing column, undecodable header).
    """
    found = describe_input(path, name=name)
    check_columns(found, id_column, text_column)
    handle: Any
    rows: Iterator[ShopperRow | BadRow]
    if found.format == "xlsx":
        handle, cells = open_sheet(found.path, found.name)
        rows = _cell_rows(cells, found, id_column, text_column, max_chars)
    else:
        handle = _open_text(found.path, found.name, found.encoding or "utf-8")
        try:
            if found.format == "csv":
                reader = csv.reader(handle, _dialect(found.delimiter or ","))
                _csv_header(reader, found.name, found.encoding or "utf-8")
                rows = _csv_records(reader, found, id_column, text_column, max_chars)
            else:
                rows = _jsonl_rows(handle, found, id_column, text_column, max_chars)
        except BaseException:
            handle.close()
            raise
    rows = _closing(handle, rows)
    return ShopperRows(handle, _unique(rows) if unique else rows)


def _closing(handle: Any, rows: Iterator[ShopperRow | BadRow]) -> Iterator[ShopperRow | BadRow]:
    """The rows, the file closed as soon as the last one is read (or the reading stops)."""
    try:
        yield from rows
    finally:
        handle.close()


def count_rows(path: str | Path, *, name: str | None = None) -> int:
    """How many data rows the file has: the header and wholly empty rows are not counted.

    Reads the whole file once (cheap next to matching it); a row the CSV
    reader cannot parse counts as one row.
    """
    found = describe_input(path, name=name)
    count = 0
    if found.format == "xlsx":
        workbook, sheet_rows = open_sheet(found.path, found.name)
        try:
            count = sum(1 for _, row in sheet_rows if any(cell_text(v).strip() for v in row))
        finally:
            workbook.close()
        return count
    with _open_text(found.path, found.name, found.encoding or "utf-8") as handle:
        if found.format == "jsonl":
            return sum(1 for line in handle if line.strip())
        reader = csv.reader(handle, _dialect(found.delimiter or ","))
        _csv_header(reader, found.name, found.encoding or "utf-8")
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return count
            except csv.Error:
                count += 1
                continue
            count += any(cell.strip() for cell in cells)


# -- text files ---------------------------------------------------------------------------


def _open_text(path: Path, name: str, encoding: str) -> IO[str]:
    try:
        # surrogateescape keeps undecodable bytes, so one bad row is reported
        # and skipped instead of aborting the whole file.
        return open(path, encoding=encoding, errors="surrogateescape", newline="")
    except OSError as exc:
        raise BatchInputError(f"cannot read {name}: {exc.strerror}") from exc


def _first_line(handle: IO[str]) -> str:
    for line in handle:
        if line.strip():
            return line.rstrip("\r\n")
    return ""


def _dialect(delimiter: str) -> Any:
    return csv.excel_tab if delimiter == "\t" else _delimited(delimiter)


def _delimited(delimiter: str) -> type[csv.Dialect]:
    class Delimited(csv.excel):
        pass

    Delimited.delimiter = delimiter
    return Delimited


def _csv_header(reader: Any, name: str, encoding: str) -> list[str]:
    """Read the header (the first non-empty line) and return its column names."""
    while True:
        try:
            header = next(reader)
        except StopIteration:
            raise BatchInputError(f"{name}: the file is empty") from None
        except csv.Error as exc:
            raise BatchInputError(f"{name}: line {reader.line_num}: {exc}") from exc
        if any(cell.strip() for cell in header):
            break
    if _has_surrogates("".join(header)):
        raise BatchInputError(
            f"{name}: line {reader.line_num}: the header is not valid {encoding_label(encoding)}"
        )
    return [cell.strip().lstrip("\ufeff") for cell in header]


def _csv_records(
    reader: Any, found: InputFile, id_column: str, text_column: str, max_chars: int
) -> Iterator[ShopperRow | BadRow]:
    id_at = find_column(found.columns, id_column)
    text_at = find_column(found.columns, text_column)
    assert id_at is not None and text_at is not None
    encoding = found.encoding or "utf-8"
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadRow(reader.line_num, None, f"unreadable CSV: {exc}")
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        shopper_id = cells[id_at].strip() if id_at < len(cells) else ""
        text = cells[text_at] if text_at < len(cells) else ""
        yield checked(line, shopper_id, text, max_chars, encoding)


def _jsonl_keys(path: Path, encoding: str) -> list[str]:
    """The keys of the first few objects, for a mapping to choose from."""
    keys: dict[str, None] = {}
    with _open_text(path, path.name, encoding) as handle:
        for number, line in enumerate(handle):
            if number >= 20:
                break
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(record, dict):
                keys.update(dict.fromkeys(str(key) for key in record))
    return list(keys)


def _jsonl_rows(
    handle: IO[str], found: InputFile, id_column: str, text_column: str, max_chars: int
) -> Iterator[ShopperRow | BadRow]:
    with handle:
        yield from _jsonl_records(handle, found, id_column, text_column, max_chars)


def _jsonl_records(
    handle: IO[str], found: InputFile, id_column: str, text_column: str, max_chars: int
) -> Iterator[ShopperRow | BadRow]:
    encoding = found.encoding or "utf-8"
    for line_number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        if _has_surrogates(line):
            yield BadRow(line_number, None, f"not valid {encoding_label(encoding)}")
            continue
        try:
            record = json.loads(line, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            yield BadRow(line_number, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            yield BadRow(line_number, None, "not valid JSON (nested too deeply)")
            continue
        except ValueError:
            # A number past Python's digit limit, or NaN/Infinity (not JSON).
            yield BadRow(line_number, None, "not valid JSON (a number that cannot be read)")
            continue
        if not isinstance(record, dict):
            yield BadRow(line_number, None, "not a JSON object")
            continue
        key_id = _key(record, id_column)
        raw_id = record.get(key_id)
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int | float | None):
            yield BadRow(line_number, None, f"{id_column!r} is not a string or a number")
            continue
        shopper_id = "" if raw_id is None else str(raw_id).strip()
        text = record.get(_key(record, text_column))
        if text is not None and not isinstance(text, str):
            yield BadRow(line_number, shopper_id or None, f"{text_column!r} is not a string")
            continue
        yield checked(line_number, shopper_id, text or "", max_chars, encoding)


def _key(record: dict[str, Any], wanted: str) -> str:
    """The key of ``record`` meaning ``wanted``: itself, else the one differing only in case."""
    if wanted in record:
        return wanted
    at = find_column([str(key) for key in record], wanted)
    return str(list(record)[at]) if at is not None else wanted


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# -- Excel --------------------------------------------------------------------------------


def _cell_rows(
    cells: Iterator[tuple[int, tuple[Any, ...]]],
    found: InputFile,
    id_column: str,
    text_column: str,
    max_chars: int,
) -> Iterator[ShopperRow | BadRow]:
    id_at = find_column(found.columns, id_column)
    text_at = find_column(found.columns, text_column)
    assert id_at is not None and text_at is not None
    for number, values in cells:
        row = [cell_text(value) for value in values]
        if not any(cell.strip() for cell in row):
            continue
        shopper_id = row[id_at].strip() if id_at < len(row) else ""
        text = row[text_at] if text_at < len(row) else ""
        yield checked(number, shopper_id, text, max_chars, "utf-8")


# -- rows ---------------------------------------------------------------------------------


def checked(
    line: int, shopper_id: str, text: str, max_chars: int, encoding: str = "utf-8"
) -> ShopperRow | BadRow:
    """A row as read, or the bad row it is (an unreadable byte, a blank id, a bad text)."""
    if _has_surrogates(shopper_id) or _has_surrogates(text):
        return BadRow(line, None, f"not valid {encoding_label(encoding)}")
    if not shopper_id:
        return BadRow(line, None, "id is blank")
    try:
        return ShopperRow(line, shopper_id, validate_text(text, max_chars=max_chars))
    except InputError as exc:
        return BadRow(line, shopper_id, str(exc))


def _unique(rows: Iterator[ShopperRow | BadRow]) -> Iterator[ShopperRow | BadRow]:
    """Rows whose id came before become bad rows naming the first one's line."""
    first: dict[str, int] = {}
    try:
        for row in rows:
            if isinstance(row, ShopperRow):
                seen = first.setdefault(row.id, row.line)
                if seen != row.line:
                    yield BadRow(row.line, row.id, f"duplicate id: the same id is on line {seen}")
                    continue
            yield row
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


_SURROGATES = re.compile("[\udc80-\udcff]")


def _has_surrogates(text: str) -> bool:
    return _SURROGATES.search(text) is not None
