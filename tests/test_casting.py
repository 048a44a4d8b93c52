"""Casting's pure logic with a fake encoder: the objective, greedy, the exact program, constraints,
briefs and pools with errors, and retrieval on small synthetic pools.

Expected values come from brute force over every set (``itertools.combinations``)
and from the objective written out term by term here, never from the code under test.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from matcher.casting import (
    BriefError,
    Objective,
    brief_from_dict,
    build_retriever,
    cast,
    embed_pool,
    exact,
    greedy,
    load_brief,
    load_pool,
    prepare,
    upper_bound,
)
from matcher.casting.retrieval import exact_neighbours, recall_at, recall_queries
from matcher.encoders import normalise
from matcher.errors import InputError, ProfileError
from matcher.index import build_index
from matcher.matching import Scoring, celebrity_scores
from matcher.profiles import load_profiles

from .fakes import HashingEncoder

# -- the objective against brute force ---------------------------------------------------


def random_objective(seed: int, n: int = 9, k: int = 3, shoppers: int = 0) -> Objective:
    rng = np.random.default_rng(seed)
    facets = int(rng.integers(2, 5))
    gain = np.clip(rng.uniform(-0.3, 1.0, size=(facets, n)), 0, 1)
    base = rng.standard_normal((n, 8))
    # Near-duplicates: a few candidates are copies of others with a little noise.
    for twin in range(0, n - 1, 3):
        base[twin + 1] = base[twin] + 0.05 * rng.standard_normal(8)
    shopper_gain = np.clip(rng.uniform(-0.3, 1.0, size=(shoppers, n)), 0, 1) if shoppers else None
    return Objective(
        facet_gain=gain,
        facet_weight=rng.uniform(0.5, 2.0, size=facets),
        directions=normalise(base),
        k=k,
        shopper_gain=shopper_gain,
        redundancy_from=0.8,
    )


def written_out(o: Objective, chosen: tuple[int, ...]) -> float:
    """F(S), term by term, from the raw arrays."""
    weights = o.facet_weight / o.facet_weight.sum()
    facets = sum(weights[f] * max(o.facet_gain[f, j] for j in chosen) for f in range(len(weights)))
    shoppers = 0.0
    if o.shopper_gain is not None:
        rows = o.shopper_gain.shape[0]
        shoppers = (
            o.shopper_weight
            * sum(max(o.shopper_gain[i, j] for j in chosen) for i in range(rows))
            / rows
        )
    fit = (
        o.fit_weight
        / o.k
        * sum(sum(weights[f] * o.facet_gain[f, j] for f in range(len(weights))) for j in chosen)
    )
    penalty = 0.0
    for a, b in itertools.combinations(chosen, 2):
        cosine = float(np.dot(o.directions[a], o.directions[b]))
        penalty += min(1.0, max(0.0, (cosine - o.redundancy_from) / (1 - o.redundancy_from)))
    return float(facets + shoppers + fit - o.redundancy_weight / o.k * penalty)


def brute_force(
    o: Objective,
    include: tuple[int, ...] = (),
    exclude: tuple[int, ...] = (),
    categories: list[str | None] | None = None,
    cap: int | None = None,
) -> tuple[float, tuple[int, ...]]:
    best = (-math.inf, ())
    for chosen in itertools.combinations(range(o.size), o.k):
        if not set(include) <= set(chosen) or set(exclude) & set(chosen):
            continue
        if cap is not None and categories is not None:
            counts: dict[str, int] = {}
            for j in chosen:
                if categories[j] is not None:
                    counts[categories[j]] = counts.get(categories[j], 0) + 1  # type: ignore[index]
            if any(count > cap for count in counts.values()):
                continue
        value = written_out(o, chosen)
        if value > best[0]:
            best = (value, chosen)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_the_objective_is_the_sum_of_its_terms(seed: int) -> None:
    o = random_objective(seed, shoppers=5 if seed % 2 else 0)
    for chosen in itertools.islice(itertools.combinations(range(o.size), o.k), 0, None, 7):
        assert o.value(chosen) == pytest.approx(written_out(o, chosen), abs=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_greedy_is_within_its_guarantee_of_the_brute_force_optimum(seed: int) -> None:
    o = random_objective(seed, n=10, k=3 + seed % 2, shoppers=4 if seed % 3 == 0 else 0)
    optimum, _ = brute_force(o)
    chosen = greedy(o)
    assert len(chosen.chosen) == o.k and len(set(chosen.chosen)) == o.k
    assert chosen.value == pytest.approx(written_out(o, chosen.chosen), abs=1e-6)
    # The guarantee holds on F' = F + shift |S| (both sets have k faces).
    shifted = o.shift * o.k
    assert chosen.value + shifted >= (1 - 1 / math.e) * (optimum + shifted) - 1e-6
    assert chosen.value <= optimum + 1e-6
    assert chosen.bound >= optimum - 1e-6


@pytest.mark.parametrize("seed", range(15))
def test_the_exact_program_finds_the_brute_force_optimum(seed: int) -> None:
    o = random_objective(seed, n=9, k=3, shoppers=6 if seed % 2 else 0)
    optimum, _ = brute_force(o)
    found = exact(o)
    assert found.value == pytest.approx(optimum, abs=1e-6)
    assert len(found.chosen) == o.k


def test_greedy_can_be_short_of_the_optimum_and_the_bound_covers_it() -> None:
    # Two facets; one generalist is second-best on both, two specialists are best on one each.
    o = Objective(
        facet_gain=np.array([[0.9, 0.0, 0.6], [0.0, 0.9, 0.6]]),
        facet_weight=np.array([1.0, 1.0]),
        directions=np.eye(3, dtype=np.float32),
        k=2,
        fit_weight=0.0,
    )
    assert greedy(o).chosen[0] == 2  # 0.6 on both beats 0.45 on one
    assert set(exact(o).chosen) == {0, 1}
    assert exact(o).value == pytest.approx(0.9)
    assert greedy(o).value == pytest.approx(0.75)
    assert greedy(o).bound >= 0.9


@pytest.mark.parametrize("seed", range(10))
def test_constraints_are_honoured_by_greedy_and_the_exact_program(seed: int) -> None:
    o = random_objective(seed, n=10, k=4)
    categories: list[str | None] = [
        "actor",
        "actor",
        "actor",
        "singer",
        "singer",
        "singer",
        "athlete",
        None,
        None,
        "actor",
    ]
    include, exclude, cap = (seed % 10,), ((seed + 3) % 10,), 1
    optimum, best = brute_force(o, include, exclude, categories, cap)
    for solver in (greedy, exact):
        chosen = solver(
            o, include=include, exclude=exclude, categories=categories, max_per_category=cap
        ).chosen
        assert include[0] in chosen and exclude[0] not in chosen
        counts = [categories[j] for j in chosen if categories[j] is not None]
        assert all(counts.count(c) <= cap for c in counts), (solver.__name__, chosen)
        assert len(chosen) == 4
    found = exact(o, include=include, exclude=exclude, categories=categories, max_per_category=cap)
    assert found.value == pytest.approx(optimum, abs=1e-6)
    # A partition matroid: greedy's guarantee is 1/2 on F'.
    lazy = greedy(o, include=include, exclude=exclude, categories=categories, max_per_category=cap)
    assert lazy.guarantee == 0.5
    shifted = o.shift * o.k
    assert lazy.value + shifted >= 0.5 * (optimum + shifted) - 1e-6


def test_constraints_that_cannot_be_met_are_refused() -> None:
    o = random_objective(1, n=6, k=4)
    categories: list[str | None] = ["a", "a", "a", "b", "b", "b"]
    with pytest.raises(InputError, match="fewer than k = 4"):
        greedy(o, categories=categories, max_per_category=1)
    with pytest.raises(InputError, match="must_include holds more than 1 of category a"):
        exact(o, include=(0, 1), categories=categories, max_per_category=1)
    with pytest.raises(InputError, match="fewer than k = 4"):
        greedy(o, exclude=(0, 1, 2))


def test_the_bound_is_above_every_set() -> None:
    for seed in range(8):
        o = random_objective(seed, n=9, k=3, shoppers=3)
        optimum, _ = brute_force(o)
        for chosen in [(0, 1, 2), (3, 4, 5), greedy(o).chosen]:
            assert upper_bound(o, chosen, range(o.size)) >= optimum - 1e-6


# -- briefs with errors -----------------------------------------------------------------

GOOD_BRIEF = """\
product: Test
k: 2
facets:
  calm:
    en: tea and quiet books
    zh: 茶与安静的书
  wild:
    en: mountains and wind
    weight: 2
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_brief_loads(tmp_path: Path) -> None:
    brief = load_brief(write(tmp_path, "brief.yaml", GOOD_BRIEF))
    assert brief.k == 2 and brief.facet_names == ["calm", "wild"]
    assert brief.weights == [1.0, 2.0]
    assert brief.facets["calm"].texts == ["tea and quiet books", "茶与安静的书"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            GOOD_BRIEF.replace("k: 2\n", ""), "brief.yaml: k: is required but missing", id="no-k"
        ),
        pytest.param(
            GOOD_BRIEF.replace("k: 2", "k: 0"),
            "brief.yaml:2: k: Input should be greater than or equal to 1",
            id="k-zero",
        ),
        pytest.param(
            GOOD_BRIEF.replace("k: 2", "k: two"),
            "brief.yaml:2: k: Input should be a valid integer, got text",
            id="k-text",
        ),
        pytest.param(
            GOOD_BRIEF.replace("    weight: 2", "    weight: -1"),
            "brief.yaml:9: facets.wild.weight: Input should be greater than 0",
            id="negative-weight",
        ),
        pytest.param(
            GOOD_BRIEF.replace("    en: mountains and wind\n", ""),
            "brief.yaml:7: facets.wild: needs a text: en, zh or both",
            id="facet-without-text",
        ),
        pytest.param(
            GOOD_BRIEF + "colour: red\n",
            "brief.yaml:10: colour: is not a known field (allowed: product, k, facets",
            id="unknown-field",
        ),
        pytest.param(
            GOOD_BRIEF.replace("    zh: 茶与安静的书", "    fr: thé"),
            "brief.yaml:6: facets.calm.fr: is not a known field (allowed: en, zh, weight)",
            id="unknown-facet-field",
        ),
        pytest.param(
            GOOD_BRIEF + "must_include: [Lin Yue]\n",
            "brief.yaml:10: must_include.0: must be a candidate id",
            id="bad-id",
        ),
        pytest.param(
            GOOD_BRIEF + "must_include: [a]\nmust_exclude: [a]\n",
            "brief.yaml:10: must_include: must_include and must_exclude both name a",
            id="include-and-exclude",
        ),
        pytest.param(
            GOOD_BRIEF + "k: 3\n",
            "brief.yaml:10: k: appears twice in this file",
            id="duplicate-key",
        ),
        pytest.param("k: [1\n", "brief.yaml:2: (file): not valid YAML", id="bad-yaml"),
        pytest.param(
            GOOD_BRIEF.replace("  wild:", "  Wild Side:"),
            "brief.yaml:7: facets.Wild Side: facet names must be lowercase",
            id="bad-facet-name",
        ),
    ],
)
def test_a_brief_with_errors_is_refused_naming_file_line_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(BriefError) as caught:
        load_brief(write(tmp_path, "brief.yaml", text))
    lines = [str(problem) for problem in caught.value.problems]
    assert any(line.startswith(expected) for line in lines), lines


def test_a_brief_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "brief.yaml"
    path.write_bytes(b"k: 2\nproduct: caf\xe9\n")
    with pytest.raises(BriefError, match=r"brief.yaml:2: \(file\): not valid UTF-8"):
        load_brief(path)


# -- pools with errors ------------------------------------------------------------------


def candidate(candidate_id: str, text: str, tags: list[str] | None = None) -> dict[str, object]:
    return {
        "id": candidate_id,
        "name": candidate_id.title(),
        "name_zh": "名",
        "tagline": text,
        "facets": {"lifestyle": text, "style": text + " clothes"},
        "tags": tags if tags is not None else ["actor"],
    }


def write_pool(tmp_path: Path, rows: list[object], name: str = "pool.jsonl") -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    return write(tmp_path, name, "\n".join(lines) + "\n")


def test_a_jsonl_pool_loads_in_file_order(tmp_path: Path) -> None:
    path = write_pool(tmp_path, [candidate("b-one", "tea"), "", candidate("a-two", "wind")])
    pool = load_pool(path)
    assert pool.ids == ["b-one", "a-two"]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            [candidate("a", "tea"), "{not json"],
            "pool.jsonl:2: (file): not valid JSON",
            id="bad-json",
        ),
        pytest.param(
            [candidate("a", "tea"), "[1, 2]"],
            "pool.jsonl:2: (file): must be one JSON object per line",
            id="not-an-object",
        ),
        pytest.param(
            [{k: v for k, v in candidate("a", "tea").items() if k != "name"}],
            "pool.jsonl:1: name: is required but missing",
            id="no-name",
        ),
        pytest.param(
            [candidate("a", "tea"), {**candidate("b", "x"), "facets": {"style": ""}}],
            "pool.jsonl:2: facets.style: is empty",
            id="empty-facet",
        ),
        pytest.param(
            [candidate("a", "tea"), {**candidate("b", "x"), "colour": "red"}],
            "pool.jsonl:2: colour: is not a known field",
            id="unknown-field",
        ),
        pytest.param(
            [candidate("a", "tea"), candidate("a", "wind")],
            "pool.jsonl:2: id: the same id as line 1",
            id="duplicate-id",
        ),
        pytest.param(
            [candidate("Bad Id", "tea")], "pool.jsonl:1: id: must be kebab-case", id="bad-id"
        ),
    ],
)
def test_a_pool_with_errors_is_refused_naming_file_line_and_field(
    tmp_path: Path, rows: list[object], expected: str
) -> None:
    with pytest.raises(ProfileError) as caught:
        load_pool(write_pool(tmp_path, rows))
    lines = [str(problem) for problem in caught.value.problems]
    assert any(line.startswith(expected) for line in lines), lines


def test_a_pool_folder_is_read_like_a_roster_with_its_errors(tmp_path: Path) -> None:
    folder = tmp_path / "pool"
    folder.mkdir()
    (folder / "a.yaml").write_text(
        "id: a\nname: A\nname_zh: 甲\ntagline: t\nfacets:\n  style: x\ntags: [actor]\n",
        encoding="utf-8",
    )
    assert load_pool(folder).ids == ["a"]
    (folder / "b.yaml").write_text(
        "id: b\nname: B\nname_zh: 乙\ntagline: t\nfacets:\n  style: ''\ntags: []\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError) as caught:
        load_pool(folder)
    assert [str(p) for p in caught.value.problems] == ["b.yaml:6: facets.style: is empty"]


def test_a_pool_that_is_neither_folder_nor_jsonl_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no such pool"):
        load_pool(tmp_path / "missing.jsonl")
    with pytest.raises(ProfileError, match="must be JSON Lines"):
        load_pool(write(tmp_path, "pool.csv", "id\n"))


# -- end to end with the fake encoder ---------------------------------------------------


def test_pool_vectors_give_the_matchers_score_of_a_celebrity(tmp_path: Path) -> None:
    """A pool vector's inner product is the matcher's facets-and-profile score (no examples)."""
    roster = load_profiles(Path(__file__).parent.parent / "profiles")
    encoder = HashingEncoder(dimension=128, record=False)
    plain = [p.model_copy(update={"examples": []}) for p in roster.profiles]
    vectors = embed_pool(plain, encoder)
    index, _ = build_index(type(roster)(roster.folder, tuple(plain)), encoder)
    queries = encoder.encode(["tea and meditation in the hills", "mountains, wind and freedom"])
    expected = celebrity_scores(
        index.facet_scores(queries), index, Scoring.CENTROID, profile_weight=0.5
    )
    np.testing.assert_allclose(queries @ vectors.T, expected, atol=1e-5)


def fake_pool(tmp_path: Path) -> Path:
    rows = [
        candidate("tea-one", "green tea quiet books meditation", ["writer"]),
        candidate("tea-twin", "green tea quiet books meditation", ["writer"]),
        candidate("hiker", "mountains wind trekking alone", ["athlete"]),
        candidate("dancer", "dance party colour friends laughter", ["dancer"]),
        candidate("gamer", "energy drinks ranked matches headset", ["gamer"]),
        candidate("chef", "charcoal cumin skewers stall", ["chef"]),
    ]
    return write_pool(tmp_path, rows)


def fake_brief(**extra: object) -> dict[str, object]:
    return {
        "k": 3,
        "facets": {
            "calm": {"en": "green tea quiet books meditation"},
            "wild": {"en": "mountains wind trekking alone"},
            "joy": {"en": "dance party colour friends laughter"},
        },
        **extra,
    }


def test_cast_covers_each_facet_without_the_near_duplicate(tmp_path: Path) -> None:
    pool = load_pool(fake_pool(tmp_path))
    casting = cast(brief_from_dict(fake_brief()), pool, HashingEncoder(record=False))
    assert set(casting.ids) in ({"tea-one", "hiker", "dancer"}, {"tea-twin", "hiker", "dancer"})
    embodied = {face.candidate_id: face.facet for face in casting.faces}
    assert embodied["hiker"] == "wild" and embodied["dancer"] == "joy"
    assert all(entry.coverage == 1.0 for entry in casting.coverage)
    exact_casting = cast(
        brief_from_dict(fake_brief()), pool, HashingEncoder(record=False), method="exact"
    )
    assert exact_casting.value == pytest.approx(casting.value, abs=1e-6)


def test_cast_honours_the_briefs_constraints(tmp_path: Path) -> None:
    pool = load_pool(fake_pool(tmp_path))
    brief = brief_from_dict(fake_brief(must_include=["chef"], must_exclude=["hiker"]))
    casting = cast(brief, pool, HashingEncoder(record=False))
    assert "chef" in casting.ids and "hiker" not in casting.ids and len(casting.ids) == 3


def test_a_forced_face_not_in_the_pool_names_the_brief_line(tmp_path: Path) -> None:
    pool = load_pool(fake_pool(tmp_path))
    brief = load_brief(write(tmp_path, "brief.yaml", GOOD_BRIEF + "must_include: [nobody]\n"))
    with pytest.raises(
        BriefError, match=r"brief.yaml:10: must_include: nobody is not a candidate in the pool"
    ):
        cast(brief, pool, HashingEncoder(record=False))


def test_shoppers_get_shares_of_the_chosen_faces(tmp_path: Path) -> None:
    pool = load_pool(fake_pool(tmp_path))
    shoppers = [
        "I trek in the mountains alone",
        "mountains and wind",
        "a dance party with friends",
        "green tea and books",
    ]
    casting = cast(
        brief_from_dict(fake_brief()), pool, HashingEncoder(record=False), shoppers=shoppers
    )
    shares = {face.candidate_id: face.share for face in casting.faces}
    assert shares["hiker"] == 0.5 and shares["dancer"] == 0.25
    assert sum(s for s in shares.values() if s is not None) == pytest.approx(1.0)
    with pytest.raises(InputError, match="shopper 2"):
        cast(
            brief_from_dict(fake_brief()), pool, HashingEncoder(record=False), shoppers=["ok", "  "]
        )


def test_a_swap_changes_the_coverage(tmp_path: Path) -> None:
    pool = load_pool(fake_pool(tmp_path))
    problem = prepare(brief_from_dict(fake_brief()), pool, HashingEncoder(record=False))
    before = problem.evaluate(["tea-one", "hiker", "dancer"])
    after = problem.evaluate(["tea-one", "gamer", "dancer"])
    wild = {c.facet: c.coverage for c in after.coverage}["wild"]
    assert {c.facet: c.coverage for c in before.coverage}["wild"] == 1.0 and wild < 1.0
    assert after.value < before.value
    with pytest.raises(InputError, match="twice"):
        problem.evaluate(["hiker", "hiker"])
    with pytest.raises(InputError, match="nobody is not a candidate"):
        problem.evaluate(["nobody"])


# -- retrieval --------------------------------------------------------------------------


def clustered(n: int, dimension: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(4, n // 100), dimension))
    points = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dimension))
    return normalise(points)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_the_approximate_index_reaches_its_recall_against_brute_force(kind: str) -> None:
    vectors = clustered(4000)
    retriever = build_retriever(vectors, kind=kind)
    queries = recall_queries(vectors, seed=7)
    # The truth by numpy, not FAISS.
    truth = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :50]
    assert recall_at(retriever.search(queries), truth) >= 0.99
    assert retriever.recall >= 0.99 and retriever.kind == kind
    np.testing.assert_array_equal(
        np.sort(exact_neighbours(vectors, queries[:5]), axis=1), np.sort(truth[:5], axis=1)
    )


def test_a_large_pool_is_cast_from_what_the_index_retrieves(tmp_path: Path) -> None:
    rows = [
        candidate(f"filler-{i}", f"word{i} thing{i % 97} stuff{i % 13}", [f"cat{i % 40}"])
        for i in range(3200)
    ]
    rows[1234] = candidate("hiker", "mountains wind trekking alone", ["athlete"])
    rows[2345] = candidate("tea-one", "green tea quiet books meditation", ["writer"])
    rows[3100] = candidate("dancer", "dance party colour friends laughter", ["dancer"])
    pool = load_pool(write_pool(tmp_path, rows))
    problem = prepare(
        brief_from_dict(fake_brief()), pool, HashingEncoder(dimension=64, record=False)
    )
    assert problem.retriever is not None and problem.retriever.kind == "hnsw"
    assert len(problem.considered) < len(pool)
    casting = problem.solve()
    assert set(casting.ids) == {"hiker", "tea-one", "dancer"}
    assert casting.retrieval["index"] == "hnsw" and casting.retrieval["recall_at_50"] >= 0.99


def test_casting_is_pure_core() -> None:
    """matcher.casting and matcher cast never import the web layer."""
    import subprocess
    import sys

    code = "import sys, matcher.casting, matcher.cast_cli; print('flask' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_pool_vectors_are_kept_and_reused_until_a_candidate_changes(tmp_path: Path) -> None:
    from matcher.casting.pool import cached_pool_vectors

    pool = load_pool(fake_pool(tmp_path))
    encoder = HashingEncoder()
    first = cached_pool_vectors(pool.profiles, encoder, tmp_path / "kept")
    embedded = encoder.texts_embedded
    again = cached_pool_vectors(pool.profiles, encoder, tmp_path / "kept")
    assert encoder.texts_embedded == embedded
    np.testing.assert_array_equal(first, again)
    changed = (
        pool.profiles[0].model_copy(update={"tagline": "something else"}),
        *pool.profiles[1:],
    )
    cached_pool_vectors(changed, encoder, tmp_path / "kept")
    assert encoder.texts_embedded > embedded
    assert len(list((tmp_path / "kept").glob("pool-*.npy"))) == 2
    other = HashingEncoder(model_id="test/other")
    cached_pool_vectors(pool.profiles, other, tmp_path / "kept")
    assert other.texts_embedded > 0
