"""The roster page, its history, trying a shopper text against the whole ranking, and
correcting a pairing (a new published version holding the correction).

Editing celebrities, the draft, its preview and publishing are in :mod:`.roster_edit`.
"""

from __future__ import annotations

from dataclasses import dataclass

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

from matcher.errors import InputError, MatcherError
from matcher.feedback import new_correction
from matcher.matching import Matcher
from matcher.profiles import Profile
from matcher.store import (
    DEFAULT_SLUG,
    Campaign,
)
from matcher.store.rosters import (
    Draft,
    RosterVersion,
    draft,
    history,
    import_folder,
    publish,
    published,
)
from matcher.text import has_controls, is_unicode

from ..campaigns import (
    current_campaign,
    database,
    refresh_campaign,
    roster_path,
    rosters_root,
)
from ..hints import hint
from ..pairing import current_matcher
from ..security import check_form_post
from .base import CLOSE_CALL, bp, lang_args, logged_in_user


@dataclass(frozen=True)
class RosterEntry:
    """A celebrity as the roster page shows it."""

    profile: Profile
    #: "live", "inactive"; against the published version when a draft is shown:
    #: "new", "changed" (edited in the draft), "deactivated" or "removed".
    state: str
    corrections: int

    @property
    def facets(self) -> list[tuple[str, str, str | None]]:
        """(facet, English text, Chinese text or None), in the planner's order."""
        return [
            (name, text, self.profile.facets_zh.get(name))
            for name, text in self.profile.facets.items()
        ]


def roster_entries(
    version: RosterVersion | None, edited: Draft | None, matcher: Matcher
) -> list[RosterEntry]:
    """The published roster (or the draft, against the published one) as the page lists it.

    Before anything is published (a handed-in matcher), the profiles matching now.
    """
    if version is None:
        return [RosterEntry(p, "live", 0) for p in matcher.index.profiles]
    corrected = version.roster().corrected_examples()
    live = {p.id: p for p in version.profiles}
    if edited is None:
        return [
            RosterEntry(p, "live" if p.active else "inactive", len(corrected.get(p.id, ())))
            for p in version.profiles
        ]
    entries = []
    for profile in edited.profiles:
        before = live.get(profile.id)
        if before is None:
            state = "new"
        elif before.active and not profile.active:
            state = "deactivated"
        elif before != profile:
            state = "changed"
        else:
            state = "live" if profile.active else "inactive"
        entries.append(RosterEntry(profile, state, len(corrected.get(profile.id, ()))))
    kept = {p.id for p in edited.profiles}
    entries += [RosterEntry(p, "removed", 0) for p in version.profiles if p.id not in kept]
    return entries


def roster_folder(campaign: Campaign, *, checked: bool = False) -> str:
    """The campaign's roster folder; the default campaign's is the one the server started on.

    Args:
        checked: the folder is about to be read (an import): refuse one outside
            ``MATCHER_ROSTERS_DIR``. Showing it, or erasing a shopper's copies
            from it, needs no check.

    Raises:
        ConfigError: ``checked`` and the folder is outside the rosters root.
    """
    if campaign.slug == DEFAULT_SLUG:
        return str(current_app.config["MATCHER_PROFILES"])
    return str(roster_path(campaign.profiles_dir)) if checked else campaign.profiles_dir


def _roster_page(problems: str | None = None) -> str:
    campaign = current_campaign()
    matcher = current_matcher()
    db = database()
    version = published(db, campaign.id)
    edited = draft(db, campaign.id)
    return render_template(
        "planner/roster.html",
        entries=roster_entries(version, edited, matcher),
        version=version,
        draft=edited,
        problems=problems,
        folder=roster_folder(campaign),
    )


@bp.get("/")
def roster() -> str:
    return _roster_page()


@bp.post("/refresh")
def refresh() -> BaseResponse | tuple[str, int]:
    """Publish the roster folder as it is on the server (after editing its files)."""
    check_form_post()
    campaign = current_campaign()
    try:
        folder = roster_folder(campaign, checked=True)
        within = None if campaign.slug == DEFAULT_SLUG else rosters_root()
        new = import_folder(
            database(),
            campaign.id,
            folder,
            within=within,
            author=logged_in_user() or "planner",
            note=gettext("Imported from the roster folder"),
        )
        refresh_campaign(campaign)
    except MatcherError as exc:
        return _roster_page(problems=str(exc)), 409
    if new is None:
        flash(gettext("The roster folder holds what is published already: nothing changed."))
    else:
        flash(
            gettext(
                "Version %(number)d is published from the roster folder: "
                "every server serves it within seconds.",
                number=new.number,
            )
        )
    return redirect(url_for("planner.roster", **lang_args()), 303)


@bp.get("/history")
def roster_history() -> str:
    """Every published version: who, when, why, and what changed."""
    campaign = current_campaign()
    return render_template("planner/roster_history.html", versions=history(database(), campaign.id))


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
    """Publish "this text belongs to that celebrity" with the roster, then serve it.

    The planner chooses the celebrity (nothing is preselected) and confirms.
    """
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
    if error is None and request.form.get("confirm") != "yes":
        error = gettext("Tick the box to confirm the correction: nothing was saved.")
    if error is not None:
        return _try_page(text, error=error), 400
    campaign = current_campaign()
    db = database()
    version = published(db, campaign.id)
    if version is None:
        return _try_page(text, error=gettext("This campaign has no published roster yet.")), 409
    try:
        correction = new_correction(text, right, [p.id for p in version.profiles], wrong=wrong)
    except InputError as exc:
        return _try_page(text, error=str(exc)), 400
    publish(
        db,
        campaign.id,
        version.profiles,
        corrections=(*version.corrections, correction),
        author=logged_in_user() or "planner",
        note=gettext("A correction from the try page"),
    )
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
