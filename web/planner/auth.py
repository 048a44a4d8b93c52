"""Planner login and logout, the reports' HTTP Basic check, and throttling failed attempts.

One account from configuration (``MATCHER_PLANNER_USER`` and
``MATCHER_PLANNER_PASSWORD``, plain or a werkzeug hash). A login opens a
session row in the database (:mod:`matcher.store.security`); logout revokes it.

Failed attempts are counted in the database, so all workers share one count,
by :class:`~matcher.store.security.LoginThrottle`: per (account, address) and
per address with a doubling wait, and per account, which past its budget
makes every address that failed wait longer, while the right password from an
address that has not failed is always checked. The login form and the API
reports count in scopes of their own: a script guessing at the API cannot
make the form wait. A browser that logged in before carries a signed device
cookie (:data:`DEVICE_COOKIE`); its attempts are judged on its own failures,
so a guesser sharing the planner's address cannot make the planner wait
either. The client address is ``request.remote_addr``, which
``MATCHER_TRUSTED_PROXIES`` makes the address the proxy saw.
"""

from __future__ import annotations

import hmac
import secrets

from flask import (
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext, ngettext
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.security import check_password_hash
from werkzeug.wrappers import Response as BaseResponse

from matcher.store.security import (
    SESSION_LIFETIME,
    LoginThrottle,
    open_session,
    prune_sessions,
    revoke_other_accounts,
    revoke_session,
)

from ..campaigns import database
from ..errors import ApiError
from ..security import check_form_post, cookie_secure
from .base import (
    HASH_PREFIXES,
    account_key,
    bp,
    lang_args,
    safe_next,
)

#: The cookie naming a browser that logged in before, and how long it is believed (seconds).
DEVICE_COOKIE = "matcher_planner_device"
DEVICE_MAX_AGE = 90 * 24 * 3600
DEVICE_SALT = "matcher.planner-device"
#: The throttles' scopes: failures in one never count in the other.
LOGIN_SCOPE = "login"
REPORTS_SCOPE = "reports"


def password_matches(given: str, configured: str) -> bool:
    """Compare a typed password with the configured one, in constant time.

    A configured value starting with ``scrypt:`` or ``pbkdf2:`` is a werkzeug
    hash (``flask --app web generate-password-hash`` or
    ``werkzeug.security.generate_password_hash``); anything else is plain text.
    """
    if configured.startswith(HASH_PREFIXES):
        return check_password_hash(configured, given)
    return hmac.compare_digest(given.encode("utf-8"), configured.encode("utf-8"))


def credentials_match(user: str, password: str) -> bool:
    config = current_app.config
    user_ok = hmac.compare_digest(
        user.encode("utf-8"), str(config["MATCHER_PLANNER_USER"]).encode("utf-8")
    )
    # Always check the password, so a wrong user name takes as long as a wrong password.
    password_ok = password_matches(password, str(config["MATCHER_PLANNER_PASSWORD"]))
    return user_ok and password_ok


def login_throttle(app: Flask, scope: str = LOGIN_SCOPE) -> LoginThrottle:
    """This worker's handle on the shared count of failures in ``scope``."""
    key = f"matcher.throttle.{scope}"
    throttle = app.extensions.get(key)
    if throttle is None:
        throttle = app.extensions.setdefault(key, LoginThrottle(database(app), scope))
    assert isinstance(throttle, LoginThrottle)
    return throttle


def _devices() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt=DEVICE_SALT)


def known_device(user: str) -> str | None:
    """The id of this browser when it logged in to ``user``'s current credentials before."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        value = _devices().loads(raw, max_age=DEVICE_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        return None
    if user != current_app.config["MATCHER_PLANNER_USER"] or value.get("account") != account_key(
        current_app
    ):
        return None
    device: str = value["id"]
    return device


def refused(wait: int) -> str:
    """The message for a client that must wait ``wait`` seconds (and its ``Retry-After``)."""
    g.retry_after = wait
    message: str = ngettext(
        "Too many failed logins. Try again in %(num)d minute.",
        "Too many failed logins. Try again in %(num)d minutes.",
        max(1, -(-wait // 60)),
    )
    return message


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int]:
    """The login form; a good login goes on to ``next`` (a planner page) or the roster."""
    target = safe_next(request.values.get("next"))
    error = None
    status = 200
    if request.method == "POST":
        check_form_post()
        user = request.form.get("user", "")
        password = request.form.get("password", "")
        address = request.remote_addr
        device = known_device(user)
        throttle = login_throttle(current_app)
        wait = throttle.retry_after(user, address, device=device)
        if wait:
            page = render_template(
                "planner/login.html", error=refused(wait), next=target, user=user
            )
            return page, 429
        if credentials_match(user, password):
            throttle.succeeded(user, address, device=device)
            return start_session(target, device)
        throttle.failed(user, address, device=device)
        error = gettext("That user name and password do not match.")
        status = 403
    return render_template(
        "planner/login.html", error=error, next=target, user=request.form.get("user", "")
    ), status


def start_session(target: str | None, device: str | None) -> BaseResponse:
    """Open a session row, put its token in the cookie, and remember the browser."""
    db = database()
    account = account_key(current_app)
    revoke_other_accounts(db, account)
    prune_sessions(db, SESSION_LIFETIME)
    token, _ = open_session(db, account)
    old = session.get("planner")
    if isinstance(old, dict) and isinstance(old.get("sid"), str):
        revoke_session(db, old["sid"])
    session.clear()
    session["planner"] = {"sid": token}
    response = redirect(target or url_for("planner.roster", **lang_args()), 303)
    remembered = _devices().dumps({"account": account, "id": device or secrets.token_urlsafe(16)})
    response.set_cookie(
        DEVICE_COOKIE,
        remembered,
        max_age=DEVICE_MAX_AGE,
        path=bp.url_prefix or "/",
        secure=cookie_secure(),
        httponly=True,
        samesite="Strict",
    )
    return response


@bp.post("/logout")
def logout() -> BaseResponse:
    check_form_post()
    login_state = session.pop("planner", None)
    if isinstance(login_state, dict) and isinstance(login_state.get("sid"), str):
        revoke_session(database(), login_state["sid"])
    flash(gettext("You are logged out."))
    return redirect(url_for("planner.login", **lang_args()), 303)


def check_report_login() -> None:
    """HTTP Basic with the planner's credentials for ``/api/v1/reports*``.

    Throttled like the login form but counted apart (:data:`REPORTS_SCOPE`),
    so failed report calls never make the planner's login form wait. A call
    without credentials is told to send them and is not counted.

    Raises:
        ApiError: 503 while the planner area is off, 429 (with ``Retry-After``)
            while this client must wait, 401 without valid credentials.
    """
    if not current_app.config["MATCHER_PLANNER_PASSWORD"]:
        raise ApiError(
            503, "planner_off", "Reports are off: set MATCHER_PLANNER_PASSWORD to turn them on."
        )
    given = request.authorization
    if given is not None and given.type == "basic":
        user = given.username or ""
        throttle = login_throttle(current_app, REPORTS_SCOPE)
        wait = throttle.retry_after(user, request.remote_addr)
        if wait:
            g.retry_after = wait
            raise ApiError(
                429,
                "too_many_attempts",
                f"Too many failed logins from this address; try again in {wait} seconds.",
            )
        if credentials_match(user, given.password or ""):
            throttle.succeeded(user, request.remote_addr)
            return
        throttle.failed(user, request.remote_addr)
    raise ApiError(401, "unauthorized", "Send the planner's user name and password (HTTP Basic).")
