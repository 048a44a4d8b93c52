"""Online pairing under quotas and shares: fit lost against the offline optimum.

Shoppers arrive one by one in a random order (the synthetic campaign of
``assignment.py``: a few popular faces, quotas on the two most popular, no
face past a third, the newest owed an equal share). Each rule pairs
them as they come; the offline optimum sees them all at once, with the same
bounds. Quotas are hard in every online rule (a full face has no room); the
shares are what the prices keep.

    python benchmarks/online.py                    # 20,000 shoppers, 7 faces
    python benchmarks/online.py --shoppers 5000 --scales 0.05 0.1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assignment import synthetic  # noqa: E402

from matcher.assignment import assign  # noqa: E402
from matcher.capacity import Bounds, Limits  # noqa: E402
from matcher.online import choose  # noqa: E402


def limits_for(lower: np.ndarray, upper: np.ndarray, n: int) -> dict[str, Limits]:
    """The benchmark's bounds as a planner writes them: quotas and shares."""
    limits = {}
    for j in range(len(upper)):
        quota = int(upper[j]) if upper[j] < n // 3 else None
        min_share = float(lower[j]) / n if lower[j] else None
        limits[str(j)] = Limits(quota=quota, min_share=min_share, max_share=1 / 3)
    return limits


def simulate(scores: np.ndarray, limits: dict[str, Limits], scale: float | None) -> np.ndarray:
    """Pair in arrival order; ``scale=None`` is the nearest celebrity with room."""
    n, m = scores.shape
    ids = [str(j) for j in range(m)]
    counts = dict.fromkeys(ids, 0)
    assigned = np.full(n, -1, np.int32)
    for i in range(n):
        order = np.argsort(-scores[i])
        ranked = [(ids[j], float(scores[i, j])) for j in order]
        if scale is None:
            full = [
                counts[c] >= (limits[c].quota if limits[c].quota is not None else n)
                for c, _ in ranked
            ]
            index = next((k for k, is_full in enumerate(full) if not is_full), -1)
        else:
            index = choose(ranked, limits, counts, scale=scale).index
        if index >= 0:
            chosen = ranked[index][0]
            counts[chosen] += 1
            assigned[i] = int(chosen)
    return assigned


def shares_off(assigned: np.ndarray, limits: dict[str, Limits], m: int) -> float:
    """The largest distance, in share points, from any face's share to its allowed range."""
    counts = np.bincount(assigned[assigned >= 0], minlength=m)
    shares = counts / max(1, counts.sum())
    worst = 0.0
    for j in range(m):
        limit = limits[str(j)]
        if limit.max_share is not None:
            worst = max(worst, shares[j] - limit.max_share)
        if limit.min_share is not None:
            worst = max(worst, limit.min_share - shares[j])
    return worst * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shoppers", type=int, default=20_000)
    parser.add_argument("--faces", type=int, default=7)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    scores, lower, upper = synthetic(args.shoppers, args.faces, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    scores = scores[rng.permutation(len(scores))]
    n, m = scores.shape
    limits = limits_for(lower, upper, n)
    optimum = assign(scores, Bounds(lower, upper, n))
    rows = [("offline optimum", optimum.assigned)]
    rows.append(("nearest with room", simulate(scores, limits, None)))
    rows += [(f"prices, scale {s}", simulate(scores, limits, s)) for s in args.scales]

    print(f"{n:,} shoppers, {m} faces, arrival order shuffled (seed {args.seed})\n")
    print(
        "| rule | mean fit | fit lost vs offline | moved from best | unpaired "
        "| quota violations | worst share off target |"
    )
    print("|---|---|---|---|---|---|---|")
    best = scores.argmax(axis=1)
    for name, assigned in rows:
        paired = assigned >= 0
        fit = float(scores[np.flatnonzero(paired), assigned[paired]].sum(dtype=np.float64))
        counts = np.bincount(assigned[paired], minlength=m)
        violations = int(np.sum(counts > upper))
        lost = (optimum.total_fit - fit) / optimum.total_fit * 100
        print(
            f"| {name} | {fit / n:.4f} | {lost:+.2f}% | {int(np.sum(assigned != best)):,} "
            f"| {int(np.sum(~paired)):,} | {violations} "
            f"| {shares_off(assigned, limits, m):.2f} pts |"
        )


if __name__ == "__main__":
    main()
