"""The planner area at ``/planner``: behind a login, off until a password is configured.

Planners check the roster, try a shopper text against the whole ranking,
correct a wrong pairing, match a whole file of shoppers in the background,
see how the batches paired, and edit the embedding settings.

- Login: one account from configuration (``MATCHER_PLANNER_USER`` and
  ``MATCHER_PLANNER_PASSWORD``, plain or a werkzeug hash), kept in Flask's
  signed session cookie. The area is never framed, so the cookie is
  first-party; every POST still carries a form token (``security.py``). A
  session ends at logout, after :data:`SESSION_HOURS`, or when the configured
  credentials change. Failed logins are counted per client address and
  refused for a while past :data:`MAX_FAILED_LOGINS`.
- Batches run in :mod:`web.jobs`, which keeps their state in the instance
  folder, so every server worker shows the same jobs, downloads and totals;
  charts are drawn by :mod:`web.charts`.
- Shopper text is never logged here; bad rows are shown as line and reason.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import gettext
from werkzeug.security import check_password_hash
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response as BaseResponse

from matcher.batch import check_input, input_format
from matcher.errors import BatchInputError, ConfigError, InputError, ProfileError
from matcher.feedback import add_correction
from matcher.matching import DEFAULT_TOP_K, Matcher
from matcher.profiles import Profile, load_profiles

from . import charts
from .errors import ApiError
from .i18n import LANGUAGES, select_locale
from .jobs import DEFAULT_TTL, SCORE_BIN_WIDTH, JobRegistry, Status
from .pairing import current_matcher, facet_label
from .roster import refresh_matcher
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


@bp.after_request
def no_store(response: Response) -> Response:
    # Rankings, corrections and pairings are not for shared caches or the back button.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def planner_context() -> dict[str, Any]:
    return {
        "planner_user": logged_in_user(),
        "facet_label": facet_label,
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


@bp.get("/")
def roster() -> str:
    entries, problems = roster_entries(current_matcher(), current_app.config["MATCHER_PROFILES"])
    return render_template("planner/roster.html", entries=entries, problems=problems)


@bp.post("/refresh")
def refresh() -> BaseResponse | tuple[str, int]:
    check_form_post()
    try:
        refresh_matcher(current_app)
    except ProfileError as exc:
        entries, _ = roster_entries(current_matcher(), current_app.config["MATCHER_PROFILES"])
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
    if text.strip() and error is None:
        ranking = matcher.match(text, matcher.roster_size)
    return render_template(
        "planner/try.html",
        text=text,
        ranking=ranking,
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
    try:
        add_correction(
            current_app.config["MATCHER_PROFILES"], text, right, names.keys(), wrong=wrong
        )
    except InputError as exc:
        return _try_page(text, error=str(exc)), 400
    try:
        refresh_matcher(current_app)
    except ProfileError as exc:
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
    """Upload a shopper file; matching starts in the background and the job page follows it."""
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


@bp.get("/dashboard")
def dashboard() -> str:
    """Pairings per celebrity and the spread of top scores, over every batch on this server."""
    totals = job_registry(current_app).pairing_totals()
    profiles = current_matcher().index.profiles
    chinese = select_locale() == "zh"
    per_celebrity = [
        charts.Bar(p.id, p.name_zh if chinese else p.name, totals.per_celebrity.get(p.id, 0))
        for p in profiles
    ]
    known = {p.id for p in profiles}
    per_celebrity += [
        charts.Bar(key, totals.names.get(key, key), count)
        for key, count in sorted(totals.per_celebrity.items())
        if key not in known
    ]
    bins = charts.score_bins(totals.score_bins, SCORE_BIN_WIDTH)
    bar_svg = charts.bar_chart(
        per_celebrity,
        chart_id="chart-celebrities",
        title=gettext("Pairings per celebrity"),
        description=gettext(
            "How many of the %(n)d matched shoppers were paired first with each celebrity.",
            n=totals.shoppers,
        ),
    )
    histogram_svg = charts.histogram(
        bins,
        chart_id="chart-scores",
        title=gettext("Top-1 scores"),
        description=gettext(
            "How many shoppers' best match scored in each band of %(width).2f.",
            width=SCORE_BIN_WIDTH,
        ),
    )
    return render_template(
        "planner/dashboard.html",
        totals=totals,
        per_celebrity=per_celebrity,
        bins=bins,
        bar_svg=bar_svg,
        histogram_svg=histogram_svg,
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


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> BaseResponse | tuple[str, int]:
    """Embed origins and quick picks, saved in the instance folder; the environment wins."""
    store = current_app.extensions["matcher.settings_store"]
    saved = store.load()
    picks = saved.get("quick_picks") or DEFAULT_QUICK_PICKS
    form = {
        "embed_origins": "\n".join(saved.get("embed_origins") or []),
        **{group: ", ".join(picks.get(group) or []) for group in DEFAULT_QUICK_PICKS},
    }
    errors: dict[str, str] = {}
    if request.method == "POST":
        check_form_post()
        form = {name: request.form.get(name, "") for name in form}
        origins: list[str] = []
        try:
            origins = parse_origins(form["embed_origins"].replace("\n", ","))
        except ConfigError as exc:
            errors["embed_origins"] = str(exc)
        new_picks = {group: parse_picks(form[group]) for group in DEFAULT_QUICK_PICKS}
        for group, chosen in new_picks.items():
            problem = _pick_error(chosen)
            if problem:
                errors[group] = problem
        if not errors:
            store.save({**saved, "embed_origins": origins, "quick_picks": new_picks})
            flash(gettext("Settings saved."))
            return redirect(url_for("planner.settings", **_lang_args()), 303)
    return render_template(
        "planner/settings.html",
        form=form,
        errors=errors,
        env_origins=current_app.config["MATCHER_EMBED_ORIGINS"],
        effective=current_app.extensions["matcher.settings"](),
        groups=list(DEFAULT_QUICK_PICKS),
    ), 400 if errors else 200


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
      }}
    }});
  }})();
</script>"""


@bp.get("/embed")
def snippet() -> str:
    """The iframe and a host-side listener to copy into the brand's microsite."""
    embed_url = url_for("embed.form", _external=True)
    origin = request.host_url.rstrip("/")
    return render_template(
        "planner/snippet.html",
        iframe=IFRAME_SNIPPET.format(embed_url=embed_url),
        script=SCRIPT_SNIPPET.format(origin=origin),
        origin=origin,
        embed_origins=current_app.extensions["matcher.settings"]()["embed_origins"],
    )
