"""Whether the matcher can honestly announce a pairing, and if not, why.

An encoder always returns a nearest celebrity, even for "asdfgh" or "😀😀😀",
and a shopper who typed nonsense deserves "tell us more", not a celebrity.
Two kinds of doubt are checked, cheapest first:

* **The text.** :func:`text_doubt` reads the text itself, with no model:
  nothing readable (only punctuation, digits, emoji or whitespace, keyboard
  mash, one letter or syllable repeated) is ``no_content``; readable but
  less than about two words is ``too_short``. The rules are simple on
  purpose and written for Chinese and English (they hold for other
  space-separated scripts too); see :func:`text_doubt` for each one.
* **The scores.** A text that is far from every celebrity (top score below
  the encoder's ``floor``) is ``weak``; a text whose top two celebrities are
  within the encoder's ``margin`` of each other is a ``near_tie``.

Cosines run on different scales for different models, so the two score
thresholds belong to the encoder: a model's registry entry may set
``confidence_floor`` and ``confidence_margin`` (EmbeddingGemma's does), which
loading puts on the encoder, and :func:`encoder_confidence` falls back to
:data:`DEFAULT_CONFIDENCE` (measured for USE, the fast tier) for those that do
not, as ``matching.encoder_threshold`` does for the correction threshold.

Calibration (``benchmarks/confidence.py``, chosen on the sample roster only;
the full table is in benchmarks/README.md). Of the 224 labelled shopper
texts, all readable, the thresholds hold back:

=====================  ========  ===========  ==========================
encoder (floor/margin) roster    held back    top-1 (also) kept / held
=====================  ========  ===========  ==========================
EmbeddingGemma int8    full      3.1% (7)     0.90 / 0.71
(0.45/0.002)           facets    4.9% (11)    0.86 / 0.45
USE int8 (0.05/0.002)  full      3.1% (7)     0.79 / 0.43
USE int8               facets    4.0% (9)     0.65 / 0.22
=====================  ========  ===========  ==========================

On the three held-out rosters (``benchmarks/rosters/``), EmbeddingGemma
holds back 2.9%, 1.7% and 4.2% of the real texts.

("facets": the roster without ``examples`` and ``facets_zh``.) All 48
hand-written unreadable texts of ``benchmarks/unreadable.jsonl`` are held
back, every one by the text checks: on EmbeddingGemma nonsense scores as high
as real texts, so its floor alone would catch 8% of them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .matching import Match


class Doubt(StrEnum):
    """Why a pairing is not announced: the codes clients see as ``reason``."""

    NO_CONTENT = "no_content"  #: nothing readable: punctuation, digits, emoji, mash
    TOO_SHORT = "too_short"  #: readable, but less than about two words
    WEAK = "weak"  #: the text is close to no celebrity
    NEAR_TIE = "near_tie"  #: the top two celebrities are too close to call


@dataclass(frozen=True)
class Assessment:
    """The verdict on one answer: ``confident``, or the reason it is not."""

    confident: bool
    reason: Doubt | None = None

    def to_dict(self) -> dict[str, object]:
        """``{"confident": true}`` or ``{"confident": false, "reason": "<code>"}``."""
        if self.confident:
            return {"confident": True}
        return {"confident": False, "reason": str(self.reason)}


CONFIDENT = Assessment(True)


@dataclass(frozen=True)
class Thresholds:
    """Score-level limits on one encoder's cosine scale.

    Attributes:
        floor: a top score below this is ``weak``.
        margin: a lead of the top celebrity over the second below this is a ``near_tie``.
    """

    floor: float
    margin: float


#: For encoders that set no thresholds of their own: measured for USE
#: (``use-multilingual-v3:int8``, the fast tier) on the sample roster, the
#: highest floor that holds back at most 5% of its texts written facets-only.
DEFAULT_CONFIDENCE = Thresholds(floor=0.05, margin=0.002)

#: Readable content needed, in words; a Chinese character counts half a word
#: (a Chinese word is about two characters), so "喜欢喝茶" is enough and
#: "喝茶" or "test" is not.
MIN_WORDS = 2.0

_VOWELS = frozenset("aeiouy")
#: Keyboard rows and the alphabet: four or more letters in a row along one is mash.
_RUNS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "abcdefghijklmnopqrstuvwxyz")
_RUNS_BOTH_WAYS = _RUNS + tuple(run[::-1] for run in _RUNS)
#: Consonant pairs that let real words carry five consonants in a row ("strengths").
_DIGRAPHS = ("th", "ch", "sh", "ph")
_CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-xz]{5,}")


def is_cjk(ch: str) -> bool:
    """Han, kana or Hangul: scripts where one character carries about half a word."""
    point = ord(ch)
    return (
        0x3400 <= point <= 0x4DBF  # Han, extension A
        or 0x4E00 <= point <= 0x9FFF  # Han
        or 0xF900 <= point <= 0xFAFF  # Han compatibility
        or 0x20000 <= point <= 0x3134F  # Han, extensions B onwards
        or 0x3040 <= point <= 0x30FF  # hiragana and katakana
        or 0xAC00 <= point <= 0xD7AF  # Hangul syllables
    )


def _latin(word: str) -> str | None:
    """The word in plain lower-case a-z, or None when it is not in the Latin script."""
    plain = "".join(
        ch for ch in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(ch)
    )
    return plain if plain.isascii() else None


def _repeats(word: str) -> bool:
    """A unit of one to three letters said three times or more: "aaaa", "jkjkjk", "hahaha"."""
    for unit in range(1, 4):
        if len(word) >= 3 * unit and word == (word[:unit] * len(word))[: len(word)]:
            return True
    return False


def is_mash(word: str) -> bool:
    """True for a Latin-script "word" that no language would write.

    * a unit of one to three letters repeated ("aaaaaa", "jkjkjk", "hahaha");
    * four or more letters along a keyboard row or the alphabet, either way
      ("asdf", "qwerty", "lkjhg", "abcdef");
    * four or more letters without a vowel ("hjkl", "sdfgh"); shorter ones
      pass as abbreviations (TV, DJ, NYC);
    * five consonants in a row with no th/ch/sh/ph among them ("fjdksla";
      "strengths" passes).

    Words in other scripts are never mash: the rules know only Latin letters.
    """
    plain = _latin(word)
    if plain is None:
        return False
    if _repeats(plain):
        return True
    if len(plain) >= 4 and any(plain in run for run in _RUNS_BOTH_WAYS):
        return True
    if len(plain) >= 4 and not _VOWELS.intersection(plain):
        return True
    return any(
        not any(d in run.group() for d in _DIGRAPHS) for run in _CONSONANT_RUN.finditer(plain)
    )


def _pieces(text: str) -> tuple[list[str], list[str]]:
    """Split ``text`` into words (runs of non-CJK letters) and single CJK characters.

    Everything that is not a letter (digits, punctuation, emoji, spaces) only
    separates; a CJK character said three or more times running ("哈哈哈")
    is an interjection and is dropped.
    """
    words: list[str] = []
    cjk: list[str] = []
    word: list[str] = []
    previous, run = "", 0
    for ch in text:
        run = run + 1 if ch == previous else 1
        previous = ch
        if is_cjk(ch):
            if word:
                words.append("".join(word))
                word = []
            cjk.append(ch)
            if run == 3:
                del cjk[-3:]
            elif run > 3:
                cjk.pop()
        elif unicodedata.category(ch).startswith("L") or (
            word and unicodedata.category(ch).startswith("M")
        ):
            # Marks continue a word: Thai and Hindi write vowels as marks.
            word.append(ch)
        elif word:
            words.append("".join(word))
            word = []
    if word:
        words.append("".join(word))
    return words, cjk


def readable_words(text: str) -> float:
    """How much readable content ``text`` holds, in words.

    Distinct words count once each, mash (:func:`is_mash`) and single letters
    not at all; a distinct CJK character counts half. A word in a script
    written without spaces (Thai, say) counts one per four letters.
    """
    words, cjk = _pieces(text)
    distinct = {w.lower() for w in words if len(w) >= 2 and not is_mash(w)}
    total = 0.0
    for word in distinct:
        total += 1.0 if _latin(word) is not None else max(1.0, len(word) / 4)
    return total + len(set(cjk)) / 2


def text_doubt(text: str) -> Doubt | None:
    """What is wrong with ``text`` itself, or None when it is worth matching.

    Returns:
        ``NO_CONTENT`` when nothing in it is readable, ``TOO_SHORT`` when it
        holds less than :data:`MIN_WORDS` of readable words, else None.
    """
    words = readable_words(text)
    if words == 0:
        return Doubt.NO_CONTENT
    if words < MIN_WORDS:
        return Doubt.TOO_SHORT
    return None


def assess(
    text: str, matches: Sequence[Match], thresholds: Thresholds, *, roster_size: int
) -> Assessment:
    """Whether the best of ``matches`` can be announced for ``text``.

    Args:
        text: the text that was matched.
        matches: its matches, best first (the first one's ``margin`` is its lead
            over the second celebrity of the whole roster).
        thresholds: the encoder's floor and margin (:func:`encoder_confidence`).
        roster_size: with one celebrity there is nobody to tie with.

    Returns:
        :data:`CONFIDENT`, or an unconfident :class:`Assessment` with the first
        doubt found: the text's, then ``weak``, then ``near_tie``.
    """
    doubt = text_doubt(text)
    if doubt is not None:
        return Assessment(False, doubt)
    if not matches:
        return Assessment(False, Doubt.WEAK)
    best = matches[0]
    if best.score < thresholds.floor:
        return Assessment(False, Doubt.WEAK)
    if roster_size > 1 and best.margin < thresholds.margin:
        return Assessment(False, Doubt.NEAR_TIE)
    return CONFIDENT


def encoder_confidence(encoder: object) -> Thresholds:
    """The floor and margin for an encoder's cosines.

    An encoder may carry its own (``confidence_floor``, ``confidence_margin``);
    others get :data:`DEFAULT_CONFIDENCE`. A fusion's cosine is the weighted
    mean of its parts' cosines, so its thresholds are the weighted means of
    theirs. Wrappers (the text cache) are looked through.
    """
    inner = getattr(encoder, "inner", encoder)
    parts = getattr(inner, "parts", None)
    if parts is not None:
        weights = inner.weights  # type: ignore[attr-defined]
        each = [encoder_confidence(p) for p in parts]
        return Thresholds(
            floor=float(sum(w * t.floor for t, w in zip(each, weights, strict=True))),
            margin=float(sum(w * t.margin for t, w in zip(each, weights, strict=True))),
        )
    floor = getattr(inner, "confidence_floor", None)
    margin = getattr(inner, "confidence_margin", None)
    return Thresholds(
        floor=DEFAULT_CONFIDENCE.floor if floor is None else float(floor),
        margin=DEFAULT_CONFIDENCE.margin if margin is None else float(margin),
    )
