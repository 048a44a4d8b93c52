"""``matcher batch --ray``: the command line's side of a batch on Ray.

The same messages as the local batch (the bad rows' lines, the rejects file,
the summary, the exit codes), plus one line saying where the batch ran.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..batch_rows import BadRow
from ..text import counted
from .run import check_address, output_kind
from .sources import check_source


def ray_batch(
    *,
    profiles_dir: Path,
    model: str,
    index_dir: Path | None,
    top_k: int,
    id_column: str,
    text_column: str,
    batch_size: int,
    output: Path,
    quiet: bool,
    input_path: Path,
    address: str | None,
    workers: int | None,
    threads: int,
    **others: object,
) -> None:
    """Run ``matcher batch`` on Ray; exits as the local command does.

    Raises:
        click.UsageError: an option of the local batch that the Ray batch lacks was given.
    """
    given = sorted(name for name, value in others.items() if value not in (None, False, ()))
    if given:
        names = ", ".join("--" + name.replace("_", "-") for name in given)
        raise click.UsageError(f"{names}: not available with --ray")
    from tqdm import tqdm

    from ..cli import EXIT_BAD_ROWS, RejectsFile, _open_matcher, describe_assignment
    from ..matching import MODELS_DIR, default_index_dir
    from .run import run_batch_on_ray

    total = check_source(input_path, id_column=id_column, text_column=text_column)
    output_kind(output)
    check_address(address)
    matcher = _open_matcher(profiles_dir, model, index_dir)
    cache_dir = (index_dir or default_index_dir(profiles_dir)) / MODELS_DIR
    rejects_path = output.with_name(output.name + ".rejects.csv")
    rejects = RejectsFile(rejects_path)
    shown = 0
    with tqdm(
        total=max(total, 1),
        unit=" rows",
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
        desc="matching on Ray",
    ) as bar:
        done = 0

        def on_row(line: int) -> None:
            nonlocal done
            if line > done:
                bar.update(line - done)
                done = line

        def on_bad_row(row: BadRow) -> None:
            nonlocal shown
            rejects.add(row)
            if shown < 20:
                bar.write(f"line {row.line}: {row.reason}", file=sys.stderr)
                shown += 1

        try:
            summary = run_batch_on_ray(
                matcher,
                model,
                input_path,
                output,
                k=top_k,
                id_column=id_column,
                text_column=text_column,
                batch_size=batch_size,
                workers=workers,
                threads=threads,
                cache_dir=cache_dir,
                address=address,
                on_row=on_row,
                on_bad_row=on_bad_row,
            )
        finally:
            rejects.close()
    peaks = sorted(summary.worker_peak_rss.values())
    memory = (
        f", peak memory {' / '.join(f'{peak / 2**20:,.0f}' for peak in peaks)} MB" if peaks else ""
    )
    click.echo(
        f"on Ray: {counted(summary.workers, 'worker')} x {counted(threads, 'thread')}{memory}",
        err=True,
    )
    click.echo(f"{counted(summary.matched, 'shopper')} paired -> {output}", err=True)
    if summary.assignment is not None:
        click.echo(describe_assignment(summary.assignment), err=True)
    if summary.unsure:
        click.echo(
            f"{summary.unsure} of them unsure (confident=false: the text is unreadable,"
            " too short or a close call)",
            err=True,
        )
    if summary.bad:
        click.echo(f"{counted(summary.bad, 'bad row')} skipped -> {rejects_path}", err=True)
        sys.exit(EXIT_BAD_ROWS)
