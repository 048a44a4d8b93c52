"""A small deterministic encoder for fast unit tests of pure logic.

It hashes word tokens into a fixed number of buckets (a bag of words), so two
texts sharing words have a positive cosine. It is never used where the
behaviour of the real model matters: integration tests load the packaged model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from matcher.encoders import normalise


class HashingEncoder:
    """Bag-of-words vectors from hashed tokens; counts calls so tests can see re-embedding."""

    def __init__(
        self, dimension: int = 64, model_id: str = "test/hashing", *, record: bool = True
    ) -> None:
        self._dimension = dimension
        self._model_id = model_id
        self._record = record
        self.calls: list[list[str]] = []

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._record:
            self.calls.append(list(texts))
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in re.findall(r"\w+", text.lower()):
                bucket = int(hashlib.md5(token.encode()).hexdigest(), 16) % self._dimension
                out[row, bucket] += 1.0
        return normalise(out)

    @property
    def texts_embedded(self) -> int:
        return sum(len(call) for call in self.calls)
