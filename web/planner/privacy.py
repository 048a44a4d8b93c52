"""Shoppers' privacy requests: export what is held on a reference, delete it, purge.

Nothing is deleted in one click: a shopper's data is deleted from a page
that shows what will go, and the purge of what campaigns no longer keep
runs only from its trial run's page, which shows the counts first (no
JavaScript needed). Shopper references travel in POST bodies, not in URLs. Delete and purge
reach every copy (:func:`matcher.store.privacy.instance_copies`): the
database, the corrections in the campaigns' roster folders and this
instance's batch files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask import (
    Response,
    current_app,
    render_template,
    request,
)
from flask_babel import gettext

from matcher.limits import MAX_REF_CHARS
from matcher.store import (
    get_campaign,
    list_campaigns,
)
from matcher.store.privacy import (
    Copies,
    delete_shopper,
    export_shopper,
    instance_copies,
    purge_expired,
)
from matcher.text import ref_problem

from ..campaigns import (
    database,
)
from ..errors import ApiError
from ..jobs import BatchCopies
from ..security import check_form_post
from .base import bp, job_registry
from .roster import roster_folder

# -- privacy requests -------------------------------------------------------------------


def _privacy_page(status: int = 200, **context: Any) -> tuple[str, int]:
    context.setdefault("ref", "")
    context.setdefault("errors", {})
    return render_template("planner/privacy.html", **context), status


def _roster_folder(slug: str, _folder: str) -> Path:
    """Where a campaign's corrections are: where the try box writes them."""
    return Path(roster_folder(get_campaign(database(), slug)))


def _copies() -> list[Copies]:
    """Every place besides the database, the batch files with this server's time to live."""
    registry = job_registry(current_app)
    return [
        BatchCopies(registry) if isinstance(copy, BatchCopies) else copy
        for copy in instance_copies(database(), current_app.instance_path, resolve=_roster_folder)
    ]


def _held(ref: str) -> dict[str, Any]:
    return export_shopper(database(), ref)


def _download_name(ref: str) -> str:
    return "shopper-" + (re.sub(r"[^A-Za-z0-9_-]", "_", ref)[:100] or "ref") + ".json"


@bp.route("/privacy", methods=["GET", "POST"])
def privacy() -> Response | tuple[str, int]:
    """Shoppers' requests by reference (a copy, or erasure), and the retention purge.

    All actions are POSTs, so references never appear in URLs or access logs.
    Deleting asks for confirmation first, showing what will go.
    """
    if request.method == "GET":
        return _privacy_page()
    check_form_post()
    action = request.form.get("action", "")
    if action in ("purge", "dry-run"):
        # Deleting is the second step: only the trial run's page, which shows the
        # counts, carries the confirmation; a purge asked for without it is a trial run.
        dry_run = action == "dry-run" or request.form.get("confirmed") != "yes"
        purged = purge_expired(database(), dry_run=dry_run, copies=_copies())
        names = {c.slug: c.name for c in list_campaigns(database())}
        return _privacy_page(purged=purged, dry_run=dry_run, campaign_names=names)
    if action not in ("export", "delete", "confirm-delete"):
        raise ApiError(400, "unknown_action", gettext("Choose what to do with the reference."))
    ref = request.form.get("ref", "").strip()
    if ref_problem(ref) is not None:
        problem = gettext(
            "Give the shopper's reference: 1 to %(n)d characters, as shown to them.",
            n=MAX_REF_CHARS,
        )
        return _privacy_page(400, ref=ref[: MAX_REF_CHARS + 50], errors={"ref": problem})
    if action == "confirm-delete":
        deleted = delete_shopper(database(), ref, copies=_copies())
        return _privacy_page(deleted=deleted, deleted_ref=ref)
    held = _held(ref)
    if not held["pairings"]:
        problem = gettext(
            "Nothing is held on the reference %(ref)s: check it with the shopper.", ref=ref
        )
        return _privacy_page(404, ref=ref, errors={"ref": problem})
    if action == "export":
        body = json.dumps(held, ensure_ascii=False, indent=2) + "\n"
        return Response(
            body,
            mimetype="application/json",
            headers={"Content-Disposition": f'attachment; filename="{_download_name(ref)}"'},
        )
    per_campaign: dict[str, int] = {}
    for pairing in held["pairings"]:
        name = pairing["campaign_name"]
        per_campaign[name] = per_campaign.get(name, 0) + 1
    texts = sum(1 for pairing in held["pairings"] if pairing["text"] is not None)
    return _privacy_page(
        ref=ref,
        confirm={"count": len(held["pairings"]), "per_campaign": per_campaign, "texts": texts},
    )
