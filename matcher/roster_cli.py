"""``matcher roster``: publish a roster folder as a campaign's served roster, list its versions.

The servers serve each campaign's published roster from the database
(:mod:`matcher.store.rosters`); editing profile files changes nothing served
until the folder is published, from here or from the planner's roster page.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .store_cli import _roster_folder, database_option, open_database


@click.group("roster")
def roster() -> None:
    """A campaign's published roster: publish a folder, list the versions."""


@roster.command("publish")
@database_option
@click.option("--campaign", "slug", default="default", show_default=True, help="The campaign.")
@click.option(
    "--profiles",
    "profiles_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder to publish. Default: the campaign's roster folder.",
)
@click.option("--note", default="", help="Why, for the history.")
@click.option(
    "--author", default=None, help="Who publishes. Default: the user running the command."
)
def roster_publish(
    database_url: str | None,
    slug: str,
    profiles_dir: Path | None,
    note: str,
    author: str | None,
) -> None:
    """Check a roster folder as matcher profiles check does and publish it.

    Every server serves the new version within seconds. Nothing is published
    when the folder holds what is served already.

    \b
    Examples:
      matcher roster publish --note "Spring taglines"
      matcher roster publish --campaign spring --profiles instance/rosters/spring
    """
    from .store import get_campaign
    from .store.rosters import import_folder

    database = open_database(database_url)
    campaign = get_campaign(database, slug)
    folder = profiles_dir or _roster_folder(campaign.slug, campaign.profiles_dir)
    who = author or os.environ.get("USER") or "cli"
    version = import_folder(database, campaign.id, folder, author=who, note=note or None)
    if version is None:
        click.echo(f"{slug}: {folder} holds what is published already; nothing published")
        return
    click.echo(f"{slug}: version {version.number} published from {folder}")


@roster.command("history")
@database_option
@click.option("--campaign", "slug", default="default", show_default=True, help="The campaign.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
def roster_history(database_url: str | None, slug: str, as_json: bool) -> None:
    """Every published version of a campaign's roster, newest (served) first.

    \b
    Example:
      matcher roster history --campaign spring
    """
    from .store import get_campaign
    from .store.rosters import history

    database = open_database(database_url)
    campaign = get_campaign(database, slug)
    for version in history(database, campaign.id):
        record = {
            "number": version.number,
            "published_at": version.published_at.isoformat(timespec="seconds"),
            "author": version.author,
            "note": version.note,
            "content_hash": version.content_hash,
            "celebrities": len(version.profiles),
            "active": len(version.active_ids),
            "corrections": len(version.corrections),
            "changes": version.changes,
        }
        if as_json:
            click.echo(json.dumps(record, ensure_ascii=False))
            continue
        changed = "; ".join(
            f"{key} {', '.join(value) if isinstance(value, list) else value}"
            for key, value in version.changes.items()
            if value
        )
        click.echo(
            f"{version.number}\t{record['published_at']}\t{version.author}\t"
            f"{record['active']}/{record['celebrities']} active\t{changed or 'no change'}"
            + (f"\t{version.note}" if version.note else "")
        )
