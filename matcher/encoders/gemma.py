"""EmbeddingGemma-300M on torch: the most accurate encoder measured.

Google's EmbeddingGemma (308M parameters, trained on 100+ languages) reads
Chinese and English shoppers better than any other model that installs here:
on the labelled set it is the only one that reaches the quality goals
(benchmarks/README.md). It costs about a hundred times the default's time
per text on a CPU (docs/performance.md), so it is a choice, not the default.

The weights are installed once by ``matcher models fetch embeddinggemma-300m``
(:mod:`matcher.encoders.gemma_fetch`); loading never touches the network.
They reproduce the model card's example similarities (tests/test_gemma.py),
which is how they were checked to be Google's.

Licence: EmbeddingGemma is provided under and subject to the Gemma Terms of
Use (https://ai.google.dev/gemma/terms), which a deployment that uses it
accepts; the project's code stays Apache-2.0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from .base import LoadRequest, configured_threads, normalise
from .gemma_fetch import NAME, ZIP_SHA256, require_fetched

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Tokens read per text: far beyond any shopper text or facet, and a bound on
#: what one over-long text can cost.
MAX_TOKENS = 512


class EmbeddingGemmaEncoder:
    """EmbeddingGemma-300M on torch, every text after the same prompt.

    Args:
        folder: the fetched model (default: the model cache's).
        prompt: put before every text, profile or shopper alike: the
            registry's sentence-similarity prompt, which the identity's
            ``:sts`` names.
        threads: torch threads (default: the worker's budget).
        batch_size: texts per forward pass in batches.
        bf16: run in bfloat16 (``embeddinggemma-300m:bf16``), which the model
            supports (float16 it does not). On a CPU with native bfloat16
            arithmetic (AVX512-BF16 or AMX: AMD Zen 4, Intel Sapphire Rapids
            and later) it is about 1.7 times as fast, pairing the labelled
            set within one text of full precision (cosine 0.9999,
            docs/performance.md); on other CPUs torch emulates it and it is
            slower. It takes more memory, not less: the weights are read in
            fp32 and converted.

    Raises:
        ConfigError: the model has not been fetched.
    """

    NAME = NAME

    def __init__(
        self,
        folder: Path | None = None,
        *,
        prompt: str,
        threads: int | None = None,
        batch_size: int = 16,
        bf16: bool = False,
    ) -> None:
        folder = require_fetched(folder)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        torch.set_num_threads(threads or configured_threads())
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            self._model = SentenceTransformer(str(folder), device="cpu")
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load {self.NAME} from {folder} ({exc}); reinstall it with "
                f"`matcher models fetch {self.NAME} --force`"
            ) from exc
        if bf16:
            self._model.to(torch.bfloat16)
        self._model.max_seq_length = MAX_TOKENS
        self.batch_size = batch_size
        self.prompt = prompt
        self._model_id = f"{self.NAME}@sha256:{ZIP_SHA256[:12]}:sts" + (":bf16" if bf16 else "")

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return 768

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            prompt=self.prompt,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        return normalise(vectors.float().numpy())


def load(request: LoadRequest) -> EmbeddingGemmaEncoder:
    """The registry's loader for ``embeddinggemma-300m:full`` and ``:bf16``."""
    return EmbeddingGemmaEncoder(prompt=request.prompt or "", bf16=request.runtime == "bf16")
