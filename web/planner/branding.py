"""A campaign's branding, set by a planner: words, colours, fonts, logo and portraits.

One form per campaign at ``/planner/branding``, every field optional (left
empty, the shopper pages use a neutral default made from the campaign's name
and brand). Fields are named by their place in the branding document
(``copy.zh.headline``, ``celebrities.chen-an.cta_url``), so each problem the
validation finds is shown next to its own field. Nothing is saved while any
field is wrong: the document and the uploaded images go together or not at
all. ``/planner/branding/preview`` shows a result page as a shopper would see
it, with the saved branding, before any shopper is paired.
"""

from __future__ import annotations

import re
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from pydantic import ValidationError
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response as BaseResponse

from matcher.errors import InputError
from matcher.profiles import Profile
from matcher.store.brand_images import (
    LOGO_KEY,
    BrandImage,
    delete_image,
    portrait_key,
    prepare_image,
    save_image,
)
from matcher.store.branding import FONT_STACKS, LANGUAGES, Branding, problems_of, save_branding
from matcher.text import has_controls

from ..branding import brand_of, current_brand, forget_branding, shopper_endpoint
from ..campaigns import current_campaign, current_matcher, database
from ..pairing import base_context, present
from .base import bp, lang_args

#: The copy fields of one language, in the order the form shows them.
COPY_FIELDS = ("headline", "intro", "prompt", "button", "result_heading", "cta_label", "share_text")
COLOURS = ("ink", "paper", "accent")


def roster_facets(profiles: list[Profile]) -> list[str]:
    """Every facet the roster's profiles use, in the order they first appear."""
    seen: list[str] = []
    for profile in profiles:
        for facet in profile.facets:
            if facet not in seen:
                seen.append(facet)
    return seen


def format_picks(groups: list[Any]) -> str:
    return "\n".join(f"{g.label}: {', '.join(g.picks)}" for g in groups)


def parse_picks(value: str) -> tuple[list[dict[str, Any]], str | None]:
    """``Label: pick, pick`` per line (a Chinese colon and 、 or ， too) into pick groups."""
    groups: list[dict[str, Any]] = []
    for number, line in enumerate(value.replace("\r\n", "\n").split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        found = re.match(r"^([^:：]*)[:：](.*)$", line)
        if not found or not found.group(1).strip():
            return [], gettext(
                "Line %(n)d: write each group as a label, a colon and its picks, "
                "such as Moods: calm, bold.",
                n=number,
            )
        label, rest = found.group(1), found.group(2)
        picks = [p.strip() for p in re.split(r"[,，、]", rest) if p.strip()]
        groups.append({"label": label.strip(), "picks": list(dict.fromkeys(picks))})
    return groups, None


def branding_form(branding: Branding, profiles: list[Profile], facets: list[str]) -> dict[str, str]:
    """The form as the page fills it: every field by its dotted name."""
    form: dict[str, str] = {"brand_name": branding.brand_name or ""}
    for colour in COLOURS:
        form[f"colours.{colour}"] = getattr(branding.colours, colour)
    form["heading_font"] = branding.heading_font
    form["body_font"] = branding.body_font
    for lang in LANGUAGES:
        copy = branding.copy_for(lang)
        for name in COPY_FIELDS:
            form[f"copy.{lang}.{name}"] = getattr(copy, name) or ""
        form[f"copy.{lang}.quick_picks"] = format_picks(copy.quick_picks)
    for facet in facets:
        for lang in LANGUAGES:
            form[f"facet_labels.{facet}.{lang}"] = branding.facet_labels.get(facet, {}).get(
                lang,  # type: ignore[call-overload]
                "",
            )
    for profile in profiles:
        own = branding.celebrity(profile.id)
        base = f"celebrities.{profile.id}"
        form[f"{base}.cta_url"] = own.cta_url or ""
        for lang in LANGUAGES:
            form[f"{base}.display_name.{lang}"] = own.display_name.get(lang, "")  # type: ignore[call-overload]
            for facet in profile.facets:
                form[f"{base}.lines.{facet}.{lang}"] = own.lines.get(facet, {}).get(lang, "")  # type: ignore[call-overload]
    return form


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value


def document_of(
    form: dict[str, str], profiles: list[Profile], keep: Branding
) -> tuple[dict[str, Any], dict[str, str]]:
    """The branding document the typed form describes, and a problem per field found so far.

    Empty fields are left out (the default applies); colours and fonts always count.
    """
    errors: dict[str, str] = {}
    document: dict[str, Any] = {}
    known = {p.id for p in profiles}
    for name, value in form.items():
        if has_controls(value):
            errors[name] = gettext("Remove the control characters (such as NUL) from this field.")
            continue
        value = value.replace("\r\n", "\n").strip()
        if not value:
            continue
        if name.endswith(".quick_picks"):
            groups, problem = parse_picks(value)
            if problem:
                errors[name] = problem
                continue
            _put(document, name, groups)
            continue
        if name.startswith("celebrities.") and name.split(".")[1] not in known:
            continue
        _put(document, name, value)
    # Celebrities that left the roster keep what was set for them.
    for celebrity, own in keep.celebrities.items():
        if celebrity not in known:
            document.setdefault("celebrities", {})[celebrity] = own.model_dump(
                mode="json", exclude_defaults=True
            )
    return document, errors


def field_of(path: str, fields: list[str]) -> str:
    """The form field a problem's path belongs to: the longest field name it starts with."""
    best = ""
    for name in fields:
        if (path == name or path.startswith(name + ".")) and len(name) > len(best):
            best = name
    return best or ("colours" if path.startswith("colours") else "form")


def _friendly(message: str) -> str:
    """The store's English problem, in the planner's language where we know it."""
    known = {
        "give a colour as #rrggbb, such as #8a5a2b": gettext(
            "Give a colour as #rrggbb, such as #8a5a2b."
        ),
        "give a full web address starting with https:// (or http://)": gettext(
            "Give a full web address starting with https:// (or http://)."
        ),
    }
    if message in known:
        return known[message]
    found = re.match(r"keep it to (\d+) characters at most", message)
    if found:
        return gettext("Keep it to %(n)d characters at most.", n=int(found.group(1)))
    if "contrast" in message or "accent colour" in message:
        return gettext("These colours are hard to read together (%(problem)s).", problem=message)
    return message


def _uploads(
    profiles: list[Profile],
) -> tuple[dict[str, BrandImage], set[str], dict[str, str]]:
    """The images sent with the form, checked; the images to remove; a problem per field."""
    images: dict[str, BrandImage] = {}
    removed: set[str] = set()
    errors: dict[str, str] = {}
    slots = {"logo": LOGO_KEY, **{f"portrait.{p.id}": portrait_key(p.id) for p in profiles}}
    for field, key in slots.items():
        upload: FileStorage | None = request.files.get(field)
        if request.form.get(f"remove.{field}") == "yes":
            removed.add(key)
        if upload is None or not upload.filename:
            continue
        data = upload.read()
        try:
            images[key] = prepare_image(data, logo=key == LOGO_KEY)
        except InputError as exc:
            errors[field] = _image_problem(str(exc))
    return images, removed, errors


def _image_problem(message: str) -> str:
    if "not a JPEG, PNG or WebP" in message:
        return gettext("This is not a JPEG, PNG or WebP image we can read.")
    if "too small" in message:
        return gettext(
            "This image is too small: send at least %(n)d pixels on each side.",
            n=int(
                re.search(r"at least (\d+)", message).group(1)  # type: ignore[union-attr]
            ),
        )
    if "MB" in message:
        return gettext("This file is too large: send at most 5 MB.")
    if "damaged" in message:
        return gettext("This image is damaged and cannot be read.")
    return message


@bp.route("/branding", methods=["GET", "POST"])
def branding() -> BaseResponse | tuple[str, int]:
    """The selected campaign's branding: what its shopper pages say and how they look."""
    campaign = current_campaign()
    profiles = list(current_matcher().index.profiles)
    facets = roster_facets(profiles)
    brand = current_brand()
    form = branding_form(brand.branding, profiles, facets)
    errors: dict[str, str] = {}
    if request.method == "POST":
        typed = {name: request.form.get(name, "") for name in form}
        document, errors = document_of(typed, profiles, brand.branding)
        images, removed, image_errors = _uploads(profiles)
        errors.update(image_errors)
        checked = None
        try:
            checked = Branding.model_validate(document)
        except ValidationError as exc:
            for path, problem in problems_of(exc).items():
                errors.setdefault(field_of(path, list(form)), _friendly(problem))
        if not errors and checked is not None:
            db = database()
            save_branding(db, campaign.id, checked)
            for key in removed - set(images):
                delete_image(db, campaign.id, key)
            for key, image in images.items():
                save_image(db, campaign.id, key, image)
            forget_branding(current_app._get_current_object(), campaign.id)  # type: ignore[attr-defined]
            flash(gettext("Branding saved: the shopper pages show it now."))
            return redirect(url_for("planner.branding", **lang_args()), 303)
        form = typed
    return render_template(
        "planner/branding.html",
        form=form,
        errors=errors,
        profiles=profiles,
        facets=facets,
        languages=LANGUAGES,
        fonts=list(FONT_STACKS),
        images=brand.images,
        brand=None,
        shopper_url=url_for(shopper_endpoint("form")),
        labels={f: brand.facet_label(f) or f for f in facets},
        open_ids={k.split(".")[1] for k in errors if k.startswith(("celebrities.", "portrait."))},
    ), 400 if errors else 200


@bp.get("/branding/preview")
def branding_preview() -> str:
    """A result page as a shopper would see it, for one celebrity, with the saved branding."""
    profiles = list(current_matcher().index.profiles)
    chosen = request.args.get("celebrity") or (profiles[0].id if profiles else "")
    profile = next((p for p in profiles if p.id == chosen), None)
    if profile is None:
        abort(404)
    campaign = current_campaign()
    brand = current_brand()
    brand = brand_of(campaign, brand.lang, frozenset(p.id for p in profiles))
    facets = tuple(list(profile.facets)[:2])
    others = [p for p in profiles if p.id != profile.id][:2]
    result = [present(brand, profile, 46, facets, "form")]
    result += [present(brand, other, 21, (), "form") for other in others]
    return render_template(
        "shopper/result.html",
        **base_context(brand),
        result=result,
        owner=None,
        assignment=None,
        share_url=None,
        share_image=None,
        again_url=url_for(shopper_endpoint("form"), lang=brand.lang),
        preview=True,
    )
