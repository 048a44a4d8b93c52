"""Casting: choose the k celebrities who together best represent a product's desired image.

The step before matching: from a pool of candidate profiles (the roster
format), pick a set that covers the facets of a brief (and, with a sample,
the shoppers), each face fitting it, with little redundancy. Modules:
:mod:`.brief` and :mod:`.pool` (input, validated with file, line and field),
:mod:`.objective` (the coverage objective and its guarantee), :mod:`.greedy`
and :mod:`.exact` (lazy greedy; the integer program for small pools),
:mod:`.retrieval` (large pools: an approximate FAISS index), :mod:`.explain`
(which facet each face embodies, and the quote that shows it) and
:mod:`.cast` (all of it end to end). See docs/casting.md.
"""

from __future__ import annotations

from .brief import Brief, BriefError, Facet, brief_from_dict, load_brief, parse_brief
from .cast import Casting, CastingProblem, cast, facet_vectors, prepare, shopper_vectors
from .exact import exact
from .explain import Face, FacetCoverage, explain
from .greedy import Selection, greedy
from .objective import Objective, upper_bound
from .pool import Pool, category_of, embed_pool, load_pool, parse_pool_lines
from .retrieval import Retriever, build_retriever, index_kind

__all__ = [
    "Brief",
    "BriefError",
    "Casting",
    "CastingProblem",
    "Face",
    "Facet",
    "FacetCoverage",
    "Objective",
    "Pool",
    "Retriever",
    "Selection",
    "brief_from_dict",
    "build_retriever",
    "cast",
    "category_of",
    "embed_pool",
    "exact",
    "explain",
    "facet_vectors",
    "greedy",
    "index_kind",
    "load_brief",
    "load_pool",
    "parse_brief",
    "parse_pool_lines",
    "prepare",
    "shopper_vectors",
    "upper_bound",
]
