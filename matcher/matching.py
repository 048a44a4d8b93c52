"""Pair shopper texts with celebrities, best first, with reasons a planner can read.

A celebrity's score is the cosine between the shopper's text and the
celebrity as a whole: the normalised mean of the facet vectors. On the
labelled evaluation set this beat the best single facet, the mean facet
cosine, blends of the two, and one vector of the concatenated profile
(``benchmarks/evaluate.py``; figures in benchmarks/README.md). The facets
still matter: each is its own vector, and the reasons quote the facets the
text is closest to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .embedding import DEFAULT_MODEL, Encoder, load_encoder
from .errors import InputError
from .index import BuildReport, ProfileIndex, ensure_index
from .profiles import load_profiles

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Longer texts are refused: a shopper's taste fits in a paragraph, and the
#: model only reads its first ~256 word pieces anyway.
MAX_TEXT_CHARS = 1000
DEFAULT_TOP_K = 3


class Scoring(StrEnum):
    """How facet cosines become one score per celebrity."""

    MAX = "max"  #: the best facet
    MEAN = "mean"  #: the mean facet cosine
    CENTROID = "centroid"  #: cosine with the normalised mean of the facet vectors
    BLEND = "blend"  #: half best facet, half centroid


@dataclass(frozen=True)
class Reason:
    """A facet of the celebrity that the shopper's text is close to."""

    facet: str
    score: float
    quote: str


@dataclass(frozen=True)
class Match:
    """One celebrity for one shopper.

    Attributes:
        celebrity_id: the profile id.
        name, name_zh: display names.
        score: the celebrity's combined cosine with the text (-1..1, higher is closer).
        margin: how far ``score`` is ahead of the next celebrity in the full ranking
            (0 for the last); a small margin on the top match means a close call.
        rank: 1 for the best match.
        reasons: the closest facets, best first, quoted.
    """

    celebrity_id: str
    name: str
    name_zh: str
    score: float
    margin: float
    rank: int
    reasons: tuple[Reason, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "celebrity_id": self.celebrity_id,
            "name": self.name,
            "name_zh": self.name_zh,
            "score": self.score,
            "margin": self.margin,
            "rank": self.rank,
            "reasons": [
                {"facet": r.facet, "score": r.score, "quote": r.quote} for r in self.reasons
            ],
        }


def validate_text(text: object, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Return the stripped shopper text, or raise :class:`InputError` saying what is wrong."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InputError("text is blank: say what the shopper likes")
    if len(stripped) > max_chars:
        raise InputError(f"text is {len(stripped)} characters long; the limit is {max_chars}")
    return stripped


def celebrity_scores(
    facet_scores: NDArray[np.float32], index: ProfileIndex, scoring: Scoring
) -> NDArray[np.float32]:
    """Reduce ``(queries, rows)`` facet cosines to ``(queries, celebrities)`` scores."""
    if scoring is Scoring.MAX:
        return np.asarray(np.maximum.reduceat(facet_scores, index.starts, axis=1), np.float32)
    summed = np.add.reduceat(facet_scores, index.starts, axis=1)
    if scoring is Scoring.MEAN:
        return np.asarray(summed / index.counts, np.float32)
    centroid = np.asarray(summed / index.centroid_norms, np.float32)
    if scoring is Scoring.CENTROID:
        return centroid
    best = np.maximum.reduceat(facet_scores, index.starts, axis=1)
    return np.asarray(0.5 * best + 0.5 * centroid, np.float32)


class Matcher:
    """Match shopper texts against one roster's index.

    Args:
        encoder: embeds shopper texts; must be the model the index was built with.
        index: the roster's facet index.
        scoring: how facet cosines combine into a celebrity score.
        reasons: how many facets to quote per match.
        max_chars: the longest accepted shopper text.
    """

    def __init__(
        self,
        encoder: Encoder,
        index: ProfileIndex,
        *,
        scoring: Scoring = Scoring.CENTROID,
        reasons: int = 2,
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        if encoder.model_id != index.model_id:
            raise ValueError(
                f"encoder {encoder.model_id!r} differs from the index's model {index.model_id!r}"
            )
        self.encoder = encoder
        self.index = index
        self.scoring = Scoring(scoring)
        self.reasons = reasons
        self.max_chars = max_chars

    @property
    def roster_size(self) -> int:
        return len(self.index)

    def check_k(self, k: object) -> int:
        """Validate ``k`` and cap it at the roster size."""
        if isinstance(k, bool) or not isinstance(k, int):
            raise InputError(f"top_k must be a whole number, got {k!r}")
        if k < 1:
            raise InputError(f"top_k must be at least 1, got {k}")
        return min(k, self.roster_size)

    def match(self, text: str, k: int = DEFAULT_TOP_K) -> list[Match]:
        """The ``k`` celebrities closest to ``text``, best first.

        Raises:
            InputError: blank or over-long text, or ``k`` below 1.
        """
        k = self.check_k(k)
        return self.match_many([validate_text(text, max_chars=self.max_chars)], k)[0]

    def match_many(self, texts: Sequence[str], k: int = DEFAULT_TOP_K) -> list[list[Match]]:
        """Match several texts in one encoder batch (texts must already be valid).

        Ties are broken by celebrity id, so the same roster and text always give
        the same answer.
        """
        k = self.check_k(k)
        if not texts:
            return []
        facet_scores = self.index.facet_scores(self.encoder.encode(texts))
        scores = celebrity_scores(facet_scores, self.index, self.scoring)
        return [self._rank(facet_scores[i], scores[i], k) for i in range(len(texts))]

    def _rank(
        self, facet_row: NDArray[np.float32], scores: NDArray[np.float32], k: int
    ) -> list[Match]:
        ids = self.index.celebrity_ids
        rounded = np.round(scores.astype(np.float64), 4)
        # Sort by rounded score (descending), then id, so float noise cannot reorder ties.
        order = sorted(range(len(ids)), key=lambda i: (-rounded[i], ids[i]))
        matches = []
        for rank, position in enumerate(order[:k], start=1):
            following = order[rank] if rank < len(order) else None
            margin = 0.0 if following is None else float(rounded[position] - rounded[following])
            profile = self.index.profiles[position]
            matches.append(
                Match(
                    celebrity_id=profile.id,
                    name=profile.name,
                    name_zh=profile.name_zh,
                    score=float(rounded[position]),
                    margin=round(margin, 4),
                    rank=rank,
                    reasons=self._reasons(facet_row, position),
                )
            )
        return matches

    def _reasons(self, facet_row: NDArray[np.float32], position: int) -> tuple[Reason, ...]:
        start = int(self.index.starts[position])
        count = int(self.index.counts[position])
        own = facet_row[start : start + count]
        best = sorted(range(count), key=lambda i: (-round(float(own[i]), 4), i))[: self.reasons]
        rows = self.index.rows
        return tuple(
            Reason(rows[start + i].facet, round(float(own[i]), 4), rows[start + i].text)
            for i in best
        )


def default_index_dir(profiles_dir: str | Path) -> Path:
    """Where a roster's index lives unless configured: a hidden folder beside the profiles."""
    return Path(profiles_dir) / ".index"


def load_matcher(
    profiles_dir: str | Path,
    *,
    model: str = DEFAULT_MODEL,
    index_dir: str | Path | None = None,
    encoder: Encoder | None = None,
    on_embed: Callable[[str], None] | None = None,
) -> tuple[Matcher, BuildReport]:
    """Load a roster, its model and its index (refreshed if stale) into a :class:`Matcher`.

    Args:
        profiles_dir: the roster folder.
        model: the encoder to load when ``encoder`` is not given.
        index_dir: where the index is kept; defaults to ``<profiles_dir>/.index``.
        encoder: an already loaded encoder (a web worker shares one).
        on_embed: called with each celebrity id that needs embedding.

    Raises:
        ProfileError: the roster is invalid.
        ConfigError: the model cannot be loaded.
    """
    roster = load_profiles(profiles_dir)
    encoder = encoder if encoder is not None else load_encoder(model)
    folder = Path(index_dir) if index_dir is not None else default_index_dir(profiles_dir)
    index, report = ensure_index(roster, encoder, folder, on_embed=on_embed)
    return Matcher(encoder, index), report
