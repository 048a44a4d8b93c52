"""What every planner page shares: the blueprint, its limits, and the hooks that run first.

Every request to the area passes :func:`require_login` (off until a password
is configured) and :func:`select_campaign` (the campaign named by
``?campaign=``, the default without it, kept in every link and redirect), in
that order. Pages are never cached.

A login is a row in the database (:mod:`matcher.store.security`): the signed
session cookie carries only a random token whose hash is the row's id. The
row ends at logout, when the configured credentials change (the row's
account carries a keyed digest of them, so a new password is another
account), after :data:`~matcher.store.security.SESSION_IDLE` unused and after
:data:`~matcher.store.security.SESSION_LIFETIME`; a cookie of an ended
session gets the login page. Every POST but the login's carries that row's
form token (:func:`check_planner_token`), so a token from a public page, or
from another planner's session, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import gettext
from werkzeug.wrappers import Response as BaseResponse

from matcher.store import (
    DEFAULT_SLUG,
    Campaign,
    list_campaigns,
)
from matcher.store.campaigns import SLUG_PATTERN
from matcher.store.security import PlannerSession, find_session, revoke_other_accounts

from ..campaigns import (
    DB_KEY,
    current_campaign,
    database,
    lookup,
)
from ..errors import ApiError
from ..i18n import LANGUAGES
from ..jobs import JOBS_FOLDER, JobRegistry
from ..pairing import facet_label
from ..security import check_form_post, check_signed_token, register_form_check, signed_token

bp = Blueprint("planner", __name__, url_prefix="/planner")

#: werkzeug's hash formats; any other configured password is plain text.
HASH_PREFIXES = ("scrypt:", "pbkdf2:")
#: A top-1 lead smaller than this is flagged as a close call in the try box.
CLOSE_CALL = 0.02

JOBS_KEY = "matcher.planner_jobs"
#: The login form's token is signed under a salt of its own: a public form's token is refused.
LOGIN_SALT = "matcher.planner-login"


def credentials_stamp(app: Flask) -> str:
    """A keyed digest of the configured credentials, so changing them ends every session.

    Keyed with the secret key: the sessions table and the device cookie hold
    it, and neither may carry anything that helps guess the password.
    """
    secret = str(app.secret_key or "").encode("utf-8")
    account = f"{app.config['MATCHER_PLANNER_USER']}\0{app.config['MATCHER_PLANNER_PASSWORD']}"
    return hmac.new(secret, account.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def account_key(app: Flask) -> str:
    """The configured account as the sessions table knows it.

    The user name and a digest of the credentials: a session opened under
    other credentials (before a password change) no longer matches.
    """
    return f"{str(app.config['MATCHER_PLANNER_USER'])[:100]}#{credentials_stamp(app)}"


def current_session() -> PlannerSession | None:
    """The request's live planner session, looked up once per request."""
    if "planner_session" not in g:
        found = None
        login = session.get("planner")
        token = login.get("sid") if isinstance(login, dict) else None
        if isinstance(token, str) and current_app.config["MATCHER_PLANNER_PASSWORD"]:
            found = find_session(database(), token, account_key(current_app))
        g.planner_session = found
    found_session: PlannerSession | None = g.planner_session
    return found_session


def logged_in_user() -> str | None:
    return str(current_app.config["MATCHER_PLANNER_USER"]) if current_session() else None


def planner_token() -> str:
    """The ``token`` for a planner form: the session's own, or on the login page a signed one."""
    live = current_session()
    return live.csrf_token if live is not None else signed_token(LOGIN_SALT)


def check_planner_token(token: str) -> None:
    """Accept only the token of this session (the login form's is signed under its own salt).

    Raises:
        ApiError: 403: the token is missing, from a public page or from another session.
    """
    if request.endpoint == "planner.login":
        check_signed_token(token, LOGIN_SALT)
        return
    live = current_session()
    if live is None or not hmac.compare_digest(
        token.encode("utf-8"), live.csrf_token.encode("utf-8")
    ):
        message = gettext("This form could not be verified. Reload the page and try again.")
        raise ApiError(403, "form_invalid", message)


@bp.record_once
def _on_register(state: Any) -> None:
    app = state.app
    register_form_check(app, bp.name, check_planner_token)
    if app.config["MATCHER_PLANNER_PASSWORD"] and DB_KEY in app.extensions:
        # Credentials changed since these sessions started: end them for good, so
        # that changing the password back does not bring them back.
        revoke_other_accounts(app.extensions[DB_KEY], account_key(app))


def job_registry(app: Flask) -> JobRegistry:
    """This worker's view of the batch jobs, made on first use.

    Every worker's registry works on the same database, so a job is seen by
    every worker of every server, whichever one runs it.
    """
    registry = app.extensions.get(JOBS_KEY)
    if registry is None:
        # Pairings stay until the campaign's retention ends; a configured TTL is shorter.
        ttl = app.config.get("MATCHER_PLANNER_BATCH_TTL")
        fresh = JobRegistry(
            database(app),
            Path(app.instance_path) / JOBS_FOLDER,
            ttl=None if ttl is None else float(ttl),
        )
        registry = app.extensions.setdefault(JOBS_KEY, fresh)
    assert isinstance(registry, JobRegistry)
    return registry


def lang_args() -> dict[str, Any]:
    """Keep an explicitly chosen language across redirects."""
    chosen = request.args.get("lang") or request.form.get("lang")
    return {"lang": chosen} if chosen in LANGUAGES else {}


def safe_next(target: str | None) -> str | None:
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
    if request.endpoint == "planner.login":
        return None
    if current_session() is not None:
        if request.method == "POST":
            # Every POST, whether or not its view checks again.
            check_form_post()
        return None
    session.pop("planner", None)  # an ended session's cookie goes
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("planner.login", next=target, **lang_args()))


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
        "planner_token": planner_token,
        "facet_label": facet_label,
        "campaign": selected,
        "campaign_choices": choices,
    }
