"""Rules for shopper text shared by matching, batches and feedback."""

from __future__ import annotations

from .errors import InputError

#: Longer texts are refused: a shopper's taste fits in a paragraph, and the
#: models only read their first ~256 word pieces anyway.
MAX_TEXT_CHARS = 1000


def validate_text(text: object, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Return the stripped shopper text, or raise :class:`InputError` saying what is wrong."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if any("\ud800" <= ch <= "\udfff" for ch in stripped):
        # Lone surrogates are not Unicode text; the tokenizers crash on them.
        raise InputError("text holds characters that are not valid Unicode")
    if not stripped:
        raise InputError("text is blank: say what the shopper likes")
    if len(stripped) > max_chars:
        raise InputError(f"text is {len(stripped)} characters long; the limit is {max_chars}")
    return stripped


def is_chinese(text: str) -> bool:
    """True when most of the letters in ``text`` are Chinese characters.

    Used to quote reasons in the shopper's language; mixed texts count as
    Chinese once Han characters outnumber Latin letters.
    """
    han = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf")
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    # A Han character carries about as much as a short word: weigh it up.
    return han * 3 > latin and han > 0
