"""Pair shopper texts with celebrities, best first, with reasons a planner can read.

A celebrity's score has three parts, each measured (benchmarks/README.md):

- the celebrity as a whole, half the cosine with the normalised mean of the
  facet vectors and half the cosine with the whole profile written as one
  text (name, tagline, facets, tags): on the sample roster written
  facets-only the two together beat either alone, and held on the three
  rosters nobody tuned for (``benchmarks/rosters.py``);
- the closest example text a planner wrote, when there are any (half the
  score);
- a planner's correction, when the text is close enough to a corrected one.

The facets still matter on their own: each is its own vector, and the
reasons quote the facets the text is closest to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .confidence import Assessment, Thresholds, assess, encoder_confidence
from .encoders import DEFAULT_CORRECTION_THRESHOLD, DEFAULT_MODEL, Encoder, load_encoder
from .errors import InputError
from .index import BuildReport, ProfileIndex, ensure_index
from .profiles import load_profiles
from .text import MAX_TEXT_CHARS, is_chinese, validate_text

if TYPE_CHECKING:
    from numpy.typing import NDArray

DEFAULT_TOP_K = 3
#: Weight of a celebrity's closest example text in its score (measured on the
#: labelled set; see benchmarks/README.md).
DEFAULT_EXAMPLE_WEIGHT = 0.5
#: Weight of the whole profile as one text against the facets' centroid
#: (chosen on the sample roster; 0.3 and 0.7 measured no better).
DEFAULT_PROFILE_WEIGHT = 0.5
#: Softmax temperature for ``Match.share``: score gaps of 0.05 (a clear lead on
#: these models) become a factor of e between two celebrities' shares.
SHARE_TEMPERATURE = 0.05


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
        share: this celebrity's share of the fit across the whole roster (0..1,
            summing to 1 over all celebrities): a softmax of the scores, so a
            shopper can read "how clearly this celebrity fits me rather than the others".
    """

    celebrity_id: str
    name: str
    name_zh: str
    score: float
    margin: float
    rank: int
    reasons: tuple[Reason, ...]
    share: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "celebrity_id": self.celebrity_id,
            "name": self.name,
            "name_zh": self.name_zh,
            "score": self.score,
            "margin": self.margin,
            "rank": self.rank,
            "share": self.share,
            "reasons": [
                {"facet": r.facet, "score": r.score, "quote": r.quote} for r in self.reasons
            ],
        }


def celebrity_scores(
    row_scores: NDArray[np.float32],
    index: ProfileIndex,
    scoring: Scoring = Scoring.CENTROID,
    example_weight: float = 0.0,
    correction_threshold: float = 1.0,
    profile_weight: float = 0.0,
) -> NDArray[np.float32]:
    """Reduce ``(queries, rows)`` cosines to ``(queries, celebrities)`` scores.

    Args:
        row_scores: cosines of each query with every index row.
        index: the index the rows belong to.
        scoring: how a celebrity's facet cosines combine.
        example_weight: how much the closest example text of a celebrity counts
            against the facet score: ``(1 - w) * facets + w * best example``.
            Celebrities without examples keep their facet score.
        correction_threshold: a planner's correction adds ``cosine - threshold`` to
            its celebrity's score when the text is at least that close to the
            corrected text, so corrections steer similar texts and leave the
            rest alone.
        profile_weight: how much the whole profile as one text counts against
            the facets: ``(1 - w) * facets + w * profile``.
    """
    if scoring is Scoring.CENTROID:
        facets = row_scores @ index.centroid_weights
    else:
        facets = np.empty((row_scores.shape[0], len(index)), dtype=np.float32)
        for position in range(len(index)):
            own = row_scores[:, index.facet_slice(position)]
            centroid = row_scores @ index.centroid_weights[:, position]
            if scoring is Scoring.MAX:
                facets[:, position] = own.max(axis=1)
            elif scoring is Scoring.MEAN:
                facets[:, position] = own.mean(axis=1)
            else:
                facets[:, position] = 0.5 * own.max(axis=1) + 0.5 * centroid
    scores = np.asarray(facets, dtype=np.float32)
    if profile_weight:
        whole = row_scores @ index.profile_weights
        has = index.profile_counts > 0
        scores[:, has] = (1 - profile_weight) * scores[:, has] + profile_weight * whole[:, has]
    if example_weight:
        for position in range(len(index)):
            examples = index.example_slice(position)
            if examples.stop > examples.start:
                best = row_scores[:, examples].max(axis=1)
                scores[:, position] = (1 - example_weight) * scores[:, position] + (
                    example_weight * best
                )
    for position in range(len(index)):
        corrections = index.correction_slice(position)
        if corrections.stop > corrections.start:
            closest = row_scores[:, corrections].max(axis=1)
            scores[:, position] += np.maximum(closest - correction_threshold, 0.0)
    return scores


def encoder_threshold(encoder: object) -> float:
    """The correction threshold for an encoder's cosines.

    A model may carry its own (``correction_threshold``: EmbeddingGemma's
    cosines run higher than USE's); others get the default's. A fusion's
    cosine is the weighted mean of its parts' cosines, so its threshold is
    the weighted mean of theirs. Wrappers (the text cache) are looked through.
    """
    inner = getattr(encoder, "inner", encoder)
    parts = getattr(inner, "parts", None)
    if parts is not None:
        weights = inner.weights  # type: ignore[attr-defined]
        return float(sum(w * encoder_threshold(p) for p, w in zip(parts, weights, strict=True)))
    own = getattr(inner, "correction_threshold", None)
    return DEFAULT_CORRECTION_THRESHOLD if own is None else float(own)


class Matcher:
    """Match shopper texts against one roster's index.

    Args:
        encoder: embeds shopper texts; must be the model the index was built with.
        index: the roster's facet index.
        scoring: how facet cosines combine into a celebrity score.
        example_weight: how much a celebrity's closest example text counts
            (see :func:`celebrity_scores`).
        profile_weight: how much the whole profile as one text counts against
            the facets (see :func:`celebrity_scores`).
        correction_threshold: how close a text must be to a planner's correction
            for it to count (see :func:`celebrity_scores`). Default:
            :func:`encoder_threshold`, since cosines differ between models.
        confidence: the score floor and top-two margin below which an answer is
            not announced (see :meth:`assess`). Default: :func:`encoder_confidence`,
            since cosines differ between models.
        reasons: how many facets to quote per match.
        max_chars: the longest accepted shopper text.
    """

    def __init__(
        self,
        encoder: Encoder,
        index: ProfileIndex,
        *,
        scoring: Scoring = Scoring.CENTROID,
        example_weight: float = DEFAULT_EXAMPLE_WEIGHT,
        profile_weight: float = DEFAULT_PROFILE_WEIGHT,
        correction_threshold: float | None = None,
        confidence: Thresholds | None = None,
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
        self.example_weight = example_weight
        self.profile_weight = profile_weight
        if correction_threshold is None:
            correction_threshold = encoder_threshold(encoder)
        self.correction_threshold: float = correction_threshold
        self.confidence: Thresholds = confidence or encoder_confidence(encoder)
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

    def assess(self, text: str, matches: Sequence[Match]) -> Assessment:
        """Whether ``matches`` (the answer for ``text``) may be announced as a pairing.

        Kept apart from :meth:`match` so every caller still gets the ranking (a
        planner wants to see it; a client may show it) and decides what an
        unsure answer means for it: the API and the form do not store one.
        See ``matcher/confidence.py`` for the checks.
        """
        return assess(text, matches, self.confidence, roster_size=self.roster_size)

    def match_many(self, texts: Sequence[str], k: int = DEFAULT_TOP_K) -> list[list[Match]]:
        """Match several texts in one encoder batch (texts must already be valid).

        Ties are broken by celebrity id, so the same roster and text always give
        the same answer.
        """
        k = self.check_k(k)
        if not texts:
            return []
        row_scores = self.index.facet_scores(self.encoder.encode(texts))
        scores = celebrity_scores(
            row_scores,
            self.index,
            self.scoring,
            self.example_weight,
            self.correction_threshold,
            self.profile_weight,
        )
        return [
            self._rank(row_scores[i], scores[i], k, "zh" if is_chinese(text) else "en")
            for i, text in enumerate(texts)
        ]

    def _rank(
        self, row_scores: NDArray[np.float32], scores: NDArray[np.float32], k: int, lang: str
    ) -> list[Match]:
        ids = self.index.celebrity_ids
        rounded = np.round(scores.astype(np.float64), 4)
        weights = np.exp((rounded - rounded.max()) / SHARE_TEMPERATURE)
        shares = weights / weights.sum()
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
                    reasons=self._reasons(row_scores, position, lang),
                    share=round(float(shares[position]), 4),
                )
            )
        return matches

    def _reasons(
        self, row_scores: NDArray[np.float32], position: int, lang: str
    ) -> tuple[Reason, ...]:
        """The celebrity's facets closest to the text, quoted in the text's language.

        A facet written in both languages scores by its closer version; the
        quote is the version in the shopper's language when the planner gave one.
        """
        facet_rows = range(
            self.index.facet_slice(position).start, self.index.facet_slice(position).stop
        )
        best: dict[str, float] = {}
        quote: dict[str, tuple[bool, str]] = {}
        for r in facet_rows:
            row = self.index.rows[r]
            best[row.facet] = max(best.get(row.facet, -2.0), float(row_scores[r]))
            preferred = row.lang == lang
            if row.facet not in quote or (preferred and not quote[row.facet][0]):
                quote[row.facet] = (preferred, row.text)
        order = list(best)  # facet order as the planner wrote it, for stable ties
        ranked = sorted(order, key=lambda f: (-round(best[f], 4), order.index(f)))
        return tuple(
            Reason(facet, round(best[facet], 4), quote[facet][1])
            for facet in ranked[: self.reasons]
        )


#: Inside the index folder: int8 exports of the models (made once, reused).
MODELS_DIR = "models"


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
    folder = Path(index_dir) if index_dir is not None else default_index_dir(profiles_dir)
    if encoder is None:
        encoder = load_encoder(model, cache_dir=folder / MODELS_DIR)
    index, report = ensure_index(roster, encoder, folder, on_embed=on_embed)
    return Matcher(encoder, index), report
