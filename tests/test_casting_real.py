"""Casting with the real default model, real FAISS and HiGHS on the sample pool (pools/lueur).

The intended set (pools/lueur/intended.yaml) was written before any selection ran.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from matcher.casting import build_retriever, embed_pool, load_brief, load_pool, prepare
from matcher.casting.cast import CastingProblem
from matcher.casting.retrieval import recall_at
from matcher.encoders import Encoder, normalise

POOL = Path(__file__).parent.parent / "pools" / "lueur"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def problem(real_encoder: Encoder) -> CastingProblem:
    return prepare(
        load_brief(POOL / "brief.yaml"), load_pool(POOL / "candidates.jsonl"), real_encoder
    )


def intended() -> list[str]:
    return list(yaml.safe_load((POOL / "intended.yaml").read_text(encoding="utf-8"))["intended"])


def test_the_sample_pool_is_cast_mostly_as_the_planner_intended(problem: CastingProblem) -> None:
    chosen = problem.solve()
    assert len(chosen.ids) == 7
    assert len(set(chosen.ids) & set(intended())) >= 6, chosen.ids
    # One face per facet, and no two near-duplicates (the pool holds a twin of each intended face).
    assert len({face.facet for face in chosen.faces}) == 7
    twins = [
        ("shen-wanqing", "shen-wanru"),
        ("lu-yuan", "lu-yao"),
        ("xia-tian", "xia-yang"),
        ("qin-zheng", "qin-feng"),
    ]
    assert not any(a in chosen.ids and b in chosen.ids for a, b in twins)
    categories = [face.category for face in chosen.faces]
    assert max(categories.count(c) for c in categories) <= 2


def test_greedy_is_within_its_bound_of_the_exact_optimum(problem: CastingProblem) -> None:
    lazy, best = problem.solve(), problem.solve(method="exact")
    assert best.value >= lazy.value - 1e-6
    assert lazy.value >= 0.95 * best.value
    assert lazy.bound is not None and lazy.bound >= best.value - 1e-6


def test_each_face_is_explained_with_a_quote_from_its_profile(problem: CastingProblem) -> None:
    pool = {p.id: p for p in problem.pool.profiles}
    for lang in ("en", "zh"):
        casting = problem.evaluate(intended(), lang=lang)
        for face in casting.faces:
            profile = pool[face.candidate_id]
            texts = profile.facets_zh if lang == "zh" else profile.facets
            assert face.quote == texts[face.quote_facet]
        embodied = {face.candidate_id: face.facet for face in casting.faces}
        assert embodied["lu-yuan"] == "freedom" and embodied["jiang-mu"] == "serenity"


def test_an_off_brief_swap_lowers_the_coverage_of_its_facet(problem: CastingProblem) -> None:
    before = problem.evaluate(intended())
    swapped = [("niu-ge" if i == "lu-yuan" else i) for i in intended()]
    after = problem.evaluate(swapped)
    freedom = {c.facet: c.coverage for c in after.coverage}["freedom"]
    assert freedom < {c.facet: c.coverage for c in before.coverage}["freedom"] - 0.3
    assert after.value < before.value
    chef = next(face for face in after.faces if face.candidate_id == "niu-ge")
    assert not chef.serves  # a barbecue streamer embodies no facet of Lueur
    assert all(face.serves for face in before.faces)


def test_shoppers_of_the_sample_split_across_the_faces(
    problem: CastingProblem, real_encoder: Encoder
) -> None:
    shoppers = [
        "Weekends I'm off trekking between mountain huts, phone off.",
        "周末喜欢一个人去茶馆坐一下午，看看书",
        "I dance at every concert and sing karaoke with my friends until sunrise.",
        "Board meetings, tailored suits and a leather briefcase: I run a company.",
    ]
    sampled = prepare(
        problem.brief, problem.pool, real_encoder, shoppers=shoppers, vectors=problem.vectors
    )
    casting = sampled.evaluate(intended())
    shares = {face.candidate_id: face.share for face in casting.faces}
    assert shares["lu-yuan"] == 0.25 and shares["jiang-mu"] == 0.25
    assert shares["xia-tian"] == 0.25 and shares["qin-zheng"] == 0.25


def test_the_approximate_index_recall_on_a_synthetic_pool_of_real_vectors(
    problem: CastingProblem,
) -> None:
    """5,000 candidates mixed from the real pool's vectors (synthetic, shaped like real ones)."""
    rng = np.random.default_rng(3)
    real = problem.vectors
    a, b = rng.integers(0, len(real), 5000), rng.integers(0, len(real), 5000)
    mix = rng.uniform(0, 1, (5000, 1)).astype(np.float32)
    noise = 0.02 * rng.standard_normal((5000, real.shape[1])).astype(np.float32)
    synthetic = 0.9 * normalise(mix * real[a] + (1 - mix) * real[b] + noise)
    retriever = build_retriever(synthetic)
    assert retriever.kind == "hnsw"
    queries = problem.facets
    truth = np.argsort(-(queries @ synthetic.T), axis=1, kind="stable")[:, :50]
    assert recall_at(retriever.search(queries), truth) >= 0.99
    assert retriever.recall >= 0.99


def test_pool_vectors_are_the_models(problem: CastingProblem, real_encoder: Encoder) -> None:
    again = embed_pool(problem.pool.profiles[:3], real_encoder)
    np.testing.assert_allclose(again, problem.vectors[:3], atol=1e-5)
