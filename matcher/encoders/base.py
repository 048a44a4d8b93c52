"""What every encoder shares: the protocol, unit vectors, the thread budget, caches.

The core depends on the small :class:`Encoder` protocol, not on any model
library, so tests can pass a deterministic fake and a new model family is a
module of its own that imports only this one (and :mod:`matcher.errors`).
Nothing here imports a model library at module level: ``matcher --help``
stays instant, and ONNX Runtime is imported only when a session is made.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: The model cache: fetched models, and int8 exports made when no index folder is given.
MODEL_CACHE_ENV = "MATCHER_MODEL_CACHE"
#: Vectors of recently seen texts kept per encoder: quick picks and campaign
#: copy repeat, and a hit costs microseconds instead of milliseconds.
TEXT_CACHE_SIZE = 4096


@runtime_checkable
class Encoder(Protocol):
    """What the index and the matcher need from an embedding model."""

    @property
    def model_id(self) -> str:
        """A stable identity, stored in the index manifest to detect a model change."""
        ...

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        ...

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` as C-contiguous ``(len(texts), dimension)`` float32 unit rows."""
        ...


@dataclass(frozen=True)
class LoadRequest:
    """What a family's loader is asked for: one model at one runtime.

    Attributes:
        name: the model's canonical name, or for a sentence-transformers
            model the name as configured (a folder, a cached model name).
        runtime: the runtime to load, one the model's spec lists.
        cache_dir: where exports are kept, for runtimes that make one
            (``None``: :func:`default_model_cache`).
        prompt: the text the model's spec puts before every text, if any.
    """

    name: str
    runtime: str
    cache_dir: Path | None = None
    prompt: str | None = None


def normalise(vectors: Any) -> NDArray[np.float32]:
    """Return C-contiguous float32 rows scaled to unit length (zero rows stay zero).

    Inner products of unit vectors are cosines, which is what FAISS's
    ``IndexFlatIP`` then computes.
    """
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def configured_threads() -> int:
    """Threads an encoder may use: the worker's budget, else every core.

    ``matcher serve`` sets ``OMP_NUM_THREADS`` to each worker's share of the
    cores before anything is imported; torch and OpenBLAS read it themselves,
    and ONNX Runtime and the fused encoder are given it here.
    """
    try:
        budget = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        budget = 0
    return budget if budget > 0 else os.cpu_count() or 1


def default_model_cache() -> Path:
    """The model cache (``MATCHER_MODEL_CACHE``): fetched models, and int8 exports
    made when no index folder is at hand."""
    configured = os.environ.get(MODEL_CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "matcher" / "models"


def session_options(threads: int) -> Any:
    """ONNX Runtime options for ``threads`` threads per call, sharing the machine politely.

    No inter-op pool, and pool threads that sleep rather than spin between
    calls, so a worker idling between requests leaves its core to the others.
    Every ONNX family uses these, so they share a machine the same way.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class LazyPool:
    """A thread pool made on first use, shared by an encoder's calls.

    Encoders load before gunicorn forks only in tests and the CLI, but a pool
    made then would not survive a fork; made on first use, it is always the
    worker's own.
    """

    def __init__(self, workers: int, prefix: str) -> None:
        self.workers = workers
        self.prefix = prefix
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.prefix)
            return self._pool


class CachedEncoder:
    """Remember the vectors of recently encoded texts (least recently used first out).

    Same identity and vectors as the encoder it wraps, so an index built with
    one serves the other.
    """

    def __init__(self, inner: Encoder, size: int = TEXT_CACHE_SIZE) -> None:
        self.inner = inner
        self.size = size
        self._vectors: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for row, text in enumerate(texts):
                vector = self._vectors.get(text)
                if vector is None:
                    missing.setdefault(text, []).append(row)
                else:
                    self._vectors.move_to_end(text)
                    out[row] = vector
        if missing:
            fresh = self.inner.encode(list(missing))
            with self._lock:
                for (text, rows), vector in zip(missing.items(), fresh, strict=True):
                    out[rows] = vector
                    self._vectors[text] = vector
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return out


def quantize_linear_layers(source: Path, destination: Path, **options: Any) -> None:
    """ONNX Runtime's dynamic int8 quantization of MatMuls, the recipe every int8 export shares.

    Weights get one scale per output channel and 7 of the 8 bits: CPUs without
    VNNI multiply int8 pairs with an instruction that saturates at 16 bits,
    which cost full 8-bit weights measurable accuracy (docs/performance.md).
    ``options`` go to ``quantize_dynamic`` (which nodes, extra options).
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    # quantize_dynamic logs advice on the root logger (pre-process the model);
    # it was measured and changed nothing here.
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(source),
            str(destination),
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            reduce_range=True,
            weight_type=QuantType.QInt8,
            **options,
        )
    finally:
        root.setLevel(level)
