"""Chinese facets, examples, planner corrections, fused encoders and the multilingual model."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from matcher.cli import cli
from matcher.encoders import FusedEncoder, load_encoder
from matcher.encoders.use import UniversalSentenceEncoder
from matcher.errors import ConfigError, InputError, ProfileError
from matcher.feedback import CORRECTIONS_FILE, add_correction, load_corrections
from matcher.index import build_index, ensure_index, profile_rows
from matcher.matching import Matcher, celebrity_scores
from matcher.profiles import load_profiles, parse_profile
from matcher.text import is_chinese

from .conftest import TINY_ROSTER
from .fakes import HashingEncoder

BILINGUAL = textwrap.dedent(TINY_ROSTER["library.yaml"]).replace(
    "tags: [books]",
    textwrap.dedent("""\
        facets_zh:
          lifestyle: 在图书馆读小说 喝绿茶
          scent: 旧纸 茶叶
        examples:
          - I spend Sundays in a reading room with a thermos
          - 周末 读书 喝茶
        tags: [books]"""),
)


@pytest.fixture
def bilingual_dir(roster_dir: Path) -> Path:
    (roster_dir / "library.yaml").write_text(BILINGUAL, encoding="utf-8")
    return roster_dir


def test_chinese_facets_and_examples_load(bilingual_dir: Path) -> None:
    library = load_profiles(bilingual_dir).get("library")
    assert library.facets_zh == {"lifestyle": "在图书馆读小说 喝绿茶", "scent": "旧纸 茶叶"}
    assert library.examples == [
        "I spend Sundays in a reading room with a thermos",
        "周末 读书 喝茶",
    ]


def test_chinese_facet_must_translate_a_known_facet() -> None:
    body = BILINGUAL.replace("  scent: 旧纸 茶叶", "  smell: 旧纸 茶叶")
    profile, problems = parse_profile("library.yaml", body.encode())
    assert profile is None
    assert [str(p) for p in problems] == [
        "library.yaml:9: facets_zh: names facets that 'facets' does not have: smell"
    ]


def test_rows_are_facets_then_chinese_facets_then_examples_then_corrections(
    bilingual_dir: Path,
) -> None:
    library = load_profiles(bilingual_dir).get("library")
    rows = profile_rows(library, ["corrected text"])
    assert [(r.kind, r.lang, r.facet) for r in rows] == [
        ("facet", "en", "style"), ("facet", "en", "lifestyle"), ("facet", "en", "scent"),
        ("facet", "zh", "lifestyle"), ("facet", "zh", "scent"),
        ("profile", "en", ""), ("profile", "zh", ""),
        ("example", "", ""), ("example", "", ""),
        ("correction", "", ""),
    ]  # fmt: skip
    # The Chinese profile text takes the Chinese facet where there is one.
    chinese = rows[6].text
    assert chinese.startswith(library.name_zh) and library.facets["style"] in chinese
    assert all(text in chinese for text in library.facets_zh.values())


def test_index_slices_split_each_celebrity_by_kind(bilingual_dir: Path) -> None:
    encoder = HashingEncoder()
    add_correction(
        bilingual_dir, "beach volleyball at sunset", "ocean", ["ocean", "library", "stage"]
    )
    index, _ = build_index(load_profiles(bilingual_dir), encoder)
    for position, celebrity in enumerate(index.celebrity_ids):
        kinds = {
            "facet": index.facet_slice(position),
            "profile": index.profile_slice(position),
            "example": index.example_slice(position),
            "correction": index.correction_slice(position),
        }
        for kind, rows in kinds.items():
            assert all(index.rows[r].kind == kind for r in range(rows.start, rows.stop))
            assert all(
                index.rows[r].celebrity_id == celebrity for r in range(rows.start, rows.stop)
            )
    library = index.celebrity_ids.index("library")
    ocean = index.celebrity_ids.index("ocean")
    assert index.example_slice(library).stop - index.example_slice(library).start == 2
    assert index.correction_slice(ocean).stop - index.correction_slice(ocean).start == 1


def test_centroid_uses_both_languages_but_not_examples(bilingual_dir: Path) -> None:
    encoder = HashingEncoder()
    index, _ = build_index(load_profiles(bilingual_dir), encoder)
    query = encoder.encode(["图书馆 绿茶 and old paper"])
    rows = index.facet_scores(query)
    library = index.celebrity_ids.index("library")
    facets = index.vectors[index.facet_slice(library)]
    centroid = facets.sum(axis=0) / np.linalg.norm(facets.sum(axis=0))
    got = celebrity_scores(rows, index)[0, library]
    assert got == pytest.approx(float(query[0] @ centroid), abs=1e-5)


def test_examples_pull_a_text_towards_their_celebrity(bilingual_dir: Path) -> None:
    encoder = HashingEncoder()
    index, _ = build_index(load_profiles(bilingual_dir), encoder)
    text = "I spend Sundays in a reading room with a thermos"
    library = index.celebrity_ids.index("library")
    rows = index.facet_scores(encoder.encode([text]))
    without = celebrity_scores(rows, index, example_weight=0.0)[0, library]
    with_examples = celebrity_scores(rows, index, example_weight=0.5)[0, library]
    # The text is one of library's examples (cosine 1): half the score comes from it.
    assert with_examples == pytest.approx(0.5 * without + 0.5, abs=1e-5)


def test_a_correction_pulls_only_close_texts(roster_dir: Path) -> None:
    encoder = HashingEncoder(dimension=512)
    ids = ["ocean", "library", "stage"]
    add_correction(roster_dir, "quiet karaoke booth with a novel", "library", ids, wrong="stage")
    matcher = Matcher(encoder, build_index(load_profiles(roster_dir), encoder)[0])
    same = matcher.match("quiet karaoke booth with a novel", 3)
    assert same[0].celebrity_id == "library"
    plain = Matcher(encoder, matcher.index, correction_threshold=2.0)  # corrections off
    unrelated = "sailing and surfing at the beach"
    assert matcher.match(unrelated, 3) == plain.match(unrelated, 3)


def test_reasons_are_quoted_in_the_shoppers_language(bilingual_dir: Path) -> None:
    encoder = HashingEncoder()
    matcher = Matcher(encoder, build_index(load_profiles(bilingual_dir), encoder)[0])
    chinese = matcher.match("旧纸 茶叶 图书馆", 3)
    library = next(m for m in chinese if m.celebrity_id == "library")
    profile = load_profiles(bilingual_dir).get("library")
    by_facet = {r.facet: r.quote for r in library.reasons}
    assert by_facet["scent"] == profile.facets_zh["scent"]
    english = next(
        m for m in matcher.match("old paper and tea leaves", 3) if m.celebrity_id == "library"
    )
    assert {r.facet: r.quote for r in english.reasons}["scent"] == profile.facets["scent"]
    # A facet with no Chinese version is quoted in English even for a Chinese text.
    assert all(r.quote == profile.facets[r.facet] for r in library.reasons if r.facet == "style")


@pytest.mark.parametrize(
    ("text", "chinese"),
    [
        pytest.param("我喜欢喝茶看书", True, id="chinese"),
        pytest.param("I like tea and books", False, id="english"),
        pytest.param("周末喜欢去 hiking，越野越好", True, id="mixed-mostly-chinese"),
        pytest.param("hiking and trail running every weekend 好", False, id="mixed-mostly-english"),
        pytest.param("1234 !!", False, id="no-letters"),
    ],
)
def test_is_chinese(text: str, chinese: bool) -> None:
    assert is_chinese(text) is chinese


def test_corrections_file_problems_name_the_line(roster_dir: Path) -> None:
    (roster_dir / CORRECTIONS_FILE).write_text(
        "\n".join(
            [
                json.dumps({"text": "sea air", "right": "ocean"}),
                "{broken",
                json.dumps({"text": "x", "right": "nobody"}),
                json.dumps({"text": "   ", "right": "stage"}),
                json.dumps(["not", "an", "object"]),
            ]
        ),
        encoding="utf-8",
    )
    corrections, problems = load_corrections(roster_dir, ["ocean", "library", "stage"])
    assert [c.text for c in corrections] == ["sea air"]
    assert [(p.line, p.field) for p in problems] == [(2, ""), (3, "right"), (4, "text"), (5, "")]
    with pytest.raises(ProfileError) as caught:
        load_profiles(roster_dir)
    assert len(caught.value.problems) == 4
    assert all(p.file == CORRECTIONS_FILE for p in caught.value.problems)


@pytest.mark.parametrize(
    ("text", "right", "wrong", "message"),
    [
        pytest.param("", "ocean", None, "blank", id="blank-text"),
        pytest.param("sea", "nobody", None, "right: unknown", id="unknown-right"),
        pytest.param("sea", "ocean", "nobody", "wrong: unknown", id="unknown-wrong"),
        pytest.param("sea", "ocean", "ocean", "same celebrity", id="same-both"),
    ],
)
def test_bad_corrections_are_refused_and_nothing_is_written(
    roster_dir: Path, text: str, right: str, wrong: str | None, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        add_correction(roster_dir, text, right, ["ocean", "library", "stage"], wrong=wrong)
    assert not (roster_dir / CORRECTIONS_FILE).exists()


def test_a_correction_re_embeds_only_its_celebrity(roster_dir: Path, tmp_path: Path) -> None:
    encoder = HashingEncoder()
    ensure_index(load_profiles(roster_dir), encoder, tmp_path / "idx")
    add_correction(roster_dir, "surf camp", "ocean", ["ocean", "library", "stage"])
    encoder.calls.clear()
    _, report = ensure_index(load_profiles(roster_dir), encoder, tmp_path / "idx")
    assert report.embedded == ("ocean",)
    assert encoder.calls == [
        [
            "surf shorts, sandals and sun hats",
            "sailing surfing swimming at the beach every morning",
            "sea salt and driftwood",
            "Ocean Star. Salt and waves. surf shorts, sandals and sun hats sailing surfing "
            "swimming at the beach every morning sea salt and driftwood sea, sport",
            "surf camp",
        ]
    ]


def test_fused_encoder_scores_are_weighted_cosines() -> None:
    a, b = HashingEncoder(dimension=32, model_id="a"), HashingEncoder(dimension=48, model_id="b")
    fused = FusedEncoder([a, b], [3, 1])
    texts = ["tea and books by the window", "books and rain", "neon karaoke night"]
    got = fused.encode(texts)
    assert got.shape == (3, 80)
    expected = 0.75 * (a.encode(texts) @ a.encode(texts).T) + 0.25 * (
        b.encode(texts) @ b.encode(texts).T
    )
    np.testing.assert_allclose(got @ got.T, expected, atol=1e-5)
    assert fused.model_id == "a*0.75+b*0.25"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("all-MiniLM-L6-v2+", "empty part", id="empty-part"),
        pytest.param("all-MiniLM-L6-v2*x+use-multilingual-v3", "not a number", id="bad-weight"),
        pytest.param("all-MiniLM-L6-v2*0+use-multilingual-v3", "positive weight", id="zero-weight"),
        pytest.param("/no/such/model/folder", "cannot load model", id="unknown-model"),
    ],
)
def test_bad_model_names_are_config_errors(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_encoder(name)


def test_multilingual_model_puts_translations_together() -> None:
    """Real USE multilingual: a sentence is closer to its translation than to other topics."""
    use = UniversalSentenceEncoder()
    vectors = use.encode(
        ["I love hiking in the mountains", "我喜欢在山里徒步", "我喜欢在家里看电影和吃零食"]
    )
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.6
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


CHINESE_SHOPPERS = [
    ("每个周末都背上包去山里走两天，手机关机，晚上看星星。", "zhao-feng"),
    ("结婚十周年快到了，想给老婆挑一份特别的礼物，她最喜欢花。", "su-qing"),
    ("白天上班，晚上在工作室里做电子乐，偶尔去街头涂鸦。", "xu-mo"),
    ("最近压力很大，想每天早上静坐一会儿，泡壶茶，读几页书。", "chen-an"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"), CHINESE_SHOPPERS, ids=[e for _, e in CHINESE_SHOPPERS]
)
def test_real_matcher_pairs_clear_chinese_shoppers(
    sample_matcher: Matcher, text: str, expected: str
) -> None:
    matches = sample_matcher.match(text, 3)
    assert matches[0].celebrity_id == expected, [(m.celebrity_id, m.score) for m in matches]
    assert any(is_chinese(r.quote) for r in matches[0].reasons)


def test_cli_feedback_add_and_list(runner: CliRunner, roster_dir: Path) -> None:
    result = runner.invoke(
        cli,
        [
            "feedback",
            "add",
            "--profiles",
            str(roster_dir),
            "--right",
            "library",
            "--wrong",
            "stage",
            "quiet booth and a novel",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 correction for library" in result.output
    listed = runner.invoke(cli, ["feedback", "list", "--profiles", str(roster_dir), "--json"])
    assert listed.exit_code == 0, listed.output
    record = json.loads(listed.output.strip())
    assert (record["text"], record["right"], record["wrong"]) == (
        "quiet booth and a novel",
        "library",
        "stage",
    )
    bad = runner.invoke(
        cli, ["feedback", "add", "--profiles", str(roster_dir), "--right", "nobody", "x"]
    )
    assert bad.exit_code == 1 and "unknown celebrity id 'nobody'" in bad.output
    assert "Traceback" not in bad.output
