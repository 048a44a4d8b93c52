"""Planner feedback: corrected pairings kept with the roster, used as examples.

When a planner marks a pairing as wrong and names the right celebrity, the
text is appended to ``corrections.jsonl`` in the roster folder. Loading the
roster attaches each correction to its celebrity as an extra example, so
later shoppers who write something similar are pulled towards the right
celebrity (measured in benchmarks/README.md).

A correction stores the text it corrects. Planners should correct with test
texts or paraphrases, not a shopper's own words, unless the campaign's
consent covers keeping them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import InputError, Problem
from .text import validate_text

CORRECTIONS_FILE = "corrections.jsonl"


@dataclass(frozen=True)
class Correction:
    """A text and the celebrity it should have been paired with."""

    text: str
    right: str
    wrong: str | None = None
    created: str = ""


def load_corrections(
    folder: Path, known_ids: Iterable[str]
) -> tuple[tuple[Correction, ...], list[Problem]]:
    """Read ``corrections.jsonl`` from a roster folder (absent means none).

    Returns:
        The corrections, and a problem for each unusable line (``file:line: field: ...``).
    """
    path = folder / CORRECTIONS_FILE
    if not path.is_file():
        return (), []
    known = set(known_ids)
    corrections: list[Correction] = []
    problems: list[Problem] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return (), [Problem(CORRECTIONS_FILE, "", "not valid UTF-8")]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            problems.append(Problem(CORRECTIONS_FILE, "", f"not valid JSON ({exc})", number))
            continue
        right = record.get("right")
        if right not in known:
            problems.append(
                Problem(CORRECTIONS_FILE, "right", f"unknown celebrity id {right!r}", number)
            )
            continue
        try:
            text = validate_text(record.get("text"))
        except InputError as exc:
            problems.append(Problem(CORRECTIONS_FILE, "text", str(exc), number))
            continue
        wrong = record.get("wrong")
        corrections.append(
            Correction(
                text,
                str(right),
                str(wrong) if wrong else None,
                str(record.get("created", "")),
            )
        )
    return tuple(corrections), problems


def add_correction(
    folder: str | Path, text: str, right: str, known_ids: Iterable[str], wrong: str | None = None
) -> Correction:
    """Append a correction to the roster folder's ``corrections.jsonl``.

    Raises:
        InputError: blank or over-long text, or an unknown celebrity id.
    """
    known = set(known_ids)
    for field, value in (("right", right), ("wrong", wrong)):
        if value is not None and value not in known:
            raise InputError(f"{field}: unknown celebrity id {value!r}")
    if wrong == right:
        raise InputError("right and wrong name the same celebrity")
    correction = Correction(
        validate_text(text), right, wrong, datetime.now(UTC).isoformat(timespec="seconds")
    )
    line = json.dumps(asdict(correction), ensure_ascii=False) + "\n"
    with open(Path(folder) / CORRECTIONS_FILE, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    return correction
