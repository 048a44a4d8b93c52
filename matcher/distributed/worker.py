"""The Ray worker: one encoder per actor, the roster's index shipped once.

Ray Data runs :class:`MatchWorker` as a pool of actors (``map_batches`` with
a callable class): each loads the encoder once, when it starts, and takes the
roster's index from the object store, where the driver put it once
(``ray.put``), however many workers and blocks there are. Every block is
matched by the core's :func:`matcher.batch.match_rows`, the same function the
local batch runs, with a :class:`~matcher.matching.Matcher` set up exactly as
the driver's; the rows come back pickled, whole (matches, reasons,
assessment), so the driver writes them with the core's writers.
"""

from __future__ import annotations

import os
import pickle
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..batch import match_rows
from ..confidence import Thresholds
from ..index import ProfileIndex
from ..matching import Matcher, Scoring
from .sources import block_rows

if TYPE_CHECKING:
    import pyarrow


@dataclass(frozen=True)
class MatcherPayload:
    """Everything a worker needs besides the encoder: the index and the matcher's settings.

    The index is carried as its attributes, with any FAISS index in it
    serialised by FAISS (a FAISS index does not pickle), so the worker's copy
    holds the very same vectors as the driver's, bit for bit.
    """

    index_state: dict[str, Any]
    scoring: Scoring
    example_weight: float
    profile_weight: float
    correction_threshold: float
    confidence: Thresholds
    reasons: int
    max_chars: int

    @classmethod
    def of(cls, matcher: Matcher) -> MatcherPayload:
        import faiss

        state = {
            name: ("faiss", bytes(faiss.serialize_index(value))) if _is_faiss(value) else value
            for name, value in vars(matcher.index).items()
        }
        return cls(
            index_state=state,
            scoring=matcher.scoring,
            example_weight=matcher.example_weight,
            profile_weight=matcher.profile_weight,
            correction_threshold=matcher.correction_threshold,
            confidence=matcher.confidence,
            reasons=matcher.reasons,
            max_chars=matcher.max_chars,
        )

    def index(self) -> ProfileIndex:
        import faiss
        import numpy as np

        index = ProfileIndex.__new__(ProfileIndex)
        for name, value in self.index_state.items():
            if isinstance(value, tuple) and len(value) == 2 and value[0] == "faiss":
                value = faiss.deserialize_index(np.frombuffer(value[1], dtype=np.uint8))
            setattr(index, name, value)
        return index

    def matcher(self, encoder: Any) -> Matcher:
        return Matcher(
            encoder,
            self.index(),
            scoring=self.scoring,
            example_weight=self.example_weight,
            profile_weight=self.profile_weight,
            correction_threshold=self.correction_threshold,
            confidence=self.confidence,
            reasons=self.reasons,
            max_chars=self.max_chars,
        )


def _is_faiss(value: object) -> bool:
    return type(value).__module__.split(".")[0] == "faiss"


class MatchWorker:
    """A Ray Data callable class: built once per actor, called once per block.

    Args:
        payload: a one-item list holding the object reference of a
            :class:`MatcherPayload` (in a list, so Ray hands the reference over
            rather than a copy per actor argument).
        model: the encoder to load (the index's model).
        cache_dir: where int8 exports of the model are kept.
        threads: the worker's thread budget (its CPUs), given to the encoder.
        k: matches kept per row.
        batch_size: texts embedded together.
    """

    def __init__(
        self,
        payload: list[Any],
        model: str,
        cache_dir: str | None,
        threads: int,
        k: int,
        batch_size: int,
    ) -> None:
        import ray

        from ..encoders import load_encoder

        # The encoders read the budget from here (matcher/encoders/base.py);
        # Ray's own default is the actor's CPUs, set again so it is certain.
        os.environ["OMP_NUM_THREADS"] = str(max(1, threads))
        shipped: MatcherPayload = ray.get(payload[0])
        encoder = load_encoder(model, cache_dir=Path(cache_dir) if cache_dir else None)
        self.matcher = shipped.matcher(encoder)
        self.k = k
        self.batch_size = batch_size

    def __call__(self, block: pyarrow.Table) -> pyarrow.Table:
        import pyarrow

        started = time.time()
        rows = block_rows(block)
        items = list(match_rows(self.matcher, rows, k=self.k, batch_size=self.batch_size))
        # ru_maxrss is in KiB on Linux: the worker's peak memory so far.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return pyarrow.table(
            {
                "line": pyarrow.array([row.line for row in rows], pyarrow.int64()),
                "item": pyarrow.array(
                    [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items],
                    pyarrow.binary(),
                ),
                "worker": pyarrow.array([os.getpid()] * len(rows), pyarrow.int64()),
                "peak_rss": pyarrow.array([peak] * len(rows), pyarrow.int64()),
                # When the worker began and ended the block (wall clock), for
                # the rate of the matching itself, start-up left out.
                "started": pyarrow.array([started] * len(rows), pyarrow.float64()),
                "finished": pyarrow.array([time.time()] * len(rows), pyarrow.float64()),
            }
        )
