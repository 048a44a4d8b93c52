"""EmbeddingGemma's hand-written ONNX graph against the sentence-transformers model.

The reference is Google's model run by sentence-transformers on torch (the
``:full`` runtime, itself checked against the model card in test_gemma.py);
the graph must reproduce it in fp32 and stay close as int8, short texts and
texts past the 257-token sliding window alike.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from matcher.cli import cli
from matcher.encoders import gemma_graph, gemma_onnx, load_encoder
from matcher.encoders.gemma_fetch import model_dir, require_fetched
from matcher.errors import ConfigError

from .conftest import SAMPLE_PROFILES

pytestmark = pytest.mark.slow

PROMPT = "task: sentence similarity | query: "
TEXTS = [
    "Quiet mornings, a pot of oolong and a novel; I hate loud perfume.",
    "周末总在山里徒步、冲浪，喜欢海风和松林的味道。",
    "Sneakers, street dance battles and bubble tea with my crew after school.",
    "送给我妈妈的生日礼物，她喜欢养花，每天早上都在阳台上浇水。",
    "ok",
]
#: About 420 tokens with the prompt: past the 257-token sliding window.
LONG = " ".join(
    [
        "I train for marathons in the dark before work, log every split, and",
        "on Sundays I cook for my grandmother, who taught me to fold dumplings.",
    ]
    * 14
)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """The sentence-transformers vectors of the test texts."""
    full = load_encoder("embeddinggemma-300m:full")
    texts = [*TEXTS, LONG]
    return dict(zip(texts, full.encode(texts), strict=True))


@pytest.fixture(scope="module")
def int8() -> gemma_onnx.GemmaOnnxEncoder:
    loaded = load_encoder("embeddinggemma-300m")
    assert isinstance(loaded.inner, gemma_onnx.GemmaOnnxEncoder)  # type: ignore[attr-defined]
    return loaded.inner  # type: ignore[attr-defined,no-any-return]


def _fp32_session(tmp_path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime

    path = tmp_path / "fp32.onnx"
    gemma_graph.save_graph(gemma_graph.build_fp32_graph(require_fetched()), path)
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(session, encoder: gemma_onnx.GemmaOnnxEncoder, text: str, band: bool = True) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The fp32 graph through the int8 encoder's own input preparation, table in fp32."""
    from safetensors import safe_open

    ids = encoder._tokenizer.encode(PROMPT + text).ids
    with safe_open(str(require_fetched() / "model.safetensors"), "np") as handle:
        table = handle.get_slice("embed_tokens.weight")
        rows = np.stack([table[i : i + 1][0] for i in ids]).astype(np.float32)
    window = encoder._window if band else 10**6
    feed = gemma_graph.graph_inputs(rows * np.float32(768**0.5), encoder._rotary, window)
    vector = session.run(None, feed)[0][0]
    return vector / np.linalg.norm(vector)


def test_the_fp32_graph_is_the_model(
    tmp_path: Path, reference: dict[str, np.ndarray], int8: gemma_onnx.GemmaOnnxEncoder
) -> None:
    session = _fp32_session(tmp_path)
    for text in [*TEXTS, LONG]:
        assert float(_run(session, int8, text) @ reference[text]) > 0.9999, text
    assert len(int8._tokenizer.encode(PROMPT + LONG).ids) > 300
    # Without transformers' 257-token band the long text drifts: the band matters.
    assert float(_run(session, int8, LONG, band=False) @ reference[LONG]) < 0.9995


def test_int8_stays_close_to_the_model(
    reference: dict[str, np.ndarray], int8: gemma_onnx.GemmaOnnxEncoder
) -> None:
    texts = [*TEXTS, LONG]
    vectors = int8.encode(texts)
    assert vectors.shape == (len(texts), 768) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = [float(v @ reference[t]) for v, t in zip(vectors, texts, strict=True)]
    assert min(cosines) > 0.98, cosines
    # One text per call: a text's vector does not depend on what it is batched
    # with (threads may only reorder float sums).
    np.testing.assert_allclose(int8.encode([TEXTS[1]])[0], vectors[1], atol=1e-6)
    np.testing.assert_allclose(int8.encode([TEXTS[1], TEXTS[0]])[0], vectors[1], atol=1e-6)
    assert int8.encode([]).shape == (0, 768)


def test_int8_pairs_the_labelled_set_as_the_model_does(tmp_path: Path) -> None:
    from matcher.matching import load_matcher

    rows = [
        json.loads(line)
        for line in (SAMPLE_PROFILES.parent / "benchmarks" / "eval_set.jsonl")
        .read_text()
        .splitlines()
    ]
    texts = [row["text"] for row in rows[::4]]
    fast, _ = load_matcher(SAMPLE_PROFILES, index_dir=tmp_path / "int8")
    full, _ = load_matcher(SAMPLE_PROFILES, model="gemma:full", index_dir=tmp_path / "full")
    same = [
        a[0].celebrity_id == b[0].celebrity_id
        for a, b in zip(fast.match_many(texts, 1), full.match_many(texts, 1), strict=True)
    ]
    assert np.mean(same) >= 0.95, np.mean(same)


def test_a_worker_imports_neither_torch_nor_transformers(tmp_path: Path) -> None:
    """A web worker's whole path, app to answer, in a fresh process."""
    code = (
        "import sys; from web import create_app;"
        "client = create_app({'TESTING': True}).test_client();"
        "answer = client.post('/api/v1/match', json={'text': 'green tea and a quiet book'});"
        "print(answer.get_json()['matches'][0]['celebrity_id']);"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    env = {**os.environ, "MATCHER_INSTANCE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=SAMPLE_PROFILES.parent,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "chen-an"


def _model_copy(tmp_path: Path) -> Path:
    """A model folder whose weights are links to the fetched ones, graph copied in."""
    source = model_dir()
    copy = tmp_path / "embeddinggemma-300m"
    copy.mkdir()
    for item in source.iterdir():
        if item.name != gemma_onnx.GRAPH_DIR:
            (copy / item.name).symlink_to(item)
    built = gemma_onnx.ensure_graph(source)
    shutil.copytree(built.folder, gemma_onnx.graph_folder(copy))
    return copy


def test_a_corrupt_graph_is_rebuilt_never_run(tmp_path: Path) -> None:
    copy = _model_copy(tmp_path)
    files = gemma_onnx.ensure_graph(copy)
    gemma_onnx.verify_graph(files)
    # Flipped bytes keep the size: a starting worker's size check passes them,
    # the checksum check that serve and fetch run does not.
    data = bytearray(files.scales.read_bytes())
    data[-1] ^= 0xFF
    files.scales.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="is corrupt"):
        gemma_onnx.verify_graph(files)
    steps: list[str] = []
    rebuilt = gemma_onnx.ensure_graph(
        copy, verify=True, progress=lambda step, done, total: steps.append(step)
    )
    assert "writing the graph" in steps and "quantizing" in steps
    gemma_onnx.verify_graph(rebuilt)
    kept = [p.name for p in (copy / gemma_onnx.GRAPH_DIR).iterdir() if not p.name.startswith(".")]
    assert kept == [rebuilt.folder.name]
    # A truncated file is caught by its size alone.
    with open(rebuilt.graph, "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(gemma_onnx._StaleGraph):
        gemma_onnx.read_graph(rebuilt.folder)


def test_the_graph_folder_follows_the_library_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = gemma_onnx.graph_folder(tmp_path)
    monkeypatch.setattr(gemma_onnx, "_versions", lambda: ["onnx==0", "onnxruntime==0"])
    assert gemma_onnx.graph_folder(tmp_path) != before


def test_no_model_names_the_command_that_installs_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run `matcher models fetch embeddinggemma-300m` once"):
        gemma_onnx.GemmaOnnxEncoder(tmp_path / "nowhere")
    # In a fresh process: this one has the model loaded already.
    env = {**os.environ, "MATCHER_MODEL_CACHE": str(tmp_path)}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "matcher"),
            "match",
            "green tea",
            "--index-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=SAMPLE_PROFILES.parent,
    )
    assert result.returncode == 1
    assert "matcher models fetch embeddinggemma-300m" in result.stderr
    assert "Traceback" not in result.stderr


def test_fetch_without_a_name_installs_the_default_and_its_graph() -> None:
    result = CliRunner().invoke(cli, ["models", "fetch", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "embeddinggemma-300m is already installed" in result.output
