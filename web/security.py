"""Headers and request checks that keep the pages safe to embed and to post to.

- Every response carries a strict Content-Security-Policy (no inline script,
  nothing from another origin) with ``frame-ancestors 'none'``; the embed
  routes allow exactly the microsite origins a planner listed.
- Forms are protected against cross-site request forgery. Every POST must
  come from this origin (``Origin`` and ``Sec-Fetch-Site``, when the browser
  sends them) and carry a ``token`` field. The shopper form and the embed
  cannot rely on cookies (browsers drop third-party cookies inside a
  cross-origin iframe), so their token is signed and expiring; a blueprint
  that has sessions registers its own check (:func:`register_form_check`),
  and the planner's accepts only the token bound to the planner's session, so
  a token taken from a public page is refused there.
- Behind a reverse proxy, ``MATCHER_TRUSTED_PROXIES`` (the number of proxies
  in front) makes the client's address and scheme those the proxies saw
  (werkzeug's ``ProxyFix``); without it ``X-Forwarded-*`` headers are ignored,
  so a client cannot pick its own address to dodge the login throttle.
- The session cookie is ``HttpOnly``, ``SameSite=Lax``, and ``Secure``
  whenever the request came over HTTPS (or always, with
  ``MATCHER_SECURE_COOKIES``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.middleware.proxy_fix import ProxyFix

from matcher.errors import ConfigError

from .errors import ApiError

#: How long a form token stays valid: long enough to think, short enough to expire.
TOKEN_MAX_AGE = 2 * 60 * 60


def content_security_policy(frame_ancestors: Iterable[str]) -> str:
    ancestors = " ".join(frame_ancestors) or "'none'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {ancestors}"
    )


def embed_origins() -> list[str]:
    origins: list[str] = current_app.extensions["matcher.settings"]()["embed_origins"]
    return origins


def allow_embedding() -> None:
    """Mark this response as one that the listed microsites may frame."""
    g.allow_embedding = True


#: The salt of the public forms' tokens; other purposes sign with salts of their own.
FORM_SALT = "matcher.form"
FORM_CHECKS_KEY = "matcher.form_checks"

#: A blueprint's own check of a POST's ``token`` field; raises ApiError to refuse it.
FormCheck = Callable[[str], None]


def _form_serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt=salt)


def signed_token(salt: str = FORM_SALT) -> str:
    """A fresh signed, expiring token; tokens of one salt are refused under another."""
    return _form_serializer(salt).dumps(secrets.token_hex(8))


def form_token() -> str:
    """A fresh signed token for a public form (templates call ``form_token()``)."""
    return signed_token(FORM_SALT)


def check_signed_token(token: str, salt: str = FORM_SALT) -> None:
    """Refuse a token not signed by this instance for ``salt``, or older than :data:`TOKEN_MAX_AGE`.

    Raises:
        ApiError: 403 with a message the user can act on (reload the page).
    """
    try:
        _form_serializer(salt).loads(token, max_age=TOKEN_MAX_AGE)
    except SignatureExpired:
        message = gettext("This form has expired. Reload the page and try again.")
        raise ApiError(403, "form_expired", message) from None
    except BadSignature:
        message = gettext("This form could not be verified. Reload the page and try again.")
        raise ApiError(403, "form_invalid", message) from None


def register_form_check(app: Flask, blueprint: str, check: FormCheck) -> None:
    """Have :func:`check_form_post` judge the tokens of ``blueprint``'s POSTs with ``check``."""
    app.extensions.setdefault(FORM_CHECKS_KEY, {})[blueprint] = check


def check_same_origin() -> None:
    """Refuse a POST that the browser says another site made.

    Raises:
        ApiError: 403 ``cross_site_post``.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if (fetch_site and fetch_site not in ("same-origin", "none")) or (
        origin and origin.rstrip("/") != request.host_url.rstrip("/")
    ):
        raise ApiError(
            403, "cross_site_post", gettext("This form can only be sent from its own page.")
        )


def check_form_post() -> None:
    """Refuse a form POST that another site made, or whose token is bad or stale.

    The token is judged by the check its blueprint registered, if any (the
    planner's session-bound token), else as a public form's signed token.

    Raises:
        ApiError: 403 with a message the user can act on (reload the page).
    """
    check_same_origin()
    token = request.form.get("token", "")
    checks: dict[str, FormCheck] = current_app.extensions.get(FORM_CHECKS_KEY, {})
    own = checks.get(request.blueprint or "")
    if own is not None:
        own(token)
    else:
        check_signed_token(token, FORM_SALT)


def trusted_proxies(value: Any) -> int:
    """``MATCHER_TRUSTED_PROXIES``: how many reverse proxies stand in front of the server.

    Raises:
        ConfigError: the value is not a whole number from 0 to 10.
    """
    if value is None or value == "":
        return 0
    try:
        hops = int(str(value).strip())
    except ValueError:
        hops = -1
    if not 0 <= hops <= 10:
        raise ConfigError(
            f"MATCHER_TRUSTED_PROXIES is {str(value)[:40]!r}: give the number of reverse "
            "proxies in front of the server (0 to 10; 1 for one nginx)"
        )
    return hops


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked ``Secure`` whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def cookie_secure() -> bool:
    """Whether cookies set by this response must be ``Secure`` (the session interface's rule)."""
    return bool(current_app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def register_security(app: Flask) -> None:
    hops = trusted_proxies(app.config.get("MATCHER_TRUSTED_PROXIES"))
    if hops:
        # Only the address and the scheme: a proxy that does not set
        # X-Forwarded-Host would let a client pick the host the pages link to.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.session_interface = SessionInterface()
    app.jinja_env.globals["form_token"] = form_token
    app.jinja_env.globals["embed_origins"] = embed_origins

    @app.after_request
    def headers(response: Response) -> Response:
        ancestors = embed_origins() if g.get("allow_embedding") else []
        response.headers["Content-Security-Policy"] = content_security_policy(ancestors)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
        if not g.get("allow_embedding"):
            response.headers["X-Frame-Options"] = "DENY"
        retry_after = g.get("retry_after")
        if retry_after:
            response.headers["Retry-After"] = str(int(retry_after))
        return response
