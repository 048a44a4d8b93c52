"""The encoders package: its import graph, and the registry every model goes through.

A fake family registered here loads by name and alias, parses its runtimes
and carries its threshold without a line of the package changing: that is
what "adding a model is one registry entry" means.
"""

from __future__ import annotations

import ast
import graphlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from matcher.cli import cli
from matcher.encoders import (
    SENTENCE_TRANSFORMERS,
    CachedEncoder,
    Encoder,
    LoadRequest,
    ModelSpec,
    check_model,
    forget_loaded,
    load_encoder,
    model_parts,
    parse_runtime,
    register,
    specs,
    unregister,
)
from matcher.errors import ConfigError
from matcher.matching import encoder_threshold

from .conftest import REPO
from .fakes import HashingEncoder

PACKAGE = REPO / "matcher" / "encoders"
#: The modules every family may build on; the rest are families.
SHARED = {"__init__", "base", "fusion", "registry", "loading"}


def intra_package_imports(path: Path) -> set[str]:
    """Modules of matcher.encoders that ``path`` imports, at any depth (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.level == 0 and (node.module or "").startswith("matcher.encoders."):
                found.add(node.module.split(".")[2])  # type: ignore[union-attr]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("matcher.encoders."):
                    found.add(alias.name.split(".")[2])
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = {path.stem: intra_package_imports(path) for path in PACKAGE.glob("*.py")}
    assert {"base", "registry", "use", "gemma", "st"} <= graph.keys()
    # The package's __init__ imports the shared modules; nothing imports it back.
    inner = {name: deps - {"__init__"} for name, deps in graph.items() if name != "__init__"}
    assert all("__init__" not in deps for deps in graph.values())
    graphlib.TopologicalSorter(inner).prepare()  # raises CycleError on a cycle
    for name, deps in inner.items():
        if name not in SHARED:
            assert not deps & {"registry", "loading"}, f"{name} imports back into the registry"
    assert inner["base"] == set()


def test_every_registered_loader_check_and_fetch_resolves() -> None:
    """The registry names its loaders by string; a renamed function must fail here."""
    for spec in (*specs(), SENTENCE_TRANSFORMERS):
        for runtime in spec.runtimes:
            assert callable(spec.loader(runtime)), (spec.name, runtime)
        for reference in (spec.check, spec.fetch):
            if isinstance(reference, str):
                from matcher.encoders.registry import resolve

                assert callable(resolve(reference)), reference


# --------------------------------------------------------------------------- a new model

LOADED: list[LoadRequest] = []


def load_fake(request: LoadRequest) -> Encoder:
    """A loader named by string, as the built-in families' are."""
    LOADED.append(request)
    return HashingEncoder(model_id=f"fake@1:{request.runtime}", record=False)


@pytest.fixture
def fake_model() -> Iterator[ModelSpec]:
    spec = register(
        ModelSpec(
            name="fake-model",
            aliases=("fake",),
            runtimes={"full": "tests.test_encoders:load_fake", "int8": load_fake},
            description="a bag of hashed words",
            prompt="fake: ",
            correction_threshold=0.6,
        )
    )
    LOADED.clear()
    forget_loaded()
    yield spec
    unregister(spec.name)
    forget_loaded()


def test_a_registered_model_loads_by_name_and_alias(fake_model: ModelSpec) -> None:
    by_name = load_encoder("fake-model")
    assert isinstance(by_name, CachedEncoder)
    assert by_name.model_id == "fake@1:full"
    assert load_encoder("fake:full").inner is by_name.inner  # one copy per runtime
    assert load_encoder("fake:int8").model_id == "fake@1:int8"
    assert [r.runtime for r in LOADED] == ["full", "int8"]
    assert LOADED[0] == LoadRequest(name="fake-model", runtime="full", prompt="fake: ")
    # The threshold comes from the spec, through the encoder, into fusions too.
    assert encoder_threshold(by_name) == 0.6
    fused = load_encoder("fake*3+use:int8")
    assert encoder_threshold(fused) == pytest.approx(0.75 * 0.6 + 0.25 * 0.45)


def test_a_registered_model_has_only_its_runtimes(fake_model: ModelSpec) -> None:
    assert parse_runtime("fake") == ("fake", "full")
    assert model_parts("fake:int8*2") == [("fake-model", "int8", 2.0)]
    with pytest.raises(ConfigError, match="'fake-model' has no runtime 'bf16'; use full or int8"):
        check_model("fake:bf16")


def test_a_models_check_refuses_it_before_loading(fake_model: ModelSpec) -> None:
    def not_installed() -> None:
        raise ConfigError("fake-model is not installed: run `matcher models fetch fake-model`")

    unregister(fake_model.name)
    register(ModelSpec(**{**vars(fake_model), "check": not_installed}))
    with pytest.raises(ConfigError, match="not installed"):
        check_model("use+fake")
    with pytest.raises(ConfigError, match="not installed"):
        load_encoder("fake")
    assert LOADED == []


def test_names_are_unique_and_specs_consistent(fake_model: ModelSpec) -> None:
    with pytest.raises(ValueError, match="'gemma' is taken by 'embeddinggemma-300m'"):
        register(
            ModelSpec(
                name="other", aliases=("gemma",), runtimes={"full": load_fake}, description=""
            )
        )
    with pytest.raises(ValueError, match="default runtime 'int8'"):
        ModelSpec(name="x", runtimes={"full": load_fake}, default_runtime="int8", description="")
    assert [s.name for s in specs()][-1] == "fake-model"


def test_models_list_shows_a_registered_model(fake_model: ModelSpec) -> None:
    result = CliRunner().invoke(cli, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert "fake-model (fake)  runtimes: full*, int8  installed  - a bag of hashed words" in (
        result.output.splitlines()
    )
    rows = [
        json.loads(line)
        for line in CliRunner().invoke(cli, ["models", "list", "--json"]).output.splitlines()
    ]
    assert rows[-2]["name"] == "fake-model" and rows[-1]["name"] == "sentence-transformers"
