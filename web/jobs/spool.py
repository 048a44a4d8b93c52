"""The storage spool: a matched batch waiting to be stored in one transaction.

Storage: when the planner's view hands :meth:`JobRegistry.start` a
``store`` function, every matched row is also spooled (reference, celebrity,
score, reasons; never the text) to ``.<id>.store.jsonl.part``, and once the
whole file is matched the spool is passed to ``store``, which writes the
batch to the database in one transaction: the batch is stored whole or not at
all, and the record says which (``stored`` and ``batch_id``, or the job fails
saying nothing was stored). The spool is deleted either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from matcher.errors import MatcherError
from matcher.limits import MAX_REF_CHARS as _MAX_REF_CHARS
from matcher.matching import Match, Reason
from matcher.store import NewPairing, Stored
from matcher.text import valid_ref

#: Stores a matched batch in one transaction: ``store(pairings, filename)``.
StoreBatch = Callable[[Iterable[NewPairing], str], Stored]


#: The longest shopper id stored as given (the database column's size).
MAX_REF_CHARS = _MAX_REF_CHARS


class NotStored(MatcherError):
    """The database refused the batch; nothing of it was stored."""


def _spooled(shopper_id: str, best: Match, ranking: Sequence[Match] = ()) -> str:
    """One spool line; with the roster's limits, every celebrity by fit follows the best."""
    record: list[Any] = [shopper_id, *_match_fields(best)]
    if ranking:
        record.append([_match_fields(m) for m in ranking])
    return json.dumps(record, ensure_ascii=False) + "\n"


def _match_fields(match: Match) -> list[Any]:
    reasons = [[r.facet, r.score, r.quote] for r in match.reasons]
    return [match.celebrity_id, match.score, match.margin, reasons]


def _unspooled_match(celebrity_id: str, score: float, margin: float, reasons: Any) -> Match:
    return Match(
        celebrity_id,
        "",
        "",
        score,
        margin,
        1,
        tuple(Reason(facet, r_score, quote) for facet, r_score, quote in reasons),
    )


def _unspooled(path: Path) -> Iterator[NewPairing]:
    """The spooled rows as pairings to store; the shoppers gave no consent, so no text."""
    with open(path, encoding="utf-8") as spool:
        for line in spool:
            ref, *fields = json.loads(line)
            best = _unspooled_match(*fields[:4])
            ranking = tuple(_unspooled_match(*m) for m in fields[4]) if len(fields) > 4 else ()
            # A reference that cannot be kept (too long, a NUL or a line break in it)
            # gets a generated one, rather than sinking the batch.
            ref = valid_ref(ref)
            yield NewPairing(best, "", consented=False, shopper_ref=ref, ranking=ranking)
