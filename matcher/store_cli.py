"""Commands over the database: ``db``, ``campaign``, ``privacy`` and ``pairings``.

The database is ``--database`` or ``MATCHER_DATABASE_URL``, by default the
SQLite file in the instance folder (``MATCHER_INSTANCE_DIR``, else
``./instance``), the same one ``matcher serve`` uses. SQLAlchemy is imported
inside the commands so that ``matcher --help`` stays quick.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .errors import InputError
from .text import counted

if TYPE_CHECKING:
    from .store import Campaign, Database

F = TypeVar("F", bound=Callable[..., Any])


def instance_dir() -> Path:
    return Path(os.environ.get("MATCHER_INSTANCE_DIR") or "instance")


def database_option(func: F) -> F:
    return click.option(
        "--database",
        "database_url",
        envvar="MATCHER_DATABASE_URL",
        help="SQLAlchemy URL (sqlite:///FILE or postgresql://…). Env: MATCHER_DATABASE_URL. "
        "Default: a SQLite file in the instance folder.",
    )(func)


def open_database(url: str | None, *, profiles_dir: str | None = None) -> Database:
    """Connect, bring the schema up to date and make sure the default campaign exists.

    Both are no-ops when already done. The default campaign is what ``matcher
    serve`` would create, so ``campaign list`` and ``pairings export --campaign
    default`` work on an instance that never served.
    """
    from .store import Database, default_campaign_settings, default_database_url, ensure_campaign

    database = Database(url or default_database_url(instance_dir()))
    # Close pooled connections when the command ends, not whenever they are collected.
    click.get_current_context().call_on_close(database.dispose)
    database.migrate()
    roster = profiles_dir or os.environ.get("MATCHER_PROFILES") or "profiles"
    ensure_campaign(database, default_campaign_settings(roster))
    return database


def rosters_root() -> Path:
    """Where every campaign roster but the default one must be: as ``matcher serve`` sees it."""
    configured = os.environ.get("MATCHER_ROSTERS_DIR")
    return Path(configured or instance_dir() / "rosters").resolve()


def checked_roster(folder: str) -> str:
    """A roster folder inside :func:`rosters_root` (a relative one is taken there) that validates.

    The same rule the server applies when it loads the roster, so a campaign
    the command accepts is one the server can serve.

    Raises:
        click.BadParameter: the folder is outside the rosters root, missing,
            or its profiles have problems (each with file, line and field).
    """
    from .errors import ConfigError, ProfileError
    from .profiles import confined_folder, load_profiles

    root = rosters_root()
    try:
        path = confined_folder(root, folder)
    except ConfigError as exc:
        raise click.BadParameter(
            f"{exc} (MATCHER_ROSTERS_DIR; a relative folder is taken there)",
            param_hint="--profiles",
        ) from None
    if not path.is_dir():
        raise click.BadParameter(f"{folder} is not a folder inside {root}", param_hint="--profiles")
    try:
        load_profiles(path, within=root)
    except ProfileError as exc:
        raise click.BadParameter(
            f"{folder} cannot be used as a roster: {exc}", param_hint="--profiles"
        ) from None
    return folder


@click.group("db")
def db_group() -> None:
    """The database: schema migrations."""


@db_group.command("upgrade")
@database_option
@click.option(
    "--profiles",
    "profiles_dir",
    default="profiles",
    envvar="MATCHER_PROFILES",
    show_default=True,
    help="Roster of the default campaign, created if missing. Env: MATCHER_PROFILES.",
)
def db_upgrade(database_url: str | None, profiles_dir: str) -> None:
    """Create or migrate the schema, and the default campaign."""
    from .store.migrate import current

    database = open_database(database_url, profiles_dir=profiles_dir)
    click.echo(f"{database.describe()}: schema at revision {current(database)}")


# -- campaigns ------------------------------------------------------------------------


def campaign_options(func: F) -> F:
    options = [
        click.option("--name", help="Name planners see."),
        click.option("--brand", help="The brand running it."),
        click.option(
            "--profiles", "profiles_dir", help="Its roster folder (each campaign has its own)."
        ),
        click.option(
            "--origin",
            "origins",
            multiple=True,
            help="A microsite origin allowed to embed it (repeat the option).",
        ),
        click.option("--consent-text", help="The consent notice shoppers agree to."),
        click.option(
            "--consent-version", help="Version of that notice, recorded with each consent."
        ),
        click.option(
            "--retention-days", type=int, help="Days pairings are kept before `privacy purge`."
        ),
        click.option(
            "--store-text/--no-store-text",
            default=None,
            help="Whether a consenting shopper's text is stored at all.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _changes(options: dict[str, Any]) -> dict[str, Any]:
    renamed = {"origins": "embed_origins"}
    return {
        renamed.get(key, key): list(value) if isinstance(value, tuple) else value
        for key, value in options.items()
        if value is not None and value != ()
    }


def _describe(campaign: Campaign) -> dict[str, Any]:
    return json.loads(campaign.model_dump_json())  # type: ignore[no-any-return]


@click.group("campaign")
def campaign_group() -> None:
    """Campaigns: each has its own roster, embed origins, consent notice and retention."""


@campaign_group.command("list")
@database_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per campaign.")
def campaign_list(database_url: str | None, as_json: bool) -> None:
    from .store import list_campaigns

    for campaign in list_campaigns(open_database(database_url)):
        if as_json:
            click.echo(json.dumps(_describe(campaign), ensure_ascii=False))
        else:
            keeps = "keeps text with consent" if campaign.store_text else "keeps no text"
            click.echo(
                f"{campaign.slug}\t{campaign.name} ({campaign.brand})\t{campaign.profiles_dir}\t"
                f"{campaign.retention_days} days, {keeps}"
            )


@campaign_group.command("add")
@database_option
@campaign_options
@click.argument("slug")
def campaign_add(database_url: str | None, slug: str, **options: Any) -> None:
    """Create campaign SLUG (served at /c/SLUG/ and with "campaign": "SLUG" in the API)."""
    from .store import check_settings, create_campaign

    values = _changes(options)
    flags = {"name": "--name", "brand": "--brand", "profiles_dir": "--profiles"}
    missing = [flag for key, flag in flags.items() if key not in values]
    if missing:
        raise click.UsageError(f"a new campaign needs {', '.join(missing)}")
    settings = check_settings({"slug": slug, **values})
    checked_roster(settings.profiles_dir)
    database = open_database(database_url)
    campaign = create_campaign(database, settings)
    click.echo(f"created campaign {campaign.slug}")


@campaign_group.command("set")
@database_option
@campaign_options
@click.argument("slug")
def campaign_set(database_url: str | None, slug: str, **options: Any) -> None:
    """Change settings of campaign SLUG."""
    from .store import update_campaign

    values = _changes(options)
    if not values:
        raise click.UsageError("name at least one setting to change")
    if "profiles_dir" in values:
        checked_roster(values["profiles_dir"])
    campaign = update_campaign(open_database(database_url), slug, values)
    click.echo(json.dumps(_describe(campaign), ensure_ascii=False, indent=2))


# -- privacy --------------------------------------------------------------------------


@click.group("privacy")
def privacy_group() -> None:
    """Shoppers' data: export, delete, and purge what is past its retention period.

    Delete and purge reach every copy: the database (its files scrubbed), the
    corrections in the campaigns' roster folders, and the instance's planner
    batch files (uploads being matched, pairings waiting to be downloaded).
    """


def _roster_folder(slug: str, folder: str) -> Path:
    """A campaign's roster folder as the server finds it (relative ones in the rosters root)."""
    from .store import DEFAULT_SLUG

    path = Path(folder)
    if slug == DEFAULT_SLUG or path.is_absolute():
        return path
    return Path(os.environ.get("MATCHER_ROSTERS_DIR") or instance_dir() / "rosters") / path


def _copies(database: Database) -> list[Any]:
    from .store.privacy import instance_copies

    return instance_copies(database, instance_dir(), resolve=_roster_folder)


def _report_copies(removed: dict[str, int]) -> None:
    for name, count in removed.items():
        if count:
            click.echo(f"{name}: removed {count}")


@privacy_group.command("export")
@database_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.argument("shopper_ref")
def privacy_export(database_url: str | None, shopper_ref: str, output: Path | None) -> None:
    """Everything held on SHOPPER_REF, as JSON."""
    from .store.privacy import export_shopper

    document = export_shopper(open_database(database_url), shopper_ref)
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {counted(len(document['pairings']), 'pairing')} to {output}", err=True)


@privacy_group.command("delete")
@database_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--text",
    "texts",
    multiple=True,
    help="A text the shopper wrote (repeatable): erased wherever it is kept, corrections "
    "included, even where no reference goes with it (a text tried in the planner's try box).",
)
@click.argument("shopper_ref")
def privacy_delete(
    database_url: str | None, shopper_ref: str, yes: bool, texts: tuple[str, ...]
) -> None:
    """Delete SHOPPER_REF's text, pairings and every copy, leaving no trace in the files.

    Exits 4 when a reader of the SQLite file kept its log from being emptied:
    the deletion is done, and the log is emptied as soon as the reader ends.

    \b
    Examples:
      matcher privacy delete s-3kq9w2x7m4p1z8ab
      matcher privacy delete --yes --text "my weekends: a teahouse and a novel" crm-1043
    """
    from .store.privacy import delete_shopper

    if not yes:
        click.confirm(f"Delete everything held on {shopper_ref}?", abort=True)
    database = open_database(database_url)
    deleted = delete_shopper(database, shopper_ref, texts=texts, copies=_copies(database))
    removed = counted(deleted.pairings, "pairing")
    click.echo(f"deleted {removed} of {shopper_ref}; {deleted.scrub.detail}")
    _report_copies(deleted.copies)
    if not deleted.scrub.complete:
        sys.exit(4)


@privacy_group.command("scrub")
@database_option
def privacy_scrub(database_url: str | None) -> None:
    """Empty the database's log of deleted bytes now (exit 4 while a reader still holds it)."""
    report = open_database(database_url).scrub()
    click.echo(report.detail)
    if not report.complete:
        sys.exit(4)


@privacy_group.command("purge")
@database_option
@click.option("--dry-run", is_flag=True, help="Count what would go, delete nothing.")
def privacy_purge(database_url: str | None, dry_run: bool) -> None:
    """Delete pairings older than their campaign's retention period (safe to run from cron).

    Corrections older than the retention period go too, and batch files past
    their time to live.
    """
    from .store.privacy import purge_expired

    database = open_database(database_url)
    purged = purge_expired(database, dry_run=dry_run, copies=_copies(database))
    verb = "would delete" if dry_run else "deleted"
    for slug, count in purged.per_campaign.items():
        click.echo(f"{slug}: {verb} {counted(count, 'pairing')}")
    _report_copies(purged.copies)
    if purged.scrub is not None:
        click.echo(purged.scrub.detail)
        if not purged.scrub.complete:
            sys.exit(4)


# -- reports --------------------------------------------------------------------------


@click.group("pairings")
def pairings_group() -> None:
    """Stored pairings, for reporting."""


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date like 2026-11-25", param_hint=name
        ) from None


@pairings_group.command("export")
@database_option
@click.option("--campaign", "slug", help="Only this campaign.")
@click.option("--since", help="From this day (UTC), e.g. 2026-11-01.")
@click.option("--until", help="Up to and including this day (UTC).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
def pairings_export(
    database_url: str | None,
    slug: str | None,
    since: str | None,
    until: str | None,
    output: Path | None,
) -> None:
    """Pairings as CSV (no shopper text), oldest first."""
    from .store import PairingFilter, get_campaign
    from .store.reports import write_csv

    start, end = _day(since, "--since"), _day(until, "--until")
    if start and end and start > end:
        raise InputError("--since is after --until")
    database = open_database(database_url)
    campaign_id = get_campaign(database, slug).id if slug else None
    where = PairingFilter(campaign_id, start, end)
    if output is None:
        write_csv(database, where, sys.stdout)
        return
    with output.open("w", encoding="utf-8", newline="") as handle:
        count = write_csv(database, where, handle)
    click.echo(f"wrote {counted(count, 'pairing')} to {output}", err=True)


COMMANDS = (db_group, campaign_group, privacy_group, pairings_group)
