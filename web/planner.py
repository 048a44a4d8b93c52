"""The planner area at ``/planner``: behind a login, off until a password is configured.

Planners manage the instance's campaigns, check a campaign's roster, try a
shopper text against the whole ranking, correct a wrong pairing, match a whole
file of shoppers in the background, follow the stored pairings on a dashboard
(and export them), edit a campaign's settings and answer shoppers' privacy
requests.

- Login: one account from configuration (``MATCHER_PLANNER_USER`` and
  ``MATCHER_PLANNER_PASSWORD``, plain or a werkzeug hash), kept in Flask's
  signed session cookie. The area is never framed, so the cookie is
  first-party; every POST still carries a form token (``security.py``). A
  session ends at logout, after :data:`SESSION_HOURS`, or when the configured
  credentials change. Failed logins are counted per client address and
  refused for a while past :data:`MAX_FAILED_LOGINS`.
- Campaigns: every page acts on the campaign named by ``?campaign=`` (the
  default campaign without it); links and redirects within the area keep it.
- Batches run in :mod:`web.jobs`, which keeps their state in the instance
  folder, so every server worker shows the same jobs and downloads. The
  dashboard reads the pairings stored in the database (:mod:`matcher.store`);
  charts are drawn by :mod:`web.charts`.
- Shopper text is never logged here, nor shown: bad rows are shown as line and
  reason, exports of pairings leave the text out, and shopper references travel
  in POST bodies, not in URLs.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    session,
    stream_with_context,
    url_for,
)
from flask_babel import gettext
from pydantic import ValidationError
from werkzeug.security import check_password_hash
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response as BaseResponse

from matcher.batch import check_input, escape_cell, input_format
from matcher.errors import BatchInputError, ConfigError, InputError, MatcherError, ProfileError
from matcher.feedback import add_correction
from matcher.matching import DEFAULT_TOP_K, Matcher
from matcher.profiles import Profile, load_profiles
from matcher.store import (
    DEFAULT_SLUG,
    Campaign,
    CampaignSettings,
    PairingFilter,
    create_campaign,
    find_campaign,
    list_campaigns,
    update_campaign,
)
from matcher.store.campaigns import SLUG_PATTERN
from matcher.store.pairings import (
    EXPORT_COLUMNS,
    celebrity_totals,
    count_pairings,
    daily_counts,
    export_rows,
    score_bins,
)
from matcher.store.privacy import delete_shopper, export_shopper, purge_expired

from . import charts
from .campaigns import (
    batch_store,
    campaign_settings,
    current_campaign,
    database,
    forget,
    lookup,
    refresh_campaign,
)
from .errors import ApiError
from .hints import hint
from .i18n import LANGUAGES, select_locale
from .jobs import DEFAULT_TTL, SCORE_BIN_WIDTH, JobRegistry, Status
from .pairing import current_matcher, facet_label
from .security import check_form_post
from .settings import DEFAULT_QUICK_PICKS, parse_origins

bp = Blueprint("planner", __name__, url_prefix="/planner")

#: A login lasts a working day.
SESSION_HOURS = 12
#: Failed logins from one address within :data:`LOGIN_WINDOW` seconds before it is refused.
MAX_FAILED_LOGINS = 10
LOGIN_WINDOW = 10 * 60
#: werkzeug's hash formats; any other configured password is plain text.
HASH_PREFIXES = ("scrypt:", "pbkdf2:")
#: A top-1 lead smaller than this is flagged as a close call in the try box.
CLOSE_CALL = 0.02
#: Limits on the quick picks a planner may set, so the shopper form stays usable.
MAX_PICKS = 20
MAX_PICK_CHARS = 40
MAX_COLUMN_CHARS = 100

JOBS_KEY = "matcher.planner_jobs"
THROTTLE_KEY = "matcher.planner_login_throttle"


# -- login ------------------------------------------------------------------------------


def password_matches(given: str, configured: str) -> bool:
    """Compare a typed password with the configured one, in constant time.

    A configured value starting with ``scrypt:`` or ``pbkdf2:`` is a werkzeug
    hash (``flask --app web generate-password-hash`` or
    ``werkzeug.security.generate_password_hash``); anything else is plain text.
    """
    if configured.startswith(HASH_PREFIXES):
        return check_password_hash(configured, given)
    return hmac.compare_digest(given.encode("utf-8"), configured.encode("utf-8"))


def _credentials_stamp(app: Flask) -> str:
    """A keyed digest of the configured credentials, so changing them ends every session.

    Keyed with the secret key: the cookie is signed, not encrypted, and must
    not carry anything that helps guess the password.
    """
    secret = str(app.secret_key or "").encode("utf-8")
    account = f"{app.config['MATCHER_PLANNER_USER']}\0{app.config['MATCHER_PLANNER_PASSWORD']}"
    return hmac.new(secret, account.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def logged_in_user() -> str | None:
    login = session.get("planner")
    if not isinstance(login, dict):
        return None
    fresh = time.time() - float(login.get("at", 0)) < SESSION_HOURS * 3600
    if fresh and login.get("stamp") == _credentials_stamp(current_app):
        user = login.get("user")
        return user if isinstance(user, str) else None
    return None


class LoginThrottle:
    """Counts failed logins per client address; refuses an address past the limit.

    Per process and per address: cheap, and enough to make guessing slow. Behind
    a proxy, make ``request.remote_addr`` the client's address (werkzeug's
    ``ProxyFix``), or every planner shares one count.
    """

    def __init__(self, limit: int = MAX_FAILED_LOGINS, window: float = LOGIN_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        return failures

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        now = time.time() if now is None else now
        with self._lock:
            failures = self._recent(key, now)
            if len(failures) < self.limit:
                return 0
            return max(1, int(failures[0] + self.window - now) + 1)

    def fail(self, key: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._recent(key, now).append(now)
            if len(self._failures) > 10_000:
                # Many addresses: forget those whose failures have all aged out.
                stale = [k for k in self._failures if not self._recent(k, now)]
                for k in stale:
                    del self._failures[k]

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


def login_throttle(app: Flask) -> LoginThrottle:
    throttle: LoginThrottle = app.extensions.setdefault(THROTTLE_KEY, LoginThrottle())
    return throttle


def job_registry(app: Flask) -> JobRegistry:
    """This worker's view of the batch jobs, made on first use.

    Every worker's registry works on the same folder under the instance path,
    so a job is seen by all of them whichever one runs it.
    """
    registry = app.extensions.get(JOBS_KEY)
    if registry is None:
        ttl = float(app.config.get("MATCHER_PLANNER_BATCH_TTL", DEFAULT_TTL))
        fresh = JobRegistry(Path(app.instance_path) / "planner-batches", ttl=ttl)
        registry = app.extensions.setdefault(JOBS_KEY, fresh)
    assert isinstance(registry, JobRegistry)
    return registry


def _lang_args() -> dict[str, Any]:
    """Keep an explicitly chosen language across redirects."""
    chosen = request.args.get("lang") or request.form.get("lang")
    return {"lang": chosen} if chosen in LANGUAGES else {}


def _safe_next(target: str | None) -> str | None:
    """Only a path inside the planner area: never another site, never a ``//host`` URL."""
    prefix = f"{bp.url_prefix}/"
    if not target or not target.startswith(prefix) or "\\" in target or "//" in target:
        return None
    return target


@bp.before_request
def require_login() -> BaseResponse | None:
    if not current_app.config["MATCHER_PLANNER_PASSWORD"]:
        raise ApiError(
            503,
            "planner_off",
            "The planner area is off: set MATCHER_PLANNER_PASSWORD to turn it on.",
        )
    job_registry(current_app).sweep_if_due()
    if request.endpoint == "planner.login" or logged_in_user() is not None:
        return None
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("planner.login", next=target, **_lang_args()))


#: Pages that are the same whichever campaign is selected, and do not carry it.
CAMPAIGN_FREE = frozenset({"planner.login", "planner.logout"})


@bp.before_request
def select_campaign() -> None:
    """Point the request at the campaign in ``?campaign=`` (the default one without it).

    Runs after the login check, so only a planner learns which campaigns exist.
    """
    if request.endpoint in CAMPAIGN_FREE:
        return
    slug = request.args.get("campaign", "").strip() or DEFAULT_SLUG
    if not re.fullmatch(SLUG_PATTERN, slug) or lookup(slug) is None:
        raise ApiError(
            404,
            "unknown_campaign",
            gettext(
                "There is no campaign %(slug)s. Choose one of the campaigns listed at %(url)s.",
                slug=slug[:60],
                url=url_for("planner.campaigns", campaign=None),
            ),
        )
    g.campaign_slug = slug


@bp.url_defaults
def keep_campaign(endpoint: str, values: dict[str, Any]) -> None:
    """Links and redirects within the area stay on the selected campaign.

    Pass ``campaign=None`` to build a link without it (the default campaign).
    """
    slug = g.get("campaign_slug")
    if slug and slug != DEFAULT_SLUG and endpoint not in CAMPAIGN_FREE:
        values.setdefault("campaign", slug)


@bp.after_request
def no_store(response: Response) -> Response:
    # Rankings, corrections and pairings are not for shared caches or the back button.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def planner_context() -> dict[str, Any]:
    user = logged_in_user()
    selected = None
    choices: list[Campaign] = []
    if user is not None and g.get("campaign_slug"):
        selected = current_campaign()
        choices = list_campaigns(database())
    return {
        "planner_user": user,
        "facet_label": facet_label,
        "campaign": selected,
        "campaign_choices": choices,
    }


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int]:
    """The login form; a good login goes on to ``next`` (a planner page) or the roster."""
    target = _safe_next(request.values.get("next"))
    error = None
    status = 200
    if request.method == "POST":
        check_form_post()
        throttle = login_throttle(current_app)
        client = request.remote_addr or "unknown"
        wait = throttle.retry_after(client)
        user = request.form.get("user", "")
        password = request.form.get("password", "")
        if wait:
            error = gettext(
                "Too many failed logins. Try again in %(minutes)d minutes.",
                minutes=max(1, -(-wait // 60)),
            )
            page = render_template("planner/login.html", error=error, next=target, user=user)
            return page, 429
        config = current_app.config
        user_ok = hmac.compare_digest(
            user.encode("utf-8"), str(config["MATCHER_PLANNER_USER"]).encode("utf-8")
        )
        password_ok = password_matches(password, str(config["MATCHER_PLANNER_PASSWORD"]))
        if user_ok and password_ok:
            throttle.clear(client)
            session.clear()
            session["planner"] = {
                "user": user,
                "stamp": _credentials_stamp(current_app),
                "at": time.time(),
            }
            return redirect(target or url_for("planner.roster", **_lang_args()), 303)
        throttle.fail(client)
        error = gettext("That user name and password do not match.")
        status = 403
    return render_template(
        "planner/login.html", error=error, next=target, user=request.form.get("user", "")
    ), status


@bp.post("/logout")
def logout() -> BaseResponse:
    check_form_post()
    session.pop("planner", None)
    flash(gettext("You are logged out."))
    return redirect(url_for("planner.login", **_lang_args()), 303)


# -- roster -----------------------------------------------------------------------------


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


def roster_folder(campaign: Campaign) -> str:
    """The campaign's roster folder; the default campaign's is the one the server started on."""
    if campaign.slug == DEFAULT_SLUG:
        return str(current_app.config["MATCHER_PROFILES"])
    return campaign.profiles_dir


@bp.get("/")
def roster() -> str:
    entries, problems = roster_entries(current_matcher(), roster_folder(current_campaign()))
    return render_template("planner/roster.html", entries=entries, problems=problems)


@bp.post("/refresh")
def refresh() -> BaseResponse | tuple[str, int]:
    check_form_post()
    campaign = current_campaign()
    try:
        refresh_campaign(campaign)
    except MatcherError as exc:
        entries, _ = roster_entries(current_matcher(), roster_folder(campaign))
        page = render_template("planner/roster.html", entries=entries, problems=str(exc))
        return page, 409
    flash(gettext("The index was refreshed: matching now uses the roster folder as it is."))
    return redirect(url_for("planner.roster", **_lang_args()), 303)


# -- try a shopper and correct ----------------------------------------------------------


def _text_error(text: str) -> str | None:
    stripped = text.strip()
    if not stripped:
        return gettext("Write a shopper text first.")
    if len(stripped) > current_matcher().max_chars:
        return gettext(
            "That is too long: keep it under %(n)d characters.", n=current_matcher().max_chars
        )
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
        add_correction(roster_folder(campaign), text, right, names.keys(), wrong=wrong)
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


def _column_error(value: str) -> str | None:
    if not value or len(value) > MAX_COLUMN_CHARS:
        return gettext("Give a column name of 1 to %(n)d characters.", n=MAX_COLUMN_CHARS)
    return None


def _batches_page(form: dict[str, Any], errors: dict[str, str]) -> str:
    registry = job_registry(current_app)
    return render_template(
        "planner/batches.html",
        jobs=registry.jobs(),
        form=form,
        errors=errors,
        roster_size=current_matcher().roster_size,
        ttl_minutes=max(1, round(registry.ttl / 60)),
    )


@bp.route("/batches", methods=["GET", "POST"])
def batches() -> BaseResponse | tuple[str, int]:
    """Upload a shopper file; matching starts in the background and the job page follows it.

    Once the whole file is matched, its pairings are stored for the selected
    campaign, in one transaction (without the shoppers' texts).
    """
    form: dict[str, Any] = {"top_k": DEFAULT_TOP_K, "id_column": "id", "text_column": "text"}
    if request.method == "GET":
        return _batches_page(form, {}), 200
    check_form_post()
    matcher = current_matcher()
    errors: dict[str, str] = {}
    for column in ("id_column", "text_column"):
        form[column] = request.form.get(column, form[column]).strip()
        problem = _column_error(form[column])
        if problem:
            errors[column] = problem
    raw_k = request.form.get("top_k", str(DEFAULT_TOP_K)).strip()
    form["top_k"] = raw_k
    k = DEFAULT_TOP_K
    try:
        k = int(raw_k)
        if not 1 <= k <= matcher.roster_size:
            raise ValueError(raw_k)
    except ValueError:
        errors["top_k"] = gettext("Choose a whole number from 1 to %(n)d.", n=matcher.roster_size)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        errors["file"] = gettext("Choose a CSV or JSON Lines file of shoppers.")
    else:
        try:
            input_format(upload.filename)
        except BatchInputError:
            errors["file"] = gettext("Use a .csv, .tsv, .jsonl or .ndjson file of shoppers.")
    if errors or upload is None or upload.filename is None:
        return _batches_page(form, errors), 400
    registry = job_registry(current_app)
    job_id, input_path, output_path = registry.paths(Path(upload.filename).suffix)
    upload.save(input_path)
    try:
        check_input(input_path, id_column=form["id_column"], text_column=form["text_column"])
    except BatchInputError as exc:
        input_path.unlink(missing_ok=True)
        errors["file"] = gettext("This file cannot be used: %(problem)s", problem=str(exc))
        return _batches_page(form, errors), 400
    registry.submit(
        matcher,
        job_id,
        input_path,
        output_path,
        filename=upload.filename[:120],
        k=k,
        id_column=form["id_column"],
        text_column=form["text_column"],
        store=batch_store(current_campaign(), matcher),
    )
    return redirect(url_for("planner.job", job_id=job_id, **_lang_args()), 303)


def _missing_job() -> ApiError:
    # Malformed ids get the same answer: the registry never turns them into paths.
    return ApiError(
        404,
        "no_such_batch",
        gettext(
            "There is no such batch: the link may be wrong, or the batch is old and "
            "no longer listed. Upload the file again."
        ),
    )


@bp.get("/batches/<job_id>")
def job(job_id: str) -> str:
    """Progress while running (the page reloads itself), then the download and the bad rows."""
    found = job_registry(current_app).get(job_id)
    if found is None:
        raise _missing_job()
    return render_template("planner/job.html", job=found)


@bp.get("/batches/<job_id>/pairings.csv")
def download(job_id: str) -> Response:
    """The pairings, once: the file is deleted as the download starts.

    Any worker can serve it; if two race for it, one sends the file and the
    other answers 410.
    """
    registry = job_registry(current_app)
    found = registry.get(job_id)
    if found is None:
        raise _missing_job()
    if not found.finished:
        raise ApiError(409, "batch_running", gettext("This batch is still running."))
    if found.status is Status.FAILED:
        raise ApiError(
            409,
            "batch_failed",
            gettext("This batch failed, so it has no pairings. Upload the file again."),
        )
    handle = registry.take_output(job_id)  # send_file closes it
    if handle is None:
        raise ApiError(
            410,
            "pairings_gone",
            gettext(
                "These pairings were already downloaded or have expired. Upload the file again."
            ),
        )
    stem = secure_filename(Path(found.filename).stem) or "shoppers"
    return send_file(
        handle,
        mimetype="text/csv",
        as_attachment=True,
        download_name=f"{stem}-pairings.csv",
    )


# -- dashboard --------------------------------------------------------------------------

#: The dashboard's choice of campaigns: the selected one, or every campaign.
SCOPES = ("campaign", "all")
#: The per-day chart covers the filter's days up to this many; beyond, the days with pairings.
MAX_CHART_DAYS = 366


@dataclass(frozen=True)
class Report:
    """Which pairings the dashboard and the export cover, as typed and as a store filter."""

    form: dict[str, str]
    errors: dict[str, str]
    where: PairingFilter

    @property
    def everywhere(self) -> bool:
        return self.form["scope"] == "all"


def _day(value: str) -> date:
    """A day typed as YYYY-MM-DD (what ``<input type="date">`` sends)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(value)
    return date.fromisoformat(value)


def report_filter(campaign: Campaign) -> Report:
    """The dashboard's filters from the query string: scope, ``since`` and ``until`` (UTC days)."""
    form = {
        "scope": request.args.get("scope", "campaign"),
        "since": request.args.get("since", "").strip(),
        "until": request.args.get("until", "").strip(),
    }
    errors: dict[str, str] = {}
    if form["scope"] not in SCOPES:
        errors["scope"] = gettext("Choose this campaign or all campaigns.")
    days: dict[str, date | None] = {"since": None, "until": None}
    for name in days:
        if form[name]:
            try:
                days[name] = _day(form[name])
            except ValueError:
                errors[name] = gettext("Give a date as YYYY-MM-DD, such as 2025-03-31.")
    since, until = days["since"], days["until"]
    if since is not None and until is not None and since > until:
        errors["until"] = gettext("The last day comes before the first day.")
    where = PairingFilter(
        campaign_id=None if form["scope"] == "all" else campaign.id, since=since, until=until
    )
    return Report(form, errors, where)


def celebrity_labels(matcher: Matcher) -> dict[str, str]:
    """Celebrities' names in the planner's language, in roster order."""
    chinese = select_locale() == "zh"
    return {p.id: p.name_zh if chinese else p.name for p in matcher.index.profiles}


@bp.get("/dashboard")
def dashboard() -> tuple[str, int]:
    """The stored pairings: per celebrity, per day and by top score, for the chosen filters."""
    campaign = current_campaign()
    report = report_filter(campaign)
    context: dict[str, Any] = {"report": report, "total": 0}
    if report.errors:
        return render_template("planner/dashboard.html", **context), 400
    db = database()
    total = count_pairings(db, report.where)
    context["total"] = total
    if not total:
        return render_template("planner/dashboard.html", **context), 200
    labels = celebrity_labels(current_matcher())
    counts = celebrity_totals(db, report.where)
    # The selected campaign's roster, in order (zeros included); then any other celebrity
    # paired (another campaign's, or one since removed from the roster), by id.
    per_celebrity = [charts.Bar(key, label, counts.get(key, 0)) for key, label in labels.items()]
    per_celebrity += [
        charts.Bar(key, key, count) for key, count in sorted(counts.items()) if key not in labels
    ]
    daily = daily_counts(db, report.where)
    used = [day for day, _, count in daily if count]
    first, last = report.where.since or min(used), report.where.until or max(used)
    if (last - first).days >= MAX_CHART_DAYS:
        # A far-off bound (a typo, or "since 2000"): draw the days that have pairings.
        first, last = min(used), max(used)
    days, series = charts.per_day(daily, labels, first=first, last=last)
    bins = charts.score_bins(score_bins(db, report.where, SCORE_BIN_WIDTH), SCORE_BIN_WIDTH)
    context.update(
        per_celebrity=per_celebrity,
        days=days,
        series=series,
        day_totals=[sum(one.values[n] for one in series) for n in range(len(days))],
        bins=bins,
        bar_svg=charts.bar_chart(
            per_celebrity,
            chart_id="chart-celebrities",
            title=gettext("Pairings per celebrity"),
            description=gettext(
                "How many of the %(n)d pairings went to each celebrity.",
                n=total,
            ),
        ),
        days_svg=charts.stacked_days(
            days,
            series,
            chart_id="chart-days",
            title=gettext("Pairings per day"),
            description=gettext(
                "Pairings on each day from %(first)s to %(last)s (UTC), "
                "one column per day, stacked by celebrity: %(legend)s.",
                first=days[0].isoformat() if days else "",
                last=days[-1].isoformat() if days else "",
                legend=", ".join(f"{s.label} {s.total}" for s in series),
            ),
        ),
        histogram_svg=charts.histogram(
            bins,
            chart_id="chart-scores",
            title=gettext("Top-1 scores"),
            description=gettext(
                "How many shoppers' best match scored in each band of %(width).2f.",
                width=SCORE_BIN_WIDTH,
            ),
        ),
    )
    return render_template("planner/dashboard.html", **context), 200


def _report_filename(campaign: Campaign, report: Report) -> str:
    parts = ["pairings", "all-campaigns" if report.everywhere else campaign.slug]
    if report.where.since is not None:
        parts.append(f"from-{report.where.since.isoformat()}")
    if report.where.until is not None:
        parts.append(f"to-{report.where.until.isoformat()}")
    return "-".join(parts) + ".csv"


@bp.get("/pairings.csv")
def export_pairings() -> Response:
    """The dashboard's pairings as CSV, streamed: one row per pairing, never the shopper's text.

    Every cell is escaped against spreadsheet formulas, as in batch downloads.
    """
    campaign = current_campaign()
    report = report_filter(campaign)
    if report.errors:
        raise ApiError(400, "bad_filter", " ".join(report.errors.values()))
    db = database()

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        for number, row in enumerate(export_rows(db, report.where), start=1):
            writer.writerow([escape_cell(cell) for cell in row])
            if number % 500 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{_report_filename(campaign, report)}"'
        },
    )


# -- settings ---------------------------------------------------------------------------


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
        "store_text": campaign.store_text,
        **{group: ", ".join(picks.get(group) or []) for group in DEFAULT_QUICK_PICKS},
    }


def posted_campaign_form() -> dict[str, Any]:
    form: dict[str, Any] = {
        name: request.form.get(name, "") for name in (*CAMPAIGN_FIELDS, *DEFAULT_QUICK_PICKS)
    }
    form["store_text"] = request.form.get("store_text") == "yes"
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
    }
    settings = None
    if not re.fullmatch(r"\d{1,5}", values["retention_days"]):
        errors["retention_days"] = _field_problem("retention_days", {"type": "int_parsing"})
    try:
        settings = CampaignSettings.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(field, _field_problem(field, error))
    if check_roster and "profiles_dir" not in errors:
        try:
            load_profiles(values["profiles_dir"].strip())
        except ProfileError as exc:
            errors["profiles_dir"] = gettext(
                "This folder cannot be used as a roster: %(problem)s", problem=str(exc)
            )
    if errors or settings is None:
        return {}, errors
    return settings.model_dump(), errors


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
                    url_for("planner.campaigns", campaign=created.slug, **_lang_args()), 303
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
    form = campaign_form(campaign)
    errors: dict[str, str] = {}
    if request.method == "POST":
        check_form_post()
        form = posted_campaign_form()
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
        if not errors:
            values.pop("slug")
            try:
                update_campaign(database(), campaign.slug, values)
            except InputError as exc:
                errors["form"] = str(exc)
            else:
                forget(current_app._get_current_object(), campaign.slug)  # type: ignore[attr-defined]
                flash(gettext("Settings saved."))
                return redirect(url_for("planner.settings", **_lang_args()), 303)
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


# -- privacy requests -------------------------------------------------------------------

#: Longest shopper reference (as the API and the shopper form accept).
MAX_REF_CHARS = 200


def _privacy_page(status: int = 200, **context: Any) -> tuple[str, int]:
    context.setdefault("ref", "")
    context.setdefault("errors", {})
    return render_template("planner/privacy.html", **context), status


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
        dry_run = action == "dry-run"
        purged = purge_expired(database(), dry_run=dry_run)
        names = {c.slug: c.name for c in list_campaigns(database())}
        return _privacy_page(purged=purged, dry_run=dry_run, campaign_names=names)
    if action not in ("export", "delete", "confirm-delete"):
        raise ApiError(400, "unknown_action", gettext("Choose what to do with the reference."))
    ref = request.form.get("ref", "").strip()
    if not ref or len(ref) > MAX_REF_CHARS:
        problem = gettext(
            "Give the shopper's reference: 1 to %(n)d characters, as shown to them.",
            n=MAX_REF_CHARS,
        )
        return _privacy_page(400, ref=ref[: MAX_REF_CHARS + 50], errors={"ref": problem})
    if action == "confirm-delete":
        deleted = delete_shopper(database(), ref)
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
