"""Pairing a batch under quotas that bind: fit against the exact optimum, time, memory.

Scores are synthetic, shaped like a campaign's: every shopper has one
celebrity they fit clearly best (chosen with a popularity skew, so a few
faces would take most shoppers), the rest near the roster's mean. Quotas cap
the popular faces below their natural share, a minimum share lifts an
unpopular one, and a max share holds everyone to a third. Each case runs in
its own process, so the peak memory is the case's own.

The exact optimum is the full min-cost flow (every celebrity a candidate);
the default run solves on each shopper's 8 best and proves the result
optimal with prices, so both columns should agree to the last digit.

    python benchmarks/assignment.py               # 100k and 1M shoppers, 7 and 50 faces
    python benchmarks/assignment.py --sizes 100000 --faces 7
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from typing import Any

import numpy as np


def synthetic(n: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores and bounds where the bounds move about a fifth of the shoppers."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, m + 1) ** 0.9
    popularity /= popularity.sum()
    favourite = rng.choice(m, size=n, p=popularity)
    scores = rng.normal(0.35, 0.06, (n, m)).astype(np.float32)
    scores[np.arange(n), favourite] += rng.uniform(0.05, 0.25, n).astype(np.float32)
    natural = np.bincount(scores.argmax(axis=1), minlength=m)
    upper = np.full(m, n, np.int64)
    top = np.argsort(-natural)[:2]
    upper[top] = (natural[top] * 0.7).astype(np.int64)  # signed bottles run out
    upper = np.minimum(upper, n // 3)  # no face carries more than a third
    lower = np.zeros(m, np.int64)
    lower[-1] = int(np.ceil(n / m))  # the newest face is owed an equal share
    return scores, lower, upper


def run_case(n: int, m: int, candidates: int, queue: Any) -> None:  # pragma: no cover - child
    from matcher.assignment import assign
    from matcher.capacity import Bounds

    scores, lower, upper = synthetic(n, m)
    start = time.perf_counter()
    result = assign(scores, Bounds(lower, upper, n), candidates=candidates)
    seconds = time.perf_counter() - start
    violations = int(np.sum(result.counts > upper) + np.sum(result.counts < lower))
    queue.put(
        {
            "total": result.total_fit,
            "best": result.best_fit,
            "moved": result.moved,
            "unassigned": result.unassigned,
            "violations": violations,
            "exact": result.exact,
            "solves": result.solves,
            "seconds": seconds,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def measure(n: int, m: int, candidates: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=run_case, args=(n, m, candidates, queue))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--faces", type=int, nargs="+", default=[7, 50])
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument(
        "--no-full",
        action="store_true",
        help="skip the full-graph solve (the exact optimum by construction); it needs "
        "about 1.5 GB per million shoppers and 10 faces",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines")
    args = parser.parse_args()

    header = (
        "| shoppers | faces | method | total fit | vs exact | moved | unpaired "
        "| bound violations | proved optimal | time | peak memory |"
    )
    print(header)
    print("|" + "---|" * 11)
    for n in args.sizes:
        for m in args.faces:
            rows = [("candidates", measure(n, m, args.candidates))]
            if not args.no_full:
                rows.append(("full graph", measure(n, m, m)))
            exact = rows[-1][1]["total"] if not args.no_full else None
            for method, row in rows:
                label = f"{args.candidates} best + prices" if method == "candidates" else method
                gap = "" if exact is None else f"{(exact - row['total']) / exact:+.2e}"
                if args.json:
                    print(json.dumps({"shoppers": n, "faces": m, "method": label, **row}))
                    continue
                print(
                    f"| {n:,} | {m} | {label} | {row['total']:,.1f} "
                    f"(best {row['best']:,.1f}) | {gap} | {row['moved']:,} | {row['unassigned']:,} "
                    f"| {row['violations']} | {'yes' if row['exact'] else 'no'} "
                    f"({row['solves']} solve{'s' if row['solves'] > 1 else ''}) "
                    f"| {row['seconds']:.1f} s | {row['peak_mb']:,.0f} MB |"
                )


if __name__ == "__main__":
    main()
