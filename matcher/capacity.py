"""What a campaign promised each celebrity: a quota and target shares, checked together.

A celebrity's contract can cap the shoppers they receive (``quota``: signed
bottles, meet-and-greet places) and ask for a share of the campaign's
pairings (``min_share``, ``max_share``, fractions of the shoppers paired).
Some combinations cannot all hold: minimum shares adding up past 1, maximum
shares that leave shoppers nobody may take, a minimum above a maximum. They
are refused here, saying which celebrities and why, before any shopper is
paired. :func:`bounds_for` turns the limits into per-celebrity counts for a
given number of shoppers, which is what the assignment (``assignment.py``)
and the online counters work with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .errors import InputError

#: Shares are compared with this slack, so 1/3 + 1/3 + 1/3 counts as 1.
SHARE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Limits:
    """One celebrity's promised capacity. ``None`` means no limit of that kind."""

    quota: int | None = None
    min_share: float | None = None
    max_share: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.quota is None and self.min_share is None and self.max_share is None


class HasLimits(Protocol):
    """What a profile says about its capacity (``profiles.Profile`` has these fields)."""

    id: str
    quota: int | None
    min_share: float | None
    max_share: float | None


def limits_of(profiles: Iterable[HasLimits]) -> dict[str, Limits]:
    """The limits the profiles set, by celebrity id; profiles without any are left out."""
    limits = {
        p.id: Limits(quota=p.quota, min_share=p.min_share, max_share=p.max_share) for p in profiles
    }
    return {celebrity: limit for celebrity, limit in limits.items() if not limit.unlimited}


class InfeasibleLimits(InputError):
    """The quotas and shares cannot all be met; the message says which and why."""


def check_limits(limits: Mapping[str, Limits], *, complete: bool = True) -> None:
    """Refuse limits that contradict each other whatever the number of shoppers.

    Args:
        complete: ``limits`` covers every celebrity of the roster (a celebrity
            left out is unlimited, so maximum shares can only fall short when
            every celebrity has one).

    Raises:
        InfeasibleLimits: naming the celebrities concerned.
    """
    problems: list[str] = []
    for celebrity, limit in limits.items():
        for name in ("min_share", "max_share"):
            value = getattr(limit, name)
            if value is not None and not 0.0 <= value <= 1.0:
                problems.append(f"{celebrity}: {name} {value} is not between 0 and 1")
        if (
            limit.min_share is not None
            and limit.max_share is not None
            and limit.min_share > limit.max_share + SHARE_TOLERANCE
        ):
            problems.append(
                f"{celebrity}: min_share {limit.min_share} is above max_share {limit.max_share}"
            )
        if limit.quota == 0 and limit.min_share:
            problems.append(f"{celebrity}: quota 0 cannot give a min_share of {limit.min_share}")
    minimums = {c: lim.min_share for c, lim in limits.items() if lim.min_share}
    if sum(minimums.values()) > 1.0 + SHARE_TOLERANCE:
        problems.append(
            f"the minimum shares add up to {sum(minimums.values()):.3g}, more than all "
            f"shoppers ({', '.join(f'{c} {s}' for c, s in sorted(minimums.items()))})"
        )
    if limits and all(lim.max_share is not None for lim in limits.values()) and complete:
        total = sum(lim.max_share or 0.0 for lim in limits.values())
        if total < 1.0 - SHARE_TOLERANCE:
            problems.append(
                f"every celebrity has a max_share and they add up to {total:.3g}: "
                "some shoppers could never be paired; raise a max_share or remove one"
            )
    if problems:
        raise InfeasibleLimits("the quotas and shares cannot all be met: " + "; ".join(problems))


@dataclass(frozen=True)
class Bounds:
    """Per celebrity (in roster order), how many shoppers they must and may receive."""

    lower: np.ndarray
    upper: np.ndarray
    #: The number of shoppers the counts were worked out for.
    shoppers: int

    @property
    def binding(self) -> bool:
        """Whether any bound can change who is paired with whom."""
        return bool(np.any(self.lower > 0)) or bool(np.any(self.upper < self.shoppers))


def bounds_for(celebrities: Sequence[str], limits: Mapping[str, Limits], shoppers: int) -> Bounds:
    """Counts for ``shoppers`` shoppers: ``upper`` from quota and max share, ``lower`` from min.

    A maximum share rounds down and a minimum share rounds up, so neither is
    ever exceeded by rounding. A celebrity missing from ``limits`` is unlimited.

    Raises:
        InfeasibleLimits: a celebrity's minimum is above its maximum for this
            many shoppers (a min share above a quota), or the minimums add up
            to more shoppers than there are.
    """
    check_limits({c: limits.get(c, Limits()) for c in celebrities})
    lower = np.zeros(len(celebrities), dtype=np.int64)
    upper = np.full(len(celebrities), shoppers, dtype=np.int64)
    problems: list[str] = []
    for j, celebrity in enumerate(celebrities):
        limit = limits.get(celebrity, Limits())
        if limit.quota is not None:
            upper[j] = min(upper[j], limit.quota)
        if limit.max_share is not None:
            upper[j] = min(upper[j], math.floor(limit.max_share * shoppers + SHARE_TOLERANCE))
        if limit.min_share is not None:
            lower[j] = math.ceil(limit.min_share * shoppers - SHARE_TOLERANCE)
        if lower[j] > upper[j]:
            problems.append(
                f"{celebrity}: min_share {limit.min_share} of {shoppers:,} shoppers is "
                f"{lower[j]:,}, above the {upper[j]:,} they may receive"
            )
    if lower.sum() > shoppers:
        problems.append(f"the minimum shares need {lower.sum():,} shoppers, there are {shoppers:,}")
    if problems:
        raise InfeasibleLimits("the quotas and shares cannot all be met: " + "; ".join(problems))
    return Bounds(lower=lower, upper=upper, shoppers=shoppers)
