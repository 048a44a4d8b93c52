"""Pairings as Parquet: the CSV output's columns, typed, for a data warehouse.

One row per shopper: ``id``, then ``celebrity_N``, ``name_N``, ``score_N``
(a double) and ``reasons_N`` for each rank, then ``margin``, ``confident``
(a boolean), ``reason``, ``assigned`` and ``assignment``, as
:class:`matcher.batch_output.CsvPairingWriter` writes them but without the
spreadsheet escaping (nothing runs a Parquet cell as a formula). Rows are
buffered and written one row group at a time, so memory stays flat.
"""

from __future__ import annotations

from typing import IO, Any

from ..batch_assign import Placed

#: Rows per Parquet row group.
GROUP_ROWS = 10_000


class ParquetPairingWriter:
    """A :class:`matcher.batch_output.PairingWriter` writing Parquet to an open binary file."""

    def __init__(self, handle: IO[bytes], k: int) -> None:
        import pyarrow
        import pyarrow.parquet as pq

        fields = [pyarrow.field("id", pyarrow.string())]
        for rank in range(1, k + 1):
            fields += [
                pyarrow.field(f"celebrity_{rank}", pyarrow.string()),
                pyarrow.field(f"name_{rank}", pyarrow.string()),
                pyarrow.field(f"score_{rank}", pyarrow.float64()),
                pyarrow.field(f"reasons_{rank}", pyarrow.string()),
            ]
        fields += [
            pyarrow.field("margin", pyarrow.float64()),
            pyarrow.field("confident", pyarrow.bool_()),
            pyarrow.field("reason", pyarrow.string()),
            pyarrow.field("assigned", pyarrow.string()),
            pyarrow.field("assignment", pyarrow.string()),
        ]
        self._schema = pyarrow.schema(fields)
        self._k = k
        self._rows: list[dict[str, Any]] = []
        self._writer = pq.ParquetWriter(handle, self._schema)

    def write(self, placed: Placed) -> None:
        paired = placed.paired
        row: dict[str, Any] = {"id": paired.row.id}
        for rank, match in enumerate(paired.matches[: self._k], start=1):
            row[f"celebrity_{rank}"] = match.celebrity_id
            row[f"name_{rank}"] = match.name
            row[f"score_{rank}"] = match.score
            row[f"reasons_{rank}"] = "; ".join(f"{r.facet}: {r.quote}" for r in match.reasons)
        row["margin"] = paired.matches[0].margin if paired.matches else None
        row["confident"] = paired.assessment.confident
        row["reason"] = str(paired.assessment.reason or "")
        row["assigned"] = placed.assigned
        row["assignment"] = placed.why
        self._rows.append(row)
        if len(self._rows) >= GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow

        if self._rows:
            self._writer.write_table(pyarrow.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()
