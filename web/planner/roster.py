"""The roster page, trying a shopper text against the whole ranking, and correcting a pairing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import (
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext
from werkzeug.wrappers import Response as BaseResponse

from matcher.errors import InputError, MatcherError, ProfileError
from matcher.feedback import add_correction
from matcher.matching import Matcher
from matcher.profiles import Profile, load_profiles
from matcher.store import (
    DEFAULT_SLUG,
    Campaign,
)
from matcher.text import has_controls, is_unicode

from ..campaigns import (
    current_campaign,
    refresh_campaign,
    roster_path,
)
from ..hints import hint
from ..pairing import current_matcher
from ..security import check_form_post
from .base import CLOSE_CALL, bp, lang_args


@dataclass(frozen=True)
class RosterEntry:
    """A celebrity as the roster page shows it."""

    profile: Profile
    #: "live", "inactive", "changed" (edited since the index was built), "new" or "removed".
    state: str
    corrections: int

    @property
    def facets(self) -> list[tuple[str, str, str | None]]:
        """(facet, English text, Chinese text or None), in the planner's order."""
        return [
            (name, text, self.profile.facets_zh.get(name))
            for name, text in self.profile.facets.items()
        ]


def roster_entries(matcher: Matcher, folder: str | Path) -> tuple[list[RosterEntry], str | None]:
    """The roster folder as it is on disk, compared with what the live index matches against.

    Returns:
        The entries, and the roster's problems when the folder cannot be loaded
        (then the entries are the profiles matching now).
    """
    live = {profile.id: profile for profile in matcher.index.profiles}
    try:
        roster = load_profiles(folder)
    except ProfileError as exc:
        return [RosterEntry(p, "live", 0) for p in live.values()], str(exc)
    corrected = roster.corrected_examples()
    entries = []
    for profile in roster.profiles:
        if not profile.active:
            state = "inactive"
        elif profile.id not in live:
            state = "new"
        elif live[profile.id] != profile:
            state = "changed"
        else:
            state = "live"
        entries.append(RosterEntry(profile, state, len(corrected.get(profile.id, ()))))
    on_disk = {profile.id for profile in roster.profiles}
    entries += [RosterEntry(p, "removed", 0) for p in live.values() if p.id not in on_disk]
    return entries, None


def roster_folder(campaign: Campaign, *, checked: bool = False) -> str:
    """The campaign's roster folder; the default campaign's is the one the server started on.

    Args:
        checked: the folder is about to be read or written (the roster page,
            a correction): refuse one outside ``MATCHER_ROSTERS_DIR``. Showing
            it, or erasing a shopper's copies from it, needs no check.

    Raises:
        ConfigError: ``checked`` and the folder is outside the rosters root.
    """
    if campaign.slug == DEFAULT_SLUG:
        return str(current_app.config["MATCHER_PROFILES"])
    return str(roster_path(campaign.profiles_dir)) if checked else campaign.profiles_dir


@bp.get("/")
def roster() -> str:
    folder = roster_folder(current_campaign(), checked=True)
    entries, problems = roster_entries(current_matcher(), folder)
    return render_template("planner/roster.html", entries=entries, problems=problems)


@bp.post("/refresh")
def refresh() -> BaseResponse | tuple[str, int]:
    check_form_post()
    campaign = current_campaign()
    try:
        refresh_campaign(campaign)
    except MatcherError as exc:
        entries, _ = roster_entries(current_matcher(), roster_folder(campaign, checked=True))
        page = render_template("planner/roster.html", entries=entries, problems=str(exc))
        return page, 409
    flash(gettext("The index was refreshed: matching now uses the roster folder as it is."))
    return redirect(url_for("planner.roster", **lang_args()), 303)


# -- try a shopper and correct ----------------------------------------------------------


def _text_error(text: str) -> str | None:
    stripped = text.strip()
    if not stripped:
        return gettext("Write a shopper text first.")
    if len(stripped) > current_matcher().max_chars:
        return gettext(
            "That is too long: keep it under %(n)d characters.", n=current_matcher().max_chars
        )
    if has_controls(stripped) or not is_unicode(stripped):
        return gettext("The text holds characters that are not plain text (such as NUL).")
    return None


def _try_page(text: str, notice: str | None = None, error: str | None = None) -> str:
    matcher = current_matcher()
    ranking = None
    unsure = None
    if text.strip() and error is None:
        ranking = matcher.match(text, matcher.roster_size)
        verdict = matcher.assess(text.strip(), ranking)
        if not verdict.confident:
            unsure = {"reason": str(verdict.reason), "hint": hint(verdict.reason)}
    return render_template(
        "planner/try.html",
        text=text,
        ranking=ranking,
        unsure=unsure,
        error=error,
        notice=notice,
        close_call=CLOSE_CALL,
        max_chars=matcher.max_chars,
    )


@bp.route("/try", methods=["GET", "POST"])
def try_text() -> tuple[str, int]:
    """The try box: a text in, every celebrity out with score, share, margin and reasons."""
    if request.method == "GET":
        return _try_page(""), 200
    check_form_post()
    text = request.form.get("text", "")
    error = _text_error(text)
    return _try_page(text, error=error), 400 if error else 200


@bp.post("/corrections")
def correct() -> tuple[str, int]:
    """Save "this text belongs to that celebrity" with the roster, then refresh the index."""
    check_form_post()
    text = request.form.get("text", "")
    right = request.form.get("right", "")
    wrong = request.form.get("wrong") or None
    matcher = current_matcher()
    names = {p.id: p.name for p in matcher.index.profiles}
    error = _text_error(text)
    if error is None and right not in names:
        error = gettext("Choose the celebrity this text should have been paired with.")
    elif error is None and wrong is not None and wrong not in names:
        error = gettext("The wrong pairing names a celebrity who is not in the roster.")
    elif error is None and right == wrong:
        error = gettext("Choose a celebrity other than the one the text was paired with.")
    if error is not None:
        return _try_page(text, error=error), 400
    campaign = current_campaign()
    try:
        folder = roster_folder(campaign, checked=True)
        add_correction(folder, text, right, names.keys(), wrong=wrong)
    except InputError as exc:
        return _try_page(text, error=str(exc)), 400
    try:
        refresh_campaign(campaign)
    except MatcherError as exc:
        notice = gettext(
            "Saved. The correction will apply after the next index refresh; "
            "refreshing now failed: %(problem)s",
            problem=str(exc),
        )
    else:
        notice = gettext(
            "Saved: this text now pairs with %(name)s. The correction applies to new "
            "matches right away and also steers similar texts.",
            name=names[right],
        )
    return _try_page(text, notice=notice), 200


# -- batches ----------------------------------------------------------------------------
