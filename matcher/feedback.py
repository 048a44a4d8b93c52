"""Planner feedback: corrected pairings kept with the roster, used as examples.

When a planner marks a pairing as wrong and names the right celebrity, the
correction becomes part of the campaign's published roster (the try page
publishes a new version holding it: :mod:`matcher.store.rosters`), or, from
the command line, is appended to ``corrections.jsonl`` in the roster folder,
which is published with the folder. Loading the roster attaches each
correction to its celebrity as an extra example, so
later shoppers who write something similar are pulled towards the right
celebrity (measured in benchmarks/README.md).

A correction stores the text it corrects, because the index embeds it again
whenever the roster or the model changes; nothing else of a shopper (no
reference, no pairing) is kept with it. Planners should correct with test
texts or paraphrases, but a correction filed from the try box may hold a
shopper's own words, so corrections are personal data like stored texts:

- the file is created 0600;
- a privacy delete removes every correction holding one of the shopper's
  stored texts, or a text the request names (:func:`erase_corrections`), from
  the folders and from every published version (``RosterCopies``);
- the retention purge removes corrections older than the campaign's
  retention period (:func:`expire_corrections`), as it does pairings.

A version rewritten so gets a new content hash, so every server rebuilds its
index without the removed correction's vector.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import InputError, Problem
from .files import atomic_write, locked, open_private
from .text import validate_text

CORRECTIONS_FILE = "corrections.jsonl"
#: Held while the file is appended to or rewritten, so a removal never loses an addition.
CORRECTIONS_LOCK = ".corrections.lock"


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
        except RecursionError:
            problems.append(
                Problem(CORRECTIONS_FILE, "", "not valid JSON (nested too deeply)", number)
            )
            continue
        except ValueError as exc:
            # json's messages name a position, never the line's content.
            problems.append(Problem(CORRECTIONS_FILE, "", f"not valid JSON ({exc})", number))
            continue
        right = record.get("right")
        if not isinstance(right, str) or right not in known:
            # Not quoted: an error message never repeats what a roster file holds.
            problems.append(
                Problem(
                    CORRECTIONS_FILE, "right", "is not the id of a profile in this folder", number
                )
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


def new_correction(
    text: str, right: str, known_ids: Iterable[str], wrong: str | None = None
) -> Correction:
    """A checked correction, stamped now: to append to a folder or publish with a roster.

    Raises:
        InputError: blank or over-long text, or an unknown celebrity id.
    """
    known = set(known_ids)
    for field, value in (("right", right), ("wrong", wrong)):
        if value is not None and value not in known:
            raise InputError(f"{field}: unknown celebrity id {value!r}")
    if wrong == right:
        raise InputError("right and wrong name the same celebrity")
    return Correction(
        validate_text(text), right, wrong, datetime.now(UTC).isoformat(timespec="seconds")
    )


def add_correction(
    folder: str | Path, text: str, right: str, known_ids: Iterable[str], wrong: str | None = None
) -> Correction:
    """Append a correction to the roster folder's ``corrections.jsonl``.

    Raises:
        InputError: blank or over-long text, or an unknown celebrity id.
    """
    correction = new_correction(text, right, known_ids, wrong)
    line = json.dumps(asdict(correction), ensure_ascii=False) + "\n"
    folder = Path(folder)
    with locked(folder / CORRECTIONS_LOCK):
        with open_private(folder / CORRECTIONS_FILE, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    return correction


#: The shortest text :func:`erase_corrections` looks for inside corrections,
#: so that a slip ("a") cannot wipe the file; shorter ones must match whole.
MIN_ERASE_CHARS = 8


def holds_any(text: str, needles: Sequence[str]) -> bool:
    """Whether ``text`` is, or contains, one of ``needles`` (stripped, non-empty texts).

    A needle of fewer than :data:`MIN_ERASE_CHARS` characters matches only a
    text that is exactly it, so that a slip ("a") cannot wipe every correction.
    """
    return any(
        text == needle or (len(needle) >= MIN_ERASE_CHARS and needle in text) for needle in needles
    )


def correction_expired(created: str, cutoff: datetime) -> bool:
    """Whether a correction made at ``created`` (ISO time) is older than ``cutoff`` (aware).

    A correction without a readable time is taken as expired: its age is unknown.
    """
    try:
        moment = datetime.fromisoformat(str(created))
    except ValueError:
        return True
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment < cutoff


def erase_corrections(folder: str | Path, texts: Iterable[str]) -> int:
    """Remove the corrections whose text is, or contains, one of ``texts`` (:func:`holds_any`).

    The file is rewritten atomically (0600).

    Returns:
        How many corrections were removed.
    """
    needles = [t.strip() for t in texts if t and t.strip()]
    if not needles:
        return 0
    return _rewrite(Path(folder), lambda record: holds_any(str(record.get("text", "")), needles))


def expire_corrections(folder: str | Path, cutoff: datetime) -> int:
    """Remove the corrections made before ``cutoff`` (an aware time), as the retention purge does.

    Returns:
        How many corrections were removed.
    """
    return _rewrite(
        Path(folder), lambda record: correction_expired(str(record.get("created", "")), cutoff)
    )


def _rewrite(folder: Path, drop: Callable[[dict[str, Any]], bool]) -> int:
    """Rewrite ``corrections.jsonl`` without the records ``drop`` picks; lines that are
    not JSON objects are kept as they are (the roster check reports them)."""
    path = folder / CORRECTIONS_FILE
    if not path.is_file():
        return 0
    with locked(folder / CORRECTIONS_LOCK):
        kept: list[bytes] = []
        removed = 0
        for line in path.read_bytes().splitlines(keepends=True):
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            if isinstance(record, dict) and drop(record):
                removed += 1
            else:
                kept.append(line if line.endswith(b"\n") else line + b"\n")
        if removed:
            atomic_write(path, b"".join(kept), private=True)
    return removed
