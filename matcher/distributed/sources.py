"""Shopper files as Ray Data datasets, read by the core's own readers.

A CSV or JSON Lines file is read by :func:`matcher.batch.read_shoppers`, the
same reader the local batch uses, inside one Ray read task that streams the
rows out in blocks: so a bad row gets the same message and the same line
number as locally, and a quoted CSV cell spanning several
lines is still one row. Reading and checking a row costs microseconds, the
encoder milliseconds, so one reader keeps any number of workers busy.

A Parquet file has no lines: its rows are numbered from 1, one read task per
row group (whose first row number is known from the file's metadata), and
each row is checked the way a JSON Lines record is (an id that is a string or
a number, a text that is a string, then :func:`matcher.text.validate_text`).

Blocks hold ``line``, ``id``, ``text`` and ``bad`` (the reason a row is bad,
``None`` for a good one); a bad row's text is never carried along.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..batch import check_input, read_shoppers
from ..batch_rows import BadRow, ShopperRow
from ..errors import BatchInputError, InputError
from ..limits import MAX_TEXT_CHARS
from ..text import validate_text

if TYPE_CHECKING:
    import pyarrow

#: Rows per block handed from the reader to the workers, unless told otherwise.
BLOCK_ROWS = 256
#: File types read by this module (CSV and JSON Lines by the core's readers).
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def check_source(path: Path, *, id_column: str, text_column: str) -> int:
    """Check that ``path`` can be read (type, header, columns) before Ray starts.

    Returns:
        The number of lines (CSV, JSON Lines) or rows (Parquet), for a progress bar.

    Raises:
        BatchInputError: the file cannot be used, saying why.
    """
    if not is_parquet(path):
        from ..batch import count_lines

        check_input(path, id_column=id_column, text_column=text_column)
        return count_lines(path)
    metadata = _parquet_file(path).metadata
    columns = list(metadata.schema.to_arrow_schema().names)
    missing = [c for c in (id_column, text_column) if c not in columns]
    if missing:
        raise BatchInputError(
            f"{path.name}: no {' or '.join(repr(c) for c in missing)} column; "
            f"the columns are {', '.join(repr(c) for c in columns)} "
            "(the id and text columns can be named explicitly)"
        )
    return int(metadata.num_rows)


def _parquet_file(path: Path) -> Any:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except OSError as exc:
        raise BatchInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except pyarrow.ArrowInvalid as exc:
        raise BatchInputError(f"{path.name}: not a readable Parquet file ({exc})") from exc


def row_block(rows: Iterable[ShopperRow | BadRow]) -> pyarrow.Table:
    """One block of read rows, in the columns the workers expect."""
    import pyarrow

    lines: list[int] = []
    ids: list[str | None] = []
    texts: list[str | None] = []
    bad: list[str | None] = []
    for row in rows:
        lines.append(row.line)
        ids.append(row.id)
        if isinstance(row, BadRow):
            texts.append(None)
            bad.append(row.reason)
        else:
            texts.append(row.text)
            bad.append(None)
    return pyarrow.table(
        {
            "line": pyarrow.array(lines, pyarrow.int64()),
            "id": pyarrow.array(ids, pyarrow.string()),
            "text": pyarrow.array(texts, pyarrow.string()),
            "bad": pyarrow.array(bad, pyarrow.string()),
        }
    )


def block_rows(block: pyarrow.Table) -> list[ShopperRow | BadRow]:
    """The rows of a block made by :func:`row_block`, in order."""
    columns = block.to_pydict()
    rows: list[ShopperRow | BadRow] = []
    for line, shopper_id, text, bad in zip(
        columns["line"], columns["id"], columns["text"], columns["bad"], strict=True
    ):
        if bad is None:
            rows.append(ShopperRow(int(line), shopper_id, text))
        else:
            rows.append(BadRow(int(line), shopper_id, bad))
    return rows


def _blocks(rows: Iterable[ShopperRow | BadRow], size: int) -> Iterator[pyarrow.Table]:
    pending: list[ShopperRow | BadRow] = []
    for row in rows:
        pending.append(row)
        if len(pending) >= size:
            yield row_block(pending)
            pending = []
    if pending:
        yield row_block(pending)


def read_text_file(
    path: Path, id_column: str, text_column: str, max_chars: int, size: int = BLOCK_ROWS
) -> Iterator[pyarrow.Table]:
    """Blocks of a CSV or JSON Lines file, read by the core's reader."""
    rows = read_shoppers(path, id_column=id_column, text_column=text_column, max_chars=max_chars)
    try:
        yield from _blocks(rows, size)
    finally:
        rows.close()


def parquet_row(
    line: int, raw_id: object, text: object, *, text_column: str, id_column: str, max_chars: int
) -> ShopperRow | BadRow:
    """Check one Parquet row the way the JSON Lines reader checks a record."""
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int | float | None):
        return BadRow(line, None, f"{id_column!r} is not a string or a number")
    shopper_id = "" if raw_id is None else str(raw_id).strip()
    if text is not None and not isinstance(text, str):
        return BadRow(line, shopper_id or None, f"{text_column!r} is not a string")
    if not shopper_id:
        return BadRow(line, None, "id is blank")
    try:
        return ShopperRow(line, shopper_id, validate_text(text or "", max_chars=max_chars))
    except InputError as exc:
        return BadRow(line, shopper_id, str(exc))


def read_row_group(
    path: Path,
    group: int,
    first_line: int,
    id_column: str,
    text_column: str,
    max_chars: int,
    size: int = BLOCK_ROWS,
) -> Iterator[pyarrow.Table]:
    """Blocks of one Parquet row group, its rows numbered from ``first_line``."""
    parquet = _parquet_file(path)
    line = first_line
    for batch in parquet.iter_batches(
        batch_size=size, row_groups=[group], columns=[id_column, text_column]
    ):
        columns = batch.to_pydict()
        rows: list[ShopperRow | BadRow] = []
        for raw_id, text in zip(columns[id_column], columns[text_column], strict=True):
            rows.append(
                parquet_row(
                    line,
                    raw_id,
                    text,
                    id_column=id_column,
                    text_column=text_column,
                    max_chars=max_chars,
                )
            )
            line += 1
        yield row_block(rows)


def shopper_dataset(
    path: Path,
    *,
    id_column: str = "id",
    text_column: str = "text",
    max_chars: int = MAX_TEXT_CHARS,
    block_rows: int = BLOCK_ROWS,
) -> Any:
    """A Ray Data dataset of the rows of ``path`` (CSV, JSON Lines or Parquet), in order.

    A block is the share of work one worker takes at a time, so ``block_rows``
    sets how finely the rows are spread over the workers.
    """
    import ray.data

    # Reading takes no CPU of its own: the workers hold every CPU for as long
    # as the batch runs, and a reader waiting for one would never start.
    return ray.data.read_datasource(
        ShopperSource(path.resolve(), id_column, text_column, max_chars, block_rows), num_cpus=0
    )


def _source_class() -> type:
    """Made on first use, so importing this module does not import Ray."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class _ShopperSource(Datasource):
        def __init__(self, path: Path, id_column: str, text_column: str, max_chars: int, size: int):
            self._path = path
            self._columns = (id_column, text_column)
            self._max_chars = max_chars
            self._size = size

        def estimate_inmemory_data_size(self) -> int:
            return self._path.stat().st_size

        @property
        def supports_distributed_reads(self) -> bool:
            # Read where the driver runs: the file the command checked is there,
            # whether on a local disk or on shared storage.
            return False

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
        ) -> list[Any]:
            path, (id_column, text_column), max_chars = self._path, self._columns, self._max_chars
            size = self._size
            if not is_parquet(path):
                meta = BlockMetadata(
                    num_rows=None,
                    size_bytes=path.stat().st_size,
                    input_files=(str(path),),
                    exec_stats=None,
                )
                read = functools.partial(
                    read_text_file, path, id_column, text_column, max_chars, size
                )
                return [ReadTask(read, meta)]
            metadata = _parquet_file(path).metadata
            tasks, first = [], 1
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                meta = BlockMetadata(
                    num_rows=rows,
                    size_bytes=metadata.row_group(group).total_byte_size,
                    input_files=(str(path),),
                    exec_stats=None,
                )
                read = functools.partial(
                    read_row_group, path, group, first, id_column, text_column, max_chars, size
                )
                tasks.append(ReadTask(read, meta))
                first += rows
            return tasks

    return _ShopperSource


def ShopperSource(  # noqa: N802 - made like a class
    path: Path, id_column: str, text_column: str, max_chars: int, block_rows: int = BLOCK_ROWS
) -> Any:
    """The Ray Data datasource of a shopper file (see the module's docstring)."""
    return _source_class()(path, id_column, text_column, max_chars, block_rows)
