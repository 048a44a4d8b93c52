"""The exact best set for small pools: the objective as an integer program, solved by HiGHS.

Variables (all in [0, 1]): ``x_j`` (binary: candidate ``j`` is chosen),
``y_pj`` (point ``p``, a facet or a shopper, is served by ``j``; only where
the gain is positive) and ``z_ij`` (both ``i`` and ``j`` are chosen; only
for pairs with a positive redundancy)::

    maximise  sum_pj  u_p G[p, j] y_pj  +  b/k sum_j fit_j x_j  -  c/k sum_ij R_ij z_ij
    s.t.      sum_j x_j = k;   sum_j y_pj <= 1;   y_pj <= x_j;   z_ij >= x_i + x_j - 1
              x_j = 1 for forced faces, 0 for excluded ones;  sum_{j in c} x_j <= N per category

where ``u_p`` is a facet's weight or ``a/N`` for a shopper. With ``x`` fixed
the best ``y`` serves each point by its best chosen face and the best ``z``
is ``max(0, x_i + x_j - 1)``, so the optimum is exactly ``max F``. HiGHS
(through :func:`scipy.optimize.milp`) proves optimality; on the sample pool
of 60 it takes well under a second, while the program grows with
candidates x (facets + shoppers), so it is meant for pools of hundreds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from .greedy import Selection, check_feasible
from .objective import Objective

#: Pools larger than this are refused by the exact solver (use greedy).
MAX_EXACT_POOL = 2_000


def exact(
    objective: Objective,
    *,
    include: Sequence[int] = (),
    exclude: Sequence[int] = (),
    categories: Sequence[str | None] | None = None,
    max_per_category: int | None = None,
    time_limit: float = 120.0,
) -> Selection:
    """The optimal set under the same constraints as :func:`~matcher.casting.greedy.greedy`.

    Raises:
        InputError: the pool is too large, the constraints cannot be met, or
            the solver stopped before proving the optimum.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    n, k = objective.size, objective.k
    if n > MAX_EXACT_POOL:
        raise InputError(
            f"the exact solver takes pools of up to {MAX_EXACT_POOL:,} candidates, not {n:,}"
        )
    check_feasible(objective, include, exclude, categories, max_per_category)
    points = [objective.facet_gain * objective.facet_weight[:, None]]
    if objective.shopper_gain is not None and objective.shopper_gain.shape[0]:
        scale = objective.shopper_weight / objective.shopper_gain.shape[0]
        points.append(objective.shopper_gain * scale)
    served = np.vstack(points)
    point_of, candidate_of = np.nonzero(served > 0)
    redundancy = np.triu(objective.redundancy_matrix(), 1)
    left, right = np.nonzero(redundancy > 0)
    ny, nz = len(point_of), len(left)
    total = n + ny + nz
    cost = np.zeros(total)
    cost[:n] = -objective.fit_weight / k * objective.fit
    cost[n : n + ny] = -served[point_of, candidate_of]
    cost[n + ny :] = objective.redundancy_weight / k * redundancy[left, right]

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lower: list[float] = []
    upper: list[float] = []

    def constraint(entries: list[tuple[int, float]], low: float, high: float) -> None:
        row = len(lower)
        for col, val in entries:
            rows.append(row)
            cols.append(col)
            vals.append(val)
        lower.append(low)
        upper.append(high)

    constraint([(j, 1.0) for j in range(n)], k, k)
    by_point: dict[int, list[int]] = {}
    for number, point in enumerate(point_of):
        by_point.setdefault(int(point), []).append(n + number)
        constraint([(n + number, 1.0), (int(candidate_of[number]), -1.0)], -np.inf, 0.0)
    for columns in by_point.values():
        constraint([(col, 1.0) for col in columns], -np.inf, 1.0)
    for number, (first, second) in enumerate(zip(left, right, strict=True)):
        pair = [(n + ny + number, 1.0), (int(first), -1.0), (int(second), -1.0)]
        constraint(pair, -1.0, np.inf)
    if max_per_category is not None and categories is not None:
        groups: dict[str, list[int]] = {}
        for j, category in enumerate(categories):
            if category is not None:
                groups.setdefault(category, []).append(j)
        for members in groups.values():
            constraint([(j, 1.0) for j in members], -np.inf, max_per_category)
    matrix = coo_matrix((vals, (rows, cols)), shape=(len(lower), total)).tocsr()

    low_bound = np.zeros(total)
    high_bound = np.ones(total)
    low_bound[list(include)] = 1.0
    high_bound[list(exclude)] = 0.0
    integrality = np.zeros(total)
    integrality[:n] = 1
    result = milp(
        cost,
        integrality=integrality,
        bounds=Bounds(low_bound, high_bound),
        constraints=LinearConstraint(matrix, np.array(lower), np.array(upper)),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-9},
    )
    if result.status != 0 or result.x is None:
        raise InputError(f"the exact solver found no proven optimum: {result.message}")
    chosen = tuple(int(j) for j in np.flatnonzero(result.x[:n] > 0.5))
    value = objective.value(chosen)
    return Selection(chosen=chosen, value=value, method="exact", guarantee=1.0, bound=value)
