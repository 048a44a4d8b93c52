"""The ``matcher`` command line: thin commands over the core.

Every core error becomes one readable line (or, for a roster, one line per
problem) and a non-zero exit, never a traceback. Other packages add commands
(the web layer adds ``serve``) through the ``matcher.commands`` entry point,
so the core never imports them.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, TypeVar

import click

from . import cast_cli, models_cli, roster_cli, store_cli
from .batch_assign import AssignmentReport
from .batch_output import escape_cell
from .batch_rows import BadRow
from .confidence import Doubt
from .distributed.options import ray_options
from .encoders import (
    DEFAULT_MODEL,
)
from .errors import MatcherError, ProfileError
from .limits import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MAX_TEXT_CHARS
from .matching import DEFAULT_TOP_K, MODELS_DIR, Match, Matcher, default_index_dir
from .text import counted

F = TypeVar("F", bound=Callable[..., Any])

#: ``matcher batch`` finished and wrote every good row, but skipped bad rows.
EXIT_BAD_ROWS = 3


class MatcherGroup(click.Group):
    """A click group that shows core errors as messages, not tracebacks.

    Commands registered under the ``matcher.commands`` entry point (the web
    layer's ``serve``) are found through package metadata, so the core never
    imports the web layer by name; their modules are loaded only when listed
    or run, and keep heavy imports inside the command so ``--help`` stays fast.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry = _plugins().get(cmd_name)
        if entry is None:
            return None
        try:
            loaded = entry.load()
        except ImportError as exc:  # an optional extra is not installed
            return _unavailable(cmd_name, exc)
        return loaded if isinstance(loaded, click.Command) else None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProfileError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            raise click.exceptions.Exit(1) from exc
        except MatcherError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            # A file the user named cannot be read or written (full disk, no
            # permission): their setting to fix, not a bug to trace.
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from exc


def roster_options(func: F) -> F:
    """``--profiles``, ``--model`` and ``--index-dir``, shared by the commands that match."""
    func = click.option(
        "--index-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="MATCHER_INDEX_DIR",
        help="Where the index is kept. Default: PROFILES/.index. Env: MATCHER_INDEX_DIR.",
    )(func)
    func = click.option(
        "--model",
        default=DEFAULT_MODEL,
        show_default=True,
        envvar="MATCHER_MODEL",
        help="Encoder (see 'matcher models list'): embeddinggemma-300m (the default and the "
        "most accurate, as int8 ONNX; install it once with 'matcher models fetch'), "
        "use-multilingual-v3:int8 (the fast tier, packaged), multilingual-e5-small, "
        "all-MiniLM-L6-v2, a local sentence-transformers folder, or several joined by '+' "
        "(score fusion); ':RUNTIME' picks a runtime: ':int8' ONNX Runtime int8, ':full' full "
        "precision (torch for EmbeddingGemma), ':bf16' EmbeddingGemma in bfloat16. "
        "Env: MATCHER_MODEL.",
    )(func)
    return profiles_option(func)


def profiles_option(func: F) -> F:
    return click.option(
        "--profiles",
        "profiles_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default="profiles",
        show_default=True,
        envvar="MATCHER_PROFILES",
        help="Folder of celebrity profile files. Env: MATCHER_PROFILES.",
    )(func)


def top_option(func: F) -> F:
    return click.option(
        "--top",
        "-k",
        "top_k",
        type=click.IntRange(min=1),
        default=DEFAULT_TOP_K,
        show_default=True,
        help="How many celebrities to return per shopper (capped at the roster size).",
    )(func)


def _open_matcher(profiles_dir: Path, model: str, index_dir: Path | None) -> Matcher:
    from .matching import load_matcher

    def announce(celebrity_id: str) -> None:
        click.echo(f"embedding {celebrity_id}", err=True)

    matcher, report = load_matcher(
        profiles_dir, model=model, index_dir=index_dir, on_embed=announce
    )
    if report.rebuilt_because and "no index" not in report.rebuilt_because:
        click.echo(f"rebuilt the index: {report.rebuilt_because}", err=True)
    return matcher


@click.group(cls=MatcherGroup)
@click.version_option(package_name="matcher")
def cli() -> None:
    """Pair shoppers with the campaign celebrity whose brand profile fits them best.

    \b
    Quick start:
      matcher models fetch          # once: the default model, EmbeddingGemma-300M
      matcher profiles check
      matcher match "I love hiking and the smell of the sea"
      matcher batch shoppers.csv -o pairings.jsonl
      matcher serve
    """


@cli.group()
def profiles() -> None:
    """Inspect the celebrity roster."""


@profiles.command("check")
@profiles_option
def profiles_check(profiles_dir: Path) -> None:
    """Validate every profile file and list each problem as FILE:LINE: FIELD: PROBLEM.

    Exits 0 when the roster is valid, 1 otherwise.
    """
    from .profiles import load_profiles

    roster = load_profiles(profiles_dir)
    active = len(roster.active)
    click.echo(f"{profiles_dir}: {len(roster)} profiles OK ({active} active)")


@cli.command("index")
@roster_options
def index_command(profiles_dir: Path, model: str, index_dir: Path | None) -> None:
    """Build or refresh the roster's index, re-embedding only changed profiles.

    Matching commands do this by themselves when needed; run it after editing
    profiles to have the work done before serving.
    """
    from .encoders import load_encoder
    from .index import ensure_index
    from .profiles import load_profiles

    roster = load_profiles(profiles_dir)
    folder = index_dir or default_index_dir(profiles_dir)
    encoder = load_encoder(model, cache_dir=folder / MODELS_DIR)
    _, report = ensure_index(
        roster, encoder, folder, on_embed=lambda cid: click.echo(f"embedding {cid}", err=True)
    )
    if report.rebuilt_because:
        click.echo(f"built from scratch: {report.rebuilt_because}")
    click.echo(
        f"{folder}: {len(report.embedded)} embedded, {len(report.reused)} unchanged, "
        f"{len(report.removed)} removed"
    )


@cli.command("match")
@roster_options
@top_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per text, for scripts.")
@click.argument("texts", nargs=-1, required=True)
def match_command(
    profiles_dir: Path,
    model: str,
    index_dir: Path | None,
    top_k: int,
    as_json: bool,
    texts: tuple[str, ...],
) -> None:
    """Match one or more shopper TEXTS and show the best celebrities with reasons.

    \b
    Examples:
      matcher match "weekend hikes, the sea, a tent under the stars"
      matcher match --top 1 --json "茶和书，安静的下午" "neon, skate parks, synth music"
    """
    from .text import validate_text

    cleaned = [validate_text(text, max_chars=MAX_TEXT_CHARS) for text in texts]
    matcher = _open_matcher(profiles_dir, model, index_dir)
    results = matcher.match_many(cleaned, top_k)
    for number, (text, matches) in enumerate(zip(cleaned, results, strict=True), start=1):
        verdict = matcher.assess(text, matches)
        if as_json:
            record = {
                "text": text,
                "matches": [m.to_dict() for m in matches],
                **verdict.to_dict(),
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            if len(cleaned) > 1:
                click.echo(f"[{number}] {_shorten(text, 70)}")
            if verdict.reason is not None:
                click.echo(f"unsure ({verdict.reason}): {UNSURE_NOTES[verdict.reason]}")
            _print_matches(matches)


#: What ``matcher match`` says above an answer it would not announce to a shopper.
UNSURE_NOTES = {
    Doubt.NO_CONTENT: "nothing readable in the text; a shopper would be asked for more",
    Doubt.TOO_SHORT: "too little text to go on; a shopper would be asked for more",
    Doubt.WEAK: "the text is close to no celebrity; the ranking below is a guess",
    Doubt.NEAR_TIE: "the top two are too close to call; the ranking below is a guess",
}


def _print_matches(matches: list[Match]) -> None:
    for match in matches:
        lead = f"  (+{match.margin:.3f} ahead of the next)" if match.rank == 1 else ""
        click.echo(f"{match.rank}. {match.name} {match.name_zh}  score {match.score:.3f}{lead}")
        for reason in match.reasons:
            quote = _shorten(reason.quote, 90)
            click.echo(f"     {reason.facet} ({reason.score:.2f}): \u201c{quote}\u201d")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


@cli.group()
def feedback() -> None:
    """Planner corrections: re-pair a text with the right celebrity."""


@feedback.command("add")
@profiles_option
@click.option("--right", required=True, help="Id of the celebrity the text belongs to.")
@click.option("--wrong", help="Id of the celebrity it was wrongly paired with (for the record).")
@click.argument("text")
def feedback_add(profiles_dir: Path, right: str, wrong: str | None, text: str) -> None:
    """Record that TEXT should be paired with the celebrity --right.

    The correction is appended to PROFILES/corrections.jsonl; the next match
    re-embeds only that celebrity, and later texts close to TEXT lean towards
    it. Use a test text or a paraphrase, not a shopper's own words, unless the
    campaign's consent covers keeping them.

    \b
    Example:
      matcher feedback add --right chen-an --wrong lin-yue "my weekends: a teahouse and a novel"
    """
    from .feedback import add_correction
    from .profiles import load_profiles

    roster = load_profiles(profiles_dir)
    correction = add_correction(
        profiles_dir, text, right, (p.id for p in roster.active), wrong=wrong
    )
    count = sum(1 for c in roster.corrections if c.right == right) + 1
    click.echo(f"recorded: now {counted(count, 'correction')} for {correction.right}")


@feedback.command("list")
@profiles_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per correction.")
def feedback_list(profiles_dir: Path, as_json: bool) -> None:
    """List the roster's corrections, oldest first."""
    from .profiles import load_profiles

    for correction in load_profiles(profiles_dir).corrections:
        if as_json:
            click.echo(json.dumps(correction.__dict__, ensure_ascii=False))
        else:
            was = f" (was {correction.wrong})" if correction.wrong else ""
            click.echo(f"{correction.right}{was}: {_shorten(correction.text, 80)}")


@cli.command("batch")
@roster_options
@top_option
@click.option(
    "--id-column", default="id", show_default=True, help="Input column with the shopper id."
)
@click.option(
    "--text-column", default="text", show_default=True, help="Input column with the shopper text."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=MAX_BATCH_SIZE),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help=f"Texts embedded together (at most {MAX_BATCH_SIZE}); larger is faster, up to memory.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write pairings: .csv or .jsonl.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.argument(
    "input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@ray_options
def batch_command(
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
) -> None:
    """Match every shopper in INPUT (CSV or JSON Lines) and write pairings to OUTPUT.

    Bad rows (blank text, invalid UTF-8, broken JSON...) are reported with their
    line number and skipped; the good rows are all written. The list of bad
    rows (line, id, reason; never the text) goes to OUTPUT.rejects.csv.
    Exits 0 when every row was paired, 3 when bad rows were skipped, 1 on an error.

    \b
    Examples:
      matcher batch shoppers.csv -o pairings.csv
      matcher batch --text-column likes --top 1 crm_export.csv -o pairings.jsonl
    """
    from tqdm import tqdm

    from .batch import check_input, count_rows, nothing_read, output_format, run_batch

    check_input(input_path, id_column=id_column, text_column=text_column)
    output_format(output)
    matcher = _open_matcher(profiles_dir, model, index_dir)
    rejects_path = output.with_name(output.name + ".rejects.csv")
    rejects = RejectsFile(rejects_path)
    shown = 0
    with tqdm(
        total=max(count_rows(input_path), 1),
        unit=" rows",
        disable=quiet,
        file=sys.stderr,
        dynamic_ncols=True,
        desc="matching",
    ) as bar:
        done = 0

        def on_row(line: int) -> None:
            nonlocal done
            done += 1  # rows, not lines: the header is not a shopper
            bar.update(1)

        def on_bad_row(row: BadRow) -> None:
            nonlocal shown
            rejects.add(row)
            if shown < 20:
                bar.write(f"line {row.line}: {row.reason}", file=sys.stderr)
                shown += 1

        try:
            summary = run_batch(
                matcher,
                input_path,
                output,
                k=top_k,
                id_column=id_column,
                text_column=text_column,
                batch_size=batch_size,
                on_row=on_row,
                on_bad_row=on_bad_row,
            )
        finally:
            rejects.close()
    problem = nothing_read(summary, input_path.name)
    if problem is not None:
        click.echo(f"error: {problem}; rejects -> {rejects_path}", err=True)
        sys.exit(1)
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


def describe_assignment(report: AssignmentReport) -> str:
    """What the roster's quotas and shares did to the batch, for the planner."""
    lines = [
        f"quotas and shares: {report.moved:,} of {report.shoppers:,} shoppers assigned "
        f"another celebrity than their best fit, {report.unpaired:,} left without a place; "
        f"mean fit {report.mean_assigned:.4f} against {report.mean_best:.4f} "
        f"without limits ({report.fit_cost:.2%} given up"
        + (")" if report.exact else ", not proved optimal)")
    ]
    for celebrity, upper in report.upper.items():
        lower = report.lower[celebrity]
        bounds = f"at least {lower:,}, " if lower else ""
        lines.append(
            f"  {celebrity}: {report.counts.get(celebrity, 0):,} ({bounds}at most {upper:,})"
        )
    return "\n".join(lines)


class RejectsFile:
    """The bad-row report, created only when there is a bad row.

    It names shoppers (their ids), so it is private (0600), and it is written
    under a temporary name renamed at the end: a killed run leaves no empty or
    partial report, only a temporary that the next run sweeps.
    """

    def __init__(self, path: Path) -> None:
        from .files import temporary_path

        self.path = path
        self._part = temporary_path(path, ".part")
        self._handle: Any = None
        self._writer: Any = None
        path.unlink(missing_ok=True)

    def add(self, row: BadRow) -> None:
        if self._handle is None:
            from .files import open_private

            self._handle = open_private(self._part, "w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["line", "id", "reason"])
        self._writer.writerow([row.line, escape_cell(row.id or ""), row.reason])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            os.replace(self._part, self.path)


for _command in (models_cli.models, cast_cli.cast, roster_cli.roster, *store_cli.COMMANDS):
    cli.add_command(_command)


def _plugins() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group="matcher.commands")}


def _unavailable(name: str, exc: ImportError) -> click.Command:
    @click.command(name, help=f"(unavailable: {exc})")
    def command() -> None:
        raise click.ClickException(f"'{name}' is unavailable: {exc}")

    return command


def main() -> None:
    """Console-script entry point."""
    cli()
