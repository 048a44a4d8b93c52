"""``matcher cast``: choose the k candidates of a pool who together best represent a brief.

A thin command over :mod:`matcher.casting`: it reads the brief, the pool
and an optional sample of shoppers, embeds the pool with a progress bar,
chooses (greedy, or ``--exact``) and prints each face with the facet it
embodies and the quote that shows it, then the coverage of each facet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .encoders import DEFAULT_MODEL
from .errors import InputError
from .progress import Bars

if TYPE_CHECKING:
    from .casting import Casting


@click.command("cast")
@click.option(
    "--brief",
    "brief_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The brief: a YAML (or JSON) file of facets, k and constraints (see docs/casting.md).",
)
@click.option(
    "--pool",
    "pool_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The candidates: a folder of profile files, or a JSON Lines file of profiles.",
)
@click.option(
    "-k",
    "k",
    type=click.IntRange(min=1),
    default=None,
    help="How many faces to choose (default: the brief's k).",
)
@click.option(
    "--shoppers",
    "shoppers_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A sample of shoppers (CSV, Excel or JSON Lines with id and text) to cover too.",
)
@click.option("--exact", is_flag=True, help="Solve the integer program (pools of hundreds).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@click.option(
    "--lang",
    type=click.Choice(["en", "zh"]),
    default="en",
    show_default=True,
    help="The language of the quotes, when a profile has it.",
)
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    envvar="MATCHER_MODEL",
    help="Encoder (see 'matcher models list'). Env: MATCHER_MODEL.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where pools' vectors are kept between runs. Default: MATCHER_MODEL_CACHE/casting.",
)
@click.option("--no-cache", is_flag=True, help="Embed the pool even if its vectors are kept.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def cast(
    brief_path: Path,
    pool_path: Path,
    k: int | None,
    shoppers_path: Path | None,
    exact: bool,
    as_json: bool,
    lang: str,
    model: str,
    cache_dir: Path | None,
    no_cache: bool,
    quiet: bool,
) -> None:
    """Choose the faces of a campaign: the K candidates who together cover the brief.

    Each chosen face fits the brief, together they cover its facets (and the
    shoppers of --shoppers), with little redundancy between them. Greedy is
    proven within 1 - 1/e of the best set (1/2 with a cap per category);
    --exact finds the best set itself.

    \b
    Examples:
      matcher cast --brief pools/lueur/brief.yaml --pool pools/lueur/candidates.jsonl
      matcher cast --brief brief.yaml --pool candidates/ -k 5 --exact --json
    """
    from .casting import BriefError, load_brief, load_pool, prepare
    from .casting.pool import cached_pool_vectors, embed_pool
    from .encoders import default_model_cache, load_encoder

    try:
        brief = load_brief(brief_path)
        if k is not None:
            brief = brief.with_k(k)
    except BriefError as exc:
        for issue in exc.problems:
            click.echo(f"error: {issue}", err=True)
        raise click.exceptions.Exit(1) from exc
    pool = load_pool(pool_path)
    shoppers = _read_shoppers(shoppers_path) if shoppers_path is not None else []
    encoder = load_encoder(model)
    bars = Bars(quiet or len(pool) < 100)

    def progress(done: int, total: int) -> None:
        bars("embedding", done, total)

    try:
        if no_cache:
            vectors = embed_pool(pool.profiles, encoder, progress=progress)
        else:
            folder = cache_dir or default_model_cache() / "casting"
            vectors = cached_pool_vectors(pool.profiles, encoder, folder, progress=progress)
    finally:
        bars.close()
    problem = prepare(brief, pool, encoder, shoppers=shoppers, vectors=vectors)
    try:
        casting = problem.solve(method="exact" if exact else "greedy", lang=lang)
    except BriefError as exc:
        for issue in exc.problems:
            click.echo(f"error: {issue}", err=True)
        raise click.exceptions.Exit(1) from exc
    if as_json:
        record = {"product": brief.product, "k": brief.k, **casting.to_dict()}
        click.echo(json.dumps(record, ensure_ascii=False))
        return
    _print(brief.product or brief_path.name, len(pool), casting)


def _read_shoppers(path: Path) -> list[str]:
    """The texts of a shopper file; unusable rows are skipped and counted, never shown."""
    from .batch import read_shoppers
    from .batch_rows import BadRow

    texts: list[str] = []
    bad: list[BadRow] = []
    for row in read_shoppers(path):
        if isinstance(row, BadRow):
            bad.append(row)
        else:
            texts.append(row.text)
    if bad:
        first = bad[0]
        click.echo(
            f"{len(bad)} shopper row(s) skipped (first: {path.name}:{first.line}: {first.reason})",
            err=True,
        )
    if not texts:
        raise InputError(f"{path.name}: no usable shopper text")
    return texts


def _print(title: str, pool_size: int, casting: Casting) -> None:
    bound = f", at most {casting.bound:.4f} possible" if casting.bound is not None else ""
    click.echo(
        f"{title}: {len(casting.ids)} faces from {pool_size:,} candidates "
        f"({casting.method}; objective {casting.value:.4f}{bound})"
    )
    for rank, face in enumerate(casting.faces, start=1):
        share = f"  {face.share:.0%} of shoppers" if face.share is not None else ""
        category = f"  [{face.category}]" if face.category else ""
        facet = face.facet if face.serves else f"(no facet; closest: {face.facet})"
        click.echo(f"{rank}. {face.name} {face.name_zh}  {facet} {face.score:.3f}{category}{share}")
        click.echo(f"     {face.quote_facet}: “{_shorten(face.quote, 90)}”")
    click.echo("coverage:")
    for entry in casting.coverage:
        click.echo(
            f"  {entry.facet:<14} {entry.coverage:.2f}  (score {entry.score:.3f}, {entry.by})"
        )
    retrieval = casting.retrieval
    if retrieval.get("index") not in (None, "none"):
        click.echo(
            f"retrieved {retrieval['considered']:,} of {retrieval['pool']:,} candidates with "
            f"{retrieval['index']} (recall@50 {retrieval['recall_at_50']:.3f})"
        )


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
