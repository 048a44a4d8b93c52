"""Matching: validation, ordering, margins, reasons, determinism, and the real model end to end."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from matcher.errors import InputError
from matcher.index import build_index
from matcher.matching import MAX_TEXT_CHARS, Matcher, validate_text
from matcher.profiles import load_profiles

from .fakes import HashingEncoder


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty-text"),
        pytest.param("   \n\t ", id="whitespace-only"),
        pytest.param("x" * (MAX_TEXT_CHARS + 1), id="over-long"),
        pytest.param(None, id="not-a-string"),
        pytest.param(42, id="number"),
        pytest.param("tea \ud800 and books", id="lone-surrogate"),
    ],
)
def test_unusable_text_is_refused(fake_matcher: Matcher, text: object) -> None:
    with pytest.raises(InputError):
        fake_matcher.match(text, 1)  # type: ignore[arg-type]


def test_refusal_says_what_is_wrong() -> None:
    with pytest.raises(InputError, match="blank"):
        validate_text("  ")
    with pytest.raises(
        InputError, match=f"{MAX_TEXT_CHARS + 5} characters long; the limit is {MAX_TEXT_CHARS}"
    ):
        validate_text("y" * (MAX_TEXT_CHARS + 5))
    assert validate_text("  tea  ") == "tea"


@pytest.mark.parametrize(
    "k",
    [pytest.param(0, id="zero"), pytest.param(-2, id="negative"), pytest.param(True, id="bool"),
     pytest.param("3", id="string"), pytest.param(1.5, id="float")],
)  # fmt: skip
def test_bad_k_is_refused(fake_matcher: Matcher, k: object) -> None:
    with pytest.raises(InputError, match="top_k"):
        fake_matcher.match("beach", k)  # type: ignore[arg-type]


def test_k_is_capped_at_roster_size(fake_matcher: Matcher) -> None:
    assert len(fake_matcher.match("beach", 50)) == 3


def test_ranking_is_best_first_with_margins(fake_matcher: Matcher) -> None:
    matches = fake_matcher.match("sailing and surfing at the beach with sea salt", 3)
    assert matches[0].celebrity_id == "ocean"
    assert [m.rank for m in matches] == [1, 2, 3]
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert matches[0].margin == pytest.approx(scores[0] - scores[1], abs=1e-4)
    assert matches[1].margin == pytest.approx(scores[1] - scores[2], abs=1e-4)
    assert matches[2].margin == 0.0


def test_margin_of_last_returned_match_looks_past_k(fake_matcher: Matcher) -> None:
    full = fake_matcher.match("reading novels with green tea", 3)
    top1 = fake_matcher.match("reading novels with green tea", 1)
    assert (
        top1[0].margin == full[0].margin == pytest.approx(full[0].score - full[1].score, abs=1e-4)
    )


def test_reasons_quote_the_closest_facets(fake_matcher: Matcher, roster_dir) -> None:
    best = fake_matcher.match("old paper smell and tea leaves", 1)[0]
    assert best.celebrity_id == "library"
    profile = load_profiles(roster_dir).get("library")
    assert best.reasons[0].facet == "scent"
    assert best.reasons[0].quote == profile.facets["scent"]
    assert len(best.reasons) == 2
    assert best.reasons[0].score >= best.reasons[1].score
    assert all(r.quote == profile.facets[r.facet] for r in best.reasons)


def test_same_text_same_answer(fake_matcher: Matcher) -> None:
    text = "karaoke with friends and candy"
    assert fake_matcher.match(text, 3) == fake_matcher.match(text, 3)
    assert fake_matcher.match_many([text, "beach"], 3)[0] == fake_matcher.match(text, 3)


def test_ties_are_broken_by_id(roster_dir) -> None:
    encoder = HashingEncoder()
    index, _ = build_index(load_profiles(roster_dir), encoder)
    matches = Matcher(encoder, index).match("?!", 3)  # no word at all: every score is 0
    assert [m.score for m in matches] == [0.0, 0.0, 0.0]
    assert [m.celebrity_id for m in matches] == ["library", "ocean", "stage"]


def test_encoder_must_match_index_model(roster_dir) -> None:
    index, _ = build_index(load_profiles(roster_dir), HashingEncoder(model_id="a"))
    with pytest.raises(ValueError, match="differs"):
        Matcher(HashingEncoder(model_id="b"), index)


def test_shares_are_a_softmax_of_scores_over_the_roster(fake_matcher: Matcher) -> None:
    matches = fake_matcher.match("reading novels with green tea and sea salt", 3)  # all 3
    assert sum(m.share for m in matches) == pytest.approx(1.0, abs=1e-3)
    assert [m.share for m in matches] == sorted((m.share for m in matches), reverse=True)
    weights = [math.exp((m.score - matches[0].score) / 0.05) for m in matches]
    for match, weight in zip(matches, weights, strict=True):
        assert match.share == pytest.approx(weight / sum(weights), abs=2e-4)


def test_to_dict_is_json_ready(fake_matcher: Matcher) -> None:
    record = fake_matcher.match("beach", 1)[0].to_dict()
    assert set(record) == {
        "celebrity_id",
        "name",
        "name_zh",
        "score",
        "margin",
        "rank",
        "reasons",
        "share",
    }
    assert set(record["reasons"][0]) == {"facet", "score", "quote"}


CLEAR_SHOPPERS = [
    ("Weekends I'm off trekking between mountain huts, backpack on, phone off.", "zhao-feng"),
    ("Looking for something for my wife, ten years married next month and I want it to be special.", "su-qing"),
    ("I spend my evenings making techno tracks and spraying graffiti on warehouse walls.", "xu-mo"),
    ("I run two companies, fly every week and want a presence that fills the boardroom.", "gu-yan"),
    ("Slow mornings: a pot of oolong, a book of essays and ten minutes of breathing exercises.", "chen-an"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CLEAR_SHOPPERS, ids=[e for _, e in CLEAR_SHOPPERS])
def test_real_model_pairs_clear_shoppers(sample_matcher: Matcher, text: str, expected: str) -> None:
    matches = sample_matcher.match(text, 3)
    assert matches[0].celebrity_id == expected, [(m.celebrity_id, m.score) for m in matches]
    assert 0 < matches[0].score <= 1
    assert matches[0].margin > 0


def test_real_model_is_deterministic_and_batch_equals_single(sample_matcher: Matcher) -> None:
    texts = [t for t, _ in CLEAR_SHOPPERS]
    batched = sample_matcher.match_many(texts, 3)
    singles = [sample_matcher.match(t, 3) for t in texts]
    assert [[m.celebrity_id for m in ms] for ms in batched] == [
        [m.celebrity_id for m in ms] for ms in singles
    ]
    for b, s in zip(batched, singles, strict=True):
        for mb, ms in zip(b, s, strict=True):
            assert mb.score == pytest.approx(ms.score, abs=2e-4)
    assert sample_matcher.match(texts[0], 3) == singles[0]


def test_core_does_not_import_web_or_heavy_libraries_on_import() -> None:
    code = (
        "import sys, matcher, matcher.matching, matcher.batch, matcher.cli;"
        "bad = [m for m in ('flask', 'web', 'torch', 'sentence_transformers', 'faiss') if m in sys.modules];"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
