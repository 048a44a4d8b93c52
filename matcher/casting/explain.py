"""Why a set was chosen: the facet each face embodies, with a quote, and what the set covers.

For each chosen face: the brief's facet it serves best (among the facets it
is the set's closest face for, the one it adds most to; else the facet it is
closest to), its score for that facet, and the facet of its own profile
closest to the brief's, quoted in the language asked for when the profile has
it, as the matcher quotes reasons (:mod:`matcher.matching`). For the set: the
best score and gain on each facet of the brief, and who gives it; with a
sample of shoppers, the share of them each face is closest to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..encoders import Encoder
from ..index import profile_rows
from ..profiles import Profile
from .brief import Brief
from .objective import gains

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass(frozen=True)
class Face:
    """One chosen candidate, explained.

    Attributes:
        facet: the facet of the brief the face embodies; when ``serves`` is
            false no facet has this face as the set's closest, and ``facet``
            is only the facet it is closest to.
    """

    candidate_id: str
    name: str
    name_zh: str
    facet: str
    score: float
    quote: str
    quote_facet: str
    category: str | None = None
    share: float | None = None
    serves: bool = True

    def to_dict(self) -> dict[str, object]:
        return {
            "candidate_id": self.candidate_id,
            "name": self.name,
            "name_zh": self.name_zh,
            "facet": self.facet,
            "score": self.score,
            "quote": self.quote,
            "quote_facet": self.quote_facet,
            "category": self.category,
            "share": self.share,
            "serves": self.serves,
        }


@dataclass(frozen=True)
class FacetCoverage:
    """How well the set covers one facet of the brief.

    Attributes:
        score: the best score of a chosen face for the facet's text.
        coverage: that score as a gain, 0 (the pool's median candidate) to 1
            (the pool's best candidate for this facet).
        by: the id of the face that gives it.
    """

    facet: str
    weight: float
    score: float
    coverage: float
    by: str

    def to_dict(self) -> dict[str, object]:
        return {
            "facet": self.facet,
            "weight": self.weight,
            "score": self.score,
            "coverage": self.coverage,
            "by": self.by,
        }


def explain(
    brief: Brief,
    profiles: Sequence[Profile],
    vectors: NDArray[np.float32],
    facet_vectors: NDArray[np.float32],
    facet_floor: NDArray[np.float64],
    facet_top: NDArray[np.float64],
    encoder: Encoder,
    *,
    categories: Sequence[str | None] | None = None,
    shopper_vectors: NDArray[np.float32] | None = None,
    lang: str = "en",
) -> tuple[list[Face], list[FacetCoverage]]:
    """Explain a chosen set.

    Args:
        profiles, vectors: the chosen faces and their pool vectors, in order.
        facet_vectors: the brief's facets as unit vectors.
        facet_floor, facet_top: the pool's median and best score per facet.
        categories: each chosen face's category.
        shopper_vectors: a sample of shoppers, for the shares.
        lang: ``"en"`` or ``"zh"``: the language quotes are in when the profile has it.
    """
    names = brief.facet_names
    weights = np.asarray(brief.weights) / sum(brief.weights)
    scores = (facet_vectors @ vectors.T).astype(np.float64)  # (facets, faces)
    gain = gains(scores, facet_floor, facet_top)
    serving = gain.argmax(axis=1)
    coverage = [
        FacetCoverage(
            facet=name,
            weight=round(float(weights[f]), 4),
            score=round(float(scores[f, serving[f]]), 4),
            coverage=round(float(gain[f, serving[f]]), 4),
            by=profiles[int(serving[f])].id,
        )
        for f, name in enumerate(names)
    ]
    shares: NDArray[np.float64] | None = None
    if shopper_vectors is not None and len(shopper_vectors):
        closest = (shopper_vectors @ vectors.T).argmax(axis=1)
        shares = np.bincount(closest, minlength=len(profiles)) / len(shopper_vectors)
    faces = []
    for j, profile in enumerate(profiles):
        served = [f for f in range(len(names)) if serving[f] == j and gain[f, j] > 0]
        if served:
            facet = max(served, key=lambda f: (weights[f] * gain[f, j], -f))
        else:
            facet = int(np.argmax(scores[:, j]))
        quote_facet, quote = best_quote(profile, facet_vectors[facet], encoder, lang)
        faces.append(
            Face(
                candidate_id=profile.id,
                name=profile.name,
                name_zh=profile.name_zh,
                facet=names[facet],
                score=round(float(scores[facet, j]), 4),
                quote=quote,
                quote_facet=quote_facet,
                category=categories[j] if categories is not None else None,
                share=None if shares is None else round(float(shares[j]), 4),
                serves=bool(served),
            )
        )
    return faces, coverage


def best_quote(
    profile: Profile, facet_vector: NDArray[np.float32], encoder: Encoder, lang: str = "en"
) -> tuple[str, str]:
    """The facet of ``profile`` closest to a brief facet, and its text in ``lang`` if written.

    Returns:
        ``(profile facet name, quote)``.
    """
    rows = [row for row in profile_rows(profile) if row.kind == "facet"]
    vectors = encoder.encode([row.text for row in rows])
    best = rows[int(np.argmax(vectors @ facet_vector))]
    if lang == "zh" and best.facet in profile.facets_zh:
        return best.facet, profile.facets_zh[best.facet]
    if lang != "zh":
        return best.facet, profile.facets[best.facet]
    return best.facet, best.text
