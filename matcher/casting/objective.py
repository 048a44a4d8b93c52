"""The casting objective: how well a set of faces represents a brief, together.

For a set ``S`` of ``k`` candidates::

    F(S) =   sum_f  w_f * max_{j in S} G[f, j]              facets covered (weights sum to 1)
           + a/N * sum_i  max_{j in S} H[i, j]              shoppers covered (with a sample)
           + b/k * sum_{j in S} fit[j]                      each face fits the brief
           - c/k * sum_{i<j in S} R[i, j]                   little redundancy

- ``G[f, j]`` is candidate ``j``'s gain on facet ``f``: its score for the
  facet's text (the matcher's score of a celebrity for a text), rescaled per
  facet so the pool's median candidate gains 0 and its best gains 1
  (``clip((s - median) / (best - median), 0, 1)``). A facet whose text
  happens to draw lower cosines still counts as its weight says.
- ``H[i, j]`` is the same for shopper ``i`` of an uploaded sample, so every
  shopper has a close face.
- ``fit[j] = sum_f w_f G[f, j]``: the candidate's fit to the brief as a whole.
- ``R[i, j] = clip((cos(v_i, v_j) - t) / (1 - t), 0, 1)``: how far two faces
  are near-duplicates of each other, 0 below the cosine ``t``.

The first two terms are weighted facility location (monotone submodular for
gains >= 0), the fit term is modular and non-negative; the redundancy term is
submodular but not monotone. Adding ``shift * |S|`` with
``shift = c (2k - 1) / k`` makes ``F'(S) = F(S) + shift |S|`` monotone on every set
of up to ``2k - 1`` candidates (each added face loses at most ``c/k`` per face
already there) and keeps it submodular; on sets of exactly ``k`` faces ``F'``
and ``F`` differ by the constant ``shift * k``, so they have the same best set.
Greedy on ``F'`` under ``|S| <= k`` is then within ``1 - 1/e`` of the optimum
of ``F'`` (Nemhauser, Wolsey and Fisher 1978), i.e.
``F(greedy) >= (1 - 1/e) F(OPT) - shift * k / e``, and within ``1/2`` when a
per-category cap adds a partition matroid (Fisher, Nemhauser and Wolsey
1978). The measured gap against the exact optimum (:mod:`.exact`) is far
smaller; :func:`upper_bound` gives a data-dependent bound on any pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Weight of the shopper term (``a``) when a sample is given.
SHOPPER_WEIGHT = 1.0
#: Weight of the fit term (``b``).
FIT_WEIGHT = 0.25
#: Weight of the redundancy term (``c``): a true duplicate pair costs ``c / k``.
REDUNDANCY_WEIGHT = 1.0
#: Cosine between two candidates' vectors above which they start to count as redundant.
#: Measured on the sample pool with the default model: distinct faces of one
#: brief sit at 0.55-0.85, written near-duplicates at 0.9 and above.
REDUNDANCY_FROM = 0.85


def gains(
    scores: NDArray[np.floating], floor: NDArray[np.floating], top: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Scores ``(points, candidates)`` as gains in [0, 1]: 0 at ``floor``, 1 at ``top``."""
    scores = np.asarray(scores, dtype=np.float64)
    low = np.asarray(floor, dtype=np.float64)[:, None]
    span = np.maximum(np.asarray(top, dtype=np.float64)[:, None] - low, 1e-9)
    out: NDArray[np.float64] = np.clip((scores - low) / span, 0.0, 1.0)
    return out


def calibration(scores: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per point (row): the median and the best score over the candidates (columns)."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.median(scores, axis=1), scores.max(axis=1)


@dataclass
class Objective:
    """``F`` over one set of candidates (columns), with what greedy and the solver need.

    Attributes:
        facet_gain: ``(facets, n)`` gains ``G``.
        facet_weight: ``(facets,)`` weights summing to 1.
        directions: ``(n, d)`` unit vectors of the candidates, for ``R``.
        k: the number of faces.
        shopper_gain: ``(shoppers, n)`` gains ``H``, or ``None``.
    """

    facet_gain: NDArray[np.float64]
    facet_weight: NDArray[np.float64]
    directions: NDArray[np.float32]
    k: int
    shopper_gain: NDArray[np.float64] | None = None
    shopper_weight: float = SHOPPER_WEIGHT
    fit_weight: float = FIT_WEIGHT
    redundancy_weight: float = REDUNDANCY_WEIGHT
    redundancy_from: float = REDUNDANCY_FROM

    def __post_init__(self) -> None:
        weights = np.asarray(self.facet_weight, dtype=np.float64)
        self.facet_weight = weights / weights.sum()
        self.fit = self.facet_weight @ self.facet_gain

    @property
    def size(self) -> int:
        return int(self.facet_gain.shape[1])

    @property
    def shift(self) -> float:
        """What each face adds in ``F'``, the monotone form of ``F`` (see the module)."""
        return self.redundancy_weight * (2 * self.k - 1) / self.k

    def redundancy(self, candidate: int, others: Sequence[int]) -> NDArray[np.float64]:
        """``R[candidate, j]`` for each ``j`` in ``others``."""
        if not len(others):
            return np.zeros(0)
        cosines = self.directions[list(others)] @ self.directions[candidate]
        span = 1.0 - self.redundancy_from
        out: NDArray[np.float64] = np.clip(
            (cosines.astype(np.float64) - self.redundancy_from) / span, 0.0, 1.0
        )
        return out

    def redundancy_matrix(self) -> NDArray[np.float64]:
        """``R`` for every pair (``n x n``, zero diagonal): for the exact solver on small pools."""
        cosines = (self.directions @ self.directions.T).astype(np.float64)
        span = 1.0 - self.redundancy_from
        matrix = np.clip((cosines - self.redundancy_from) / span, 0.0, 1.0)
        np.fill_diagonal(matrix, 0.0)
        return matrix

    def parts(self, chosen: Sequence[int]) -> dict[str, float]:
        """The four terms of ``F`` for a set (already weighted), and their sum as ``total``."""
        chosen = list(chosen)
        if not chosen:
            return {"facets": 0.0, "shoppers": 0.0, "fit": 0.0, "redundancy": 0.0, "total": 0.0}
        facets = float(self.facet_weight @ self.facet_gain[:, chosen].max(axis=1))
        shoppers = 0.0
        if self.shopper_gain is not None and self.shopper_gain.shape[0]:
            shoppers = self.shopper_weight * float(self.shopper_gain[:, chosen].max(axis=1).mean())
        fit = self.fit_weight / self.k * float(self.fit[chosen].sum())
        pairs = sum(float(self.redundancy(j, chosen[:i]).sum()) for i, j in enumerate(chosen))
        redundancy = self.redundancy_weight / self.k * pairs
        total = facets + shoppers + fit - redundancy
        return {
            "facets": facets,
            "shoppers": shoppers,
            "fit": fit,
            "redundancy": redundancy,
            "total": total,
        }

    def value(self, chosen: Sequence[int]) -> float:
        """``F`` of a set of candidate positions."""
        return self.parts(chosen)["total"]


class Coverage:
    """The running state of greedy: the best gain per facet and shopper so far."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self.best_facet = np.zeros(objective.facet_gain.shape[0])
        has_shoppers = objective.shopper_gain is not None
        self.best_shopper = np.zeros(objective.shopper_gain.shape[0] if has_shoppers else 0)  # type: ignore[union-attr]
        self.chosen: list[int] = []

    def coverage_gain(self, candidate: int) -> float:
        """What adding ``candidate`` adds to the monotone terms (facets, shoppers, fit)."""
        o = self.objective
        facets = float(o.facet_weight @ np.maximum(o.facet_gain[:, candidate] - self.best_facet, 0))
        shoppers = 0.0
        if o.shopper_gain is not None and self.best_shopper.size:
            lift = np.maximum(o.shopper_gain[:, candidate] - self.best_shopper, 0)
            shoppers = o.shopper_weight * float(lift.mean())
        return facets + shoppers + o.fit_weight / o.k * float(o.fit[candidate])

    def gain(self, candidate: int) -> float:
        """``F'(S + j) - F'(S)``: what adding ``candidate`` adds to the monotone form."""
        o = self.objective
        penalty = o.redundancy_weight / o.k * float(o.redundancy(candidate, self.chosen).sum())
        return self.coverage_gain(candidate) - penalty + o.shift

    def add(self, candidate: int) -> None:
        o = self.objective
        self.best_facet = np.maximum(self.best_facet, o.facet_gain[:, candidate])
        if o.shopper_gain is not None and self.best_shopper.size:
            self.best_shopper = np.maximum(self.best_shopper, o.shopper_gain[:, candidate])
        self.chosen.append(candidate)


def upper_bound(objective: Objective, chosen: Sequence[int], allowed: Sequence[int]) -> float:
    """A bound on ``F`` of the best ``k`` faces among ``allowed``, from a set ``chosen``.

    ``F = M - P`` with ``M`` (facets, shoppers, fit) monotone submodular and
    the redundancy ``P >= 0``, so ``F(OPT) <= M(OPT) <= M(S) + the k largest
    marginal gains of M over S`` (Minoux's bound, as Leskovec et al. 2007
    use it). It holds for any ``S``, and bounds the optimum with or without
    the brief's constraints.
    """
    state = Coverage(objective)
    for candidate in chosen:
        state.add(candidate)
    taken = set(chosen)
    marginal = sorted((state.coverage_gain(j) for j in allowed if j not in taken), reverse=True)
    parts = objective.parts(chosen)
    monotone = parts["facets"] + parts["shoppers"] + parts["fit"]
    return monotone + float(sum(marginal[: objective.k]))
