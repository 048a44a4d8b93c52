"""Streaming batch matching: shopper files in, pairings out, bad rows reported, memory flat.

Input is CSV (``id`` and ``text`` columns by default) or JSON Lines; output is
CSV or JSON Lines, chosen by extension. Rows are read, matched in encoder
batches and written one batch at a time, so a million-row file needs no more
memory than a few hundred rows. A bad row (blank text, invalid UTF-8, broken
JSON...) is reported with its line number and skipped; the batch goes on.
Bad-row reports never include the shopper's text, which is personal data.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .batch_assign import BEST, AssignmentReport, Placed, place_rows
from .batch_output import (  # noqa: F401 - re-exported: callers import the writers from here
    FORMULA_PREFIXES,
    CsvPairingWriter,
    JsonlPairingWriter,
    PairingWriter,
    escape_cell,
)
from .batch_rows import BadRow, Paired, ShopperRow
from .capacity import limits_of
from .errors import BatchInputError, InputError
from .limits import DEFAULT_BATCH_SIZE, MAX_TEXT_CHARS
from .matching import DEFAULT_TOP_K, Matcher
from .text import validate_text

#: Bad rows kept in memory for the summary; the rest are only counted (and
#: all are written to the rejects file by the CLI).
MAX_KEPT_BAD_ROWS = 1000


@dataclass
class BatchSummary:
    """Counts for the whole batch, and the first bad rows.

    ``matched`` counts every row written out; ``unsure`` those of them whose
    answer is not confident (written, marked ``confident: false``).
    """

    matched: int = 0
    unsure: int = 0
    bad: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    #: What the roster's quotas and shares cost, when it has any.
    assignment: AssignmentReport | None = None

    def add_bad(self, row: BadRow) -> None:
        self.bad += 1
        if len(self.bad_rows) < MAX_KEPT_BAD_ROWS:
            self.bad_rows.append(row)


def input_format(path: str | Path) -> str:
    """``"csv"`` or ``"jsonl"`` from a file name, or :class:`BatchInputError`."""
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise BatchInputError(
        f"{Path(path).name}: unknown file type {suffix or '(none)'!r}; use .csv or .jsonl"
    )


def count_lines(path: str | Path) -> int:
    """Lines in ``path``, counted in binary chunks: a cheap total for a progress bar."""
    count = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def read_shoppers(
    path: str | Path,
    *,
    id_column: str = "id",
    text_column: str = "text",
    max_chars: int = MAX_TEXT_CHARS,
) -> ShopperRows:
    """Stream the rows of a CSV or JSON Lines file.

    The file is opened and a CSV header checked at once, so a file that cannot
    be used fails before any (slow) model loading; rows are then read lazily.

    Returns:
        An iterator of :class:`ShopperRow` for each usable row and :class:`BadRow`
        for each row that is not; wholly empty rows are skipped.

    Raises:
        BatchInputError: the file cannot be read at all (missing, unknown type,
            missing column, undecodable header).
    """
    path = Path(path)
    fmt = input_format(path)
    handle = _open_input(path)
    try:
        if fmt == "csv":
            return ShopperRows(handle, _read_csv(handle, path, id_column, text_column, max_chars))
        return ShopperRows(handle, _read_jsonl(handle, id_column, text_column, max_chars))
    except BaseException:
        handle.close()
        raise


class ShopperRows(Iterator[ShopperRow | BadRow]):
    """The rows of an open input; :meth:`close` closes the file even before the first row."""

    def __init__(self, handle: IO[str], rows: Iterator[ShopperRow | BadRow]) -> None:
        self._handle = handle
        self._rows = rows

    def __next__(self) -> ShopperRow | BadRow:
        return next(self._rows)

    def close(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()
        self._handle.close()


def check_input(path: str | Path, *, id_column: str = "id", text_column: str = "text") -> None:
    """Check that ``path`` can be read as shopper input (type, header, columns).

    Raises:
        BatchInputError: saying what is wrong, before any slow work starts.
    """
    path = Path(path)
    fmt = input_format(path)
    with _open_input(path) as handle:
        if fmt == "csv":
            _csv_columns(_csv_reader(handle, path), path, id_column, text_column)


def _open_input(path: Path) -> IO[str]:
    try:
        # surrogateescape keeps undecodable bytes, so one bad row is reported
        # and skipped instead of aborting the whole file.
        return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise BatchInputError(f"cannot read {path}: {exc.strerror}") from exc


def _csv_reader(handle: IO[str], path: Path) -> Any:
    return csv.reader(handle, dialect="excel-tab" if path.suffix.lower() == ".tsv" else "excel")


def _read_csv(
    handle: IO[str], path: Path, id_column: str, text_column: str, max_chars: int
) -> Iterator[ShopperRow | BadRow]:
    reader = _csv_reader(handle, path)
    id_at, text_at = _csv_columns(reader, path, id_column, text_column)
    return _csv_rows(handle, reader, id_at, text_at, max_chars)


def _csv_columns(reader: Any, path: Path, id_column: str, text_column: str) -> tuple[int, int]:
    """Read the header and return the positions of the id and text columns."""
    try:
        header = next(reader)
    except StopIteration:
        raise BatchInputError(f"{path.name}: the file is empty") from None
    except csv.Error as exc:
        raise BatchInputError(f"{path.name}: line 1: {exc}") from exc
    if _has_surrogates("".join(header)):
        raise BatchInputError(f"{path.name}: line 1: the header is not valid UTF-8")
    columns = [name.strip() for name in header]
    missing = [c for c in (id_column, text_column) if c not in columns]
    if missing:
        raise BatchInputError(
            f"{path.name}: no {' or '.join(repr(c) for c in missing)} column; "
            f"the columns are {', '.join(repr(c) for c in columns)} "
            "(the id and text columns can be named explicitly)"
        )
    return columns.index(id_column), columns.index(text_column)


def _csv_rows(
    handle: IO[str], reader: Any, id_at: int, text_at: int, max_chars: int
) -> Iterator[ShopperRow | BadRow]:
    with handle:
        yield from _csv_records(reader, id_at, text_at, max_chars)


def _csv_records(
    reader: Any, id_at: int, text_at: int, max_chars: int
) -> Iterator[ShopperRow | BadRow]:
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
        yield _checked(line, shopper_id, text, max_chars)


def _read_jsonl(
    handle: IO[str], id_column: str, text_column: str, max_chars: int
) -> Iterator[ShopperRow | BadRow]:
    with handle:
        yield from _jsonl_rows(handle, id_column, text_column, max_chars)


def _jsonl_rows(
    handle: IO[str], id_column: str, text_column: str, max_chars: int
) -> Iterator[ShopperRow | BadRow]:
    for line_number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        if _has_surrogates(line):
            yield BadRow(line_number, None, "not valid UTF-8")
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
        raw_id = record.get(id_column)
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int | float | None):
            yield BadRow(line_number, None, f"{id_column!r} is not a string or a number")
            continue
        shopper_id = "" if raw_id is None else str(raw_id).strip()
        text = record.get(text_column)
        if text is not None and not isinstance(text, str):
            yield BadRow(line_number, shopper_id or None, f"{text_column!r} is not a string")
            continue
        yield _checked(line_number, shopper_id, text or "", max_chars)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _checked(line: int, shopper_id: str, text: str, max_chars: int) -> ShopperRow | BadRow:
    if _has_surrogates(shopper_id) or _has_surrogates(text):
        return BadRow(line, None, "not valid UTF-8")
    if not shopper_id:
        return BadRow(line, None, "id is blank")
    try:
        return ShopperRow(line, shopper_id, validate_text(text, max_chars=max_chars))
    except InputError as exc:
        return BadRow(line, shopper_id, str(exc))


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def match_rows(
    matcher: Matcher,
    rows: Iterable[ShopperRow | BadRow],
    *,
    k: int = DEFAULT_TOP_K,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[Paired | BadRow]:
    """Match a stream of rows in encoder batches, keeping input order.

    Bad rows pass through at their place in the stream; a text the matcher
    rejects becomes a bad row too.
    """
    k = matcher.check_k(k)
    pending: list[ShopperRow | BadRow] = []
    good = 0
    for row in rows:
        if isinstance(row, ShopperRow) and len(row.text) > matcher.max_chars:
            # Rows read with another limit: refuse exactly what the matcher refuses.
            row = _checked(row.line, row.id, row.text, matcher.max_chars)
        pending.append(row)
        if isinstance(row, ShopperRow):
            good += 1
            if good >= batch_size:
                yield from _flush(matcher, pending, k)
                pending, good = [], 0
    yield from _flush(matcher, pending, k)


def _flush(
    matcher: Matcher, pending: list[ShopperRow | BadRow], k: int
) -> Iterator[Paired | BadRow]:
    shoppers = [row for row in pending if isinstance(row, ShopperRow)]
    results = iter(matcher.match_many([row.text for row in shoppers], k))
    for row in pending:
        if isinstance(row, ShopperRow):
            matches = next(results)
            yield Paired(row, matches, matcher.assess(row.text, matches))
        else:
            yield row


def best_placed(paired: Paired) -> Placed:
    """Without quotas or shares, a confident row is assigned its best fit."""
    if not paired.assessment.confident or not paired.matches:
        return Placed(paired, None, None)
    return Placed(paired, paired.matches[0].celebrity_id, BEST)


def run_batch(
    matcher: Matcher,
    input_path: str | Path,
    output_path: str | Path,
    *,
    k: int = DEFAULT_TOP_K,
    id_column: str = "id",
    text_column: str = "text",
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_row: Callable[[int], None] | None = None,
    on_bad_row: Callable[[BadRow], None] | None = None,
) -> BatchSummary:
    """Match every row of ``input_path`` and write the pairings to ``output_path``.

    The output is written to a temporary file (mode 0600) and renamed at the
    end, so an interrupted run never leaves a truncated file that looks
    complete; a killed run's temporary is deleted by the next run in that folder.

    Args:
        on_row: called with the input line number after each row (for progress).
        on_bad_row: called with each bad row as it is found.

    Raises:
        BatchInputError: the input cannot be read at all, or the output type is unknown.
    """
    from .files import open_private, sweep_temporaries, temporary_path

    output_path = Path(output_path)
    out_format = input_format(output_path)
    k = matcher.check_k(k)
    rows = read_shoppers(
        input_path, id_column=id_column, text_column=text_column, max_chars=matcher.max_chars
    )
    summary = BatchSummary()
    # Outputs hold references and pairings: private from the first byte, and
    # what a killed run left beside them is swept before this one writes.
    sweep_temporaries(output_path.parent)
    # Older versions named the temporary this way.
    output_path.with_name(f".{output_path.name}.part").unlink(missing_ok=True)
    tmp = temporary_path(output_path, ".part")
    limits = limits_of(matcher.index.profiles)
    celebrities = [profile.id for profile in matcher.index.profiles]

    def counted(items: Iterable[Paired | BadRow]) -> Iterator[Paired | BadRow]:
        """Count and report rows as they are matched, before any waits for the assignment."""
        for item in items:
            if isinstance(item, BadRow):
                summary.add_bad(item)
                if on_bad_row is not None:
                    on_bad_row(item)
            else:
                summary.matched += 1
                summary.unsure += not item.assessment.confident
            if on_row is not None:
                on_row(item.line if isinstance(item, BadRow) else item.row.line)
            yield item

    try:
        with open_private(tmp, "w", encoding="utf-8", newline="") as handle:
            writer: PairingWriter = (
                CsvPairingWriter(handle, k) if out_format == "csv" else JsonlPairingWriter(handle)
            )
            if limits:
                # The assignment weighs every celebrity, and needs the whole batch first.
                summary.assignment = AssignmentReport()
                matched = counted(
                    match_rows(matcher, rows, k=len(celebrities), batch_size=batch_size)
                )
                spool = temporary_path(output_path, ".tmp")
                placed = place_rows(
                    matched, celebrities, limits, spool, k=k, report=summary.assignment
                )
            else:
                placed = (
                    item if isinstance(item, BadRow) else best_placed(item)
                    for item in counted(match_rows(matcher, rows, k=k, batch_size=batch_size))
                )
            for item in placed:
                if not isinstance(item, BadRow):
                    writer.write(item)
            writer.close()
        os.replace(tmp, output_path)
    finally:
        # The input is open from read_shoppers on: closed here too when the
        # output could not be written, or the matching stopped early.
        rows.close()
        if tmp.exists():
            tmp.unlink()
    return summary
