"""EmbeddingGemma-300M as one int8 ONNX Runtime graph, built from its weights.

The default encoder. Served through torch, EmbeddingGemma costs a torch
import, fp32 arithmetic and about 1.4 GB in every worker, and a match takes
about three times as long as this graph's (docs/performance.md). So the first
load (or ``matcher models fetch``) writes the model's forward pass as an ONNX
graph straight from the fetched safetensors, quantizes it, and keeps it
beside the model; workers afterwards read the graph and never import torch or
transformers.

The graph itself (hand-written, int8, the table outside it) is
:mod:`matcher.encoders.gemma_graph`. Serving it:

- **The prompt is part of the model.** Every text gets
  ``task: sentence similarity | query: `` (without it the vectors are another
  model's: cosine 0.59).
- **One text per call.** Dynamic quantization picks one activation scale per
  call, so a text padded into a batch would get a vector that depends on its
  neighbours; one text per call keeps "same text, same vector" between the
  API and a batch job. A call uses the worker's thread budget (a single
  text on two threads: 38 ms against 58 on one), and a batch runs as many
  texts side by side as there are threads (the same 35 texts/s either way on
  two cores).

The graph folder (``GRAPH_DIR`` inside the model folder) is named by a digest
of the recipe, the weights' hash and the onnx and onnxruntime versions, so a
change of any of them builds a new one. A starting worker checks the files'
sizes; ``matcher serve`` (before any worker starts) and ``matcher models
fetch`` check their SHA-256s; a missing, partial or corrupt graph is rebuilt,
never run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..files import atomic_write, file_sha256, locked
from .base import LazyPool, LoadRequest, configured_threads, normalise, session_options
from .gemma_fetch import FOLDER, ZIP_SHA256, require_fetched
from .gemma_graph import (
    DIMENSION,
    MAX_TOKENS,
    Progress,
    build_fp32_graph,
    down_projection_peaks,
    graph_inputs,
    quantize,
    quantize_table,
    read_rows,
    read_weights,
    rotary_tables,
    save_graph,
    sliding_window,
    smooth,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

#: Bump when the graph, its quantization or the table changes: the folder name
#: and the encoder's identity include it, so indexes are rebuilt.
RECIPE = "onnx-int8-r2"
#: The registry's prompt for this model (symmetric similarity): put before the
#: calibration sentences, and named ``sts`` in the encoder's identity.
STS_PROMPT = "task: sentence similarity | query: "
#: The weights' identity: the pinned hash their fetch was checked against.
WEIGHTS_ID = f"{FOLDER}@sha256:{ZIP_SHA256}"
#: Inside the model folder: one subfolder per built graph.
GRAPH_DIR = "onnx"
GRAPH_FILE = "model.onnx"
TABLE_FILE = "embeddings.int8.npy"
SCALES_FILE = "embeddings.scale.npy"
INFO_FILE = "graph.json"
LOCK = ".build.lock"


@dataclass(frozen=True)
class GraphFiles:
    """A built graph: the quantized model and the int8 embedding table."""

    folder: Path
    graph: Path
    table: Path
    scales: Path


def graph_folder(model: Path) -> Path:
    """Where the graph for this model, recipe and library versions lives."""
    key = "\n".join([RECIPE, WEIGHTS_ID, *_versions()])
    return model / GRAPH_DIR / f"{RECIPE}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def ensure_graph(
    model: Path | None = None, *, progress: Progress | None = None, verify: bool = False
) -> GraphFiles:
    """The graph of the fetched model, built first if need be.

    Building reads the fp32 weights (1.2 GB), writes the graph and quantizes
    it: about half a minute and 3.4 GB of memory, once. Processes starting
    together take turns, so only the first one builds.

    Args:
        model: the fetched model folder (default: the model cache's).
        progress: called with (step, done, total) while building.
        verify: check every file against its recorded SHA-256 (a second or
            so) and rebuild on a mismatch; otherwise only sizes are checked,
            which is what a starting worker can afford.

    Raises:
        ConfigError: the model is not fetched, or the graph cannot be built
            from it (the message names the command that reinstalls it).
    """
    model = require_fetched(model)
    folder = graph_folder(model)
    try:
        return _usable(folder, verify)
    except _StaleGraph:
        pass
    folder.parent.mkdir(parents=True, exist_ok=True)
    with locked(folder.parent / LOCK):
        try:
            return _usable(folder, verify)
        except _StaleGraph as exc:
            log.info("building the EmbeddingGemma graph: %s", exc)
        try:
            return _build(model, folder, progress)
        except OSError as exc:
            raise ConfigError(f"cannot build the {FOLDER} graph in {folder}: {exc}") from exc
        except Exception as exc:  # safetensors, onnx and onnxruntime raise their own types
            raise ConfigError(
                f"cannot build the {FOLDER} graph from {model} ({type(exc).__name__}: {exc}); "
                f"reinstall the model with `matcher models fetch {FOLDER} --force`"
            ) from exc


def _usable(folder: Path, verify: bool) -> GraphFiles:
    files = read_graph(folder)
    if verify:
        try:
            verify_graph(files)
        except ConfigError as exc:
            raise _StaleGraph(str(exc)) from exc
    return files


class _StaleGraph(Exception):
    """A graph folder that must not be used: missing, partial or corrupt."""


def read_graph(folder: Path) -> GraphFiles:
    """The graph's files, once their checksums match the ones recorded at build."""
    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _StaleGraph(f"no complete graph in {folder}") from exc
    files = GraphFiles(folder, folder / GRAPH_FILE, folder / TABLE_FILE, folder / SCALES_FILE)
    for path in (files.graph, files.table, files.scales):
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise _StaleGraph(f"{path} is missing") from exc
        # Sizes are checked on every load, hashes by `matcher models check`:
        # hashing 300 MB in every starting worker costs a second each.
        if info.get("files", {}).get(path.name, {}).get("size") != size:
            raise _StaleGraph(f"{path} does not match {INFO_FILE}")
    return files


def verify_graph(files: GraphFiles) -> None:
    """Check every file of a built graph against its recorded SHA-256.

    Raises:
        ConfigError: a file does not match.
    """
    info = json.loads((files.folder / INFO_FILE).read_text(encoding="utf-8"))
    for path in (files.graph, files.table, files.scales):
        if file_sha256(path) != info["files"][path.name]["sha256"]:
            raise ConfigError(
                f"{path} is corrupt (checksum); delete {files.folder} and run "
                f"`matcher models fetch {FOLDER}` to build it again"
            )


def _build(model: Path, folder: Path, progress: Progress | None) -> GraphFiles:
    """Write the graph and the table into a scratch folder, then rename it into place."""
    report = progress or (lambda step, done, total: None)
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        fp32 = work / "fp32.onnx"
        graph = build_fp32_graph(model, progress=report)
        report("calibrating", 0, 1)
        smooth(graph, down_projection_peaks(graph, _calibration_feeds(model)))
        report("calibrating", 1, 1)
        save_graph(graph, fp32)
        del graph
        report("quantizing", 0, 1)
        quantize(fp32, work / GRAPH_FILE)
        fp32.unlink()
        report("quantizing", 1, 1)
        table, scales = quantize_table(read_weights(model)["embed_tokens.weight"], DIMENSION**0.5)
        np.save(work / TABLE_FILE, table)
        np.save(work / SCALES_FILE, scales)
        del table
        info = {
            "recipe": RECIPE,
            "weights": WEIGHTS_ID,
            "versions": _versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {
                name: {"size": (work / name).stat().st_size, "sha256": file_sha256(work / name)}
                for name in (GRAPH_FILE, TABLE_FILE, SCALES_FILE)
            },
        }
        # Written last: a folder without it is an interrupted build.
        atomic_write(work / INFO_FILE, json.dumps(info, indent=2).encode("utf-8"))
        for path in work.iterdir():
            os.chmod(path, 0o644)
        os.chmod(work, 0o755)
        if folder.exists():
            shutil.rmtree(folder)
        work.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Graphs of older recipes or library versions, and interrupted builds.
    for stale in folder.parent.iterdir():
        if stale.is_dir() and stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return read_graph(folder)


def _calibration_feeds(model: Path) -> list[dict[str, NDArray[np.float32]]]:
    """Graph inputs for the fixed calibration sentences, embedded in fp32."""
    from tokenizers import Tokenizer

    from .e5 import REFERENCE_SENTENCES

    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    ids = [tokenizer.encode(STS_PROMPT + text).ids for text in REFERENCE_SENTENCES]
    rows = read_rows(model, "embed_tokens.weight", sorted({i for text in ids for i in text}))
    rotary, window = rotary_tables(config), sliding_window(config)
    return [
        graph_inputs(np.stack([rows[i] for i in text]) * DIMENSION**0.5, rotary, window)
        for text in ids
    ]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def _versions() -> list[str]:
    import onnx
    import onnxruntime

    return [f"onnx=={onnx.__version__}", f"onnxruntime=={onnxruntime.__version__}"]


class GemmaOnnxEncoder:
    """EmbeddingGemma-300M on ONNX Runtime, int8, one text per call.

    Args:
        model: the fetched model folder (default: the model cache's).
        prompt: put before every text (the registry's; the model's own for similarity).
        threads: texts encoded side by side in a batch, each call on one thread.

    Raises:
        ConfigError: the model is not fetched, or its graph cannot be built or loaded.
    """

    def __init__(self, model: Path | None = None, *, prompt: str = "", threads: int = 1) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        model = require_fetched(model)
        files = ensure_graph(model)
        config = json.loads((model / "config.json").read_text(encoding="utf-8"))
        self._tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._table = np.load(files.table, mmap_mode="r")
        self._scales = np.load(files.scales)
        self._rotary = rotary_tables(config)
        self._window = sliding_window(config)
        try:
            self._session = onnxruntime.InferenceSession(
                str(files.graph), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(
                f"cannot load the {FOLDER} graph {files.graph} ({exc}); delete {files.folder} "
                f"and run `matcher models fetch {FOLDER}` to build it again"
            ) from exc
        self.prompt = prompt
        self.threads = max(1, threads)
        self._pool = LazyPool(self.threads, "gemma")
        tag = "sts" if prompt == STS_PROMPT else f"prompt-{_digest(prompt)}"
        self._model_id = f"{FOLDER}@sha256:{ZIP_SHA256[:12]}:{tag}:{RECIPE}"

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return DIMENSION

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self._tokenizer.encode_batch([self.prompt + t for t in texts])]
        if self.threads > 1 and len(texts) > 1:
            rows = list(self._pool.get().map(self._encode_one, ids))
        else:
            rows = [self._encode_one(token_ids) for token_ids in ids]
        for row, vector in enumerate(rows):
            out[row] = vector
        return normalise(out)

    def _encode_one(self, token_ids: list[int]) -> NDArray[np.float32]:
        rows = np.asarray(token_ids, dtype=np.intp)
        embeddings = self._table[rows].astype(np.float32) * self._scales[rows]
        feed = graph_inputs(embeddings, self._rotary, self._window)
        vector = self._session.run(None, feed)[0][0]
        return np.asarray(vector, dtype=np.float32)


def prepare(*, progress: Progress | None = None) -> Path:
    """The registry's preparation for ``:int8``: build the graph now, or check the built one.

    Run by ``matcher serve`` before any worker starts and by ``matcher models
    fetch``: every file is checked against its checksum, and a corrupt graph
    is rebuilt rather than run.
    """
    return ensure_graph(progress=progress, verify=True).folder


def load(request: LoadRequest) -> GemmaOnnxEncoder:
    """The registry's loader for ``embeddinggemma-300m:int8``."""
    return GemmaOnnxEncoder(prompt=request.prompt or "", threads=configured_threads())
