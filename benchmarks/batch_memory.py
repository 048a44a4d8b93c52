"""Batch streaming: peak memory and throughput of ``run_batch`` as the input grows.

Each size runs in a fresh process on a synthetic CSV of shopper texts and
reports that process's peak resident memory. Flat memory across sizes shows
the batch streams (nothing grows with the row count).

With ``--encoder real`` (the default) the matcher's default model embeds
every row; on a 2-core machine without VNNI it pairs about 45 short texts a
second, so a million rows takes about six hours. ``--encoder hashing`` swaps in the test suite's
bag-of-words encoder to push a million rows through the same reading,
batching, FAISS search and writing code in minutes: it measures the pipeline's
memory, not the model's speed.

Run:
    python benchmarks/batch_memory.py                               # real model, 1k/5k/20k rows
    python benchmarks/batch_memory.py --encoder hashing --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = (
    "I love weekend hiking green tea old books dancing with friends quiet mornings sharp suits "
    "rooftop bars silk dresses roses street art synth music karaoke the sea mountains calm "
    "classic films jazz late nights startups yoga candles bubble tea concerts poetry travel"
).split()


def write_input(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for number in range(rows):
            writer.writerow([f"s{number}", " ".join(rng.choices(WORDS, k=rng.randint(6, 24)))])


def child(args: argparse.Namespace) -> None:
    """Run one batch in this process and print its measurements as JSON."""
    from matcher.batch import run_batch
    from matcher.index import build_index
    from matcher.matching import Matcher
    from matcher.profiles import load_profiles

    if args.encoder == "hashing":
        from tests.fakes import HashingEncoder

        encoder = HashingEncoder(dimension=384, record=False)
    else:
        from matcher.encoders import load_encoder

        encoder = load_encoder()
    index, _ = build_index(load_profiles(ROOT / "profiles"), encoder)
    matcher = Matcher(encoder, index)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    summary = run_batch(matcher, args.input, args.output, k=3)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "rows": summary.matched,
                "seconds": seconds,
                "rss_before_mb": before / 1024,
                "peak_rss_mb": peak / 1024,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--encoder", choices=["real", "hashing"], default="real")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    print(f"encoder: {args.encoder}")
    print("| rows | seconds | rows/s | memory after model load (MB) | peak memory (MB) |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            source, target = Path(tmp) / f"in-{size}.csv", Path(tmp) / f"out-{size}.jsonl"
            write_input(source, size)
            result = subprocess.run(
                [sys.executable, __file__, "--child", "--encoder", args.encoder,
                 "--input", str(source), "--output", str(target)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            m = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"| {m['rows']:,} | {m['seconds']:.1f} | {m['rows'] / m['seconds']:,.0f} "
                f"| {m['rss_before_mb']:.0f} | {m['peak_rss_mb']:.0f} |",
                flush=True,
            )
            source.unlink()
            target.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
