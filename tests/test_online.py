"""Online pairing: a full celebrity is never chosen, prices pull shares towards their targets."""

from __future__ import annotations

import math

import numpy as np

from matcher.capacity import Limits
from matcher.online import choose, prices

RANKED = [("a", 0.80), ("b", 0.78), ("c", 0.50)]


def test_without_limits_the_best_fit_wins() -> None:
    assert choose(RANKED, {}, {"a": 500, "b": 0, "c": 0}).index == 0


def test_a_full_celebrity_is_skipped_and_the_reason_says_so() -> None:
    limits = {"a": Limits(quota=10)}
    choice = choose(RANKED, limits, {"a": 10, "b": 3})
    assert (choice.index, choice.why) == (1, "full")
    everyone_full = {"a": Limits(quota=1), "b": Limits(quota=1), "c": Limits(quota=0)}
    assert choose(RANKED, everyone_full, {"a": 1, "b": 1}).index == -1


def test_quota_price_rises_steeply_as_it_fills() -> None:
    limits = {"a": Limits(quota=100)}
    fill = [prices(["a"], limits, {"a": count})["a"] for count in (0, 25, 50, 75, 99)]
    assert fill[0] == 0.0
    assert all(later > earlier for earlier, later in zip(fill, fill[1:], strict=False))
    # Steeper near the end: the last quarter costs more than the first.
    assert fill[4] - fill[3] > fill[1] - fill[0]
    assert math.isinf(prices(["a"], limits, {"a": 100})["a"])


def test_a_close_second_is_preferred_when_the_first_fills_fast() -> None:
    limits = {"a": Limits(quota=100)}
    assert choose(RANKED, limits, {"a": 5}).index == 0
    choice = choose(RANKED, limits, {"a": 90})
    assert (choice.index, choice.why) == (1, "balanced")


def test_shares_pull_towards_their_range_once_warmed_up() -> None:
    limits = {"a": Limits(max_share=0.3), "c": Limits(min_share=0.3)}
    counts = {"a": 60, "b": 35, "c": 5}
    price = prices(["a", "b", "c"], limits, counts)
    assert price["a"] > 0 > price["c"] and price["b"] == 0
    # Before enough pairings a share means little: the pull is weaker.
    early = prices(["a", "b", "c"], limits, {"a": 6, "b": 3, "c": 1})
    assert 0 < early["a"] < price["a"]


def test_online_shares_end_near_their_targets() -> None:
    """Shoppers who all prefer one face; its max share holds over the run."""
    rng = np.random.default_rng(3)
    limits = {"a": Limits(max_share=0.4), "b": Limits(), "c": Limits()}
    counts = {"a": 0, "b": 0, "c": 0}
    for _ in range(3000):
        fits = {"a": 0.6 + rng.normal(0, 0.03), "b": 0.55 + rng.normal(0, 0.03), "c": 0.5}
        ranked = sorted(fits.items(), key=lambda item: -item[1])
        chosen = ranked[choose(ranked, limits, counts).index][0]
        counts[chosen] += 1
    assert counts["a"] / 3000 < 0.45
    assert counts["a"] / 3000 > 0.3
