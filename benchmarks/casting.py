"""Casting: the sample pool against the planner's intended set, greedy against the exact optimum,
and synthetic pools of 10,000 and 100,000 candidates (time to cast, recall, memory).

    python benchmarks/casting.py              # everything, about five minutes on 2 cores
    python benchmarks/casting.py --sizes 10000

Sample pool (pools/lueur, 62 candidates, real default model): the set chosen by greedy and
by the exact program, how many of its k faces are in pools/lueur/intended.yaml (written before
any selection ran), the objective of each against the exact optimum, and each facet's coverage.

Large pools: synthetic. Each candidate's vector is a random mix of two of the sample pool's real
vectors plus noise (so the vectors sit where real profiles do, near-duplicates included), the
brief's facets are embedded by the real model; nothing of 100,000 profiles is embedded (that
would take the model hours on this machine). Each size runs in its own process, so "peak
memory" is that process's peak RSS (the model loaded included) and "casting memory" the growth
after the model and brief were loaded. Time to cast: index build and tuning, retrieval,
selection and explanation, without embedding; with a sample of 1,000 synthetic shoppers too.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matcher.casting import (  # noqa: E402
    Pool,
    embed_pool,
    load_brief,
    load_pool,
    prepare,
)
from matcher.casting.retrieval import exact_neighbours, recall_at  # noqa: E402
from matcher.encoders import DEFAULT_MODEL, load_encoder, normalise  # noqa: E402
from matcher.profiles import Profile  # noqa: E402

SAMPLE = ROOT / "pools" / "lueur"
CACHE = ROOT / "benchmarks" / ".casting-vectors.npy"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sample_vectors(encoder: object, pool: Pool) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    vectors = embed_pool(pool.profiles, encoder)  # type: ignore[arg-type]
    return vectors, time.perf_counter() - started


def sample_report() -> dict[str, object]:
    import yaml

    encoder = load_encoder(DEFAULT_MODEL)
    brief = load_brief(SAMPLE / "brief.yaml")
    pool = load_pool(SAMPLE / "candidates.jsonl")
    intended = list(yaml.safe_load((SAMPLE / "intended.yaml").read_text("utf-8"))["intended"])
    vectors, embed_seconds = sample_vectors(encoder, pool)
    np.save(CACHE, vectors)
    problem = prepare(brief, pool, encoder, vectors=vectors)
    rows = []
    for method in ("greedy", "exact"):
        started = time.perf_counter()
        casting = problem.solve(method=method)
        seconds = time.perf_counter() - started
        rows.append((method, casting, seconds))
    planned = problem.evaluate(intended)
    # A harder case: with the intended faces ruled out, what do both methods fall back on?
    harder = prepare(replace(brief, must_exclude=tuple(intended)), pool, encoder, vectors=vectors)
    without = harder.solve()
    started = time.perf_counter()
    without_exact = harder.solve(method="exact")
    without_seconds = time.perf_counter() - started
    optimum = rows[1][1].value
    return {
        "embed_seconds": embed_seconds,
        "pool": len(pool),
        "k": brief.k,
        "intended": intended,
        "methods": [
            {
                "method": method,
                "ids": list(casting.ids),
                "agree": len(set(casting.ids) & set(intended)),
                "objective": casting.value,
                "gap": max(0.0, (optimum - casting.value) / optimum),
                "bound": casting.bound,
                "seconds": seconds,
                "coverage": {c.facet: (c.coverage, c.score, c.by) for c in casting.coverage},
            }
            for method, casting, seconds in rows
        ],
        "intended_objective": planned.value,
        "without_intended": {
            "ids": list(without.ids),
            "faces": [(f.candidate_id, f.facet, f.score) for f in without.faces],
            "objective": without.value,
            "bound": without.bound,
            "exact_ids": list(without_exact.ids),
            "exact_objective": without_exact.value,
            "exact_seconds": without_seconds,
        },
        "intended_coverage": {c.facet: (c.coverage, c.score, c.by) for c in planned.coverage},
    }


def synthetic_pool(real: np.ndarray, size: int, seed: int = 0) -> tuple[Pool, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(real), size), rng.integers(0, len(real), size)
    mix = rng.uniform(0, 1, (size, 1)).astype(np.float32)
    # Noise of length about 0.3 against unit signal: twins stay close, as real profiles do.
    noise = 0.3 / np.sqrt(real.shape[1]) * rng.standard_normal((size, real.shape[1]))
    noise = noise.astype(np.float32)
    vectors = 0.9 * normalise(mix * real[a] + (1 - mix) * real[b] + noise)
    profiles = tuple(
        Profile.model_construct(
            id=f"synthetic-{i:06d}",
            name=f"Synthetic {i}",
            name_zh="合成",
            tagline="A synthetic candidate.",
            tagline_zh=None,
            facets={"style": f"synthetic candidate number {i}"},
            facets_zh={},
            examples=[],
            tags=[f"category-{i % 50}"],
            image=None,
            active=True,
            quota=None,
            min_share=None,
            max_share=None,
        )
        for i in range(size)
    )
    return Pool(profiles, f"synthetic-{size}"), vectors


def synthetic_report(size: int) -> dict[str, object]:
    encoder = load_encoder(DEFAULT_MODEL)
    brief = load_brief(SAMPLE / "brief.yaml")
    real = np.load(CACHE)
    encoder.encode(["warm up"])
    baseline = rss_mb()
    pool, vectors = synthetic_pool(real, size)
    rng = np.random.default_rng(5)
    shopper_vectors = normalise(
        real[rng.integers(0, len(real), 1000)]
        + 0.3 * rng.standard_normal((1000, real.shape[1])).astype(np.float32) / 10
    )
    results: dict[str, object] = {"size": size}
    for label, shoppers in (("no shoppers", None), ("1,000 shoppers", shopper_vectors)):
        started = time.perf_counter()
        problem = prepare(brief, pool, encoder, vectors=vectors, embedded_shoppers=shoppers)
        casting = problem.solve()
        seconds = time.perf_counter() - started
        assert problem.retriever is not None
        truth = exact_neighbours(vectors, problem.facets)
        facet_recall = recall_at(problem.retriever.search(problem.facets), truth)
        results[label] = {
            "seconds": seconds,
            "index": problem.retriever.kind,
            "effort": problem.retriever.effort,
            "recall": problem.retriever.recall,
            "facet_recall": facet_recall,
            "considered": len(problem.considered),
            "objective": casting.value,
            "bound": casting.bound,
        }
    results["peak_mb"] = rss_mb()
    results["casting_mb"] = rss_mb() - baseline
    return results


def print_sample(report: dict[str, object]) -> None:
    methods = report["methods"]
    assert isinstance(methods, list)
    print(
        f"\nSample pool: {report['pool']} candidates, k = {report['k']} "
        f"(embedded in {report['embed_seconds']:.0f} s with {DEFAULT_MODEL})\n"
    )
    print("| method | agree with intended | objective | gap to exact | bound | time |")
    print("|---|---|---|---|---|---|")
    for row in methods:
        print(
            f"| {row['method']} | {row['agree']} of {report['k']} | {row['objective']:.4f} | "
            f"{100 * row['gap']:.2f}% | {row['bound']:.4f} | {1000 * row['seconds']:.0f} ms |"
        )
    k, planned = report["k"], report["intended_objective"]
    print(f"| intended set | {k} of {k} | {planned:.4f} | | | |")
    chosen = methods[0]
    print("\nChosen by greedy:", ", ".join(chosen["ids"]))
    print("\n| facet | coverage (greedy) | score | face | coverage (intended) |")
    print("|---|---|---|---|---|")
    intended = report["intended_coverage"]
    assert isinstance(intended, dict)
    for facet, (coverage, score, by) in chosen["coverage"].items():
        print(f"| {facet} | {coverage:.2f} | {score:.3f} | {by} | {intended[facet][0]:.2f} |")
    fallback = report["without_intended"]
    assert isinstance(fallback, dict)
    gap = max(0.0, 1 - fallback["objective"] / fallback["exact_objective"])
    print("\nWith the intended faces excluded (must_exclude):\n")
    print("| method | faces | objective | gap to exact | bound |")
    print("|---|---|---|---|---|")
    faces = ", ".join(f"{cid} ({facet} {score:.3f})" for cid, facet, score in fallback["faces"])
    print(
        f"| greedy | {faces} | {fallback['objective']:.4f} | {100 * gap:.2f}% | "
        f"{fallback['bound']:.4f} |"
    )
    print(
        f"| exact ({fallback['exact_seconds']:.1f} s) | {', '.join(fallback['exact_ids'])} | "
        f"{fallback['exact_objective']:.4f} | 0.00% | |"
    )


def print_synthetic(reports: list[dict[str, object]]) -> None:
    if not reports:
        return
    print("\nSynthetic pools (vectors mixed from the sample pool's; the brief by the model)\n")
    print(
        "| candidates | shoppers | index (effort) | recall@50 held-out / facets | considered | "
        "time to cast | objective (bound) | peak memory | casting memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for report in reports:
        for label in ("no shoppers", "1,000 shoppers"):
            row = report[label]
            assert isinstance(row, dict)
            print(
                f"| {report['size']:,} | {label} | {row['index']} ({row['effort']}) | "
                f"{row['recall']:.3f} / {row['facet_recall']:.3f} | {row['considered']:,} | "
                f"{row['seconds']:.1f} s | {row['objective']:.4f} ({row['bound']:.4f}) | "
                f"{report['peak_mb']:,.0f} MB | {report['casting_mb']:,.0f} MB |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="Synthetic pool sizes.")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(synthetic_report(args.child)))
        return
    print_sample(sample_report())
    reports = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(size)],
            check=True,
            capture_output=True,
            text=True,
        )
        reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print_synthetic(reports)
    CACHE.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
