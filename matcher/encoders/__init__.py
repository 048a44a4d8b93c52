"""Encoders: turn texts into L2-normalised float32 vectors, chosen by name.

The core depends on the small :class:`Encoder` protocol, not on any model
library. Each model family is one module (``use``, ``e5``, ``gemma``, ``st``)
and one entry in :mod:`.registry`, which is all that loading, checking and
``matcher models list`` read; heavy libraries are imported only when a model
loads. The family modules are imported by their loaders, not here.
"""

from __future__ import annotations

from .base import (
    MODEL_CACHE_ENV,
    TEXT_CACHE_SIZE,
    CachedEncoder,
    Encoder,
    LazyPool,
    LoadRequest,
    configured_threads,
    default_model_cache,
    normalise,
    session_options,
)
from .fusion import FusedEncoder
from .loading import (
    DEFAULT_MODEL,
    check_model,
    forget_loaded,
    load_encoder,
    load_single,
    model_parts,
    parse_runtime,
    prepare_model,
)
from .registry import (
    DEFAULT_CORRECTION_THRESHOLD,
    SENTENCE_TRANSFORMERS,
    ModelSpec,
    find_spec,
    get_spec,
    known_runtimes,
    register,
    spec_for,
    specs,
    unregister,
)

__all__ = [
    "DEFAULT_CORRECTION_THRESHOLD",
    "DEFAULT_MODEL",
    "MODEL_CACHE_ENV",
    "SENTENCE_TRANSFORMERS",
    "TEXT_CACHE_SIZE",
    "CachedEncoder",
    "Encoder",
    "FusedEncoder",
    "LazyPool",
    "LoadRequest",
    "ModelSpec",
    "check_model",
    "configured_threads",
    "default_model_cache",
    "find_spec",
    "forget_loaded",
    "get_spec",
    "known_runtimes",
    "load_encoder",
    "load_single",
    "model_parts",
    "normalise",
    "parse_runtime",
    "prepare_model",
    "register",
    "session_options",
    "spec_for",
    "specs",
    "unregister",
]
