"""Writing a batch's pairings: CSV for spreadsheets, JSON Lines for programs.

Every row carries the ranking by fit and, beside it, ``assigned``: the
celebrity the shopper is paired with under the roster's quotas and shares
(``batch_assign.py``), with ``assignment`` saying why (``best``, ``full``,
``balanced``). Without limits, ``assigned`` is the best fit.
"""

from __future__ import annotations

import csv
import json
from typing import IO, Any, Protocol

from .batch_assign import Placed

#: Cells starting with these are run as formulas by spreadsheet programs.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class PairingWriter(Protocol):
    def write(self, placed: Placed) -> None: ...
    def close(self) -> None: ...


def escape_cell(value: str) -> str:
    """Neutralise spreadsheet formula injection: prefix formula-looking cells with ``'``.

    Spreadsheets skip leading spaces before a formula (`` =1`` is still run), so
    the check looks past any whitespace.
    """
    formula = value.startswith(FORMULA_PREFIXES) or value.lstrip().startswith(FORMULA_PREFIXES)
    return "'" + value if formula else value


class CsvPairingWriter:
    """One row per shopper: id, then celebrity, score and reasons for each rank.

    Then ``margin``, ``confident`` (``true`` or ``false``), ``reason`` (empty
    when confident; else a code of ``matcher.confidence.Doubt``), ``assigned``
    (empty when unsure or no place was left) and ``assignment``.

    Every text cell goes through :func:`escape_cell`: ids come from the client
    and names and reasons from planners, and any of them may open in a spreadsheet.
    """

    def __init__(self, handle: IO[str], k: int) -> None:
        self._writer = csv.writer(handle)
        header = ["id"]
        for rank in range(1, k + 1):
            header += [f"celebrity_{rank}", f"name_{rank}", f"score_{rank}", f"reasons_{rank}"]
        header += ["margin", "confident", "reason", "assigned", "assignment"]
        self._writer.writerow(header)

    def write(self, placed: Placed) -> None:
        paired = placed.paired
        cells = [escape_cell(paired.row.id)]
        for match in paired.matches:
            reasons = "; ".join(f"{r.facet}: {r.quote}" for r in match.reasons)
            cells += [
                escape_cell(match.celebrity_id),
                escape_cell(match.name),
                f"{match.score:.4f}",
                escape_cell(reasons),
            ]
        cells.append(f"{paired.matches[0].margin:.4f}" if paired.matches else "")
        verdict = paired.assessment
        cells += ["true" if verdict.confident else "false", str(verdict.reason or "")]
        cells += [escape_cell(placed.assigned or ""), placed.why or ""]
        self._writer.writerow(cells)

    def close(self) -> None:
        pass


class JsonlPairingWriter:
    """One JSON object per shopper.

    ``{"id", "matches": [...], "confident", "reason"?, "assigned", "assignment"}``.
    """

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    def write(self, placed: Placed) -> None:
        paired = placed.paired
        record: dict[str, Any] = {
            "id": paired.row.id,
            "matches": [m.to_dict() for m in paired.matches],
            **paired.assessment.to_dict(),
            "assigned": placed.assigned,
            "assignment": placed.why,
        }
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        pass
