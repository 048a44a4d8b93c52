"""Headers and request checks that keep the pages safe to embed and to post to.

- Every response carries a strict Content-Security-Policy (no inline script,
  nothing from another origin) with ``frame-ancestors 'none'``; the embed
  routes allow exactly the microsite origins a planner listed.
- Forms are protected against cross-site request forgery without cookies,
  because browsers drop third-party cookies inside a cross-origin iframe: each
  form carries a signed, expiring token, and a POST must come from this
  origin (``Origin`` and ``Sec-Fetch-Site``, when the browser sends them).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from flask import Flask, Response, current_app, g, request
from flask_babel import gettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

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


def _form_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="matcher.form")


def form_token() -> str:
    """A fresh signed token for a form (templates call ``form_token()``)."""
    return _form_serializer().dumps(secrets.token_hex(8))


def check_form_post() -> None:
    """Refuse a form POST that another site made, or whose token is bad or stale.

    Raises:
        ApiError: 403 with a message the shopper can act on (reload the page).
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if (fetch_site and fetch_site not in ("same-origin", "none")) or (
        origin and origin.rstrip("/") != request.host_url.rstrip("/")
    ):
        raise ApiError(
            403, "cross_site_post", gettext("This form can only be sent from its own page.")
        )
    token = request.form.get("token", "")
    try:
        _form_serializer().loads(token, max_age=TOKEN_MAX_AGE)
    except SignatureExpired:
        message = gettext("This form has expired. Reload the page and try again.")
        raise ApiError(403, "form_expired", message) from None
    except BadSignature:
        message = gettext("This form could not be verified. Reload the page and try again.")
        raise ApiError(403, "form_invalid", message) from None


def register_security(app: Flask) -> None:
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
        return response
