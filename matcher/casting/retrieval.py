"""Large pools: an approximate FAISS index chosen by size, then selection on what it retrieves.

Above :data:`RETRIEVE_ABOVE` candidates, casting does not score every
candidate against every shopper of a sample: each query (a facet of the
brief, a shopper) retrieves its :data:`PER_QUERY` closest candidates, and
selection runs on their union (shoppers retrieve :data:`PER_SHOPPER` each).
A candidate outside every query's list is beaten, for every facet and
shopper, by every candidate on that list, so it gains less than each of
them on every point; it could still belong to an optimal set only where
the redundancy of those candidates with each other outweighs that.

The index is chosen by the pool's size: exact (flat) up to
:data:`RETRIEVE_ABOVE`, HNSW up to :data:`IVF_ABOVE`, IVF above (its
training is cheap where an HNSW graph takes minutes to build). Its search
effort (HNSW ``efSearch``, IVF ``nprobe``) is raised until recall@50
against the exact search, measured on held-out queries, reaches
:data:`TARGET_RECALL`; the recall reached is part of the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..encoders import normalise

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Pools up to this size are scored exactly; above, an approximate index retrieves.
RETRIEVE_ABOVE = 3_000
#: From here an IVF index instead of HNSW.
IVF_ABOVE = 50_000
#: Candidates each facet of the brief retrieves.
PER_QUERY = 50
#: Candidates each shopper of a sample retrieves (a sample has hundreds of them).
PER_SHOPPER = 10
TARGET_RECALL = 0.99
#: Queries used to measure recall: pool vectors, slightly moved, as stand-ins for briefs.
RECALL_QUERIES = 200


@dataclass
class Retriever:
    """A FAISS index over a pool's vectors, with its kind, search effort and measured recall."""

    kind: str
    index: Any
    size: int
    effort: int = 0
    recall: float = 1.0

    def search(self, queries: NDArray[np.float32], m: int = PER_QUERY) -> NDArray[np.int64]:
        """The ``m`` best candidates (by inner product) of each query, ``-1`` padded."""
        m = min(m, self.size)
        _, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), m)
        return np.asarray(ids, dtype=np.int64)

    def set_effort(self, effort: int) -> None:
        self.effort = effort
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = effort
        elif self.kind == "ivf":
            self.index.nprobe = effort


def index_kind(size: int) -> str:
    """``flat``, ``hnsw`` or ``ivf`` for a pool of ``size`` candidates."""
    if size <= RETRIEVE_ABOVE:
        return "flat"
    return "hnsw" if size <= IVF_ABOVE else "ivf"


def build_retriever(
    vectors: NDArray[np.float32],
    *,
    kind: str | None = None,
    target: float = TARGET_RECALL,
    seed: int = 0,
) -> Retriever:
    """Index ``vectors`` (one per candidate) and tune the search to reach ``target`` recall@50.

    Returns:
        The retriever, with the recall@50 measured on held-out queries.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    size, dimension = vectors.shape
    kind = kind or index_kind(size)
    if kind == "flat":
        flat = faiss.IndexFlatIP(dimension)
        flat.add(vectors)
        return Retriever("flat", flat, size)
    index: Any
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        index.add(vectors)
        efforts = [64, 128, 256, 512, 1024]
    else:
        # 2 sqrt(n) lists: training costs lists x sample, so 4 sqrt(n) took four times longer.
        lists = int(2 * math.sqrt(size))
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, lists, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(size, size=min(size, 40 * lists), replace=False)]
        index.train(sample)
        index.add(vectors)
        efforts = [8, 16, 32, 64, 128, lists]
    retriever = Retriever(kind, index, size)
    queries = recall_queries(vectors, seed=seed)
    truth = exact_neighbours(vectors, queries)
    for effort in efforts:
        retriever.set_effort(effort)
        retriever.recall = recall_at(retriever.search(queries), truth)
        if retriever.recall >= target:
            break
    return retriever


def recall_queries(
    vectors: NDArray[np.float32], count: int = RECALL_QUERIES, seed: int = 0
) -> NDArray[np.float32]:
    """Held-out queries shaped like a brief's: pool vectors moved by noise of a like size."""
    rng = np.random.default_rng(seed + 1)
    picked = vectors[rng.choice(len(vectors), size=min(count, len(vectors)), replace=False)]
    noise = rng.standard_normal(picked.shape).astype(np.float32)
    noise *= 0.5 * np.linalg.norm(picked, axis=1, keepdims=True) / np.sqrt(picked.shape[1])
    return normalise(picked + noise)


def exact_neighbours(
    vectors: NDArray[np.float32], queries: NDArray[np.float32], m: int = PER_QUERY
) -> NDArray[np.int64]:
    """The true ``m`` best candidates of each query (by inner product), by a flat search."""
    import faiss

    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    _, ids = flat.search(np.ascontiguousarray(queries, dtype=np.float32), min(m, len(vectors)))
    return np.asarray(ids, dtype=np.int64)


def recall_at(found: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    """The share of the true neighbours that were found, over all queries."""
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / max(1, truth.size)


def retrieve(
    retriever: Retriever, queries: NDArray[np.float32], m: int = PER_QUERY
) -> NDArray[np.int64]:
    """The union of every query's ``m`` best candidates, sorted by position."""
    ids = retriever.search(queries, m)
    return np.unique(ids[ids >= 0])
