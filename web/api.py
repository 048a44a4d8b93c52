"""The JSON API at ``/api/v1``, described by ``/api/v1/openapi.json``.

Every error has one shape (``errors.py``). CORS is allowed only for the
microsite origins a planner listed, so a browser on any other site cannot read
the answers or send JSON here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from matcher.errors import InputError
from matcher.text import MAX_TEXT_CHARS

from .errors import ApiError, error_body
from .openapi import openapi_document
from .pairing import current_matcher
from .security import embed_origins

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_BATCH = 100
LANGS = ("en", "zh")


@bp.after_request
def cors(response: Response) -> Response:
    origin = request.headers.get("Origin")
    if origin and origin in embed_origins():
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers["Vary"] = "Origin"
    return response


def json_body() -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as JSON (Content-Type: application/json).")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return body


def top_k(body: dict[str, Any]) -> int:
    value = body.get("top_k", 3)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, "invalid_top_k", "top_k must be a whole number of at least 1.", "top_k")
    return current_matcher().check_k(value)


def optional(body: dict[str, Any], field: str, kind: type, check: Any = None) -> Any:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(400, f"invalid_{field}", f"{field} must be a {kind.__name__}.", field)
    if check is not None and not check(value):
        raise ApiError(400, f"invalid_{field}", f"{field} has an unusable value.", field)
    return value


def match_record(matches: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "celebrity_id": m.celebrity_id,
            "name": m.name,
            "name_zh": m.name_zh,
            "score": m.score,
            "margin": m.margin,
            "share": m.share,
            "rank": m.rank,
            "reasons": [{"facet": r.facet, "score": r.score, "quote": r.quote} for r in m.reasons],
        }
        for m in matches
    ]


@bp.post("/match")
def match() -> Response:
    """Pair one shopper text; see the OpenAPI document for the fields."""
    body = json_body()
    unknown = sorted(set(body) - {"text", "top_k", "lang", "consent", "shopper_ref"})
    if unknown:
        raise ApiError(400, "unknown_field", f"Unknown field: {unknown[0]}.", unknown[0])
    text = body.get("text")
    if not isinstance(text, str):
        raise ApiError(400, "invalid_text", "text is required and must be a string.", "text")
    k = top_k(body)
    lang = optional(body, "lang", str, lambda v: v in LANGS)
    consent = optional(body, "consent", bool)
    shopper_ref = optional(body, "shopper_ref", str, lambda v: 0 < len(v) <= 128)
    try:
        matches = current_matcher().match(text, k)
    except InputError as exc:
        raise ApiError(400, "invalid_text", str(exc), "text") from None
    return jsonify(
        {
            "matches": match_record(matches),
            "lang": lang,
            "shopper_ref": shopper_ref,
            "consent": bool(consent),
            "model": current_matcher().index.model_id,
        }
    )


@bp.post("/match/batch")
def match_batch() -> Response:
    """Pair up to 100 texts in one call; bad items get an error each, the rest are paired."""
    body = json_body()
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise ApiError(400, "invalid_items", "items must be a non-empty list.", "items")
    if len(items) > MAX_BATCH:
        raise ApiError(400, "too_many_items", f"Send at most {MAX_BATCH} items per call.", "items")
    k = top_k(body)
    matcher = current_matcher()
    results: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        ref = item.get("shopper_ref") if isinstance(item, dict) else None
        text = item.get("text") if isinstance(item, dict) else None
        try:
            if not isinstance(text, str):
                raise InputError("text is required and must be a string")
            results.append({"shopper_ref": ref, "matches": match_record(matcher.match(text, k))})
        except InputError as exc:
            error = error_body(400, "invalid_text", str(exc), f"items[{position}].text")
            results.append({"shopper_ref": ref, **error})
    return jsonify({"results": results, "model": matcher.index.model_id})


@bp.get("/celebrities")
def celebrities() -> Response:
    """The active roster, for building a picker or a results page."""
    return jsonify(
        {
            "celebrities": [
                {
                    "id": p.id,
                    "name": p.name,
                    "name_zh": p.name_zh,
                    "tagline": p.tagline,
                    "tagline_zh": p.tagline_zh,
                    "image": p.image,
                    "facets": list(p.facets),
                }
                for p in current_matcher().index.profiles
            ],
            "max_text_chars": MAX_TEXT_CHARS,
        }
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(current_app))
