"""One error shape for the whole web layer.

API clients get ``{"error": {"status", "code", "message", "field"?}}``, for
their own mistakes and for Werkzeug's (404, 405, 413...) alike; pages get the
same message in an HTML page. Every client mistake is a 4xx with a message that
says what to fix; anything else is a 500 that says nothing about the code, and
its traceback goes to the server log only, without the exception's message,
which could quote a shopper's text.

This is the one bridge from the core's exceptions (``matcher.errors``) to
HTTP: :data:`CORE_ERRORS` gives each class its status and code, and views let
core errors rise rather than catch and reshape them. A client's mistake
(:class:`~matcher.errors.InputError`) is a 400 with the core's message; a
roster, index or setting the server cannot use is a 503 that names no file and
quotes nothing, the details going to the log.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from matcher.errors import (
    BatchInputError,
    ConfigError,
    IndexStateError,
    InputError,
    MatcherError,
    ProfileError,
)

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A client mistake, raised by views and turned into the error shape."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _respond(status: int, code: str, message: str, field: str | None = None) -> Response:
    if wants_json():
        response = jsonify(error_body(status, code, message, field))
    else:
        from .branding import error_brand

        brand, home = error_brand()
        response = Response(
            render_template("error.html", status=status, message=message, brand=brand, home=home),
            mimetype="text/html",
        )
    response.status_code = status
    return response


#: Codes and messages for Werkzeug's errors as API clients see them; pages keep
#: Werkzeug's wording. ``None`` means the message depends on the request.
HTTP_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("bad_request", "The request could not be read."),
    404: ("not_found", "Nothing is here; the API is described at /api/v1/openapi.json."),
    405: ("method_not_allowed", None),
    413: ("body_too_large", None),
    415: ("unsupported_media_type", "Send the body as JSON (Content-Type: application/json)."),
}


def _http_message(exc: HTTPException, status: int) -> str:
    if status == 405 and isinstance(exc, MethodNotAllowed):
        allowed = ", ".join(m for m in exc.valid_methods or () if m not in ("HEAD", "OPTIONS"))
        return f"{request.method} is not allowed here; use {allowed}."
    if status == 413:
        limit = request.max_content_length
        return (
            f"The body is larger than the {limit} bytes allowed."
            if limit
            else "The body is too large."
        )
    fixed = HTTP_ERRORS.get(status, ("", None))[1]
    return fixed or exc.description or exc.name


def _page_message(status: int, exc: HTTPException) -> str:
    """What a shopper reads on an error page, in their language."""
    messages = {
        400: gettext("We could not read that request. Please go back and try again."),
        403: gettext("This page cannot be opened from here."),
        404: gettext("This page does not exist."),
        405: gettext("This page cannot be used that way."),
        413: gettext("That is more than we can take at once."),
    }
    return messages.get(status) or exc.description or exc.name


#: Status and code for each core error class that reaches a view, most specific first.
#: ``True`` in the last place: the core's message is the client's to read.
CORE_ERRORS: tuple[tuple[type[MatcherError], int, str, bool], ...] = (
    (InputError, 400, "invalid_input", True),
    (BatchInputError, 400, "invalid_file", True),
    (ProfileError, 503, "roster_unavailable", False),
    (IndexStateError, 503, "index_unavailable", False),
    (ConfigError, 503, "not_configured", False),
    (MatcherError, 503, "unavailable", False),
)


def _core_message(shown: bool, exc: MatcherError) -> str:
    if shown:
        return str(exc)
    return (
        "This service cannot answer right now; please retry later."
        if wants_json()
        else gettext("This page is not available right now. Please retry later.")
    )


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return _respond(exc.status, exc.code, exc.message, exc.field)

    def core_handler(status: int, code: str, shown: bool) -> Any:
        def handle(exc: MatcherError) -> Response:
            if not shown:
                # The class only: a roster problem may name the files of a folder.
                log.error("%s on %s %s", type(exc).__name__, request.method, request.path)
            return _respond(status, code, _core_message(shown, exc))

        return handle

    for error_class, status, code, shown in CORE_ERRORS:
        app.register_error_handler(error_class, core_handler(status, code, shown))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        default_code = (exc.name or "error").lower().replace(" ", "_")
        code = HTTP_ERRORS.get(status, (default_code, None))[0]
        message = _http_message(exc, status) if wants_json() else _page_message(status, exc)
        response = _respond(status, code, message)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        # The stack, not the message: a library's message may quote the text it choked on.
        log.error(
            "unhandled %s on %s %s\n%s",
            type(exc).__name__,
            request.method,
            request.path,
            "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
        )
        message = (
            "Something went wrong on our side. Please retry."
            if wants_json()
            else gettext("Something went wrong on our side. Please retry.")
        )
        return _respond(500, "internal_error", message)
