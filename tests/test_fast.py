"""The fast path: int8 ONNX MiniLM, its export cache, runtimes, threads and the text cache.

The accuracy test uses the real packaged model, exported once per session;
the cache tests stand a tiny fake export in for the real one, so rebuilding
is checked without re-exporting.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from matcher.encoders import (
    CachedEncoder,
    FusedEncoder,
    configured_threads,
    load_encoder,
    parse_runtime,
    session_options,
    st_export,
)
from matcher.encoders.st import (
    OnnxEncoder,
    SentenceTransformerEncoder,
    read_model_settings,
    resolve_model,
)
from matcher.encoders.use import UseOnnxEncoder
from matcher.errors import ConfigError
from matcher.index import profile_rows
from matcher.profiles import load_profiles
from web.cli import worker_environment

from .conftest import REPO, SAMPLE_PROFILES
from .fakes import HashingEncoder

EVAL_SET = REPO / "benchmarks" / "eval_set.jsonl"


#: The documented fast fusion with MiniLM.
FUSED_INT8 = "use-multilingual-v3+all-MiniLM-L6-v2:int8"


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache holding the real int8 export of the packaged MiniLM (made once)."""
    cache = tmp_path_factory.mktemp("models")
    location, source_id = resolve_model("all-MiniLM-L6-v2")
    st_export.ensure_export(location, source_id, cache)
    return cache


@pytest.fixture(scope="session")
def int8_minilm(export_cache: Path) -> OnnxEncoder:
    encoder = load_encoder("all-MiniLM-L6-v2:int8", cache_dir=export_cache)
    assert isinstance(encoder, CachedEncoder)
    assert isinstance(encoder.inner, OnnxEncoder)
    return encoder.inner


def real_texts() -> list[str]:
    """Every text of the sample roster (English and Chinese facets, examples) and the labelled set."""
    roster = load_profiles(SAMPLE_PROFILES)
    texts = [row.text for profile in roster.active for row in profile_rows(profile)]
    lines = EVAL_SET.read_text(encoding="utf-8").splitlines()
    return texts + [json.loads(line)["text"] for line in lines if line.strip()]


# --------------------------------------------------------------------------- accuracy


@pytest.mark.slow
def test_int8_vectors_stay_within_cosine_098_of_the_full_model(int8_minilm: OnnxEncoder) -> None:
    texts = real_texts()
    chinese = np.array([any("\u4e00" <= c <= "\u9fff" for c in t) for t in texts])
    assert chinese.sum() > 100 and (~chinese).sum() > 200  # both languages are really covered
    full = SentenceTransformerEncoder("all-MiniLM-L6-v2").encode(texts)
    fast = int8_minilm.encode(texts)
    cosine = (full * fast).sum(axis=1)
    worst = int(cosine.argmin())
    assert cosine.min() >= 0.98, f"cosine {cosine.min():.4f} for {texts[worst]!r}"
    assert cosine.mean() >= 0.99


@pytest.mark.slow
def test_a_texts_vector_does_not_depend_on_its_batch(int8_minilm: OnnxEncoder) -> None:
    """Dynamic quantization scales each call's activations; texts must not share a call."""
    texts = real_texts()[:40]
    together = int8_minilm.encode(texts)
    alone = np.concatenate([int8_minilm.encode([t]) for t in texts])
    reversed_batch = int8_minilm.encode(texts[::-1])[::-1]
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(together, reversed_batch)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert together.dtype == np.float32 and together.flags.c_contiguous


def test_int8_encoder_has_its_own_identity(int8_minilm: OnnxEncoder) -> None:
    """An index built with the full model must be rebuilt for the int8 one, and back."""
    _, full_id = resolve_model("all-MiniLM-L6-v2")
    assert int8_minilm.model_id == f"{full_id}:{st_export.RECIPE}"
    assert int8_minilm.dimension == 384


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("all-MiniLM-L6-v2", ("all-MiniLM-L6-v2", "full"), id="bare-is-full"),
        pytest.param("all-MiniLM-L6-v2:full", ("all-MiniLM-L6-v2", "full"), id="full"),
        pytest.param("all-MiniLM-L6-v2:int8", ("all-MiniLM-L6-v2", "int8"), id="int8"),
        pytest.param("/models/my-model", ("/models/my-model", "full"), id="folder"),
    ],
)
def test_model_names_choose_a_runtime(name: str, expected: tuple[str, str]) -> None:
    assert parse_runtime(name) == expected


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("all-MiniLM-L6-v2:fast", "unknown runtime 'fast'", id="unknown-runtime"),
        pytest.param("/no/such/model:int8", "cannot load model", id="int8-of-nothing"),
        pytest.param(
            "use-multilingual-v3+all-MiniLM-L6-v2:int9", "unknown runtime", id="fused-unknown"
        ),
    ],
)
def test_bad_runtimes_are_config_errors(name: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        load_encoder(name, cache_dir=tmp_path)


@pytest.mark.slow
def test_configuration_selects_the_fast_or_the_full_path(export_cache: Path) -> None:
    fast = load_encoder(FUSED_INT8, cache_dir=export_cache)
    full = load_encoder("use-multilingual-v3+all-MiniLM-L6-v2:full", cache_dir=export_cache)
    assert isinstance(fast, CachedEncoder) and isinstance(full, CachedEncoder)
    assert isinstance(fast.inner, FusedEncoder) and isinstance(full.inner, FusedEncoder)
    assert [type(p) for p in fast.inner.parts] == [UseOnnxEncoder, OnnxEncoder]
    assert [type(p) for p in full.inner.parts] == [UseOnnxEncoder, SentenceTransformerEncoder]
    assert fast.model_id != full.model_id
    assert fast.inner.parts[0] is full.inner.parts[0]  # USE is loaded once and shared


def test_int8_refuses_models_it_cannot_reproduce(tmp_path: Path) -> None:
    location, _ = resolve_model("all-MiniLM-L6-v2")
    shutil.copy(Path(location) / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "modules.json").write_text(
        json.dumps([{"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}])
    )
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    with pytest.raises(ConfigError, match="':full' runtime"):
        read_model_settings(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match="no tokenizer.json"):
        read_model_settings(tmp_path)


def test_packaged_minilm_settings_are_read() -> None:
    location, _ = resolve_model("all-MiniLM-L6-v2")
    assert read_model_settings(Path(location)) == 256


# --------------------------------------------------------------------------- export cache


@pytest.fixture
def fake_export(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the torch export and the quantizer with file writes; records each export."""
    made: list[Path] = []

    def export(location: Path, destination: Path) -> None:
        made.append(destination)
        destination.write_bytes(b"fp32 graph of " + str(location).encode())

    def quantize_model(source: Path, destination: Path) -> None:
        destination.write_bytes(b"int8 " + source.read_bytes())

    monkeypatch.setattr(st_export, "export_onnx", export)
    monkeypatch.setattr(st_export, "quantize_onnx", quantize_model)
    return made


def test_export_is_made_once_and_reused(tmp_path: Path, fake_export: list[Path]) -> None:
    first = st_export.ensure_export("/models/a", "org/a@1", tmp_path)
    stamp = first.stat().st_mtime_ns
    second = st_export.ensure_export("/models/a", "org/a@1", tmp_path)
    assert first == second and second.stat().st_mtime_ns == stamp
    assert len(fake_export) == 1
    info = json.loads((first.parent / st_export.INFO_FILE).read_text())
    assert info["source_id"] == "org/a@1" and info["recipe"] == st_export.RECIPE


def test_another_model_version_gets_its_own_export(tmp_path: Path, fake_export: list[Path]) -> None:
    one = st_export.ensure_export("/models/a", "org/a@1", tmp_path)
    two = st_export.ensure_export("/models/a", "org/a@2", tmp_path)
    assert one.parent != two.parent and one.is_file() and two.is_file()
    assert len(fake_export) == 2


def _truncate_model(folder: Path) -> None:
    (folder / st_export.MODEL_FILE).write_bytes(b"int8 half")


def _remove_model(folder: Path) -> None:
    (folder / st_export.MODEL_FILE).unlink()


def _remove_info(folder: Path) -> None:
    (folder / st_export.INFO_FILE).unlink()


def _garble_info(folder: Path) -> None:
    (folder / st_export.INFO_FILE).write_text("{not json")


def _old_recipe(folder: Path) -> None:
    path = folder / st_export.INFO_FILE
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "recipe": "onnx-int8-r0"}))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        pytest.param(_truncate_model, "does not match its checksum", id="corrupt-model"),
        pytest.param(_remove_model, "export model missing", id="missing-model"),
        pytest.param(_remove_info, "no export", id="missing-info"),
        pytest.param(_garble_info, "is corrupt", id="corrupt-info"),
        pytest.param(_old_recipe, "onnx-int8-r0", id="old-recipe"),
    ],
)
def test_a_damaged_export_is_refused_and_rebuilt(
    tmp_path: Path, fake_export: list[Path], damage: object, reason: str
) -> None:
    path = st_export.ensure_export("/models/a", "org/a@1", tmp_path)
    good = path.read_bytes()
    damage(path.parent)  # type: ignore[operator]
    with pytest.raises(st_export.ExportStateError, match=reason):
        st_export.read_export(path.parent, "org/a@1")
    rebuilt = st_export.ensure_export("/models/a", "org/a@1", tmp_path)
    assert rebuilt.read_bytes() == good
    assert st_export.read_export(rebuilt.parent, "org/a@1") == rebuilt
    assert len(fake_export) == 2


def test_a_failed_export_leaves_no_usable_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(location: Path, destination: Path) -> None:
        raise ConfigError("cannot read the transformer")

    monkeypatch.setattr(st_export, "export_onnx", broken)
    with pytest.raises(ConfigError, match="cannot read"):
        st_export.ensure_export("/models/a", "org/a@1", tmp_path)
    folder = st_export.export_folder(tmp_path, "org/a@1")
    with pytest.raises(st_export.ExportStateError):
        st_export.read_export(folder, "org/a@1")
    assert not list(folder.glob(".build-*"))


def test_the_index_folder_keeps_the_export(
    tmp_path: Path, export_cache: Path, roster_dir: Path
) -> None:
    """load_matcher exports into INDEX/models; a second load reuses it without torch."""
    index = tmp_path / "index"
    shutil.copytree(export_cache, index / "models")
    script = (
        "import sys\n"
        "from matcher.matching import load_matcher\n"
        f"m, _ = load_matcher({str(roster_dir)!r}, index_dir={str(index)!r})\n"
        "print(m.match('sailing and surfing at the beach', 1)[0].celebrity_id)\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ocean", "False"]
    exports = list((index / "models").glob("*/model.onnx"))
    assert len(exports) == 1
    assert (index / "manifest.json").is_file()


# --------------------------------------------------------------------------- quantization recipe


def test_first_down_projection_is_the_first_narrowing_matmul() -> None:
    nodes = [
        SimpleNamespace(op_type="Gather", name="embed", input=["table"]),
        SimpleNamespace(op_type="MatMul", name="q", input=["x", "wq"]),
        SimpleNamespace(op_type="MatMul", name="up", input=["x", "w_up"]),
        SimpleNamespace(op_type="MatMul", name="down0", input=["h", "w_down0"]),
        SimpleNamespace(op_type="MatMul", name="down1", input=["h", "w_down1"]),
    ]
    weights = {
        "table": (30522, 384),
        "wq": (384, 384),
        "w_up": (384, 1536),
        "w_down0": (1536, 384),
        "w_down1": (1536, 384),
    }
    assert st_export.first_down_projection(nodes, weights) == "down0"
    assert st_export.first_down_projection(nodes[:3], weights) is None


# --------------------------------------------------------------------------- threads


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1", 1, id="budget-1"),
        pytest.param("3", 3, id="budget-3"),
        pytest.param("", os.cpu_count() or 1, id="unset"),
        pytest.param("lots", os.cpu_count() or 1, id="not-a-number"),
        pytest.param("0", os.cpu_count() or 1, id="zero"),
    ],
)
def test_encoders_follow_the_workers_thread_budget(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert configured_threads() == expected


def test_serve_workers_get_one_budget_for_every_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in worker_environment(1).items():
        monkeypatch.setenv(key, value)
    assert configured_threads() == 1
    options = session_options(configured_threads())
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1


def test_fused_parts_encoded_at_once_give_the_same_vectors() -> None:
    parts = [HashingEncoder(32, "a"), HashingEncoder(48, "b")]
    texts = ["sea salt and surf", "tea and old books", "neon and karaoke"]
    one_by_one = FusedEncoder(parts, [0.5, 0.5]).encode(texts)
    together = FusedEncoder(parts, [0.5, 0.5], concurrent=True).encode(texts)
    np.testing.assert_array_equal(one_by_one, together)


# --------------------------------------------------------------------------- text cache


def test_repeated_texts_are_not_encoded_again() -> None:
    inner = HashingEncoder()
    cached = CachedEncoder(inner, size=8)
    first = cached.encode(["tea and books", "surf", "tea and books"])
    assert inner.calls == [["tea and books", "surf"]]  # duplicates in a batch encoded once
    again = cached.encode(["surf", "tea and books"])
    assert inner.calls == [["tea and books", "surf"]]
    np.testing.assert_array_equal(again, first[[1, 0]])
    np.testing.assert_array_equal(first, inner.encode(["tea and books", "surf", "tea and books"]))
    assert cached.model_id == inner.model_id and cached.dimension == inner.dimension


def test_the_text_cache_forgets_the_least_recently_used() -> None:
    inner = HashingEncoder()
    cached = CachedEncoder(inner, size=2)
    cached.encode(["a"])
    cached.encode(["b"])
    cached.encode(["a"])  # a is now the most recent
    cached.encode(["c"])  # evicts b
    inner.calls.clear()
    cached.encode(["a", "c"])
    assert inner.calls == []
    cached.encode(["b"])
    assert inner.calls == [["b"]]


def test_an_empty_batch_is_empty() -> None:
    cached = CachedEncoder(HashingEncoder(dimension=16))
    assert cached.encode([]).shape == (0, 16)
