"""A batch paired under the roster's quotas and shares: the whole batch first, then the answer.

Online, a shopper is answered before the next arrives; a batch can wait for
its last row, so it gets the exact optimum (``assignment.py``). Two passes:
the matched rows are spooled to a private temporary file (pickled, read back
by this process only) while every row's fit with every celebrity is kept in
one ``n x m`` float32 array (200 MB for a million rows and 50 faces); the
assignment is solved once; then the rows are read back in order and written
with their ``assigned`` celebrity.

Unconfident rows (the matcher could not tell) are written without an
assigned celebrity and take no place: the web layer does not store them
either.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .assignment import Assignment, assign, reasons
from .batch_rows import BadRow, Paired
from .capacity import Bounds, Limits, bounds_for

#: Why a row's assigned celebrity is not its best fit, or that it is.
BEST, FULL, BALANCED = "best", "full", "balanced"


@dataclass(frozen=True)
class Placed:
    """A matched row and the celebrity it is assigned under the limits (``None``: no place)."""

    paired: Paired
    assigned: str | None
    why: str | None


@dataclass
class AssignmentReport:
    """What the limits cost: mean fit of the assigned celebrity against the best one."""

    shoppers: int = 0
    moved: int = 0
    unpaired: int = 0
    mean_assigned: float = 0.0
    mean_best: float = 0.0
    exact: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    lower: dict[str, int] = field(default_factory=dict)
    upper: dict[str, int] = field(default_factory=dict)

    @property
    def fit_cost(self) -> float:
        """The fit given up, as a fraction of the unconstrained mean."""
        return 0.0 if not self.mean_best else (self.mean_best - self.mean_assigned) / self.mean_best

    def to_dict(self) -> dict[str, object]:
        return {
            "shoppers": self.shoppers,
            "moved": self.moved,
            "unpaired": self.unpaired,
            "mean_fit_assigned": round(self.mean_assigned, 6),
            "mean_fit_best": round(self.mean_best, 6),
            "fit_cost": round(self.fit_cost, 6),
            "exact": self.exact,
            "celebrities": {
                c: {
                    "assigned": self.counts.get(c, 0),
                    "at_least": self.lower[c],
                    "at_most": self.upper[c],
                }
                for c in self.upper
            },
        }


def place_rows(
    items: Iterable[Paired | BadRow],
    celebrities: Sequence[str],
    limits: Mapping[str, Limits],
    spool: Path,
    *,
    k: int,
    report: AssignmentReport,
) -> Iterator[Placed | BadRow]:
    """Yield every item in input order, matched rows as :class:`Placed`; fills ``report``.

    ``items`` must carry matches for every celebrity in ``celebrities`` (the
    assignment weighs them all); rows come back with their ``k`` best.
    Nothing is yielded until the last input row is read.
    """
    column = {celebrity: j for j, celebrity in enumerate(celebrities)}
    rows: list[np.ndarray] = []
    confident: list[bool] = []
    fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            for item in items:
                if not isinstance(item, BadRow):
                    scores = np.zeros(len(celebrities), np.float32)
                    for match in item.matches:
                        scores[column[match.celebrity_id]] = match.score
                    rows.append(scores)
                    confident.append(item.assessment.confident)
                    item = replace(item, matches=item.matches[:k])
                pickle.dump(item, handle, protocol=pickle.HIGHEST_PROTOCOL)
        sure = np.flatnonzero(np.array(confident, dtype=bool))
        matrix = np.stack(rows)[sure] if len(sure) else np.zeros((0, len(celebrities)), np.float32)
        bounds = bounds_for(celebrities, limits, len(sure))
        result = assign(matrix, bounds)
        _report(report, result, bounds, celebrities)
        assigned = np.full(len(rows), -1, np.int32)
        assigned[sure] = result.assigned
        why = np.full(len(rows), None, object)
        why[sure] = reasons(matrix, bounds, result)
        position = 0
        with open(spool, "rb") as handle:
            while True:
                try:
                    item = pickle.load(handle)  # noqa: S301 - this process wrote it just now
                except EOFError:
                    break
                if isinstance(item, BadRow):
                    yield item
                    continue
                j = int(assigned[position])
                reason = why[position]
                position += 1
                yield Placed(item, celebrities[j] if j >= 0 else None, reason)
    finally:
        spool.unlink(missing_ok=True)


def _report(
    report: AssignmentReport, result: Assignment, bounds: Bounds, celebrities: Sequence[str]
) -> None:
    n = bounds.shoppers
    report.shoppers = n
    report.moved = result.moved
    report.unpaired = result.unassigned
    report.mean_assigned = result.total_fit / n if n else 0.0
    report.mean_best = result.best_fit / n if n else 0.0
    report.exact = result.exact
    report.counts = {c: int(result.counts[j]) for j, c in enumerate(celebrities)}
    report.lower = {c: int(bounds.lower[j]) for j, c in enumerate(celebrities)}
    report.upper = {c: int(bounds.upper[j]) for j, c in enumerate(celebrities)}
