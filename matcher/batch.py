"""Streaming batch matching: shopper files in, pairings out, bad rows reported, memory flat.

Input is CSV (any delimiter and encoding Excel writes), Excel ``.xlsx`` or JSON
Lines, read by :mod:`matcher.batch_input` (``id`` and ``text`` columns by
default, found whatever their case); output is CSV or JSON Lines, chosen by
extension. Rows are read, matched in encoder batches and written one batch at
a time, so a million-row file needs no more memory than a few hundred rows
besides the ids seen (kept to report duplicates). A bad row (blank text,
undecodable bytes, broken JSON, a repeated id...) is reported with its line
number and skipped; the batch goes on. Bad-row reports never include the
shopper's text, which is personal data.

:func:`counted_rows` is the batch loop itself; :func:`run_batch` (the command
line) and the web's batch jobs both go through it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import batch_input
from .batch_assign import BEST, AssignmentReport, Placed, place_rows
from .batch_input import ShopperRows
from .batch_output import (  # noqa: F401 - re-exported: callers import the writers from here
    FORMULA_PREFIXES,
    CsvPairingWriter,
    JsonlPairingWriter,
    PairingWriter,
    escape_cell,
)
from .batch_rows import BadRow, Paired, ShopperRow
from .capacity import limits_of
from .errors import BatchInputError, MatcherError
from .limits import DEFAULT_BATCH_SIZE, MAX_TEXT_CHARS
from .matching import DEFAULT_TOP_K, Matcher

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
    #: Rows read so far (matched or bad), never the header: the progress in rows.
    rows: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    #: What the roster's quotas and shares cost, when it has any.
    assignment: AssignmentReport | None = None

    def add_bad(self, row: BadRow) -> None:
        self.bad += 1
        if len(self.bad_rows) < MAX_KEPT_BAD_ROWS:
            self.bad_rows.append(row)


def input_format(path: str | Path, name: str | None = None) -> str:
    """``"csv"``, ``"jsonl"`` or ``"xlsx"`` from a file name, or :class:`BatchInputError`."""
    return batch_input.input_format(path, name)


def count_lines(path: str | Path) -> int:
    """Lines in ``path``, counted in binary chunks: a cheap total for a progress bar."""
    count = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def count_rows(path: str | Path, *, name: str | None = None) -> int:
    """Data rows in ``path`` (never the header): the total of a progress bar in rows."""
    return batch_input.count_rows(path, name=name)


def read_shoppers(
    path: str | Path,
    *,
    id_column: str = "id",
    text_column: str = "text",
    max_chars: int = MAX_TEXT_CHARS,
    name: str | None = None,
) -> ShopperRows:
    """Stream the rows of a CSV, Excel or JSON Lines file (see :mod:`matcher.batch_input`).

    The file is opened and a CSV header checked at once, so a file that cannot
    be used fails before any (slow) model loading; rows are then read lazily.
    Columns are found without regard to case; a repeated id is a bad row.

    Returns:
        An iterator of :class:`ShopperRow` for each usable row and :class:`BadRow`
        for each row that is not; wholly empty rows are skipped.

    Raises:
        BatchInputError: the file cannot be read at all (missing, unknown type,
            missing column, undecodable header).
    """
    return batch_input.read_rows(
        path, id_column=id_column, text_column=text_column, max_chars=max_chars, name=name
    )


def check_input(
    path: str | Path,
    *,
    id_column: str = "id",
    text_column: str = "text",
    name: str | None = None,
) -> None:
    """Check that ``path`` can be read as shopper input (type, encoding, header, columns).

    Raises:
        BatchInputError: saying what is wrong, before any slow work starts.
    """
    found = batch_input.describe_input(path, name=name)
    batch_input.check_columns(found, id_column, text_column)


def _checked(line: int, shopper_id: str, text: str, max_chars: int) -> ShopperRow | BadRow:
    return batch_input.checked(line, shopper_id, text, max_chars)


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


class BatchStopped(MatcherError):
    """Asked to stop (``should_stop`` said so) before it ended; nothing was written."""


def output_format(path: str | Path) -> str:
    """``"csv"`` or ``"jsonl"`` for an output file name, or :class:`BatchInputError`."""
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise BatchInputError(
        f"{Path(path).name}: unknown output type {suffix or '(none)'!r}; use .csv or .jsonl"
    )


def counted_rows(
    matcher: Matcher,
    rows: Iterable[ShopperRow | BadRow],
    summary: BatchSummary,
    *,
    k: int = DEFAULT_TOP_K,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_row: Callable[[int], None] | None = None,
    on_bad_row: Callable[[BadRow], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[Paired | BadRow]:
    """The batch loop: match ``rows`` in encoder batches, counting them into ``summary``.

    Every caller that matches a file (``run_batch``, the web's batch jobs)
    goes through this loop, so rows are counted, reported and stopped the
    same way everywhere.

    Args:
        on_row: called with the input line number after each row (for progress).
        on_bad_row: called with each bad row as it is found.
        should_stop: asked after each row; when it answers true the loop
            raises :class:`BatchStopped` (at most one encoder batch later).

    Raises:
        BatchStopped: ``should_stop`` asked to stop.
    """
    for item in match_rows(matcher, rows, k=k, batch_size=batch_size):
        if isinstance(item, BadRow):
            summary.add_bad(item)
            if on_bad_row is not None:
                on_bad_row(item)
        else:
            summary.matched += 1
            summary.unsure += not item.assessment.confident
        summary.rows += 1
        if on_row is not None:
            on_row(item.line if isinstance(item, BadRow) else item.row.line)
        if should_stop is not None and should_stop():
            raise BatchStopped("the batch was stopped before it ended; nothing was written")
        yield item


def nothing_read(summary: BatchSummary, name: str) -> str | None:
    """Why a batch whose every row was rejected failed, or ``None`` if a row was read.

    A file of which no row could be used is not a finished batch with many
    bad rows: it is the wrong file, or one read the wrong way, and the
    commonest reason says which.
    """
    if summary.matched or not summary.bad:
        return None
    reasons = Counter(row.reason for row in summary.bad_rows)
    reason, count = reasons.most_common(1)[0]
    return (
        f"{name}: no row could be read ({summary.bad} bad rows; "
        f"{'all' if count == summary.bad else 'most'}: {reason})"
    )


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
    should_stop: Callable[[], bool] | None = None,
    name: str | None = None,
) -> BatchSummary:
    """Match every row of ``input_path`` and write the pairings to ``output_path``.

    The output is written to a temporary file (mode 0600) and renamed at the
    end, so an interrupted run never leaves a truncated file that looks
    complete; a killed run's temporary is deleted by the next run in that folder.

    Args:
        on_row: called with the input line number after each row (for progress).
        on_bad_row: called with each bad row as it is found.
        should_stop: see :func:`counted_rows`; a stopped batch writes nothing.
        name: what messages call the input (an uploaded file's name).

    Raises:
        BatchInputError: the input cannot be read at all, or the output type is unknown.
        BatchStopped: ``should_stop`` asked to stop; no output was written.
    """
    from .files import open_private, sweep_temporaries, temporary_path

    output_path = Path(output_path)
    out_format = output_format(output_path)
    k = matcher.check_k(k)
    rows = read_shoppers(
        input_path,
        id_column=id_column,
        text_column=text_column,
        max_chars=matcher.max_chars,
        name=name,
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
    hooks: dict[str, Any] = {
        "batch_size": batch_size,
        "on_row": on_row,
        "on_bad_row": on_bad_row,
        "should_stop": should_stop,
    }

    try:
        with open_private(tmp, "w", encoding="utf-8", newline="") as handle:
            writer: PairingWriter = (
                CsvPairingWriter(handle, k) if out_format == "csv" else JsonlPairingWriter(handle)
            )
            placed: Iterable[Placed | BadRow]
            if limits:
                # The assignment weighs every celebrity, and needs the whole batch first.
                summary.assignment = AssignmentReport()
                matched = counted_rows(matcher, rows, summary, k=len(celebrities), **hooks)
                spool = temporary_path(output_path, ".tmp")
                placed = place_rows(
                    matched, celebrities, limits, spool, k=k, report=summary.assignment
                )
            else:
                placed = (
                    item if isinstance(item, BadRow) else best_placed(item)
                    for item in counted_rows(matcher, rows, summary, k=k, **hooks)
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
