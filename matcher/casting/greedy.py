"""Lazy greedy selection of k faces, with the brief's constraints.

Greedy adds, k times, the candidate whose marginal gain on the monotone form
``F'`` of the objective is largest (:mod:`.objective`). Because ``F'`` is
submodular, a gain computed earlier can only have shrunk since, so stale
gains are upper bounds and most candidates are never re-evaluated (Minoux's
lazy greedy): on a pool of 100,000 one pass over the pool and a few hundred
re-evaluations.

Guarantees (on ``F'``; see :mod:`.objective` for what they mean for ``F``):
``1 - 1/e`` with only ``k``, forced and excluded faces (forced faces are
picked first: greedy then runs on the contracted function, still monotone
submodular, against the best set that holds them); ``1/2`` with a cap per
category, which makes the feasible sets a partition matroid.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import InputError
from .objective import Coverage, Objective, upper_bound

GREEDY_GUARANTEE = 1 - 1 / math.e
MATROID_GUARANTEE = 0.5


@dataclass(frozen=True)
class Selection:
    """Which candidates were chosen (positions, in the order taken) and how good that is.

    Attributes:
        value: the objective ``F`` of the set.
        method: ``"greedy"`` or ``"exact"``.
        guarantee: the fraction of the optimum of ``F'`` the method is proven to reach.
        bound: an upper bound on the optimum of ``F`` (greedy: Minoux's bound;
            exact: the solver's optimum, equal to ``value``).
    """

    chosen: tuple[int, ...]
    value: float
    method: str
    guarantee: float
    bound: float


def check_feasible(
    objective: Objective,
    include: Sequence[int],
    exclude: Sequence[int],
    categories: Sequence[str | None] | None,
    max_per_category: int | None,
) -> list[int]:
    """The candidates greedy may take, after checking the constraints can be met at all.

    Raises:
        InputError: the forced faces break a category cap, or too few candidates remain.
    """
    k = objective.k
    banned = set(exclude)
    allowed = [j for j in range(objective.size) if j not in banned]
    if max_per_category is not None and categories is not None:
        forced = Counter(categories[j] for j in include if categories[j] is not None)
        over = sorted(str(c) for c, n in forced.items() if n > max_per_category)
        if over:
            raise InputError(
                f"must_include holds more than {max_per_category} of category {', '.join(over)}"
            )
        room = Counter(categories[j] for j in allowed)
        reachable = sum(min(n, max_per_category) if c is not None else n for c, n in room.items())
    else:
        reachable = len(allowed)
    if reachable < k:
        raise InputError(
            f"the pool has {reachable} candidates the brief allows, fewer than k = {k}"
        )
    return allowed


def greedy(
    objective: Objective,
    *,
    include: Sequence[int] = (),
    exclude: Sequence[int] = (),
    categories: Sequence[str | None] | None = None,
    max_per_category: int | None = None,
) -> Selection:
    """Choose ``objective.k`` candidates by lazy greedy under the brief's constraints.

    Args:
        include: positions that must be chosen (taken first).
        exclude: positions that must not be.
        categories: each candidate's category (``None``: not capped).
        max_per_category: at most this many chosen from one category.

    Raises:
        InputError: the constraints cannot be met.

    Ties are broken by position, so the same pool and brief give the same set.
    """
    allowed = check_feasible(objective, include, exclude, categories, max_per_category)
    state = Coverage(objective)
    taken: Counter[str | None] = Counter()

    def take(candidate: int) -> None:
        state.add(candidate)
        if categories is not None:
            taken[categories[candidate]] += 1

    def open_to(candidate: int) -> bool:
        if max_per_category is None or categories is None:
            return True
        category = categories[candidate]
        return category is None or taken[category] < max_per_category

    for candidate in dict.fromkeys(include):
        take(candidate)
    chosen = set(state.chosen)
    heap = [(-state.gain(j), j) for j in allowed if j not in chosen]
    heapq.heapify(heap)
    while len(state.chosen) < objective.k and heap:
        stale, candidate = heapq.heappop(heap)
        if not open_to(candidate):
            continue
        fresh = state.gain(candidate)
        # Rounded so float noise cannot reorder candidates whose gains tie.
        if not heap or round(fresh, 12) >= round(-heap[0][0], 12):
            take(candidate)
        else:
            heapq.heappush(heap, (-fresh, candidate))
    capped = max_per_category is not None and categories is not None
    bound = upper_bound(objective, state.chosen, allowed)
    return Selection(
        chosen=tuple(state.chosen),
        value=objective.value(state.chosen),
        method="greedy",
        guarantee=MATROID_GUARANTEE if capped else GREEDY_GUARANTEE,
        bound=bound,
    )
