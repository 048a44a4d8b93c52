"""Casting end to end: embed a brief, a pool and a shopper sample, choose k faces, explain them.

:func:`prepare` embeds (the slow part: the pool, once) and builds the
objective over the candidates selection considers: the whole pool up to
:data:`~matcher.casting.retrieval.RETRIEVE_ABOVE`, above that what the
approximate index retrieves for the brief's facets and the shoppers.
:meth:`CastingProblem.solve` chooses (greedy, or exact) and
:meth:`CastingProblem.evaluate` scores and explains any set, which is what a
planner swapping one face for another needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..encoders import Encoder, normalise
from ..errors import InputError
from ..text import validate_text
from .brief import Brief
from .exact import exact as exact_selection
from .explain import Face, FacetCoverage, explain
from .greedy import Selection, greedy
from .objective import Objective, calibration, gains
from .pool import Pool, category_of, embed_pool
from .retrieval import PER_QUERY, PER_SHOPPER, RETRIEVE_ABOVE, Retriever, build_retriever, retrieve

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: The most shopper texts a sample may hold.
MAX_SHOPPERS = 5_000
#: Candidates a shopper's median score is taken over, on large pools.
CALIBRATION_SAMPLE = 4_096


def facet_vectors(brief: Brief, encoder: Encoder) -> NDArray[np.float32]:
    """Each facet of the brief as one unit vector: the normalised mean of its texts' vectors."""
    texts = [text for facet in brief.facets.values() for text in facet.texts]
    vectors = encoder.encode(texts)
    out, row = [], 0
    for facet in brief.facets.values():
        count = len(facet.texts)
        out.append(vectors[row : row + count].sum(axis=0))
        row += count
    return normalise(np.vstack(out))


def shopper_vectors(texts: Sequence[str], encoder: Encoder) -> NDArray[np.float32]:
    """A sample of shopper texts embedded (each checked as the matcher checks a text).

    Raises:
        InputError: a text is blank, too long or holds control characters, or there
            are too many.
    """
    if len(texts) > MAX_SHOPPERS:
        raise InputError(
            f"a shopper sample holds at most {MAX_SHOPPERS:,} texts, not {len(texts):,}"
        )
    checked = []
    for number, text in enumerate(texts, start=1):
        try:
            checked.append(validate_text(text))
        except InputError as exc:
            raise InputError(f"shopper {number}: {exc}") from None
    if not checked:
        return np.zeros((0, encoder.dimension), dtype=np.float32)
    return normalise(
        np.vstack([encoder.encode(checked[i : i + 64]) for i in range(0, len(checked), 64)])
    )


@dataclass(frozen=True)
class Casting:
    """A chosen (or planner-edited) set of faces, scored and explained."""

    ids: tuple[str, ...]
    value: float
    parts: dict[str, float]
    faces: list[Face]
    coverage: list[FacetCoverage]
    method: str = "evaluated"
    guarantee: float | None = None
    bound: float | None = None
    retrieval: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "ids": list(self.ids),
            "objective": round(self.value, 6),
            "parts": {key: round(val, 6) for key, val in self.parts.items()},
            "method": self.method,
            "guarantee": None if self.guarantee is None else round(self.guarantee, 4),
            "bound": None if self.bound is None else round(self.bound, 6),
            "retrieval": self.retrieval,
            "faces": [face.to_dict() for face in self.faces],
            "coverage": [entry.to_dict() for entry in self.coverage],
        }


@dataclass
class CastingProblem:
    """A brief and a pool, embedded, with the objective over the candidates considered.

    Attributes:
        considered: pool positions the objective's columns stand for.
        retriever: the approximate index, on large pools.
    """

    brief: Brief
    pool: Pool
    encoder: Encoder
    vectors: NDArray[np.float32]
    facets: NDArray[np.float32]
    shoppers: NDArray[np.float32] | None
    considered: NDArray[np.int64]
    objective: Objective
    facet_floor: NDArray[np.float64]
    facet_top: NDArray[np.float64]
    retriever: Retriever | None = None

    @property
    def categories(self) -> list[str | None]:
        """The category of each considered candidate."""
        return [
            category_of(self.pool.profiles[int(p)], self.brief.categories) for p in self.considered
        ]

    def columns(self, ids: Sequence[str], field_name: str) -> list[int]:
        """Objective columns of candidate ids.

        Raises:
            BriefError: an id is not in the pool (naming the brief's field and line).
            InputError: an id is in the pool but not among the candidates considered.
        """
        where = {int(p): c for c, p in enumerate(self.considered)}
        out = []
        for candidate_id in ids:
            try:
                position = self.pool.position(candidate_id)
            except KeyError:
                raise self.brief.problem(
                    field_name, f"{candidate_id} is not a candidate in the pool"
                ) from None
            if position not in where:
                raise InputError(
                    f"{candidate_id} is not among the candidates retrieved for this brief"
                )
            out.append(where[position])
        return out

    def solve(self, *, method: str = "greedy", lang: str = "en") -> Casting:
        """Choose ``k`` faces by ``"greedy"`` (lazy greedy) or ``"exact"`` (HiGHS).

        Args:
            lang: the language of the quotes (``"en"`` or ``"zh"``), when a profile has it.

        Raises:
            BriefError: a forced or excluded id is not in the pool.
            InputError: the constraints cannot be met.
        """
        include = self.columns(self.brief.must_include, "must_include")
        exclude = self.columns_present(self.brief.must_exclude, "must_exclude")
        solver = exact_selection if method == "exact" else greedy
        selection: Selection = solver(
            self.objective,
            include=include,
            exclude=exclude,
            categories=self.categories,
            max_per_category=self.brief.max_per_category,
        )
        ids = [self.pool.profiles[int(self.considered[c])].id for c in selection.chosen]
        casting = self.evaluate(ids, lang=lang)
        return Casting(
            ids=casting.ids,
            value=selection.value,
            parts=casting.parts,
            faces=casting.faces,
            coverage=casting.coverage,
            method=selection.method,
            guarantee=selection.guarantee,
            bound=selection.bound,
            retrieval=self.retrieval_report(),
        )

    def columns_present(self, ids: Sequence[str], field_name: str) -> list[int]:
        """Like :meth:`columns`, but an excluded id that was not retrieved is simply absent."""
        where = {int(p): c for c, p in enumerate(self.considered)}
        out = []
        for candidate_id in ids:
            try:
                position = self.pool.position(candidate_id)
            except KeyError:
                raise self.brief.problem(
                    field_name, f"{candidate_id} is not a candidate in the pool"
                ) from None
            if position in where:
                out.append(where[position])
        return out

    def evaluate(self, ids: Sequence[str], *, lang: str = "en") -> Casting:
        """Score and explain any set of candidate ids (a planner's swap).

        Raises:
            InputError: an id is unknown, given twice, or the set is empty.
        """
        if not ids:
            raise InputError("choose at least one face")
        if len(set(ids)) != len(ids):
            raise InputError("a face is in the set twice")
        positions = []
        for candidate_id in ids:
            try:
                positions.append(self.pool.position(candidate_id))
            except KeyError:
                raise InputError(f"{candidate_id} is not a candidate in the pool") from None
        where = {int(p): c for c, p in enumerate(self.considered)}
        missing = [i for i, p in zip(ids, positions, strict=True) if p not in where]
        if missing:
            raise InputError(f"{missing[0]} is not among the candidates considered for this brief")
        columns = [where[p] for p in positions]
        parts = self.objective.parts(columns)
        profiles = [self.pool.profiles[p] for p in positions]
        faces, coverage = explain(
            self.brief,
            profiles,
            self.vectors[positions],
            self.facets,
            self.facet_floor,
            self.facet_top,
            self.encoder,
            categories=[category_of(p, self.brief.categories) for p in profiles],
            shopper_vectors=self.shoppers,
            lang=lang,
        )
        return Casting(tuple(ids), parts["total"], parts, faces, coverage)

    def retrieval_report(self) -> dict[str, Any]:
        if self.retriever is None:
            return {"index": "none", "pool": len(self.pool), "considered": len(self.considered)}
        return {
            "index": self.retriever.kind,
            "pool": len(self.pool),
            "considered": len(self.considered),
            "recall_at_50": round(self.retriever.recall, 4),
            "effort": self.retriever.effort,
        }


def prepare(
    brief: Brief,
    pool: Pool,
    encoder: Encoder,
    *,
    shoppers: Sequence[str] = (),
    vectors: NDArray[np.float32] | None = None,
    embedded_shoppers: NDArray[np.float32] | None = None,
    progress: Callable[[int, int], None] | None = None,
    retrieve_above: int = RETRIEVE_ABOVE,
) -> CastingProblem:
    """Embed what is not embedded yet and build the objective.

    Args:
        vectors: the pool's vectors if already embedded (:func:`embed_pool`).
        embedded_shoppers: a shopper sample already embedded (unit rows), instead of texts.
        progress: called with (candidates embedded, total) while embedding the pool.
        retrieve_above: pools larger than this go through the approximate index.

    Raises:
        InputError: a shopper text is unusable.
    """
    if vectors is None:
        vectors = embed_pool(pool.profiles, encoder, progress=progress)
    facets = facet_vectors(brief, encoder)
    sample = shopper_vectors(shoppers, encoder) if shoppers else embedded_shoppers
    facet_scores = facets @ vectors.T
    facet_floor, facet_top = calibration(facet_scores)
    retriever = None
    if len(pool) > retrieve_above:
        retriever = build_retriever(vectors)
        found = retrieve(retriever, facets, max(PER_QUERY, 5 * brief.k))
        if sample is not None and len(sample):
            found = np.union1d(found, retrieve(retriever, sample, PER_SHOPPER))
        forced = [pool.position(i) for i in brief.must_include if i in set(pool.ids)]
        considered = np.unique(np.concatenate([found, np.asarray(forced, dtype=np.int64)]))
    else:
        considered = np.arange(len(pool), dtype=np.int64)
    shopper_gain = None
    if sample is not None and len(sample):
        scores = sample @ vectors[considered].T
        if len(considered) < len(pool):
            rng = np.random.default_rng(0)
            picked = rng.choice(len(pool), size=min(len(pool), CALIBRATION_SAMPLE), replace=False)
            floor = np.median(sample @ vectors[picked].T, axis=1)
            top = scores.max(axis=1)
        else:
            floor, top = calibration(scores)
        shopper_gain = gains(scores, floor, top)
    directions = normalise(vectors[considered])
    objective = Objective(
        facet_gain=gains(facet_scores[:, considered], facet_floor, facet_top),
        facet_weight=np.asarray(brief.weights),
        directions=directions,
        k=brief.k,
        shopper_gain=shopper_gain,
    )
    return CastingProblem(
        brief=brief,
        pool=pool,
        encoder=encoder,
        vectors=vectors,
        facets=facets,
        shoppers=sample,
        considered=considered,
        objective=objective,
        facet_floor=facet_floor,
        facet_top=facet_top,
        retriever=retriever,
    )


def cast(
    brief: Brief,
    pool: Pool,
    encoder: Encoder,
    *,
    shoppers: Sequence[str] = (),
    method: str = "greedy",
    progress: Callable[[int, int], None] | None = None,
) -> Casting:
    """Choose ``brief.k`` faces from ``pool`` that together represent ``brief``.

    Raises:
        BriefError: the brief names candidates the pool does not have.
        InputError: the constraints cannot be met, or a shopper text is unusable.
    """
    return prepare(brief, pool, encoder, shoppers=shoppers, progress=progress).solve(method=method)
