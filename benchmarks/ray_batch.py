"""``matcher batch`` on Ray against the local batch: throughput, scaling, start-up, memory.

The same input runs three ways, each in a fresh process: the local batch
(``run_batch``, the encoder on every core), and ``run_batch_on_ray`` on a new
local Ray cluster with 1 and with 2 workers (one CPU and one encoder thread
each). For each it reports:

- rows/s end to end (from the start of the batch call to the output renamed
  into place) and steady (from the first row back to the last, leaving out
  start-up);
- start-up: for Ray, ``ray.init`` alone, and to the first row back (the
  cluster, the worker pool, each worker loading the model, the first block);
  for the local batch, loading the model and the index;
- scaling efficiency: the steady rate of 2 workers over twice that of 1;
- peak memory (RSS) of each Ray worker and of the driver, or of the local process;
- the CPU time of the driver (or of the local process) per row: on Ray, what
  reading, taking the rows back and writing cost the one driver;
- the load average before and after each run (the machine may be shared).

By default it measures the default model (EmbeddingGemma-300M int8) on a
sample of ``--gemma-rows`` rows and the fast tier (``use-multilingual-v3:int8``)
on ``--rows`` rows (100,000): the default model pairs a few dozen rows a
second on two cores, so 100,000 rows would take most of an hour per run.
Texts are ``synthetic.py``'s (unique, English and Chinese, 20 to 40 word
pieces). Each Ray output is compared with the local one, row for row.

Run:
    python benchmarks/ray_batch.py            # both models, about 15 minutes on 2 idle cores
    python benchmarks/ray_batch.py --models use-multilingual-v3:int8 --rows 20000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

GEMMA = "embeddinggemma-300m"
FAST = "use-multilingual-v3:int8"


def write_input(path: Path, rows: int) -> None:
    from synthetic import shopper_texts

    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for number, text in enumerate(shopper_texts(rows)):
            writer.writerow([f"s{number}", text])


def child(args: argparse.Namespace) -> None:
    """One run in this process; prints its measurements as one JSON line."""
    from matcher.batch import run_batch
    from matcher.matching import MODELS_DIR, load_matcher

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    first: list[float] = []

    def on_row(line: int) -> None:
        if not first:
            first.append(time.perf_counter())

    matcher, _ = load_matcher(ROOT / "profiles", model=args.model, index_dir=args.index_dir)
    loaded = time.perf_counter()
    cpu_loaded = _cpu_seconds()
    result: dict[str, object] = {"mode": args.mode, "model": args.model}
    if args.mode == "local":
        summary = run_batch(matcher, args.input, args.output, on_row=on_row)
        result["startup"] = loaded - started
    else:
        from matcher.distributed import run_batch_on_ray

        summary = run_batch_on_ray(
            matcher,
            args.model,
            args.input,
            args.output,
            workers=int(args.mode.removeprefix("ray")),
            threads=1,
            cache_dir=args.index_dir / MODELS_DIR,
            on_row=on_row,
        )
        result["ray_init"] = summary.connect_seconds
        result["startup"] = first[0] - loaded if first else 0.0
        result["worker_rss_mb"] = sorted(v / 2**20 for v in summary.worker_peak_rss.values())
        result["matching_seconds"] = summary.matching_seconds
    ended = time.perf_counter()
    result.update(
        rows=summary.matched + summary.bad,
        seconds=ended - loaded,
        # Locally, from the first row out to the end; on Ray, from the first
        # block's start in a worker to the last one's end (rows come back to
        # the driver in input order, so its first row says little).
        steady_seconds=result.get("matching_seconds")
        or (ended - first[0] if first else ended - loaded),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        # This process's CPU for the batch: on Ray, the driver's share of a row
        # (reading, unpickling, writing), which bounds how many workers it feeds.
        cpu_seconds=_cpu_seconds() - cpu_loaded,
    )
    print(json.dumps(result))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(args: argparse.Namespace, mode: str, model: str, source: Path, index_dir: Path) -> dict:
    output = source.with_name(f"{source.stem}-{mode}.csv")
    command = [
        sys.executable, __file__, "--child", "--mode", mode, "--model", model,
        "--input", str(source), "--output", str(output), "--index-dir", str(index_dir),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{mode} run failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def differences(local: Path, other: Path) -> str:
    """How the output differs from the local one: rows, and the largest score gap."""
    with (
        open(local, encoding="utf-8", newline="") as one,
        open(other, encoding="utf-8", newline="") as two,
    ):
        mine, theirs = list(csv.DictReader(one)), list(csv.DictReader(two))
    if [r["id"] for r in mine] != [r["id"] for r in theirs]:
        return "other rows or order"
    ranked = sum(
        [r[f"celebrity_{k}"] for k in (1, 2, 3)] != [t[f"celebrity_{k}"] for k in (1, 2, 3)]
        for r, t in zip(mine, theirs, strict=True)
    )
    changed = sum(r != t for r, t in zip(mine, theirs, strict=True))
    gap = max(
        (
            abs(float(r[f"score_{k}"]) - float(t[f"score_{k}"]))
            for r, t in zip(mine, theirs, strict=True)
            for k in (1, 2, 3)
        ),
        default=0.0,
    )
    if not changed:
        return "identical"
    return f"{changed} rows differ ({ranked} in ranking), scores by at most {gap:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=[GEMMA, FAST])
    parser.add_argument("--rows", type=int, default=100_000, help="rows for the fast model")
    parser.add_argument("--gemma-rows", type=int, default=1_000, help="rows for the default model")
    parser.add_argument("--modes", nargs="+", default=["local", "ray1", "ray2"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    print(f"{os.cpu_count()} cores; load average at the start {os.getloadavg()[0]:.2f}")
    header = (
        "| model | rows | mode | rows/s end to end | rows/s steady | start-up (s) | "
        "ray.init (s) | scaling efficiency | peak RSS per worker (MB) | driver / process RSS (MB) "
        "| driver / process CPU per row (ms) | load before / after | against local |"
    )
    print(header)
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            rows = args.gemma_rows if model.startswith(GEMMA) else args.rows
            folder = Path(tmp) / model.replace(":", "-")
            folder.mkdir()
            index_dir = folder / "index"
            source = folder / "shoppers.csv"
            write_input(source, rows)
            # Build the index once, so no run pays for it.
            subprocess.run(
                [sys.executable, "-m", "matcher.cli", "index", "--model", model,
                 "--index-dir", str(index_dir)],
                check=True, capture_output=True, cwd=ROOT,
            )  # fmt: skip
            steady_one = None
            for mode in args.modes:
                m = run(args, mode, model, source, index_dir)
                steady = m["rows"] / m["steady_seconds"]
                if mode == "ray1":
                    steady_one = steady
                efficiency = (
                    f"{steady / (2 * steady_one):.0%}" if mode == "ray2" and steady_one else ""
                )
                workers = " / ".join(f"{v:,.0f}" for v in m.get("worker_rss_mb", []))
                ray_init = f"{m['ray_init']:.1f}" if "ray_init" in m else ""
                same = (
                    ""
                    if mode == "local"
                    else differences(source.with_name(f"{source.stem}-local.csv"),
                                     source.with_name(f"{source.stem}-{mode}.csv"))
                )  # fmt: skip
                print(
                    f"| {model} | {m['rows']:,} | {mode} | {m['rows'] / m['seconds']:,.1f} "
                    f"| {steady:,.1f} | {m['startup']:.1f} | {ray_init} | {efficiency} "
                    f"| {workers} | {m['peak_rss_mb']:,.0f} "
                    f"| {1000 * m.get('cpu_seconds', 0.0) / m['rows']:.2f} "
                    f"| {m['load_before']:.1f} / {m['load_after']:.1f} | {same} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
