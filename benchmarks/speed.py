"""Speed of the matcher against the same model served plainly, in one run, as one table.

Three sides, measured one after the other on the same machine:

- **(a) EmbeddingGemma, plain**: ``baseline_app.py`` with
  ``BASELINE_MODEL=embeddinggemma-300m``: sentence-transformers loads the
  fetched EmbeddingGemma folder, fp32 on torch, every text after the model's
  sentence-similarity prompt, and a Flask view searches a flat FAISS index;
- **(b) MiniLM, plain**: the same recipe with all-MiniLM-L6-v2, the
  baseline of earlier runs;
- **the matcher** with ``--model`` (default: the default model,
  EmbeddingGemma as one int8 ONNX Runtime graph), loaded by ``load_matcher``,
  served by ``matcher serve`` (gunicorn) and batched by ``matcher batch``'s
  code path.

Every server is gunicorn with ``--workers`` workers (default: one per core)
and ``cores / workers`` threads each through ``OMP_NUM_THREADS``, the model
loaded after the fork; the matcher's answers include storing the pairing in
SQLite, as in production (the API stores the answers it is confident of;
the table says how many were). One markdown table gives, per side:

- single match in-process, p50 and p99, on one thread and on texts never
  seen before (so no cache answers);
- ``POST /api/v1/match`` over loopback at 1 and 4 concurrent clients
  (``loadgen.py``): p50, p99 and requests per second;
- batch shoppers per second on every core (a CSV in and out);
- start-up to the first answer and peak resident memory per worker;
- the targets, met or not: single p50 at least 4x better than (a); 4-client
  throughput at least 4x (a)'s and at least (b)'s with p99 under 100 ms;
  batch at least 130 shoppers/s;
- the physical limit: the compute floor per text (the benchmark texts' mean
  token count, prompt included, x 2 x EmbeddingGemma's body parameters,
  divided by an int8 and an fp32 matrix-multiply rate measured here on one
  thread), what each target would need at that floor, and how far each
  side's single match is from it.

The header gives the CPU, its vector extensions (AVX-512 and VNNI or not),
the load average at the start and the end, and the library versions. The
in-process figures and the floor come from ``speed_workers.py``, each in a
fresh process; ``speed_servers.py`` starts, loads and stops the servers.
Traffic goes to 127.0.0.1 only, and the run stops only the processes it
started.

Usage (from the repository root; EmbeddingGemma fetched once with
``matcher models fetch embeddinggemma-300m``)::

    python benchmarks/speed.py --quick            # 7-9 minutes on 2 busy cores
    python benchmarks/speed.py --json speed.json  # the full run, ~20 minutes

``--quick`` measures 100 single matches, 300 batch rows a side and 8 s HTTP
runs; the full run 500 single matches, 5,000 batch rows (500 for (a), which
is slow) and 20 s HTTP runs. The quick run took 6.8 and 8.6 minutes with
other jobs holding the cores (load average 4 to 5.6); the full run's time is
estimated from those. Most of it is (a): loading it embeds the roster at
fp32, in every process. Every figure is wall-clock time on shared cores, so
for figures worth quoting run it on a quiet machine (the header prints the
load average): on a busy one (a)'s batch suffers most, torch's two threads
waiting for each other whenever another job holds a core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from speed_servers import HTTP_TEXTS, bench_env, measure_http, run_worker  # noqa: E402
from speed_workers import HTTP_SEED, SIDES  # noqa: E402
from synthetic import shopper_texts  # noqa: E402

from matcher.encoders import DEFAULT_MODEL  # noqa: E402

TARGETS = {"single_vs_a": 4.0, "http4_vs_a": 4.0, "p99_ms": 100.0, "batch_rows_per_s": 130.0}
HEADINGS = {
    "plain-gemma": "(a) EmbeddingGemma, plain",
    "plain-minilm": "(b) MiniLM, plain",
    "matcher": "matcher",
}
#: Packages whose versions the header names.
PACKAGES = (
    "numpy", "torch", "onnxruntime", "onnx", "sentence-transformers", "transformers",
    "tokenizers", "faiss-cpu", "flask", "gunicorn",
)  # fmt: skip
#: CPU flags worth naming: what int8 and fp32 arithmetic can use.
VECTOR_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16",
    "avx_vnni", "amx_int8", "amx_bf16",
)  # fmt: skip

Say = Callable[[str], None]


# --------------------------------------------------------------------------- the run


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    cpu, flags = platform.processor() or "unknown", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "absent"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "vector_flags": [f for f in VECTOR_FLAGS if f in flags],
        "avx512": any(f.startswith("avx512") for f in flags),
        "vnni": any("vnni" in f for f in flags),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "packages": packages,
        "load_average_at_start": os.getloadavg(),
    }


def measure(args: argparse.Namespace, skip: set[str], say: Say) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "settings": dict(vars(args))}
    say(f"machine: {json.dumps(results['machine'])}")
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from matcher.cli import main; main()", "index",
         "--profiles", args.profiles, "--index-dir", args.index_dir, "--model", args.model],
        env=bench_env(), capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"matcher index failed:\n{done.stderr[-3000:]}")
    results["index_build_s"] = time.perf_counter() - start
    say(f"matcher index built in {results['index_build_s']:.1f} s")
    results["sections_s"] = {"index": results["index_build_s"]}
    common = {"profiles": args.profiles, "index_dir": args.index_dir, "model": args.model}
    if "floor" not in skip:
        say("the compute floor: token count, parameters, GEMM rates ...")
        start = time.perf_counter()
        results["floor"] = run_worker("floor", {"single_count": args.single_count}, threads=1)
        results["sections_s"]["floor"] = time.perf_counter() - start
    if "inprocess" not in skip:
        start = time.perf_counter()
        results["inprocess"] = {}
        for side in SIDES:
            rows = min(args.batch_rows, args.plain_gemma_rows if side == "plain-gemma" else 10**9)
            settings = {
                **common,
                "side": side,
                "single_count": args.single_count,
                "batch_rows": rows,
                "batch_threads": cores,
            }
            say(f"in-process, {side}: {args.single_count} single matches, {rows:,} batch rows ...")
            if side == "matcher":
                single = run_worker("inprocess", {**settings, "parts": ["single"]}, threads=1)
                batch = run_worker("inprocess", {**settings, "parts": ["batch"]}, threads=cores)
                results["inprocess"][side] = {**single, "batch": batch["batch"]}
            else:
                both = {**settings, "parts": ["batch", "single"]}
                results["inprocess"][side] = run_worker("inprocess", both, threads=cores)
        results["sections_s"]["in-process"] = time.perf_counter() - start
    if "http" not in skip:
        start = time.perf_counter()
        texts = list(shopper_texts(HTTP_TEXTS * len(args.clients), seed=HTTP_SEED))
        results["http"] = {}
        for side in SIDES:
            say(f"HTTP, {side}: {args.workers} workers x {args.threads} thread(s) ...")
            results["http"][side] = measure_http(side, args, texts)
        results["sections_s"]["HTTP"] = time.perf_counter() - start
    results["machine"]["load_average_at_end"] = os.getloadavg()
    return results


# --------------------------------------------------------------------------- the table


class Table:
    """Rows of: measure, one cell per side, the matcher's ratios to (a) and (b), target, met."""

    def __init__(self, heads: Sequence[str]) -> None:
        self.lines = [
            f"| measure | {' | '.join(heads)} | matcher vs (a) | matcher vs (b) | target | met |",
            "|---" * (len(heads) + 5) + "|",
        ]

    def row(
        self,
        label: str,
        cells: Sequence[str],
        ratios: Sequence[str] = ("", ""),
        target: str = "",
        met: bool | None = None,
    ) -> None:
        verdict = "" if met is None else ("yes" if met else "no")
        self.lines.append(
            f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} | {target} | {verdict} |"
        )

    def figures(
        self,
        label: str,
        values: dict[str, float],
        unit: str,
        *,
        lower: bool,
        target: str = "",
        met: bool | None = None,
        digits: int = 1,
    ) -> None:
        """A measured row; the ratios say how many times better the matcher is."""
        cells = [f"{values[s]:,.{digits}f} {unit}" if s in values else "—" for s in SIDES]
        ratios = [
            f"{gain(values, base, lower):.2f}x" if gain(values, base, lower) else ""
            for base in ("plain-gemma", "plain-minilm")
        ]
        self.row(label, cells, ratios, target, met)

    def __str__(self) -> str:
        return "\n".join(self.lines)


def gain(values: dict[str, float], base: str, lower: bool) -> float:
    """How many times better the matcher is than ``base`` (0 when either is missing)."""
    b, ours = values.get(base), values.get("matcher")
    if not b or not ours:
        return 0.0
    return b / ours if lower else ours / b


def is_gemma_int8(model: str) -> bool:
    name, _, runtime = model.partition(":")
    return name in ("embeddinggemma-300m", "gemma") and runtime in ("", "int8")


def table(results: dict[str, Any], args: argparse.Namespace) -> str:
    out = Table([HEADINGS[s] + (f" ({args.model})" if s == "matcher" else "") for s in SIDES])
    inproc, http = results.get("inprocess", {}), results.get("http", {})
    if inproc:
        p50 = {s: inproc[s]["single"]["p50_ms"] for s in inproc}
        goal = TARGETS["single_vs_a"]
        out.figures(
            f"single match in-process, one thread, {args.single_count} unique texts, p50",
            p50,
            "ms",
            lower=True,
            target=f"≥ {goal:g}x (a)",
            met=gain(p50, "plain-gemma", True) >= goal,
        )
        out.figures(
            "single match in-process, one thread, p99",
            {s: inproc[s]["single"]["p99_ms"] for s in inproc},
            "ms",
            lower=True,
        )
    for clients in args.clients if http else []:
        load = {s: http[s]["load"][str(clients)] for s in http}
        name = f"HTTP POST /api/v1/match, {clients} client{'s' if clients > 1 else ''}"
        out.figures(f"{name}, p50", {s: v["p50_ms"] for s, v in load.items()}, "ms", lower=True)
        p99 = {s: v["p99_ms"] for s, v in load.items()}
        p99_ok = p99.get("matcher", 1e9) < TARGETS["p99_ms"]
        rps = {s: v["rps"] for s, v in load.items()}
        if clients != 4:
            out.figures(f"{name}, p99", p99, "ms", lower=True)
            out.figures(f"{name}, requests/s", rps, "req/s", lower=False)
            continue
        out.figures(
            f"{name}, p99", p99, "ms", lower=True, target=f"< {TARGETS['p99_ms']:g} ms", met=p99_ok
        )
        goal = TARGETS["http4_vs_a"]
        met = gain(rps, "plain-gemma", False) >= goal and gain(rps, "plain-minilm", False) >= 1
        out.figures(
            f"{name}, requests/s",
            rps,
            "req/s",
            lower=False,
            target=f"≥ {goal:g}x (a) and ≥ (b), with p99 < {TARGETS['p99_ms']:g} ms",
            met=met and p99_ok,
        )
    if inproc:
        rate = {s: inproc[s]["batch"]["rows_per_s"] for s in inproc}
        counts = " / ".join(f"{inproc[s]['batch']['rows']:,}" for s in SIDES if s in inproc)
        goal = TARGETS["batch_rows_per_s"]
        out.figures(
            f"batch on {os.cpu_count()} cores, CSV in and out ({counts} shoppers)",
            rate,
            "shoppers/s",
            lower=False,
            target=f"≥ {goal:g} shoppers/s",
            met=rate.get("matcher", 0) >= goal,
        )
    if http:
        out.figures(
            "start-up to first answer (gunicorn; matcher index built before)",
            {s: http[s]["startup_s"] for s in http},
            "s",
            lower=True,
        )
        out.figures(
            "peak memory (RSS) per worker, the larger",
            {s: max(http[s]["worker_peak_rss_mb"] or [0]) for s in http},
            "MB",
            lower=True,
            digits=0,
        )
    if "answers" in http.get("matcher", {}):
        served = http["matcher"]
        out.row(
            "answers stored as pairings in SQLite (the API stores the ones it is confident of)",
            [
                f"{served['pairings_stored']:,} of {served['answers']:,}" if s == "matcher" else "—"
                for s in SIDES
            ],
        )
    if results.get("floor"):
        floor_rows(out, results["floor"], inproc, args)
    return str(out)


def floor_rows(
    out: Table, floor: dict[str, Any], inproc: dict[str, Any], args: argparse.Namespace
) -> None:
    """The physical limit: (a) against the fp32 floor, the matcher against the int8 one.

    The floor counts the weights' multiply-adds only: attention's own
    products grow with the square of the length and are about 1% here.
    """
    rows = sorted(floor["gemm_flops_per_s"]["int8"], key=int)
    small, large = rows[0], rows[-1]
    # Which floor each side's arithmetic has; the matcher's only when it runs the int8 graph.
    kinds = {"plain-gemma": "fp32"}
    if is_gemma_int8(args.model):
        kinds["matcher"] = "int8"

    def cells(show: Callable[[str, str], str]) -> list[str]:
        return [show(side, kinds[side]) if side in kinds else "—" for side in SIDES]

    def pair(values: dict[str, float], unit: str, scale: float = 1.0) -> str:
        return f"{values[small] * scale:,.1f} ({values[large] * scale:,.1f}) {unit}"

    params, tokens, floor_ms = floor["parameters"], floor["mean_tokens"], floor["floor_ms"]
    rates, rate_units = floor["gemm_flops_per_s"], {"int8": "GOP/s", "fp32": "GFLOP/s"}
    out.row(
        f"mean tokens per text, prompt, BOS and EOS included ({floor['texts']} single-match "
        "texts, EmbeddingGemma's tokenizer.json)",
        cells(lambda side, kind: f"{tokens:.1f}"),
    )
    out.row(
        "GEMM rate, one ONNX Runtime thread, 768x1152 weight (int8: quantize_dynamic, "
        f"per channel, reduce_range), M={small} (M={large}) rows",
        cells(lambda side, kind: f"{kind} " + pair(rates[kind], rate_units[kind], 1e-9)),
    )
    out.row(
        f"compute floor per text: {tokens:.1f} tokens x 2 x {params['per_token'] / 1e6:.1f} M "
        f"body parameters + 2 x {params['per_text'] / 1e6:.1f} M Dense head, "
        f"÷ the GEMM rate at M={small} (M={large})",
        cells(lambda side, kind: f"{kind} " + pair(floor_ms[kind], "ms")),
    )
    cores = os.cpu_count() or 1
    batch_ceiling = {
        side: cores * 1000 / min(floor_ms[kind].values()) for side, kind in kinds.items()
    }
    out.row(
        f"ceiling at the floor: batch on {cores} cores ({cores} x 1000 ÷ the lower floor)",
        cells(lambda side, kind: f"{batch_ceiling[side]:,.1f} shoppers/s"),
        target=f"≥ {TARGETS['batch_rows_per_s']:g} shoppers/s reachable",
        met=batch_ceiling["matcher"] >= TARGETS["batch_rows_per_s"] if "matcher" in kinds else None,
    )
    # With more clients than workers each answer waits for others' in the same worker.
    waits = max(1.0, max(args.clients) / args.workers)
    queued = {side: waits * floor_ms[kind][small] for side, kind in kinds.items()}
    out.row(
        f"ceiling at the floor: {max(args.clients)} clients on {args.workers} workers, "
        f"p50 ≥ {waits:g} x the floor",
        cells(
            lambda side, kind: (
                f"{queued[side]:,.1f} ms (p99 < {TARGETS['p99_ms']:g} ms needs each match "
                f"within {TARGETS['p99_ms'] / queued[side]:.2f}x the floor)"
            )
        ),
        target=f"p99 < {TARGETS['p99_ms']:g} ms reachable",
        met=queued["matcher"] < TARGETS["p99_ms"] if "matcher" in kinds else None,
    )
    if not inproc:
        return
    p50 = {side: inproc[side]["single"]["p50_ms"] for side in inproc}
    if "matcher" in kinds:
        best = p50["plain-gemma"] / floor_ms["int8"][small]
        goal = TARGETS["single_vs_a"]
        out.row(
            f"ceiling at the floor: single p50 vs (a)'s, (a)'s p50 ÷ the int8 floor at M={small}",
            cells(lambda side, kind: f"{best:.2f}x" if side == "matcher" else "—"),
            target=f"≥ {goal:g}x (a) reachable",
            met=best >= goal,
        )
    out.row(
        f"physical limit: single p50 ÷ the floor at M={small}",
        cells(lambda side, kind: f"{p50[side] / floor_ms[kind][small]:.2f}x the {kind} floor"),
        target="how far from the floor",
    )


def header(results: dict[str, Any], args: argparse.Namespace) -> str:
    m = results["machine"]
    flags = ", ".join(m["vector_flags"]) or "none"
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; vector flags: {flags} "
        f"(AVX-512: {'yes' if m['avx512'] else 'no'}, VNNI: {'yes' if m['vnni'] else 'no'}). "
        f"Load average at start {m['load_average_at_start'][0]:.2f}, at end "
        f"{m['load_average_at_end'][0]:.2f}. Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + f". Servers: gunicorn, {args.workers} workers x {args.threads} thread(s) "
        f"(OMP_NUM_THREADS={args.threads}); HTTP runs {args.http_seconds:g} s after "
        f"{args.warmup:g} s of warm-up. Run time {results['run_s'] / 60:.1f} min ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in results["sections_s"].items())
        + ")."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default=str(REPO / "profiles"), help="Roster folder.")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="The matcher's model (default: the default model). The floor "
        "rows compare it only when it is EmbeddingGemma int8.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="gunicorn workers per server (default: one per core).",
    )
    parser.add_argument(
        "--batch-rows", type=int, default=5_000, help="Synthetic shoppers in each batch run."
    )
    parser.add_argument(
        "--plain-gemma-rows",
        type=int,
        default=500,
        help="At most this many batch rows for (a), which is slow.",
    )
    parser.add_argument(
        "--single-count", type=int, default=500, help="Single matches timed in-process per side."
    )
    parser.add_argument(
        "--http-seconds", type=float, default=20.0, help="Measured seconds per HTTP run."
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="Unmeasured seconds before each HTTP run."
    )
    parser.add_argument(
        "--clients",
        type=lambda s: [int(c) for c in s.split(",")],
        default=[1, 4],
        help="Concurrent HTTP clients, comma-separated.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100 single matches, 300 batch rows a side, 8 s HTTP runs.",
    )
    parser.add_argument(
        "--skip", default="", help="Comma-separated sections to skip: floor, inprocess, http."
    )
    parser.add_argument("--json", dest="json_path", help="Also write every figure to this file.")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_rows, args.plain_gemma_rows = 300, 300
        args.single_count, args.http_seconds, args.warmup = 100, 8.0, 2.0
    args.threads = max(1, (os.cpu_count() or 1) // args.workers)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="matcher-speed-") as work:
        args.work = work
        args.index_dir = str(Path(work) / "index")
        results = measure(args, skip, say)
    results["run_s"] = time.perf_counter() - started
    print(header(results, args) + "\n")
    print(table(results, args))
    if "http" in results:
        cpu = max(
            v["client_cpu_cores"]
            for side in results["http"].values()
            for v in side["load"].values()
        )
        errors = sum(
            v["errors"] for side in results["http"].values() for v in side["load"].values()
        )
        print(f"\nThe load generator used at most {cpu:.2f} of a core; {errors} HTTP errors.")
    if args.json_path:
        results["settings"] = {k: v for k, v in vars(args).items() if k not in ("work",)}
        Path(args.json_path).write_text(json.dumps(results, indent=2, default=str), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
