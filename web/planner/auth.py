"""Planner login and logout, and throttling failed logins.

One account from configuration (``MATCHER_PLANNER_USER`` and
``MATCHER_PLANNER_PASSWORD``, plain or a werkzeug hash), kept in Flask's
signed session cookie. The area is never framed, so the cookie is
first-party; every POST still carries a form token (``security.py``).
Failed logins are counted per client address and refused for a while past
:data:`~web.planner.base.MAX_FAILED_LOGINS`.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque

from flask import (
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext
from werkzeug.security import check_password_hash
from werkzeug.wrappers import Response as BaseResponse

from ..security import check_form_post
from .base import (
    HASH_PREFIXES,
    LOGIN_WINDOW,
    MAX_FAILED_LOGINS,
    THROTTLE_KEY,
    bp,
    credentials_stamp,
    lang_args,
    safe_next,
)


def password_matches(given: str, configured: str) -> bool:
    """Compare a typed password with the configured one, in constant time.

    A configured value starting with ``scrypt:`` or ``pbkdf2:`` is a werkzeug
    hash (``flask --app web generate-password-hash`` or
    ``werkzeug.security.generate_password_hash``); anything else is plain text.
    """
    if configured.startswith(HASH_PREFIXES):
        return check_password_hash(configured, given)
    return hmac.compare_digest(given.encode("utf-8"), configured.encode("utf-8"))


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


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int]:
    """The login form; a good login goes on to ``next`` (a planner page) or the roster."""
    target = safe_next(request.values.get("next"))
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
                "stamp": credentials_stamp(current_app),
                "at": time.time(),
            }
            return redirect(target or url_for("planner.roster", **lang_args()), 303)
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
    return redirect(url_for("planner.login", **lang_args()), 303)


# -- roster -----------------------------------------------------------------------------
