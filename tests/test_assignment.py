"""Pairing under quotas and shares: exact against brute force, bounds always held."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from matcher.assignment import assign
from matcher.capacity import Bounds, InfeasibleLimits, Limits, bounds_for, check_limits


def brute_force(scores: np.ndarray, lower: list[int], upper: list[int]) -> tuple[int, float]:
    """The most shoppers paired, then the best total fit, over every possible assignment."""
    n, m = scores.shape
    best: tuple[int, float] = (-1, -np.inf)
    for choice in itertools.product(range(-1, m), repeat=n):
        counts = [choice.count(j) for j in range(m)]
        if any(c < lo or c > hi for c, lo, hi in zip(counts, lower, upper, strict=True)):
            continue
        paired = sum(1 for j in choice if j >= 0)
        fit = sum(scores[i, j] for i, j in enumerate(choice) if j >= 0)
        best = max(best, (paired, fit))
    return best


def bounds(lower: list[int], upper: list[int], n: int) -> Bounds:
    return Bounds(np.array(lower, np.int64), np.array(upper, np.int64), n)


@pytest.mark.parametrize("seed", range(40))
def test_optimal_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 7)), int(rng.integers(2, 4))
    scores = rng.uniform(-0.2, 0.9, (n, m)).astype(np.float32)
    upper = [int(u) for u in rng.integers(0, n + 1, m)]
    lower = [int(rng.integers(0, u + 1)) if rng.random() < 0.4 else 0 for u in upper]
    if sum(lower) > n:
        lower = [0] * m
    paired, fit = brute_force(scores, lower, upper)
    result = assign(scores, bounds(lower, upper, n), candidates=1)
    assert n - result.unassigned == paired
    assert result.total_fit == pytest.approx(fit, abs=n * 1e-6)
    assert result.exact
    counts = np.bincount(result.assigned[result.assigned >= 0], minlength=m)
    assert all(lo <= c <= hi for c, lo, hi in zip(counts, lower, upper, strict=True))


def test_without_binding_bounds_everyone_gets_their_best() -> None:
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 1, (500, 7)).astype(np.float32)
    result = assign(scores, bounds([0] * 7, [500] * 7, 500))
    assert (result.assigned == scores.argmax(axis=1)).all()
    assert result.moved == 0
    assert result.total_fit == pytest.approx(result.best_fit)
    assert result.prices == pytest.approx(np.zeros(7))


def test_a_full_celebrity_sends_shoppers_to_their_next_best() -> None:
    # Everyone prefers column 0; it may take two.
    scores = np.array([[0.9, 0.5], [0.8, 0.7], [0.7, 0.1], [0.6, 0.5]], np.float32)
    result = assign(scores, bounds([0, 0], [2, 4], 4))
    # Moving shopper 1 (loses 0.1) and shopper 3 (loses 0.1) costs least.
    assert result.assigned.tolist() == [0, 1, 0, 1]
    assert result.moved == 2
    assert result.total_fit == pytest.approx(0.9 + 0.7 + 0.7 + 0.5)
    # The price of the full celebrity is what the marginal shopper gave up.
    assert result.prices[0] == pytest.approx(0.1, abs=1e-5)


def test_quota_zero_is_never_paired_and_no_room_leaves_shoppers_unpaired() -> None:
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]], np.float32)
    result = assign(scores, bounds([0, 0], [0, 2], 3))
    assert (result.assigned != 0).all()
    assert result.unassigned == 1
    # The one left out is the one who liked column 1 least.
    assert result.assigned[0] == -1


def test_minimum_share_is_met_by_the_shoppers_who_lose_least() -> None:
    scores = np.array([[0.9, 0.1], [0.8, 0.75], [0.7, 0.2], [0.6, 0.5]], np.float32)
    result = assign(scores, bounds([0, 2], [4, 4], 4))
    assert sorted(np.flatnonzero(result.assigned == 1).tolist()) == [1, 3]


@pytest.mark.parametrize("candidates", [1, 2, 3, 12])
def test_few_candidates_still_reach_the_full_optimum(candidates: int) -> None:
    """The prices prove optimality over every celebrity, or the candidate lists grow."""
    rng = np.random.default_rng(7)
    n, m = 3000, 12
    bias = np.linspace(0.15, -0.15, m)
    scores = (rng.normal(0.5, 0.1, (n, m)) + bias).astype(np.float32)
    upper = np.full(m, 300, np.int64)
    upper[:3] = 120
    lower = np.zeros(m, np.int64)
    lower[-1] = 200
    full = assign(scores, Bounds(lower, upper, n), candidates=m)
    result = assign(scores, Bounds(lower, upper, n), candidates=candidates)
    assert result.exact
    assert result.total_fit == pytest.approx(full.total_fit, abs=1e-3)
    assert (result.counts <= upper).all() and (result.counts >= lower).all()
    assert result.unassigned == 0


def test_limits_that_contradict_each_other_are_refused_with_the_reason() -> None:
    with pytest.raises(InfeasibleLimits, match=r"minimum shares add up to 1\.2"):
        check_limits({"a": Limits(min_share=0.6), "b": Limits(min_share=0.6)})
    with pytest.raises(InfeasibleLimits, match="a: min_share 0.5 is above max_share 0.2"):
        check_limits({"a": Limits(min_share=0.5, max_share=0.2)})
    with pytest.raises(InfeasibleLimits, match="add up to 0.6: some shoppers could never"):
        check_limits({"a": Limits(max_share=0.3), "b": Limits(max_share=0.3)})
    with pytest.raises(InfeasibleLimits, match="quota 0 cannot give a min_share"):
        check_limits({"a": Limits(quota=0, min_share=0.1)})
    # Thirds add up to one.
    check_limits({c: Limits(min_share=1 / 3, max_share=1 / 3) for c in "abc"})


def test_bounds_round_in_the_safe_direction_and_refuse_a_minimum_above_a_quota() -> None:
    limits = {"a": Limits(max_share=1 / 3), "b": Limits(min_share=0.25), "c": Limits(quota=5)}
    result = bounds_for(["a", "b", "c"], limits, 10)
    assert result.upper.tolist() == [3, 10, 5]
    assert result.lower.tolist() == [0, 3, 0]
    with pytest.raises(InfeasibleLimits, match="b: min_share 0.25 of 1,000 shoppers is 250"):
        bounds_for(["b"], {"b": Limits(quota=100, min_share=0.25)}, 1000)


def test_a_roster_whose_limits_cannot_all_hold_is_refused(tmp_path) -> None:
    from matcher.errors import ProfileError
    from matcher.profiles import load_profiles

    from .conftest import write_roster

    write_roster(tmp_path)
    for name, share in (("ocean", 0.6), ("library", 0.5)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(path.read_text() + f"min_share: {share}\n")
    with pytest.raises(ProfileError, match=r"minimum shares add up to 1\.1"):
        load_profiles(tmp_path)


def test_one_max_share_among_unlimited_faces_is_fine(tmp_path) -> None:
    from matcher.capacity import limits_of
    from matcher.profiles import load_profiles

    from .conftest import write_roster

    write_roster(tmp_path)
    path = tmp_path / "ocean.yaml"
    path.write_text(path.read_text() + "max_share: 0.3\nquota: 10\n")
    roster = load_profiles(tmp_path)
    assert limits_of(roster.profiles) == {"ocean": Limits(quota=10, max_share=0.3)}
