"""The rows a batch passes along: read, refused, matched."""

from __future__ import annotations

from dataclasses import dataclass

from .confidence import CONFIDENT, Assessment
from .matching import Match


@dataclass(frozen=True)
class ShopperRow:
    """A readable input row. ``line`` is the 1-based line where the row ends."""

    line: int
    id: str
    text: str


@dataclass(frozen=True)
class BadRow:
    """An input row that could not be matched, and why (without its text)."""

    line: int
    id: str | None
    reason: str


@dataclass(frozen=True)
class Paired:
    """A shopper row, its matches (best first) and whether the first may be announced.

    An unconfident row is still written out with its matches, marked so, for
    the planner to judge; the web layer does not store it as a pairing.
    """

    row: ShopperRow
    matches: list[Match]
    assessment: Assessment = CONFIDENT
