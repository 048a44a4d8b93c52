"""Creating campaigns, editing a campaign's settings, and the embed snippet."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import (
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext
from pydantic import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from matcher.errors import ConfigError, InputError, ProfileError
from matcher.limits import MAX_PICK_CHARS, MAX_PICKS
from matcher.profiles import load_profiles
from matcher.store import (
    DEFAULT_SLUG,
    Campaign,
    CampaignSettings,
    create_campaign,
    find_campaign,
    list_campaigns,
    update_campaign,
)
from matcher.store.branding import Branding, branding_for, find_branding, save_branding
from matcher.text import has_controls

from ..branding import Brand, forget_branding
from ..campaigns import (
    campaign_settings,
    current_campaign,
    database,
    forget,
    roster_path,
    rosters_root,
)
from ..security import check_form_post
from ..settings import DEFAULT_QUICK_PICKS, parse_origins
from .base import bp, lang_args
from .roster import roster_folder


def parse_picks(value: str) -> list[str]:
    """Split a planner's list of quick picks (commas or new lines), dropping repeats."""
    picks: list[str] = []
    for item in value.replace("\n", ",").split(","):
        pick = item.strip()
        if pick and pick not in picks:
            picks.append(pick)
    return picks


def _pick_error(picks: list[str]) -> str | None:
    if not picks:
        return gettext("List at least one pick.")
    if len(picks) > MAX_PICKS:
        return gettext("List at most %(n)d picks.", n=MAX_PICKS)
    if any(len(pick) > MAX_PICK_CHARS for pick in picks):
        return gettext("Keep each pick under %(n)d characters.", n=MAX_PICK_CHARS)
    return None


#: The campaign form's fields besides the quick pick groups and ``store_text`` (a checkbox).
CAMPAIGN_FIELDS = (
    "slug",
    "name",
    "brand",
    "profiles_dir",
    "embed_origins",
    "consent_text",
    "consent_version",
    "retention_days",
    "time_zone",
)


def _lines(value: str) -> str:
    # Browsers send a textarea's line breaks as CRLF.
    return value.replace("\r\n", "\n").strip()


def campaign_form(campaign: Campaign | None) -> dict[str, Any]:
    """The campaign form as typed: filled from ``campaign``, or a new campaign's defaults."""
    if campaign is None:
        blank = CampaignSettings.model_fields
        return {
            **{name: "" for name in CAMPAIGN_FIELDS},
            "consent_text": blank["consent_text"].default,
            "consent_version": blank["consent_version"].default,
            "retention_days": str(blank["retention_days"].default),
            "time_zone": blank["time_zone"].default,
            "store_text": False,
            **{group: ", ".join(picks) for group, picks in DEFAULT_QUICK_PICKS.items()},
        }
    picks = campaign.quick_picks or DEFAULT_QUICK_PICKS
    return {
        "slug": campaign.slug,
        "name": campaign.name,
        "brand": campaign.brand,
        "profiles_dir": roster_folder(campaign),
        "embed_origins": "\n".join(campaign.embed_origins),
        "consent_text": campaign.consent_text,
        "consent_version": campaign.consent_version,
        "retention_days": str(campaign.retention_days),
        "time_zone": campaign.time_zone,
        "store_text": campaign.store_text,
        **{group: ", ".join(picks.get(group) or []) for group in DEFAULT_QUICK_PICKS},
    }


def posted_campaign_form(current: Campaign | None = None) -> dict[str, Any]:
    form: dict[str, Any] = {
        name: request.form.get(name, "") for name in (*CAMPAIGN_FIELDS, *DEFAULT_QUICK_PICKS)
    }
    form["store_text"] = request.form.get("store_text") == "yes"
    if "time_zone" not in request.form:
        # A form from before the field existed keeps the campaign's zone.
        form["time_zone"] = campaign_form(current)["time_zone"]
    for name in CONSENT_FIELDS:
        form[name] = request.form.get(name)
    return form


def _field_problem(field: str, error: Any) -> str:
    """A pydantic complaint about one campaign field, in the planner's words."""
    kind = error["type"]
    limit = (error.get("ctx") or {}).get("max_length")
    if field == "slug":
        return gettext(
            "Use 1 to 40 lower-case letters, digits and dashes, starting with a letter or digit."
        )
    if field == "retention_days":
        return gettext("Give a whole number of days from 1 to 3650.")
    if field == "time_zone" and kind not in ("missing", "string_too_short"):
        return gettext("Give a time zone such as Asia/Shanghai or Europe/Paris.")
    if kind in ("missing", "string_too_short"):
        return gettext("Fill this in.")
    if kind == "string_too_long" and limit:
        return gettext("Keep it to %(n)d characters at most.", n=limit)
    return str(error["msg"]).removeprefix("Value error, ")


def check_campaign_form(
    form: dict[str, Any], *, check_roster: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn the typed form into campaign settings, or say what is wrong with each field.

    Args:
        check_roster: also load the roster folder's profiles (not their vectors),
            so a campaign never points at a folder it cannot match with.

    Returns:
        The checked settings (empty when there are errors) and a problem per field.
    """
    errors: dict[str, str] = {}
    origins: list[str] = []
    try:
        origins = parse_origins(form["embed_origins"].replace("\n", ","))
    except ConfigError as exc:
        errors["embed_origins"] = str(exc)
    picks = {group: parse_picks(form[group]) for group in DEFAULT_QUICK_PICKS}
    for group, chosen in picks.items():
        problem = _pick_error(chosen)
        if problem:
            errors[group] = problem
    values = {
        "slug": form["slug"].strip(),
        "name": form["name"],
        "brand": form["brand"],
        "profiles_dir": form["profiles_dir"],
        "embed_origins": origins,
        "quick_picks": picks,
        "consent_text": _lines(form["consent_text"]),
        "consent_version": form["consent_version"],
        "retention_days": form["retention_days"].strip(),
        "store_text": form["store_text"],
        "time_zone": form["time_zone"].strip(),
    }
    for name in CAMPAIGN_FIELDS:
        if has_controls(form[name]):
            # PostgreSQL refuses NUL; an escape character has no place in a notice.
            errors[name] = gettext("Remove the control characters (such as NUL) from this field.")
    for group in DEFAULT_QUICK_PICKS:
        if has_controls(form[group]):
            errors[group] = gettext("Remove the control characters (such as NUL) from this field.")
    settings = None
    if not re.fullmatch(r"\d{1,5}", values["retention_days"]):
        errors["retention_days"] = _field_problem("retention_days", {"type": "int_parsing"})
    try:
        settings = CampaignSettings.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(field, _field_problem(field, error))
    folder = None
    if check_roster and "profiles_dir" not in errors:
        folder, errors["profiles_dir"] = _roster_problem(values["profiles_dir"].strip())
        if not errors["profiles_dir"]:
            del errors["profiles_dir"]
    if errors or settings is None:
        return {}, errors
    checked = settings.model_dump()
    if folder is not None:
        checked["profiles_dir"] = str(folder)
    return checked, errors


def _roster_problem(typed: str) -> tuple[Path | None, str]:
    """The roster folder a planner typed, resolved inside the rosters root, or what is wrong.

    Problems say file, line, field and what is wrong, never what the files hold.
    """
    try:
        folder = roster_path(typed)
    except ConfigError:
        return None, gettext(
            "Choose a folder inside %(root)s (the server's MATCHER_ROSTERS_DIR).",
            root=str(rosters_root()),
        )
    try:
        load_profiles(folder, within=rosters_root())
    except ProfileError as exc:
        return None, gettext(
            "This folder cannot be used as a roster: %(problem)s", problem=str(exc)
        )
    return folder, ""


def _shopper_url(campaign: Campaign) -> str:
    if campaign.slug == DEFAULT_SLUG:
        return url_for("shopper.form", _external=True)
    return url_for("campaign_shopper.form", campaign=campaign.slug, _external=True)


def _embed_url(campaign: Campaign) -> str:
    if campaign.slug == DEFAULT_SLUG:
        return url_for("embed.form", _external=True)
    return url_for("campaign_embed.form", campaign=campaign.slug, _external=True)


@bp.route("/campaigns", methods=["GET", "POST"])
def campaigns() -> BaseResponse | tuple[str, int]:
    """Every campaign of this instance, and a form to start another."""
    db = database()
    form = campaign_form(None)
    errors: dict[str, str] = {}
    if request.method == "POST":
        check_form_post()
        form = posted_campaign_form()
        values, errors = check_campaign_form(form, check_roster=True)
        if not errors and find_campaign(db, values["slug"]) is not None:
            errors["slug"] = gettext(
                "There is already a campaign %(slug)s: choose another.", slug=values["slug"]
            )
        if not errors:
            try:
                created = create_campaign(db, CampaignSettings.model_validate(values))
            except InputError:  # another planner took the slug a moment ago
                errors["slug"] = gettext(
                    "There is already a campaign %(slug)s: choose another.", slug=values["slug"]
                )
            else:
                flash(
                    gettext(
                        "Campaign %(name)s created; it is now selected. Shoppers find it at "
                        "%(url)s.",
                        name=created.name,
                        url=_shopper_url(created),
                    )
                )
                return redirect(
                    url_for("planner.campaigns", campaign=created.slug, **lang_args()), 303
                )
    rows = [(c, _shopper_url(c)) for c in list_campaigns(db)]
    return render_template(
        "planner/campaigns.html",
        rows=rows,
        form=form,
        errors=errors,
        groups=list(DEFAULT_QUICK_PICKS),
    ), 400 if errors else 200


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> BaseResponse | tuple[str, int]:
    """The selected campaign's settings, saved in the database.

    ``MATCHER_EMBED_ORIGINS`` wins over the default campaign's embed origins,
    and the default campaign's roster is the folder the server started on.
    Changing the consent notice needs a new version: pairings record the
    version the shopper agreed to, so one version must always mean one text.
    """
    campaign = current_campaign()
    default = campaign.slug == DEFAULT_SLUG
    form = {**campaign_form(campaign), **consent_form(campaign)}
    errors: dict[str, str] = {}
    if request.method == "POST":
        check_form_post()
        form = posted_campaign_form(campaign)
        consent, consent_errors = check_consent_form(campaign, form)
        form["slug"] = campaign.slug
        if default:
            form["profiles_dir"] = campaign.profiles_dir
        moved = form["profiles_dir"].strip() != campaign.profiles_dir
        values, errors = check_campaign_form(form, check_roster=moved)
        if (
            not errors
            and _lines(values["consent_text"]) != _lines(campaign.consent_text)
            and values["consent_version"] == campaign.consent_version
        ):
            errors["consent_version"] = gettext(
                "The consent notice changed: give it a new version, so each pairing "
                "records which notice the shopper agreed to."
            )
        errors.update(consent_errors)
        if not errors:
            values.pop("slug")
            try:
                update_campaign(database(), campaign.slug, values)
            except InputError as exc:
                errors["form"] = str(exc)
            else:
                if consent is not None:
                    save_consent(campaign, consent)
                forget(current_app._get_current_object(), campaign.slug)  # type: ignore[attr-defined]
                flash(gettext("Settings saved."))
                return redirect(url_for("planner.settings", **lang_args()), 303)
        if default:
            form["profiles_dir"] = roster_folder(campaign)
    return render_template(
        "planner/settings.html",
        form=form,
        errors=errors,
        default_campaign=default,
        env_origins=default and bool(parse_origins(current_app.config["MATCHER_EMBED_ORIGINS"])),
        effective=campaign_settings(campaign),
        groups=list(DEFAULT_QUICK_PICKS),
    ), 400 if errors else 200


# -- consent per language ----------------------------------------------------------------

#: The consent notice in Chinese and its version; the English one is the campaign's own.
CONSENT_FIELDS = ("consent_text_zh", "consent_version_zh")


def _stored_branding(campaign: Campaign) -> Branding:
    """The branding the campaign's pages show, without loading a roster that may be broken."""
    db = database()
    stored = find_branding(db, campaign.id)
    if stored is not None:
        return stored
    if campaign.slug == DEFAULT_SLUG:
        ids = frozenset(p.id for p in current_app.extensions["matcher"].index.profiles)
        return branding_for(db, campaign.id, ids)
    return Branding()


def consent_form(campaign: Campaign) -> dict[str, str]:
    """The Chinese notice as the pages show it now, and the version it records."""
    brand = Brand(campaign, _stored_branding(campaign), "zh", {})
    copy = brand.copy
    return {
        "consent_text_zh": brand.consent_text or "",
        "consent_version_zh": copy.consent_version or campaign.consent_version,
    }


def check_consent_form(
    campaign: Campaign, form: dict[str, Any]
) -> tuple[dict[str, str] | None, dict[str, str]]:
    """The Chinese notice to store (``None``: unchanged, or not sent), and a problem per field."""
    text, version = form.get("consent_text_zh"), form.get("consent_version_zh")
    if text is None and version is None:
        current = consent_form(campaign)
        form.update(current)
        return None, {}
    text, version = _lines(text or ""), (version or "").strip()
    current = consent_form(campaign)
    errors: dict[str, str] = {}
    if text and has_controls(text):
        errors["consent_text_zh"] = gettext(
            "Remove the control characters (such as NUL) from this field."
        )
    if len(text) > 4000:
        errors["consent_text_zh"] = gettext("Keep it to %(n)d characters at most.", n=4000)
    if not version or len(version) > 36 or has_controls(version):
        errors["consent_version_zh"] = gettext(
            "Give the notice a version of 1 to 36 characters, such as 2."
        )
    if errors:
        return None, errors
    if text == _lines(current["consent_text_zh"]) and version == current["consent_version_zh"]:
        return None, {}
    if text != _lines(current["consent_text_zh"]) and version == current["consent_version_zh"]:
        return None, {
            "consent_version_zh": gettext(
                "The consent notice changed: give it a new version, so each pairing "
                "records which notice the shopper agreed to."
            )
        }
    return {"text": text, "version": version}, {}


def save_consent(campaign: Campaign, consent: dict[str, str]) -> None:
    """Store the Chinese notice in the campaign's branding (its words per language)."""
    branding = _stored_branding(campaign)
    document = branding.dump()
    zh = document.setdefault("copy", {}).setdefault("zh", {})
    if consent["text"]:
        zh["consent_text"] = consent["text"]
    else:
        zh.pop("consent_text", None)
    zh["consent_version"] = consent["version"]
    save_branding(database(), campaign.id, Branding.model_validate(document))
    forget_branding(current_app._get_current_object(), campaign.id)  # type: ignore[attr-defined]


# -- embed snippet ----------------------------------------------------------------------

IFRAME_SNIPPET = """\
<iframe id="lueur-matcher" src="{embed_url}"
        title="Find your Lueur celebrity" width="100%" height="640" loading="lazy"></iframe>"""

SCRIPT_SNIPPET = """\
<script>
  // Size the matcher frame and react to the pairing. Trust only the matcher's origin.
  (function () {{
    var MATCHER_ORIGIN = "{origin}";
    var frame = document.getElementById("lueur-matcher");
    window.addEventListener("message", function (event) {{
      if (event.origin !== MATCHER_ORIGIN || event.source !== frame.contentWindow) {{ return; }}
      var data = event.data || {{}};
      if (data.type === "matcher:height" && typeof data.height === "number") {{
        frame.height = String(data.height);
      }} else if (data.type === "matcher:paired") {{
        // data.celebrity_id, data.percent (0-100) and data.lang ("en" or "zh-CN")
        document.dispatchEvent(new CustomEvent("lueur:paired", {{ detail: data }}));
      }} else if (data.type === "matcher:unsure") {{
        // Nobody was paired (data.reason says why); the frame asks the shopper for more.
        document.dispatchEvent(new CustomEvent("lueur:unsure", {{ detail: data }}));
      }}
    }});
  }})();
</script>"""


@bp.get("/embed")
def snippet() -> str:
    """The selected campaign's iframe and a host-side listener to copy into its microsite."""
    campaign = current_campaign()
    origin = request.host_url.rstrip("/")
    return render_template(
        "planner/snippet.html",
        iframe=IFRAME_SNIPPET.format(embed_url=_embed_url(campaign)),
        script=SCRIPT_SNIPPET.format(origin=origin),
        origin=origin,
        embed_origins=campaign_settings(campaign)["embed_origins"],
    )
