"""When the matcher must not announce a pairing: the text rules, the score rules, the thresholds.

The expected verdicts are written by hand from what a reader of the text would
say, not read off the code; the slow tests check the real models agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matcher.confidence import (
    CONFIDENT,
    DEFAULT_CONFIDENCE,
    Assessment,
    Doubt,
    Thresholds,
    assess,
    encoder_confidence,
    is_mash,
    readable_words,
    text_doubt,
)
from matcher.encoders import CachedEncoder, FusedEncoder
from matcher.index import build_index
from matcher.matching import Match, Matcher, load_matcher
from matcher.profiles import load_profiles

from .conftest import SAMPLE_PROFILES
from .fakes import HashingEncoder

UNREADABLE = Path(__file__).resolve().parent.parent / "benchmarks" / "unreadable.jsonl"


# -- the text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "doubt"),
    [
        pytest.param("asdfgh", Doubt.NO_CONTENT, id="keyboard-row"),
        pytest.param("qwerty", Doubt.NO_CONTENT, id="qwerty"),
        pytest.param("QWERTY!!", Doubt.NO_CONTENT, id="qwerty-upper-case"),
        pytest.param("lkjhgf", Doubt.NO_CONTENT, id="keyboard-row-backwards"),
        pytest.param("jkjkjk", Doubt.NO_CONTENT, id="two-letters-repeated"),
        pytest.param("aaaaaa", Doubt.NO_CONTENT, id="one-letter-repeated"),
        pytest.param("hahahaha", Doubt.NO_CONTENT, id="laughter"),
        pytest.param("hjkl sdfg", Doubt.NO_CONTENT, id="no-vowels"),
        pytest.param("fjdkslajfkdl", Doubt.NO_CONTENT, id="random-mash"),
        pytest.param("abcdef", Doubt.NO_CONTENT, id="alphabet"),
        pytest.param("1234", Doubt.NO_CONTENT, id="digits"),
        pytest.param("???", Doubt.NO_CONTENT, id="question-marks"),
        pytest.param("。。。", Doubt.NO_CONTENT, id="chinese-full-stops"),
        pytest.param("？！～", Doubt.NO_CONTENT, id="chinese-punctuation"),
        pytest.param("😀😀😀", Doubt.NO_CONTENT, id="emoji"),
        pytest.param("👍🏽❤️✨", Doubt.NO_CONTENT, id="emoji-with-modifiers"),
        pytest.param("哈哈哈", Doubt.NO_CONTENT, id="chinese-laughter"),
        pytest.param("啊啊啊啊啊", Doubt.NO_CONTENT, id="chinese-interjection"),
        pytest.param("\u200b\u200b", Doubt.NO_CONTENT, id="zero-width-spaces"),
        pytest.param("a" * 1000, Doubt.NO_CONTENT, id="1000-same-letters"),
        pytest.param("asdf " * 200, Doubt.NO_CONTENT, id="1000-characters-of-mash"),
        pytest.param("test", Doubt.TOO_SHORT, id="test"),
        pytest.param("test test test", Doubt.TOO_SHORT, id="one-word-repeated"),
        pytest.param("hello", Doubt.TOO_SHORT, id="one-word"),
        pytest.param("I", Doubt.NO_CONTENT, id="one-letter"),
        pytest.param("ok 👍", Doubt.TOO_SHORT, id="word-and-emoji"),
        pytest.param("测试", Doubt.TOO_SHORT, id="chinese-test"),
        pytest.param("喝茶", Doubt.TOO_SHORT, id="chinese-two-characters"),
        pytest.param("不知道", Doubt.TOO_SHORT, id="chinese-three-characters"),
        pytest.param("嗯嗯", Doubt.TOO_SHORT, id="chinese-doubled"),
        pytest.param("😂😂哈哈", Doubt.TOO_SHORT, id="emoji-and-chinese-laughter"),
        pytest.param("tea 茶", Doubt.TOO_SHORT, id="one-word-each-language"),
    ],
)
def test_unreadable_texts_are_doubted(text: str, doubt: Doubt) -> None:
    assert text_doubt(text) is doubt


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("喜欢喝茶", id="chinese-four-characters"),
        pytest.param("I like tea", id="three-short-words"),
        pytest.param("green tea", id="two-words"),
        pytest.param("DJ sets", id="abbreviation"),
        pytest.param("Strengths: lengths of silk", id="five-consonants-with-digraph"),
        pytest.param("élégance française", id="accented-latin"),
        pytest.param("Jazz 爵士乐", id="mixed-scripts"),
        pytest.param("周末喜欢K-pop和奶茶", id="chinese-with-latin-word"),
        pytest.param("😀 I love the beach 🌊", id="emoji-and-words"),
        pytest.param("哈哈哈 我喜欢在海边散步", id="laughter-then-content"),
        pytest.param("asdf I love hiking", id="mash-then-content"),
        pytest.param("粉粉嫩嫩的纱裙", id="chinese-reduplication"),
        pytest.param("Лес и горы", id="cyrillic"),
        pytest.param("ชอบทะเลและภูเขา", id="thai-without-spaces"),
        pytest.param(
            ("Slow mornings with oolong, essays and a quiet garden. " * 20)[:1000],
            id="1000-characters",
        ),
        pytest.param(
            ("周末喜欢泡一壶普洱，窝在窗边看书。" * 60)[:1000], id="1000-chinese-characters"
        ),
    ],
)
def test_readable_texts_pass(text: str) -> None:
    assert text_doubt(text) is None


@pytest.mark.parametrize(
    ("word", "mash"),
    [
        pytest.param("asdf", True, id="row-of-four"),
        pytest.param("zxcvbnm", True, id="bottom-row"),
        pytest.param("hjkl", True, id="four-without-vowel"),
        pytest.param("nanana", True, id="syllable-three-times"),
        pytest.param("TV", False, id="short-abbreviation"),
        pytest.param("NYC", False, id="three-letter-abbreviation"),
        pytest.param("mama", False, id="syllable-twice"),
        pytest.param("rhythm", False, id="y-as-vowel"),
        pytest.param("strengths", False, id="five-consonants-with-th"),
        pytest.param("borscht", False, id="consonants-with-sch"),
        pytest.param("qwer", True, id="top-row-start"),
        pytest.param("banana", False, id="not-a-repeat"),
        pytest.param("茶", False, id="not-latin"),
    ],
)
def test_mash(word: str, mash: bool) -> None:
    assert is_mash(word) is mash


def test_readable_words_counts_distinct_words_and_half_characters() -> None:
    assert readable_words("tea tea coffee") == 2
    assert readable_words("喜欢喝茶") == 2
    assert readable_words("喜喜欢欢") == 1  # distinct characters: 喜, 欢
    assert readable_words("Tea, TEA and tea.") == 2  # "tea" once, "and" once


def test_every_hand_written_unreadable_text_is_doubted() -> None:
    lines = UNREADABLE.read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()]
    assert len(texts) >= 40
    assert [t for t in texts if text_doubt(t) is None] == []


# -- the scores ----------------------------------------------------------------------------


def match(score: float, margin: float, celebrity_id: str = "ocean") -> Match:
    return Match(celebrity_id, celebrity_id, celebrity_id, score, margin, 1, ())


THRESHOLDS = Thresholds(floor=0.2, margin=0.01)
TEXT = "quiet mornings with green tea"


@pytest.mark.parametrize(
    ("text", "matches", "roster_size", "expected"),
    [
        pytest.param(TEXT, [match(0.5, 0.1)], 3, CONFIDENT, id="clear-lead"),
        pytest.param(TEXT, [match(0.2, 0.01)], 3, CONFIDENT, id="exactly-at-both-limits"),
        pytest.param(TEXT, [match(0.19, 0.1)], 3, Assessment(False, Doubt.WEAK), id="weak"),
        pytest.param(
            TEXT, [match(0.5, 0.009)], 3, Assessment(False, Doubt.NEAR_TIE), id="near-tie"
        ),
        pytest.param(
            TEXT, [match(0.1, 0.0)], 3, Assessment(False, Doubt.WEAK), id="weak-before-tie"
        ),
        pytest.param(TEXT, [match(0.5, 0.0)], 1, CONFIDENT, id="nobody-to-tie-with"),
        pytest.param(
            "asdfgh", [match(0.9, 0.5)], 3, Assessment(False, Doubt.NO_CONTENT),
            id="text-before-scores",
        ),
        pytest.param(TEXT, [], 3, Assessment(False, Doubt.WEAK), id="no-matches"),
    ],
)  # fmt: skip
def test_assess(text: str, matches: list[Match], roster_size: int, expected: Assessment) -> None:
    assert assess(text, matches, THRESHOLDS, roster_size=roster_size) == expected


def test_assessment_serialises_the_reason_only_when_unsure() -> None:
    assert CONFIDENT.to_dict() == {"confident": True}
    assert Assessment(False, Doubt.NEAR_TIE).to_dict() == {
        "confident": False,
        "reason": "near_tie",
    }


# -- thresholds per encoder ----------------------------------------------------------------


class Sure(HashingEncoder):
    confidence_floor = 0.5
    confidence_margin = 0.03


def test_an_encoder_without_thresholds_gets_the_defaults() -> None:
    assert encoder_confidence(HashingEncoder()) == DEFAULT_CONFIDENCE


def test_an_encoder_carries_its_own_thresholds_through_the_cache() -> None:
    assert encoder_confidence(CachedEncoder(Sure())) == Thresholds(0.5, 0.03)


def test_a_fusion_takes_the_weighted_mean_of_its_parts() -> None:
    fused = CachedEncoder(FusedEncoder([Sure(), HashingEncoder()], [3, 1]))
    expected_floor = 0.75 * 0.5 + 0.25 * DEFAULT_CONFIDENCE.floor
    expected_margin = 0.75 * 0.03 + 0.25 * DEFAULT_CONFIDENCE.margin
    got = encoder_confidence(fused)
    assert got.floor == pytest.approx(expected_floor)
    assert got.margin == pytest.approx(expected_margin)


def test_the_matcher_reads_the_encoder_thresholds_unless_given(roster_dir: Path) -> None:
    encoder = Sure()
    index, _ = build_index(load_profiles(roster_dir), encoder)
    assert Matcher(encoder, index).confidence == Thresholds(0.5, 0.03)
    assert Matcher(encoder, index, confidence=Thresholds(0.1, 0.0)).confidence == Thresholds(
        0.1, 0.0
    )


def test_matcher_assess_applies_its_thresholds(roster_dir: Path) -> None:
    # The hashing encoder scores by shared words (buckets wide enough for no
    # collisions here): a text sharing none scores 0 with everyone, which no
    # floor above 0 lets through.
    encoder = HashingEncoder(dimension=4096)
    matcher = Matcher(encoder, build_index(load_profiles(roster_dir), encoder)[0])
    text = "velvet opera gloves"
    matches = matcher.match(text, 3)
    assert matches[0].score == 0
    assert matcher.assess(text, matches) == Assessment(False, Doubt.WEAK)
    ocean = "surfing and sailing at the beach, sea salt on my skin"
    assert matcher.assess(ocean, matcher.match(ocean, 3)) == CONFIDENT


# -- the real models -----------------------------------------------------------------------

#: Clear texts for the sample roster, with the celebrity a reader would name.
CLEAR = [
    ("Every morning I meditate and brew oolong; I want something calm and barely there.", "chen-an"),
    ("周末总在山里徒步、冲浪，喜欢海风和松林的味道。", "zhao-feng"),
    ("Board meetings, tailored suits and a leather briefcase: I run a company.", "gu-yan"),
    ("Obsessed with my K-pop boys. I know every member's birthday and all the choreography.", "tang-xiaoxi"),
]  # fmt: skip
NONSENSE = ["asdfgh", "😀😀😀", "???", "哈哈哈", "test"]


def check_real_matcher(matcher: Matcher) -> None:
    for text in NONSENSE:
        assert not matcher.assess(text, matcher.match(text, 3)).confident, text
    for text, label in CLEAR:
        matches = matcher.match(text, 3)
        assert matches[0].celebrity_id == label, text
        assert matcher.assess(text, matches) == CONFIDENT, text


@pytest.mark.slow
def test_the_default_model_doubts_nonsense_and_trusts_clear_texts(
    sample_matcher: Matcher,
) -> None:
    check_real_matcher(sample_matcher)


@pytest.mark.slow
def test_embeddinggemma_doubts_nonsense_and_trusts_clear_texts(tmp_path: Path) -> None:
    matcher, _ = load_matcher(SAMPLE_PROFILES, model="embeddinggemma-300m", index_dir=tmp_path)
    assert matcher.confidence == Thresholds(0.45, 0.002)
    check_real_matcher(matcher)
