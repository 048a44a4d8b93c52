"""Editing the roster in the browser: a draft of celebrities, a preview, and publishing it.

A planner edits one celebrity at a time; each save goes into the campaign's
draft (in the database, so the next request may land on any machine) only
when the profile passes the same checks as ``matcher profiles check`` (the
form is written as a profile file and parsed by :func:`matcher.profiles.parse_profile`,
so a problem is reported for the field it names) and the draft as a whole is
still a valid roster (:func:`matcher.store.rosters.check_roster`: unique ids,
someone active, feasible quotas and shares). The preview pairs a shopper
text with the draft and with the published roster side by side; publishing
makes the draft the next version in one transaction, builds its index here
and every other worker and machine reloads within seconds.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response as BaseResponse

from matcher.errors import InputError, MatcherError, Problem, ProfileError
from matcher.index import build_index
from matcher.profiles import USUAL_FACETS, Profile, Roster, parse_profile
from matcher.store.rosters import (
    check_roster,
    discard_draft,
    draft,
    publish_draft,
    published,
    save_draft,
)

from ..campaigns import current_campaign, database, refresh_campaign
from ..errors import ApiError
from ..pairing import current_matcher
from ..roster import held_vectors, with_index
from ..security import check_form_post
from .base import bp, lang_args, logged_in_user
from .roster import _text_error

#: Blank facet rows offered below a celebrity's facets.
SPARE_FACETS = 2
#: What :func:`check_roster` names a problem of the whole roster by.
ROSTER_WIDE = "roster"
#: Form fields a problem's dotted field path may start with.
FORM_FIELDS = frozenset(
    {"id", "name", "name_zh", "tagline", "tagline_zh", "facets", "facets_zh", "examples"}
    | {"tags", "active", "quota", "min_share", "max_share"}
)


def _working_profiles(campaign_id: int) -> tuple[list[Profile], int | None]:
    """The draft's profiles, or the published ones when nobody is editing yet."""
    db = database()
    edited = draft(db, campaign_id)
    if edited is not None:
        return list(edited.profiles), edited.base_number
    version = published(db, campaign_id)
    if version is None:
        raise ApiError(409, "no_roster", gettext("This campaign has no published roster yet."))
    return list(version.profiles), version.number


def profile_form(profile: Profile | None) -> dict[str, Any]:
    """A profile as the form's fields (a new celebrity: the usual facets, blank)."""
    if profile is None:
        names = list(USUAL_FACETS)
        return {
            "id": "",
            "name": "",
            "name_zh": "",
            "tagline": "",
            "tagline_zh": "",
            "facets": [(name, "", "") for name in names]
            + [("", "", "") for _ in range(SPARE_FACETS)],
            "examples": "",
            "tags": "",
            "active": True,
            "quota": "",
            "min_share": "",
            "max_share": "",
        }
    facets = [
        (name, text, profile.facets_zh.get(name, "")) for name, text in profile.facets.items()
    ]
    return {
        "id": profile.id,
        "name": profile.name,
        "name_zh": profile.name_zh,
        "tagline": profile.tagline,
        "tagline_zh": profile.tagline_zh or "",
        "facets": facets + [("", "", "") for _ in range(SPARE_FACETS)],
        "examples": "\n".join(profile.examples),
        "tags": ", ".join(profile.tags),
        "active": profile.active,
        "quota": "" if profile.quota is None else str(profile.quota),
        "min_share": "" if profile.min_share is None else f"{profile.min_share:g}",
        "max_share": "" if profile.max_share is None else f"{profile.max_share:g}",
    }


#: The most facet rows a posted form may carry.
MAX_FACET_ROWS = 60


def posted_form(existing: Profile | None) -> dict[str, Any]:
    """The form as posted (the id of an existing celebrity cannot change)."""
    form = request.form
    facets = []
    # The page says how many facet rows it drew; anything but a small number is
    # no page of ours, and reads as none rather than as a loop of a billion rows.
    rows = form.get("facet_rows", "").strip()
    count = int(rows) if rows.isascii() and rows.isdigit() and len(rows) <= 3 else 0
    for number in range(min(count, MAX_FACET_ROWS)):
        row = tuple(form.get(f"facet_{part}_{number}", "").strip() for part in ("name", "en", "zh"))
        facets.append(row)
    return {
        "id": existing.id if existing else form.get("id", "").strip(),
        "name": form.get("name", ""),
        "name_zh": form.get("name_zh", ""),
        "tagline": form.get("tagline", ""),
        "tagline_zh": form.get("tagline_zh", ""),
        "facets": facets + [("", "", "")],
        "examples": form.get("examples", ""),
        "tags": form.get("tags", ""),
        "active": form.get("active") == "yes",
        "quota": form.get("quota", "").strip(),
        "min_share": form.get("min_share", "").strip(),
        "max_share": form.get("max_share", "").strip(),
    }


def _number(value: str, kind: type[int] | type[float]) -> int | float | None:
    number = kind(value)
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(value)
    return number


def form_profile(form: dict[str, Any], image: str | None) -> tuple[Profile | None, dict[str, str]]:
    """Check the form as ``matcher profiles check`` checks a file.

    Returns:
        The profile (``None`` when there are problems) and a problem per form field.
    """
    errors: dict[str, str] = {}
    data: dict[str, Any] = {"id": form["id"], "name": form["name"], "name_zh": form["name_zh"]}
    data["tagline"] = form["tagline"]
    if form["tagline_zh"].strip():
        data["tagline_zh"] = form["tagline_zh"]
    # A row is a facet when it has text: the usual facets' names are offered on blank rows.
    facets = {name: en for name, en, _zh in form["facets"] if en}
    facets_zh = {name: zh for name, _en, zh in form["facets"] if zh}
    data["facets"] = facets
    if facets_zh:
        data["facets_zh"] = facets_zh
    examples = [line.strip() for line in form["examples"].splitlines() if line.strip()]
    if examples:
        data["examples"] = examples
    data["tags"] = [tag.strip() for tag in re.split(r"[,，、]", form["tags"]) if tag.strip()]
    data["active"] = form["active"]
    if image:
        data["image"] = image
    for name, kind in (("quota", int), ("min_share", float), ("max_share", float)):
        if form[name]:
            try:
                data[name] = _number(form[name], kind)
            except ValueError:
                errors[name] = (
                    gettext("Write a whole number, or leave it empty.")
                    if kind is int
                    else gettext("Write a number from 0 to 1, such as 0.2, or leave it empty.")
                )
    if errors:
        return None, errors
    raw = yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")
    profile, problems = parse_profile(f"{form['id'] or 'new'}.yaml", raw)
    return profile, field_errors(problems)


def field_errors(problems: tuple[Problem, ...] | list[Problem]) -> dict[str, str]:
    """Problems by the form field they name; the rest under ``form``."""
    errors: dict[str, list[str]] = {}
    for problem in problems:
        head = problem.field.split(".")[0]
        # A problem of the whole roster (the limits together) belongs to no one field.
        key = head if head in FORM_FIELDS and problem.file != ROSTER_WIDE else "form"
        detail = problem.field if key == "form" or "." in problem.field else ""
        errors.setdefault(key, []).append(
            f"{detail}: {problem.message}" if detail else problem.message
        )
    return {key: "; ".join(messages) for key, messages in errors.items()}


def _edit_page(
    form: dict[str, Any], errors: dict[str, str], new: bool, status: int
) -> tuple[str, int]:
    page = render_template("planner/roster_edit.html", form=form, errors=errors, new=new)
    return page, status


def _edit(celebrity_id: str | None) -> BaseResponse | tuple[str, int]:
    campaign = current_campaign()
    profiles, base = _working_profiles(campaign.id)
    existing = next((p for p in profiles if p.id == celebrity_id), None)
    if celebrity_id is not None and existing is None:
        raise ApiError(
            404, "unknown_celebrity", gettext("There is no such celebrity in this roster.")
        )
    if request.method == "GET":
        return _edit_page(profile_form(existing), {}, existing is None, 200)
    check_form_post()
    form = posted_form(existing)
    profile, errors = form_profile(form, existing.image if existing else None)
    if profile is not None and existing is None and any(p.id == profile.id for p in profiles):
        errors["id"] = gettext("Another celebrity of this roster has this id.")
    if errors or profile is None:
        return _edit_page(form, errors, existing is None, 400)
    if existing is None:
        updated = [*profiles, profile]
    else:
        updated = [profile if p.id == existing.id else p for p in profiles]
    try:
        check_roster(updated)
    except ProfileError as exc:
        return _edit_page(form, field_errors(list(exc.problems)), existing is None, 400)
    save_draft(
        database(), campaign.id, updated, author=logged_in_user() or "planner", base_number=base
    )
    flash(
        gettext(
            "%(name)s is saved in the draft. Preview and publish it when the roster is ready.",
            name=profile.name,
        )
    )
    return redirect(url_for("planner.roster", **lang_args()), 303)


@bp.route("/roster/new", methods=["GET", "POST"])
def celebrity_new() -> BaseResponse | tuple[str, int]:
    """Add a celebrity to the draft."""
    return _edit(None)


@bp.route("/roster/<celebrity_id>/edit", methods=["GET", "POST"])
def celebrity_edit(celebrity_id: str) -> BaseResponse | tuple[str, int]:
    """Edit (or deactivate) a celebrity in the draft."""
    return _edit(celebrity_id)


@bp.post("/roster/preview")
def draft_preview() -> tuple[str, int]:
    """Pair a shopper text with the draft and with the published roster, side by side."""
    check_form_post()
    campaign = current_campaign()
    text = request.form.get("text", "")
    error = _text_error(text)
    edited = draft(database(), campaign.id)
    if edited is None and error is None:
        error = gettext("There is no draft: edit a celebrity first.")
    live = current_matcher()
    rows: list[dict[str, Any]] = []
    if error is None and edited is not None:
        version = published(database(), campaign.id)
        corrections = version.corrections if version else ()
        known = {p.id for p in edited.profiles}
        roster = Roster(
            Path("draft"), edited.profiles, tuple(c for c in corrections if c.right in known)
        )
        index, _ = build_index(roster, live.encoder, held_vectors(live.index))  # type: ignore[arg-type]
        preview = with_index(live, index)
        after = preview.match(text, preview.roster_size)
        before = {m.celebrity_id: m for m in live.match(text, live.roster_size)}
        for match in after:
            old = before.get(match.celebrity_id)
            rows.append({"after": match, "before": old})
    page = render_template(
        "planner/roster_preview.html", text=text, rows=rows, error=error, draft=edited
    )
    return page, 400 if error else 200


@bp.post("/roster/publish")
def draft_publish() -> BaseResponse | tuple[str, int]:
    """Publish the draft: the next version, served by every worker within seconds."""
    check_form_post()
    campaign = current_campaign()
    note = request.form.get("note", "").strip()[:4000]
    try:
        version = publish_draft(
            database(), campaign.id, author=logged_in_user() or "planner", note=note
        )
    except (InputError, ProfileError) as exc:
        flash(gettext("Nothing was published: %(problem)s", problem=str(exc)))
        return redirect(url_for("planner.roster", **lang_args()), 303)
    try:
        refresh_campaign(campaign)
    except MatcherError as exc:
        flash(
            gettext("Published, but this server cannot load it yet: %(problem)s", problem=str(exc))
        )
    else:
        flash(
            gettext(
                "Version %(number)d is published: every server serves it within seconds.",
                number=version.number,
            )
        )
    return redirect(url_for("planner.roster", **lang_args()), 303)


@bp.post("/roster/discard")
def draft_discard() -> BaseResponse:
    check_form_post()
    discard_draft(database(), current_campaign().id)
    flash(gettext("The draft is discarded: the published roster is unchanged."))
    return redirect(url_for("planner.roster", **lang_args()), 303)
