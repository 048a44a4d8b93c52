"""Rules for shopper text and shopper references, shared by matching, batches, feedback and the web.

A text or a reference that passes here can be embedded, stored in SQLite or
PostgreSQL (which refuses NUL characters) and written to a CSV file.
"""

from __future__ import annotations

import unicodedata

from .errors import InputError
from .limits import MAX_REF_CHARS, MAX_TEXT_CHARS

__all__ = [
    "MAX_REF_CHARS",
    "counted",
    "MAX_TEXT_CHARS",
    "has_controls",
    "is_chinese",
    "is_unicode",
    "ref_problem",
    "valid_ref",
    "validate_text",
    "without_controls",
]


def _is_control(ch: str) -> bool:
    # Line breaks and tabs are whitespace a shopper may type; NUL, escapes and
    # the like are not text, and PostgreSQL refuses NUL outright.
    return unicodedata.category(ch) == "Cc" and not ch.isspace()


def has_controls(value: str) -> bool:
    """True when ``value`` holds a control character other than whitespace (NUL, ESC...)."""
    return any(_is_control(ch) for ch in value)


def without_controls(value: str) -> str:
    """``value`` with control characters and unpaired surrogates taken out (for a file name)."""
    return "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cs"))


def _has_lone_surrogates(value: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in value)


def is_unicode(value: str) -> bool:
    """False when ``value`` holds an unpaired surrogate (a ``\\ud800`` escape on its own)."""
    return not _has_lone_surrogates(value)


def validate_text(text: object, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Return the stripped shopper text, or raise :class:`InputError` saying what is wrong."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if _has_lone_surrogates(stripped):
        # Lone surrogates are not Unicode text; the tokenizers crash on them.
        raise InputError("text holds characters that are not valid Unicode")
    if not stripped:
        raise InputError("text is blank: say what the shopper likes")
    if len(stripped) > max_chars:
        raise InputError(f"text is {len(stripped)} characters long; the limit is {max_chars}")
    if has_controls(stripped):
        raise InputError("text holds control characters (such as NUL); send plain text")
    return stripped


def ref_problem(value: object) -> str | None:
    """What is wrong with a shopper reference, or ``None`` when it can be stored as given.

    A reference is 1 to :data:`MAX_REF_CHARS` characters of Unicode with no
    control characters (a line break or a NUL in an id is a client's mistake).
    """
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "is blank"
    if len(value) > MAX_REF_CHARS:
        return f"is {len(value)} characters long; the limit is {MAX_REF_CHARS}"
    if _has_lone_surrogates(value):
        return "holds characters that are not valid Unicode"
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return "holds control characters (line breaks, tabs, NUL...)"
    return None


def valid_ref(value: object) -> str | None:
    """``value`` stripped when it is a usable reference, else ``None`` (one is made instead)."""
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    return stripped if ref_problem(stripped) is None else None


def is_chinese(text: str) -> bool:
    """True when most of the letters in ``text`` are Chinese characters.

    Used to quote reasons in the shopper's language; mixed texts count as
    Chinese once Han characters outnumber Latin letters.
    """
    han = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf")
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    # A Han character carries about as much as a short word: weigh it up.
    return han * 3 > latin and han > 0


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``1 pairing``, ``2 pairings``, ``12,000 shoppers``: a count with its noun agreeing.

    For the command line, which speaks English; the web's pages use ngettext.
    """
    noun = singular if count == 1 else (plural or singular + "s")
    return f"{count:,} {noun}"
