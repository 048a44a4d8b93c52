"""Pairing shoppers one at a time, as they arrive, within quotas and shares.

Online, a shopper must be answered before the next arrives, and nobody
knows how many will come. Pairing each with their best celebrity lets the
first hours use up the popular faces. Instead each celebrity carries a
price, and a shopper is paired with the celebrity of highest ``fit - price``
among those with room (the primal-dual rule of online b-matching, whose
"balance" form keeps a 1 - 1/e share of the offline optimum):

- **quota**: the price rises with the fraction used, slowly at first and
  steeply near the end, ``scale * (e^x - 1) / (e - 1)``; a full celebrity has
  no room at all, whatever the fit;
- **shares**: the price rises while a celebrity's running share of the
  pairings is above its ``max_share`` and falls (a bonus) while below its
  ``min_share``, exponentially in the distance, once enough shoppers have
  been paired for a share to mean anything: a share drifts out of its range
  only as far as a shopper's fit gap is worth.

The counts come from the database, read and updated in the same transaction
as the stored pairing, so the quota holds however many workers race
(``store/pairings.py``). This module only decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .capacity import Limits

#: How much fit a nearly full celebrity costs, and how strongly shares pull.
#: Cosine fits between a shopper's first and second celebrity differ by a few
#: hundredths; this is chosen with benchmarks/online.py.
PRICE_SCALE = 0.1
#: How fast a share's price grows with its distance from the range, relative to
#: the range: 5% past a max share of 40% (an eighth) costs about 2.5 x ``scale``.
SHARE_STEEPNESS = 10.0
#: The most a share's price can reach, in units of ``scale``: a shopper is moved
#: by at most this much fit to keep a share, however far it is off.
SHARE_CAP = 3.0
#: Pairings before running shares start to move prices: below it a share is noise.
SHARE_WARMUP = 50


@dataclass(frozen=True)
class Choice:
    """The celebrity chosen for one shopper, and why it is not their best, if it is not.

    Attributes:
        index: position in the candidates given, or -1 when nobody has room.
        why: ``"best"``; ``"full"`` when the best fit has no place left;
            ``"balanced"`` when it has, but its price (filling fast, or above
            its share) or another's shortfall weighed more than the fit.
    """

    index: int
    why: str


def prices(
    celebrities: Sequence[str],
    limits: Mapping[str, Limits],
    counts: Mapping[str, int],
    *,
    scale: float = PRICE_SCALE,
    warmup: int = SHARE_WARMUP,
) -> dict[str, float]:
    """Each celebrity's price given the pairings counted so far (``inf``: no room)."""
    total = sum(counts.values())
    settled = min(1.0, total / warmup) if warmup else 1.0
    result: dict[str, float] = {}
    for celebrity in celebrities:
        limit = limits.get(celebrity, Limits())
        count = counts.get(celebrity, 0)
        price = 0.0
        if limit.quota is not None:
            if count >= limit.quota:
                result[celebrity] = math.inf
                continue
            used = count / limit.quota
            price += scale * (math.exp(used) - 1.0) / (math.e - 1.0)
        if total:
            share = count / total
            if limit.max_share is not None and share > limit.max_share:
                over = (share - limit.max_share) / max(limit.max_share, 0.01)
                price += scale * settled * _pull(over)
            if limit.min_share is not None and share < limit.min_share:
                under = (limit.min_share - share) / limit.min_share
                price -= scale * settled * _pull(under)
        result[celebrity] = price
    return result


def _pull(distance: float) -> float:
    """How hard a share pulls at ``distance`` from its range (relative), capped."""
    return min(SHARE_CAP, math.expm1(SHARE_STEEPNESS * distance))


def choose(
    ranked: Sequence[tuple[str, float]],
    limits: Mapping[str, Limits],
    counts: Mapping[str, int],
    *,
    scale: float = PRICE_SCALE,
    warmup: int = SHARE_WARMUP,
) -> Choice:
    """Pick from ``ranked`` (celebrity id and fit, best first) under the current counts."""
    if not ranked:
        return Choice(-1, "full")
    ids = [celebrity for celebrity, _ in ranked]
    price = prices(ids, limits, counts, scale=scale, warmup=warmup)
    open_ = [i for i, celebrity in enumerate(ids) if math.isfinite(price[celebrity])]
    if not open_:
        return Choice(-1, "full")
    index = max(open_, key=lambda i: (ranked[i][1] - price[ids[i]], -i))
    if index == 0:
        return Choice(0, "best")
    # Not their best fit: because it is full, or to keep the quotas and shares paced.
    return Choice(index, "full" if not math.isfinite(price[ids[0]]) else "balanced")
