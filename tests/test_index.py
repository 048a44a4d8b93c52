"""The facet index: exact against brute force, incremental, atomic, and never serving a bad file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from matcher.errors import IndexStateError
from matcher.index import MANIFEST, build_index, ensure_index, read_index, save_index
from matcher.matching import Scoring, celebrity_scores
from matcher.profiles import load_profiles

from .fakes import HashingEncoder


def random_unit(rows: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_facet_scores_equal_brute_force(roster_dir: Path, fake_encoder: HashingEncoder) -> None:
    index, _ = build_index(load_profiles(roster_dir), fake_encoder)
    queries = random_unit(5, fake_encoder.dimension, seed=1)
    expected = queries @ index.vectors.T
    np.testing.assert_allclose(index.facet_scores(queries), expected, atol=1e-5)


def test_rows_are_grouped_per_celebrity(roster_dir: Path, fake_encoder: HashingEncoder) -> None:
    roster = load_profiles(roster_dir)
    index, _ = build_index(roster, fake_encoder)
    for position, profile in enumerate(roster.active):
        start, count = int(index.starts[position]), int(index.counts[position])
        rows = index.rows[start : start + count]
        assert {r.celebrity_id for r in rows} == {profile.id}
        assert [r.facet for r in rows if r.kind == "facet"] == list(profile.facets)
        # Then the whole profile as one text (the tiny roster is English only).
        assert [r.kind for r in rows] == ["facet"] * len(profile.facets) + ["profile"]
        whole = rows[-1].text
        assert whole.startswith(f"{profile.name}. {profile.tagline.rstrip('.')}. ")
        assert all(text.strip() in whole for text in profile.facets.values())
        assert whole.endswith(", ".join(profile.tags))


@pytest.mark.parametrize("scoring", list(Scoring), ids=[s.value for s in Scoring])
def test_celebrity_scores_equal_a_per_celebrity_loop(
    roster_dir: Path, fake_encoder: HashingEncoder, scoring: Scoring
) -> None:
    index, _ = build_index(load_profiles(roster_dir), fake_encoder)
    queries = random_unit(4, fake_encoder.dimension, seed=2)
    got = celebrity_scores(index.facet_scores(queries), index, scoring)
    for q, query in enumerate(queries):
        for c, _ in enumerate(index.celebrity_ids):
            facets = index.vectors[index.facet_slice(c)]
            cosines = facets @ query
            centroid = facets.mean(axis=0)
            centroid_cos = float(centroid @ query / np.linalg.norm(centroid))
            expected = {
                Scoring.MAX: cosines.max(),
                Scoring.MEAN: cosines.mean(),
                Scoring.CENTROID: centroid_cos,
                Scoring.BLEND: 0.5 * cosines.max() + 0.5 * centroid_cos,
            }[scoring]
            assert got[q, c] == pytest.approx(expected, abs=1e-5)


def test_the_whole_profile_counts_half_against_the_facets(
    roster_dir: Path, fake_encoder: HashingEncoder
) -> None:
    roster = load_profiles(roster_dir)
    index, _ = build_index(roster, fake_encoder)
    queries = random_unit(3, fake_encoder.dimension, seed=5)
    got = celebrity_scores(index.facet_scores(queries), index, Scoring.CENTROID, profile_weight=0.5)
    for c, profile in enumerate(roster.active):
        facets = fake_encoder.encode(list(profile.facets.values()))
        centroid = facets.sum(axis=0) / np.linalg.norm(facets.sum(axis=0))
        tags = ", ".join(profile.tags)
        whole_text = f"{profile.name}. {profile.tagline.rstrip('.')}. " + " ".join(
            t.strip() for t in profile.facets.values()
        )
        whole = fake_encoder.encode([f"{whole_text} {tags}".strip()])[0]
        expected = 0.5 * (queries @ centroid) + 0.5 * (queries @ whole)
        np.testing.assert_allclose(got[:, c], expected, atol=1e-5)


def test_save_and_read_round_trip(
    roster_dir: Path, fake_encoder: HashingEncoder, tmp_path: Path
) -> None:
    index, _ = build_index(load_profiles(roster_dir), fake_encoder)
    save_index(index, tmp_path / "idx")
    stored = read_index(tmp_path / "idx", fake_encoder)
    assert set(stored.by_profile) == set(index.celebrity_ids)
    for celebrity in index.celebrity_ids:
        np.testing.assert_array_equal(
            stored.by_profile[celebrity][1], index.profile_vectors(celebrity)
        )
    manifest = json.loads((tmp_path / "idx" / MANIFEST).read_text())
    assert manifest["model_id"] == fake_encoder.model_id
    assert manifest["dimension"] == fake_encoder.dimension
    assert len(list((tmp_path / "idx").glob("facets-*.faiss"))) == 1


def test_only_changed_profiles_are_re_embedded(roster_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    encoder = HashingEncoder()
    _, first = ensure_index(load_profiles(roster_dir), encoder, folder)
    assert sorted(first.embedded) == ["library", "ocean", "stage"]
    assert encoder.texts_embedded == 12  # three facets and the whole profile each

    encoder.calls.clear()
    _, second = ensure_index(load_profiles(roster_dir), encoder, folder)
    assert second.embedded == () and sorted(second.reused) == ["library", "ocean", "stage"]
    assert encoder.calls == []

    path = roster_dir / "ocean.yaml"
    path.write_text(path.read_text().replace("sea salt and driftwood", "pine resin"))
    (roster_dir / "stage.yaml").unlink()
    index, third = ensure_index(load_profiles(roster_dir), encoder, folder)
    assert third.embedded == ("ocean",)
    assert third.removed == ("stage",)
    assert encoder.texts_embedded == 4
    assert index.celebrity_ids == ("library", "ocean")
    assert read_index(folder, encoder).by_profile.keys() == {"library", "ocean"}


def test_crash_while_saving_leaves_previous_index_loadable(
    roster_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "idx"
    encoder = HashingEncoder()
    ensure_index(load_profiles(roster_dir), encoder, folder)
    before = read_index(folder, encoder)

    path = roster_dir / "ocean.yaml"
    path.write_text(path.read_text().replace("sea salt and driftwood", "pine resin"))
    real_replace = os.replace

    def crash_on_manifest(src: str, dst: str | Path) -> None:
        if Path(dst).name == MANIFEST:
            raise OSError("disk pulled out")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_manifest)
    with pytest.raises(OSError, match="disk pulled out"):
        ensure_index(load_profiles(roster_dir), encoder, folder)
    monkeypatch.undo()

    after = read_index(folder, encoder)
    assert after.manifest == before.manifest
    assert not list(folder.glob("*.tmp"))


def corrupt_vectors(folder: Path) -> None:
    target = next(folder.glob("facets-*.faiss"))
    target.write_bytes(target.read_bytes()[:100])


def garble_manifest(folder: Path) -> None:
    (folder / MANIFEST).write_text("{not json")


def edit_manifest(**changes: object):
    def apply(folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST).read_text())
        manifest.update(changes)
        (folder / MANIFEST).write_text(json.dumps(manifest))

    return apply


def break_row_range(folder: Path) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["profiles"][0]["start"] = 10_000
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(corrupt_vectors, "checksum", id="truncated-vectors"),
        pytest.param(lambda f: next(f.glob("facets-*.faiss")).unlink(), "missing", id="missing-vectors"),
        pytest.param(garble_manifest, "corrupt", id="garbled-manifest"),
        pytest.param(lambda f: (f / MANIFEST).unlink(), "no index", id="no-manifest"),
        pytest.param(edit_manifest(model_id="other/model"), "built with model", id="other-model"),
        pytest.param(edit_manifest(format=0), "index format", id="old-format"),
        pytest.param(edit_manifest(dimension=3), "dimension", id="other-dimension"),
        pytest.param(break_row_range, "outside the index", id="bad-row-range"),
    ],
)  # fmt: skip
def test_a_damaged_index_is_refused_then_rebuilt(
    roster_dir: Path, tmp_path: Path, damage, message: str
) -> None:
    folder = tmp_path / "idx"
    encoder = HashingEncoder()
    good, _ = ensure_index(load_profiles(roster_dir), encoder, folder)
    damage(folder)
    with pytest.raises(IndexStateError, match=message):
        read_index(folder, encoder)

    rebuilt, report = ensure_index(load_profiles(roster_dir), encoder, folder)
    assert report.rebuilt_because is not None and message in report.rebuilt_because
    np.testing.assert_array_equal(rebuilt.vectors, good.vectors)
    read_index(folder, encoder)  # loadable again


def test_index_built_for_another_model_is_not_reused(roster_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    ensure_index(load_profiles(roster_dir), HashingEncoder(model_id="a"), folder)
    other = HashingEncoder(model_id="b")
    _, report = ensure_index(load_profiles(roster_dir), other, folder)
    assert sorted(report.embedded) == ["library", "ocean", "stage"]
    assert json.loads((folder / MANIFEST).read_text())["model_id"] == "b"


def test_real_model_index_matches_brute_force(sample_matcher) -> None:
    """Real FAISS over real MiniLM vectors gives the same cosines as numpy."""
    index = sample_matcher.index
    queries = sample_matcher.encoder.encode(["ocean breeze and long hikes", "tea and books"])
    np.testing.assert_allclose(index.facet_scores(queries), queries @ index.vectors.T, atol=1e-5)
    assert index.vectors.shape == (len(index.rows), sample_matcher.encoder.dimension)
