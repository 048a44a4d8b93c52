"""The in-process measurements of ``speed.py``, each run in a fresh process.

``speed.py`` starts ``python benchmarks/speed_workers.py NAME SETTINGS_JSON``
and reads one JSON object from the last line of its output, so that no
measurement inherits another's threads, caches or memory:

- ``inprocess``: one side's single-match latency (one thread, texts never
  seen before) and batch throughput (every core);
- ``floor``: what the hardware allows EmbeddingGemma per text: the mean
  token count of the benchmark texts, the body's parameter count, and a
  measured int8 and fp32 matrix-multiply rate on one thread.

A side is ``plain-gemma`` and ``plain-minilm`` (``baseline_app.py`` with
that model) or ``matcher`` (``load_matcher`` and the ``matcher batch`` code
path).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from synthetic import shopper_texts  # noqa: E402

#: The plain recipes, by side, with the model ``baseline_app`` loads.
PLAIN = {"plain-gemma": "embeddinggemma-300m", "plain-minilm": "all-MiniLM-L6-v2"}
SIDES = (*PLAIN, "matcher")
#: Seeds of the synthetic texts: single matches (the floor's token count
#: reads the same texts), the batch CSV and the HTTP runs.
SINGLE_SEED, BATCH_SEED, HTTP_SEED = 61, 60, 65
#: Matches before timing, so first-call costs (allocations, lazy pools) stay out.
WARMUP_MATCHES = 20
#: Rows per encode call for the plain recipes' batches (sentence-transformers'
#: ``batch_size`` inside it is the same).
PLAIN_BATCH = 64
#: The GEMM of the microbenchmark: EmbeddingGemma's hidden size by its MLP width.
GEMM_K, GEMM_N = 768, 1152
GEMM_ROWS = (32, 512)


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "count": len(ms),
    }


def single_texts(count: int) -> list[str]:
    """The in-process single-match texts, warm-up texts first."""
    return list(shopper_texts(count + WARMUP_MATCHES, seed=SINGLE_SEED))


# --------------------------------------------------------------------------- in-process


def set_plain_threads(threads: int) -> None:
    """torch's and FAISS's thread pools, which can be resized at any time."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def time_single(match: Callable[[str], Any], count: int) -> dict[str, Any]:
    """Latency of one match at a time, on texts never seen before (so no cache answers)."""
    texts = single_texts(count)
    for text in texts[:WARMUP_MATCHES]:
        match(text)
    latencies = []
    for text in texts[WARMUP_MATCHES:]:
        start = time.perf_counter()
        match(text)
        latencies.append(time.perf_counter() - start)
    return percentiles(latencies)


def plain_batch(baseline: Any, input_path: Path, output_path: Path) -> int:
    """The plain recipe's batch: read the CSV, encode and search 64 rows at a time, write."""
    with open(input_path, encoding="utf-8", newline="") as source:
        rows = list(csv.DictReader(source))
    with open(output_path, "w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["id", "celebrity_1", "score_1"])
        for at in range(0, len(rows), PLAIN_BATCH):
            chunk = rows[at : at + PLAIN_BATCH]
            answers = baseline.match_many([r["text"] for r in chunk])
            for row, matches in zip(chunk, answers, strict=True):
                writer.writerow([row["id"], matches[0]["celebrity_id"], matches[0]["score"]])
    return len(rows)


def write_shoppers(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for number, text in enumerate(shopper_texts(count, seed=BATCH_SEED)):
            writer.writerow([f"s{number}", text])


def worker_inprocess(settings: dict[str, Any]) -> dict[str, Any]:
    """Single matches on one thread and/or a batch on ``batch_threads``, for one side.

    A plain recipe does both in one process, resizing torch's pool in
    between (it loads slowly, and resizing is what torch allows). The
    matcher's encoders read their thread budget once, at load, as
    ``matcher batch`` and each serve worker do, so ``speed.py`` runs its
    single matches and its batch in two processes, the environment saying
    how many threads.
    """
    side, parts = settings["side"], settings["parts"]
    out: dict[str, Any] = {}
    start = time.perf_counter()
    if side in PLAIN:
        from baseline_app import Baseline

        set_plain_threads(settings["batch_threads"])
        baseline = Baseline(settings["profiles"], model=PLAIN[side])
        out["load_s"] = time.perf_counter() - start

        def match(text: str) -> Any:
            return baseline.match(text, 3)

        def batch(source: Path, sink: Path) -> int:
            return plain_batch(baseline, source, sink)
    else:
        from matcher.batch import run_batch
        from matcher.matching import load_matcher

        matcher, _ = load_matcher(
            settings["profiles"], model=settings["model"], index_dir=settings["index_dir"]
        )
        out["load_s"] = time.perf_counter() - start

        def match(text: str) -> Any:
            return matcher.match(text, 3)

        def batch(source: Path, sink: Path) -> int:
            return run_batch(matcher, source, sink).matched

    if "batch" in parts:
        with tempfile.TemporaryDirectory(prefix="matcher-speed-batch-") as work:
            source, sink = Path(work) / "shoppers.csv", Path(work) / "pairings.csv"
            write_shoppers(source, settings["batch_rows"])
            start = time.perf_counter()
            rows = batch(source, sink)
            elapsed = time.perf_counter() - start
        out["batch"] = {"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed}
    if "single" in parts:
        if side in PLAIN:
            set_plain_threads(1)
        out["single"] = time_single(match, settings["single_count"])
    return out


# --------------------------------------------------------------------------- the floor


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor shapes from a safetensors header (8-byte length, then JSON), no weights read."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return {name: list(entry["shape"]) for name, entry in header.items()}


def gemma_parameters(model: Path) -> dict[str, int]:
    """EmbeddingGemma's parameters: the token table, the transformer body, the two Dense heads.

    The body's weights are used once per token; the Dense heads once per
    text, after pooling; the table is a lookup, no arithmetic.
    """
    body = safetensors_shapes(model / "model.safetensors")
    table = math.prod(body.pop("embed_tokens.weight"))
    heads = sum(
        math.prod(shape)
        for folder in ("2_Dense", "3_Dense")
        for shape in safetensors_shapes(model / folder / "model.safetensors").values()
    )
    return {
        "table": table,
        "per_token": sum(math.prod(s) for s in body.values()),
        "per_text": heads,
    }


def mean_tokens(model: Path, texts: Sequence[str], prompt: str) -> float:
    """Mean tokens per text as the matcher feeds them: prompt, text, BOS and EOS."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    tokenizer.no_padding()
    return float(np.mean([len(e.ids) for e in tokenizer.encode_batch([prompt + t for t in texts])]))


def gemm_rates(seconds: float = 1.0) -> dict[str, dict[str, float]]:
    """Multiply-adds per second (x 2, so FLOP/s) of one MatMul on one ONNX Runtime thread.

    The weight is ``GEMM_K x GEMM_N`` as in EmbeddingGemma's MLP, fp32 and
    then quantized as the matcher's graph is (``quantize_dynamic``, 7-bit
    per-channel int8); the int8 figure includes quantizing the activations,
    as every int8 layer does. Each size runs for ``seconds``; the median call counts.
    """
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from matcher.encoders.base import session_options

    weight = np.random.default_rng(0).standard_normal((GEMM_K, GEMM_N)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", GEMM_K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", GEMM_N])],
        [numpy_helper.from_array(weight / 30, "w")],
    )
    rates: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="matcher-speed-gemm-") as work:
        fp32, int8 = Path(work) / "fp32.onnx", Path(work) / "int8.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), fp32)
        root = logging.getLogger()
        level = root.level
        # quantize_dynamic logs advice on the root logger; it does not apply here.
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(
                str(fp32), str(int8), per_channel=True, reduce_range=True,
                weight_type=QuantType.QInt8,
            )  # fmt: skip
        finally:
            root.setLevel(level)
        for name, path in (("fp32", fp32), ("int8", int8)):
            session = onnxruntime.InferenceSession(
                str(path), session_options(1), providers=["CPUExecutionProvider"]
            )
            rates[name] = {}
            for rows in GEMM_ROWS:
                feed = {"x": np.random.default_rng(rows).standard_normal((rows, GEMM_K))}
                feed["x"] = feed["x"].astype(np.float32)
                for _ in range(5):
                    session.run(None, feed)
                calls: list[float] = []
                until = time.perf_counter() + seconds
                while time.perf_counter() < until and len(calls) < 20_000:
                    start = time.perf_counter()
                    session.run(None, feed)
                    calls.append(time.perf_counter() - start)
                rates[name][str(rows)] = 2 * rows * GEMM_K * GEMM_N / float(np.median(calls))
    return rates


def worker_floor(settings: dict[str, Any]) -> dict[str, Any]:
    """The compute floor per text: tokens x 2 x body parameters / the measured GEMM rate."""
    from matcher.encoders.gemma_fetch import require_fetched
    from matcher.encoders.registry import spec_for

    model = require_fetched()
    prompt = spec_for("embeddinggemma-300m").prompt or ""
    texts = single_texts(settings["single_count"])[WARMUP_MATCHES:]
    tokens = mean_tokens(model, texts, prompt)
    params = gemma_parameters(model)
    flops = 2 * (tokens * params["per_token"] + params["per_text"])
    rates = gemm_rates()
    floor_ms = {
        kind: {rows: flops / rate * 1000 for rows, rate in by_rows.items()}
        for kind, by_rows in rates.items()
    }
    return {
        "texts": len(texts),
        "prompt": prompt,
        "mean_tokens": tokens,
        "parameters": params,
        "flops_per_text": flops,
        "gemm_flops_per_s": rates,
        "floor_ms": floor_ms,
    }


WORKERS = {"inprocess": worker_inprocess, "floor": worker_floor}


def main(argv: Sequence[str]) -> int:
    name, settings = argv[0], json.loads(argv[1])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(WORKERS[name](settings)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
