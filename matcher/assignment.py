"""Pair a batch of shoppers under the campaign's quotas and shares, at the least cost in fit.

Given every shopper's fit with every celebrity (cosine scores, ``n x m``)
and per-celebrity bounds (``capacity.bounds_for``), find the assignment that
pairs as many shoppers as the bounds allow and, among those, maximises the
total fit. It is a transportation problem, solved exactly as a min-cost flow
by OR-Tools (shopper -> celebrity -> sink, lower bounds as demands, a
"nobody" node for shoppers no place is left for).

With millions of shoppers and tens of celebrities the full graph is large,
and almost every shopper ends with one of their few best celebrities. So the
flow is first solved on each shopper's ``candidates`` best celebrities, and
then *proved* optimal over all of them: complementary slackness gives a
system of difference constraints on one price per celebrity, which has a
solution exactly when the assignment is optimal on the full problem (no
negative cycle, checked by Floyd–Warshall on ``m + 1`` nodes). When it has
none, the candidate lists grow and the flow is solved again; with every
celebrity a candidate the flow is exact by construction. The prices are kept:
``fit - price`` is what makes a shopper prefer one celebrity to another under
the bounds, which is also how online pairing keeps shares (``online.py``).

Scores are scaled to integers (``SCALE`` per unit) for the solver; the
reported fit is in the original floats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .capacity import Bounds

#: Integer units per unit of score for the solver: rounding moves a total by at most n/2e6.
SCALE = 1_000_000
#: Each shopper's best celebrities offered to the first solve.
DEFAULT_CANDIDATES = 8
#: Rows scored at once while checking the prices against every celebrity.
CHUNK = 65_536


@dataclass(frozen=True)
class Assignment:
    """Who is paired with whom under the bounds, and what the bounds cost.

    Attributes:
        assigned: per shopper the celebrity's column, or -1 when no place was left.
        total_fit: sum of the assigned celebrities' scores.
        best_fit: sum of every shopper's best score, ignoring the bounds.
        moved: shoppers whose assigned celebrity is not their best one (or nobody).
        counts: shoppers per celebrity.
        prices: per celebrity, the least score a shopper must give up to be
            paired with them under the bounds: 0 where the bounds do not bind,
            above 0 for a full celebrity, below 0 for one owed a minimum, and
            ``inf`` for one nobody may be paired with.
        exact: whether the prices prove the assignment optimal over every celebrity.
        solves: how many flows were solved (1 unless the candidate lists had to grow).
    """

    assigned: np.ndarray
    total_fit: float
    best_fit: float
    moved: int
    counts: np.ndarray
    prices: np.ndarray
    exact: bool
    solves: int

    @property
    def unassigned(self) -> int:
        return int(np.count_nonzero(self.assigned < 0))

    @property
    def fit_cost(self) -> float:
        """Fit given up for the bounds, as a fraction of the unconstrained total."""
        return 0.0 if self.best_fit == 0 else (self.best_fit - self.total_fit) / abs(self.best_fit)


def reasons(scores: np.ndarray, bounds: Bounds, result: Assignment) -> list[str]:
    """Why each shopper got their celebrity: ``best``; ``full`` when their best fit
    has no room left (or nobody had room for them); ``balanced`` when it has room
    but the bounds sent them elsewhere."""
    best = scores.argmax(axis=1) if len(scores) else np.zeros(0, np.int64)
    full = result.counts >= bounds.upper
    return [
        "full" if j < 0 else "best" if j == b else "full" if full[b] else "balanced"
        for j, b in zip(result.assigned.tolist(), best.tolist(), strict=True)
    ]


def assign(
    scores: np.ndarray, bounds: Bounds, *, candidates: int = DEFAULT_CANDIDATES
) -> Assignment:
    """The optimal assignment of ``scores``' rows (shoppers) to its columns (celebrities).

    Args:
        scores: ``n x m`` fits, higher is better.
        bounds: per-column lower and upper counts, for ``n`` shoppers.
        candidates: celebrities per shopper in the first solve (all when ``m`` is smaller).
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    n, m = scores.shape
    if bounds.lower.shape != (m,) or bounds.upper.shape != (m,):
        raise ValueError(f"bounds are for {bounds.lower.shape[0]} celebrities, scores for {m}")
    best = scores.argmax(axis=1) if m else np.full(n, -1)
    best_fit = float(scores.max(axis=1).sum(dtype=np.float64)) if m and n else 0.0
    if n == 0 or m == 0:
        empty = np.full(n, -1, dtype=np.int32)
        return Assignment(empty, 0.0, best_fit, n, np.zeros(m, np.int64), np.zeros(m), True, 0)
    # Every pairing is worth more than leaving a shopper unpaired: fit + offset >= 1.
    offset = float(np.ceil(max(0.0, -float(scores.min())))) + 1.0
    width = min(m, max(1, candidates))
    solves = 0
    while True:
        assigned = _solve(scores, bounds, width, offset)
        solves += 1
        prices = _prices(scores, bounds, assigned, offset)
        if prices is not None or width == m:
            break
        width = min(m, width * 2)
    counts = np.bincount(assigned[assigned >= 0], minlength=m).astype(np.int64)
    rows = np.flatnonzero(assigned >= 0)
    total_fit = float(scores[rows, assigned[rows]].sum(dtype=np.float64))
    price_units = np.zeros(m) if prices is None else prices / SCALE
    return Assignment(
        assigned=assigned,
        total_fit=total_fit,
        best_fit=best_fit,
        moved=int(np.count_nonzero(assigned != best)),
        counts=counts,
        prices=price_units,
        exact=prices is not None or width == m,
        solves=solves,
    )


def _utilities(scores: np.ndarray, offset: float) -> np.ndarray:
    return np.rint((scores.astype(np.float64) + offset) * SCALE).astype(np.int64)


def _solve(scores: np.ndarray, bounds: Bounds, width: int, offset: float) -> np.ndarray:
    """One min-cost flow over each shopper's ``width`` best celebrities."""
    from ortools.graph.python import min_cost_flow

    n, m = scores.shape
    # Celebrities owed a minimum are offered to everyone, so the minimums can always be met.
    owed = np.flatnonzero(bounds.lower > 0)
    if width + len(owed) < m:
        others = np.setdiff1d(np.arange(m), owed)
        best = np.argpartition(-scores[:, others], width - 1, axis=1)[:, :width]
        columns = np.concatenate([others[best], np.broadcast_to(owed, (n, len(owed)))], axis=1)
    else:
        columns = np.broadcast_to(np.arange(m), (n, m))
    rows = np.repeat(np.arange(n, dtype=np.int64), columns.shape[1])
    columns = columns.reshape(-1).astype(np.int64)
    utility = _utilities(scores[rows, columns], offset)
    nobody, sink = n + m, n + m + 1
    flow = min_cost_flow.SimpleMinCostFlow()
    pair_arcs = flow.add_arcs_with_capacity_and_unit_cost(
        rows, n + columns, np.ones(len(rows), np.int64), -utility
    )
    flow.add_arcs_with_capacity_and_unit_cost(
        np.arange(n, dtype=np.int64),
        np.full(n, nobody, np.int64),
        np.ones(n, np.int64),
        np.zeros(n, np.int64),
    )
    flow.add_arcs_with_capacity_and_unit_cost(
        np.arange(n, n + m, dtype=np.int64),
        np.full(m, sink, np.int64),
        (bounds.upper - bounds.lower).astype(np.int64),
        np.zeros(m, np.int64),
    )
    flow.add_arc_with_capacity_and_unit_cost(nobody, sink, n, 0)
    # Lower bounds as demands at the celebrities; the rest of the supply drains at the sink.
    flow.set_nodes_supplies(np.arange(n, dtype=np.int64), np.ones(n, np.int64))
    flow.set_nodes_supplies(np.arange(n, n + m, dtype=np.int64), -bounds.lower.astype(np.int64))
    flow.set_node_supply(sink, -(n - int(bounds.lower.sum())))
    status = flow.solve()
    if status != flow.OPTIMAL:
        # Bounds come from bounds_for, which refuses what cannot be met.
        raise RuntimeError(f"the assignment could not be solved ({status})")
    used = flow.flows(pair_arcs) > 0
    assigned = np.full(n, -1, dtype=np.int32)
    assigned[rows[used]] = columns[used]
    return assigned


def _prices(
    scores: np.ndarray, bounds: Bounds, assigned: np.ndarray, offset: float
) -> np.ndarray | None:
    """Prices proving ``assigned`` optimal over every celebrity, or ``None`` if none exist.

    Node 0 is "nobody" (price 0), node j+1 celebrity j. An edge u -> v of
    weight w says ``price[v] - price[u] <= w``; shortest distances from node
    0 satisfy every edge, and a negative cycle means some exchange of
    shoppers would raise the total fit.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import NegativeCycleError, floyd_warshall

    n, m = scores.shape
    weight = np.full((m + 1, m + 1), np.inf)
    counts = np.bincount(assigned[assigned >= 0], minlength=m)
    for start in range(0, n, CHUNK):
        utility = _utilities(scores[start : start + CHUNK], offset)
        chosen = assigned[start : start + CHUNK]
        for j in np.unique(chosen):
            group = utility[chosen == j]
            if j < 0:
                # Unpaired: no celebrity is worth its price to them (price[k] >= utility).
                weight[1:, 0] = np.minimum(weight[1:, 0], -group.max(axis=0))
                continue
            own = group[:, j]
            # Paired with j rather than k: price[j] - price[k] <= u_j - u_k; rather than nobody.
            weight[1:, j + 1] = np.minimum(weight[1:, j + 1], (own[:, None] - group).min(axis=0))
            weight[0, j + 1] = min(weight[0, j + 1], float(own.min()))
    for j in range(m):
        if counts[j] < bounds.upper[j]:
            weight[0, j + 1] = min(weight[0, j + 1], 0.0)  # room left: price <= 0
        if counts[j] > bounds.lower[j]:
            weight[j + 1, 0] = min(weight[j + 1, 0], 0.0)  # above its minimum: price >= 0
    # A sparse graph: csgraph reads a dense matrix's zeros as missing edges, and
    # the zero-weight edges are the ones that tie prices to zero.
    tails, heads = np.nonzero(np.isfinite(weight))
    graph = csr_matrix((weight[tails, heads], (tails, heads)), shape=weight.shape)
    try:
        distance = floyd_warshall(graph, directed=True)
    except NegativeCycleError:
        return None
    if np.any(np.diag(distance) < 0):
        return None
    # The least prices that hold: price[j] >= -distance(j -> nobody). A celebrity
    # with no path there is one nobody may be paired with (no room, no minimum).
    lowest = -distance[1:, 0]
    return np.where(np.isfinite(lowest), lowest + 0.0, np.inf)
