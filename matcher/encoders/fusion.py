"""Score fusion: several models behind one encoder, scored by one FAISS index.

Kept apart from the families: a fusion knows nothing of the models it
joins, only that each returns unit vectors (``use+e5``, ``gemma*0.75+use``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from .base import Encoder, LazyPool, normalise

if TYPE_CHECKING:
    from numpy.typing import NDArray


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
