"""The OpenAPI 3 document for ``/api/v1``: the API's contract, kept beside the views.

The limits the views enforce are defined here, so the document and the server
read the same numbers; Schemathesis checks the running app against the
document (tests/test_api_schema.py), so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any

from matcher.confidence import Doubt
from matcher.limits import MAX_API_BATCH, MAX_API_BODY_BYTES, MAX_REF_CHARS
from matcher.matching import DEFAULT_TOP_K
from matcher.store.campaigns import DEFAULT_SLUG, SLUG_PATTERN

from .idempotency import KEY_PATTERN

#: Texts per ``/match/batch`` call, and a caller's own reference for a shopper
#: (an order or session id, echoed back): both from the one table of limits.
MAX_BATCH = MAX_API_BATCH
#: Languages a caller may say its shopper reads.
LANGS = ("en", "zh")
#: Largest request body the API reads (the app's ``MAX_CONTENT_LENGTH`` is sized for uploads).
MAX_BODY_BYTES = MAX_API_BODY_BYTES
#: A character ``str.strip()`` keeps, as a regular expression that means the
#: same in ECMA 262 (what OpenAPI names), Python and Rust: a text with none of
#: these is blank to the core. tests/test_api.py checks the list against Python.
NOT_BLANK = r"[^\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
#: Control characters a text may not hold (NUL, escapes...; line breaks and tabs
#: are fine): ``matcher.text.has_controls``. tests/test_api.py checks it against Python.
TEXT_CONTROL = r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]"
#: A shopper reference holds no control character at all, line breaks included.
REF_CONTROL = r"[\x00-\x1f\x7f-\x9f]"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "The body breaks a rule of the request schema; `field` names the culprit.",
        413: f"The body is larger than {MAX_BODY_BYTES} bytes.",
        401: "No valid planner credentials (HTTP Basic) were sent.",
        404: "There is no campaign of that name (`field` is `campaign`).",
        429: "Too many failed logins from this address; wait and retry.",
        415: "The body is not sent as `application/json`.",
        422: "The `Idempotency-Key` was used before, for a different request.",
        503: (
            "The server is busy (retry after `Retry-After` seconds), the campaign's roster"
            " cannot be loaded, or the planner area is off."
        ),
        500: "A fault on the server; the message says nothing about the code.",
    }
    return {
        str(status): {"description": descriptions[status], **_json(_ref("Error"))}
        for status in statuses
    }


def _components(max_chars: int) -> dict[str, Any]:
    shopper_ref = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_REF_CHARS,
        "pattern": NOT_BLANK,
        "not": {"pattern": REF_CONTROL},
        "description": (
            "The microsite's reference for this shopper, stored with the pairing so the"
            " shopper can later ask for their data or its deletion. Left out, one is made."
        ),
    }
    echoed_ref = {
        "type": "string",
        "nullable": True,
        "description": (
            "The `shopper_ref` sent, or the one made for this shopper. When the answer is"
            " not confident nothing is stored: the `shopper_ref` sent, or null."
        ),
    }
    verdict = {
        "confident": {
            "type": "boolean",
            "description": (
                "Whether the matcher can honestly name the first match. When false, do not"
                " announce a celebrity: show `hint` and let the shopper say more. The answer"
                " is then not stored as a pairing and counts in no report."
            ),
        },
        "reason": {
            "type": "string",
            "enum": [str(d) for d in Doubt],
            "description": (
                "Only when `confident` is false: `no_content` (nothing readable), `too_short`,"
                " `weak` (close to no celebrity) or `near_tie` (the top two are too close)."
            ),
        },
        "hint": {
            "type": "string",
            "description": (
                "Only when `confident` is false: advice for the shopper, in `lang` if sent,"
                " else in the language of the request's Accept-Language."
            ),
        },
    }
    lang = {
        "type": "string",
        "enum": list(LANGS),
        "description": (
            "The language the shopper reads: that of `hint`. The answer carries both names,"
            " so show the one for this language; reasons are quoted in the language of the"
            " text."
        ),
    }
    campaign = {
        "type": "string",
        "pattern": SLUG_PATTERN,
        "default": DEFAULT_SLUG,
        "description": "The campaign (its roster, consent notice and retention) to pair for.",
    }
    consent = {
        "type": "boolean",
        "default": False,
        "description": (
            "Whether the shopper agreed to the campaign's consent notice. The pairing is"
            " stored either way; the text only with consent, and only if the campaign"
            " keeps texts. Texts are never logged."
        ),
    }
    top_k = {
        "type": "integer",
        "minimum": 1,
        "default": DEFAULT_TOP_K,
        "description": "How many celebrities to return; beyond the roster size, all of them.",
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {"error": _ref("ErrorDetail")},
        },
        "ErrorDetail": {
            "type": "object",
            "required": ["status", "code", "message"],
            "additionalProperties": False,
            "properties": {
                "status": {"type": "integer", "description": "The HTTP status, repeated."},
                "code": {
                    "type": "string",
                    "description": "Stable, for programs: `invalid_text`, `unknown_field`...",
                },
                "message": {"type": "string", "description": "What to fix, in plain words."},
                "field": {
                    "type": "string",
                    "description": "The offending field, as a path such as `items[2].text`.",
                },
            },
        },
        "Reason": {
            "type": "object",
            "required": ["facet", "score", "quote"],
            "additionalProperties": False,
            "properties": {
                "facet": {"type": "string", "description": "The profile facet, e.g. `scent`."},
                "score": {"type": "number", "description": "The facet's cosine with the text."},
                "quote": {
                    "type": "string",
                    "description": "The facet's text, in the shopper's language if given.",
                },
            },
        },
        "Match": {
            "type": "object",
            "required": [
                "celebrity_id",
                "name",
                "name_zh",
                "score",
                "margin",
                "share",
                "rank",
                "reasons",
            ],
            "additionalProperties": False,
            "properties": {
                "celebrity_id": {"type": "string"},
                "name": {"type": "string"},
                "name_zh": {"type": "string"},
                "score": {
                    "type": "number",
                    "description": (
                        "The text's cosine with the celebrity, higher is closer; planner"
                        " corrections may add a little."
                    ),
                },
                "margin": {
                    "type": "number",
                    "minimum": 0,
                    "description": "Lead over the next celebrity in the ranking (0 for the last).",
                },
                "share": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "description": "Share of the fit across the roster (a softmax of the scores).",
                },
                "rank": {"type": "integer", "minimum": 1, "description": "1 for the best match."},
                "reasons": {
                    "type": "array",
                    "items": _ref("Reason"),
                    "description": "The closest facets, best first.",
                },
            },
        },
        "MatchRequest": {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {
                "text": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": max_chars,
                    "pattern": NOT_BLANK,
                    "not": {"pattern": TEXT_CONTROL},
                    "description": (
                        "What the shopper likes, in English or Chinese; not blank, and no"
                        " control characters other than line breaks and tabs."
                    ),
                },
                "top_k": top_k,
                "lang": lang,
                "consent": consent,
                "shopper_ref": shopper_ref,
                "campaign": campaign,
            },
        },
        "MatchResponse": {
            "type": "object",
            "required": [
                "matches",
                "confident",
                "shopper_ref",
                "model",
                "campaign",
                "text_stored",
            ],
            "additionalProperties": False,
            "properties": {
                "matches": {"type": "array", "items": _ref("Match"), "description": "Best first."},
                **verdict,
                "shopper_ref": echoed_ref,
                "model": {"type": "string", "description": "The encoder that read the text."},
                "campaign": {"type": "string", "description": "The campaign paired for."},
                "text_stored": {
                    "type": "boolean",
                    "description": "Whether the shopper's text was kept with the pairing.",
                },
                "assigned": _ref("Assigned"),
            },
        },
        "Assigned": {
            "type": "object",
            "nullable": True,
            "description": (
                "Who the shopper is paired with under the campaign's quotas and shares; the"
                " `matches` stay ranked by fit. Null when nobody was paired (not confident,"
                " or no celebrity has a place left)."
            ),
            "required": ["celebrity_id", "assignment"],
            "additionalProperties": False,
            "properties": {
                "celebrity_id": {"type": "string"},
                "assignment": {
                    "type": "string",
                    "enum": ["best", "full", "balanced"],
                    "description": (
                        "`best`: their best fit. `full`: their better fits had no place left."
                        " `balanced`: a close fit, chosen to keep the shares each celebrity"
                        " was promised."
                    ),
                },
            },
        },
        "BatchRequest": {
            "type": "object",
            "required": ["items"],
            "additionalProperties": False,
            "properties": {
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_BATCH,
                    "items": {
                        "type": "object",
                        "required": ["text"],
                        "additionalProperties": False,
                        "properties": {
                            "text": {
                                "type": "string",
                                "description": (
                                    f"What the shopper likes. A blank text, or one over {max_chars}"
                                    " characters, gets an error in its result; the rest are paired."
                                ),
                            },
                            "shopper_ref": shopper_ref,
                            "consent": consent,
                        },
                    },
                },
                "top_k": top_k,
                "lang": lang,
                "campaign": campaign,
            },
        },
        "BatchResponse": {
            "type": "object",
            "required": ["results", "model", "campaign", "batch_id"],
            "additionalProperties": False,
            "properties": {
                "results": {
                    "type": "array",
                    "description": "One result per item, in order.",
                    "items": {"oneOf": [_ref("BatchMatched"), _ref("BatchFailed")]},
                },
                "model": {"type": "string", "description": "The encoder that read the texts."},
                "campaign": {"type": "string", "description": "The campaign paired for."},
                "batch_id": {
                    "type": "integer",
                    "nullable": True,
                    "description": (
                        "The stored batch: every confidently paired item of the call was stored"
                        " in one transaction. Null when no item was."
                    ),
                },
            },
        },
        "BatchMatched": {
            "type": "object",
            "required": ["shopper_ref", "matches", "confident"],
            "additionalProperties": False,
            "properties": {
                "shopper_ref": echoed_ref,
                "matches": {"type": "array", "items": _ref("Match"), "description": "Best first."},
                **verdict,
                "assigned": _ref("Assigned"),
            },
        },
        "BatchFailed": {
            "type": "object",
            "required": ["shopper_ref", "error"],
            "additionalProperties": False,
            "properties": {
                "shopper_ref": {**echoed_ref, "nullable": True, "description": "As sent, or null."},
                "error": _ref("ErrorDetail"),
            },
        },
        "PairingsReport": {
            "type": "object",
            "required": ["campaign", "since", "until", "total", "per_celebrity", "per_day"],
            "additionalProperties": False,
            "properties": {
                "campaign": {"type": "string", "nullable": True},
                "since": {"type": "string", "format": "date", "nullable": True},
                "until": {"type": "string", "format": "date", "nullable": True},
                "total": {"type": "integer", "minimum": 0},
                "per_celebrity": {
                    "type": "object",
                    "additionalProperties": {"type": "integer", "minimum": 0},
                    "description": "Pairings by celebrity id.",
                },
                "per_day": {
                    "type": "array",
                    "description": "Oldest day first; days without pairings are left out.",
                    "items": {
                        "type": "object",
                        "required": ["day", "celebrity_id", "pairings"],
                        "additionalProperties": False,
                        "properties": {
                            "day": {"type": "string", "format": "date"},
                            "celebrity_id": {"type": "string"},
                            "pairings": {"type": "integer", "minimum": 1},
                        },
                    },
                },
            },
        },
        "Celebrity": {
            "type": "object",
            "required": ["id", "name", "name_zh", "tagline", "tagline_zh", "image", "facets"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "name_zh": {"type": "string"},
                "tagline": {"type": "string"},
                "tagline_zh": {"type": "string", "nullable": True},
                "image": {"type": "string", "nullable": True},
                "facets": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The facet names the profile describes.",
                },
            },
        },
        "Roster": {
            "type": "object",
            "required": ["celebrities", "max_text_chars"],
            "additionalProperties": False,
            "properties": {
                "celebrities": {"type": "array", "items": _ref("Celebrity")},
                "max_text_chars": {
                    "type": "integer",
                    "description": "The longest shopper text accepted, in characters.",
                },
            },
        },
    }


def openapi_document(max_chars: int) -> dict[str, Any]:
    """The document for an API whose matcher takes texts of up to ``max_chars`` characters."""
    body_errors = _errors(400, 404, 413, 415, 422, 500, 503)
    idempotency_key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": f"^{KEY_PATTERN}$"},
        "description": (
            "A key of the caller's for this request (a UUID, say). A retry with the same key"
            " stores nothing new: it gets the first answer's pairing (`shopper_ref`,"
            " `text_stored`, `batch_id`), marked `Idempotent-Replayed: true`. Keys are kept"
            " per campaign, with the pairings."
        ),
    }
    replayed = {
        "Idempotent-Replayed": {
            "description": "`true` when this answer's pairings were stored by an earlier request.",
            "schema": {"type": "string", "enum": ["true"]},
        }
    }
    day = {"type": "string", "format": "date"}
    report_parameters = [
        {
            "name": "campaign",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "pattern": SLUG_PATTERN},
            "description": "Only this campaign; every campaign when left out.",
        },
        {
            "name": "since",
            "in": "query",
            "required": False,
            "schema": day,
            "description": "From this day (UTC), inclusive.",
        },
        {
            "name": "until",
            "in": "query",
            "required": False,
            "schema": day,
            "description": "Up to this day (UTC), inclusive.",
        },
    ]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "the matcher",
            "version": "1.0.0",
            "description": (
                "Pair shoppers with the campaign celebrity who fits them best. Every error"
                " has the `Error` shape, including unknown addresses (404) and methods (405)."
                " Browsers may call the API only from the microsite origins a planner listed."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/match": {
                "post": {
                    "operationId": "match",
                    "summary": "Pair one shopper text",
                    "parameters": [idempotency_key],
                    "requestBody": {"required": True, **_json(_ref("MatchRequest"))},
                    "responses": {
                        "200": {
                            "headers": replayed,
                            "description": "The best celebrities, best first",
                            **_json(_ref("MatchResponse")),
                        },
                        **body_errors,
                    },
                }
            },
            "/match/batch": {
                "post": {
                    "operationId": "matchBatch",
                    "summary": f"Pair up to {MAX_BATCH} shopper texts",
                    "parameters": [idempotency_key],
                    "requestBody": {"required": True, **_json(_ref("BatchRequest"))},
                    "responses": {
                        "200": {
                            "headers": replayed,
                            "description": "One result per item, in order; bad texts get an error",
                            **_json(_ref("BatchResponse")),
                        },
                        **body_errors,
                    },
                }
            },
            "/reports/pairings": {
                "get": {
                    "operationId": "pairingsReport",
                    "summary": "Stored pairings per celebrity, in total and per day",
                    "security": [{"planner": []}],
                    "parameters": report_parameters,
                    "responses": {
                        "200": {
                            "description": "Counts of the pairings the filters select",
                            **_json(_ref("PairingsReport")),
                        },
                        **_errors(400, 401, 404, 429, 500, 503),
                    },
                }
            },
            "/reports/pairings.csv": {
                "get": {
                    "operationId": "pairingsCsv",
                    "summary": "Stored pairings as CSV (no shopper text), oldest first",
                    "security": [{"planner": []}],
                    "parameters": report_parameters,
                    "responses": {
                        "200": {
                            "description": "One row per pairing; cells escaped for spreadsheets",
                            "content": {"text/csv": {"schema": {"type": "string"}}},
                        },
                        **_errors(400, 401, 404, 429, 500, 503),
                    },
                }
            },
            "/celebrities": {
                "get": {
                    "operationId": "listCelebrities",
                    "summary": "The active roster",
                    "parameters": [
                        {
                            "name": "campaign",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "string",
                                "pattern": SLUG_PATTERN,
                                "default": DEFAULT_SLUG,
                            },
                            "description": "The campaign whose roster to list.",
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "Celebrities in roster order",
                            **_json(_ref("Roster")),
                        },
                        **_errors(400, 404, 500, 503),
                    },
                }
            },
        },
        "components": {
            "schemas": _components(max_chars),
            "securitySchemes": {"planner": {"type": "http", "scheme": "basic"}},
        },
    }
