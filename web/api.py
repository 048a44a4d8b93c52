"""The JSON API at ``/api/v1``, described by ``/api/v1/openapi.json``.

Views check the body against the document's rules (``openapi.py``), call the
core and return JSON. Every client mistake is a 400-range answer in the one
error shape (``errors.py``) naming the field at fault. CORS is allowed only
for the microsite origins a planner listed, so a browser on any other site can
neither read the answers nor send JSON here. Shopper texts are never logged.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_babel import force_locale

from matcher.batch import escape_cell
from matcher.confidence import Assessment
from matcher.errors import InputError
from matcher.limits import MAX_REF_CHARS
from matcher.matching import DEFAULT_TOP_K
from matcher.store import DEFAULT_SLUG, NewPairing, PairingFilter
from matcher.store.campaigns import SLUG_PATTERN
from matcher.store.reports import (
    EXPORT_COLUMNS,
    celebrity_totals,
    count_pairings,
    daily_counts,
    export_rows,
)
from matcher.text import is_unicode, ref_problem, validate_text

from .campaigns import (
    all_origins,
    assigned_field,
    current_campaign,
    current_matcher,
    database,
    rank,
    rank_one,
    store,
)
from .errors import ApiError, error_body
from .hints import hint
from .idempotency import header_key, item_key, reused_key, same_requests
from .openapi import LANGS, MAX_BATCH, MAX_BODY_BYTES, openapi_document
from .serving import client_gone

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)

MATCH_FIELDS = frozenset({"text", "top_k", "lang", "consent", "shopper_ref", "campaign"})
BATCH_FIELDS = frozenset({"items", "top_k", "lang", "campaign"})
ITEM_FIELDS = frozenset({"text", "shopper_ref", "consent"})


@bp.before_request
def limit_body() -> None:
    """Read at most ``MAX_BODY_BYTES`` here, whatever the app allows planner uploads."""
    app_limit = current_app.config.get("MAX_CONTENT_LENGTH")
    request.max_content_length = (
        MAX_BODY_BYTES if app_limit is None else min(app_limit, MAX_BODY_BYTES)
    )


@bp.after_app_request
def cors(response: Response) -> Response:
    """Let the listed origins read every API answer, errors and 404s included.

    Registered on the app rather than the blueprint: blueprint hooks do not run
    for addresses that match no route, and a browser could not read that 404.
    """
    if request.path != PREFIX and not request.path.startswith(f"{PREFIX}/"):
        return response
    # The answer differs by Origin, so a shared cache must key on it.
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if origin and origin in all_origins():
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


@bp.after_request
def challenge(response: Response) -> Response:
    """Tell a client without credentials for the reports how to send them."""
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="matcher reports", charset="UTF-8"'
    return response


def bad(code: str, message: str, field: str | None = None) -> NoReturn:
    raise ApiError(400, code, message, field)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def json_body() -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        ApiError: 415 unless sent as JSON, 400 unless it parses to an object.
        RequestEntityTooLarge: the body is over the limit (a JSON 413).
    """
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "Send the body as JSON (Content-Type: application/json)."
        )
    try:
        # Python's parser accepts NaN and Infinity, which JSON does not; and a
        # deeply nested body exhausts its recursion, which is the client's doing.
        body = json.loads(request.get_data(cache=False), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        bad("invalid_json", "The body is not valid JSON (UTF-8, no NaN, no trailing commas).")
    if not isinstance(body, dict):
        bad("invalid_body", "The body must be a JSON object.")
    return body


def _shown(name: str) -> str:
    """A client-chosen name, shortened for an error message."""
    return json.dumps(name if len(name) <= 40 else f"{name[:40]}…")


def check_fields(body: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        bad(
            "unknown_field",
            f"Unknown field {_shown(unknown[0])}; the fields are {', '.join(sorted(allowed))}.",
            f"{prefix}{unknown[0]}",
        )


def shopper_text(value: object) -> str:
    """The stripped text, checked as the document says.

    The length limit counts the characters sent, as ``maxLength`` does.

    Raises:
        InputError: not a string, not Unicode, too long or blank; the message says which.
    """
    max_chars = current_matcher().max_chars
    if not isinstance(value, str):
        raise InputError("text is required and must be a string")
    if len(value) > max_chars:
        raise InputError(f"text is {len(value)} characters long; the limit is {max_chars}")
    if not is_unicode(value):
        raise InputError("text holds an unpaired surrogate escape; send valid Unicode")
    return validate_text(value, max_chars=max_chars)


def top_k(body: Mapping[str, Any]) -> int:
    value = body.get("top_k", DEFAULT_TOP_K)
    # JSON has one number type: 3.0 is the integer 3 to JSON Schema too.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        bad("invalid_top_k", "top_k must be a whole number of at least 1.", "top_k")
    return value


def optional_ref(body: Mapping[str, Any], prefix: str = "") -> str | None:
    if "shopper_ref" not in body:
        return None
    value = body["shopper_ref"]
    problem = ref_problem(value)
    if problem is not None:
        bad(
            "invalid_shopper_ref",
            f"shopper_ref {problem}: send 1 to {MAX_REF_CHARS} characters of plain text,"
            " or leave it out.",
            f"{prefix}shopper_ref",
        )
    assert isinstance(value, str)
    return value


def check_lang(body: Mapping[str, Any]) -> None:
    if "lang" in body and body["lang"] not in LANGS:
        bad("invalid_lang", f"lang must be one of {', '.join(LANGS)}, or left out.", "lang")


def consent(body: Mapping[str, Any], prefix: str = "") -> bool:
    value = body.get("consent", False)
    if not isinstance(value, bool):
        bad("invalid_consent", "consent must be true or false, or left out.", f"{prefix}consent")
    return value


def choose_campaign(value: object = DEFAULT_SLUG) -> None:
    """Point this request at a campaign (checked to exist by the first use of it)."""
    if not isinstance(value, str) or not re.fullmatch(SLUG_PATTERN, value):
        bad(
            "invalid_campaign",
            "campaign must be a campaign's name: lower-case letters, digits and dashes.",
            "campaign",
        )
    g.campaign_slug = value


def verdict_fields(verdict: Assessment) -> dict[str, Any]:
    """``confident``, and when it is false the ``reason`` code and a hint for the shopper."""
    fields = verdict.to_dict()
    if not verdict.confident:
        fields["hint"] = hint(verdict.reason)
    return fields


def hint_locale(body: Mapping[str, Any]) -> AbstractContextManager[None]:
    """Hints in the body's ``lang`` (checked already), else in the request's language."""
    lang = body.get("lang")
    return force_locale(lang) if isinstance(lang, str) else nullcontext()


@bp.post("/match")
def match() -> Response:
    """Pair one shopper text; see the OpenAPI document for the fields.

    An answer the matcher is unsure of (``confident: false``) is still a 200
    with the matches, but nobody was paired: it is not stored, so it counts
    in no report, and ``shopper_ref`` is only what the client sent.
    """
    body = json_body()
    check_fields(body, MATCH_FIELDS)
    choose_campaign(body.get("campaign", DEFAULT_SLUG))
    campaign = current_campaign()
    try:
        text = shopper_text(body.get("text"))
    except InputError as exc:
        bad("invalid_text", f"{exc}.", "text")
    k = top_k(body)
    # lang chooses the language of a hint; both names always come back.
    check_lang(body)
    agreed = consent(body)
    shopper_ref = optional_ref(body)
    key = header_key()
    matcher = current_matcher()
    matches, ranking = rank_one(matcher, text, k)
    verdict = matcher.assess(text, matches)
    if client_gone(request.environ):
        return Response(status=499)  # the client hung up: nobody to pair
    pairing = NewPairing(matches[0], text, agreed, shopper_ref, request_key=key, ranking=ranking)
    stored = store(campaign, matcher, [pairing], source="api") if verdict.confident else None
    replayed = stored is not None and stored.replayed
    if (
        replayed
        and key
        and stored
        and not same_requests(stored, matcher.index, [(key, matches[0])])
    ):
        raise reused_key()
    with hint_locale(body):
        verdict_body = verdict_fields(verdict)
    return replay_marked(
        replayed,
        {
            "matches": [m.to_dict() for m in matches],
            **verdict_body,
            "shopper_ref": stored.refs[0] if stored else shopper_ref,
            "model": matcher.index.model_id,
            "campaign": campaign.slug,
            "text_stored": stored is not None and stored.texts_kept > 0,
            "assigned": assigned_field(stored, 0, key),
        },
    )


@bp.post("/match/batch")
def match_batch() -> Response:
    """Pair up to ``MAX_BATCH`` texts in one encoder batch.

    A malformed request is refused whole; a blank or over-long text only gets
    an error in its own result, and the other texts are paired. Each result
    says whether it is ``confident``; only the confident ones are stored.
    """
    body = json_body()
    check_fields(body, BATCH_FIELDS)
    choose_campaign(body.get("campaign", DEFAULT_SLUG))
    campaign = current_campaign()
    items = body.get("items")
    if not isinstance(items, list) or not items:
        bad(
            "invalid_items",
            "items must be a non-empty list of {text, shopper_ref} objects.",
            "items",
        )
    if len(items) > MAX_BATCH:
        bad(
            "too_many_items", f"Send at most {MAX_BATCH} items per call, not {len(items)}.", "items"
        )
    k = top_k(body)
    refs: list[str | None] = []
    consents: list[bool] = []
    checked: list[str | InputError] = []
    for position, item in enumerate(items):
        where = f"items[{position}]"
        if not isinstance(item, dict):
            bad("invalid_item", f"{where} must be an object with a text.", where)
        check_fields(item, ITEM_FIELDS, f"{where}.")
        if not isinstance(item.get("text"), str):
            bad("invalid_text", f"{where}.text is required and must be a string.", f"{where}.text")
        refs.append(optional_ref(item, f"{where}."))
        consents.append(consent(item, f"{where}."))
        try:
            checked.append(shopper_text(item["text"]))
        except InputError as exc:
            checked.append(exc)
    check_lang(body)
    key = header_key()
    matcher = current_matcher()
    valid = [
        (position, text, ref, agreed)
        for position, (text, ref, agreed) in enumerate(zip(checked, refs, consents, strict=True))
        if isinstance(text, str)
    ]
    ranked = rank(matcher, [text for _, text, _, _ in valid], k)
    paired = [matches for matches, _ in ranked]
    verdicts = [
        matcher.assess(text, matches)
        for (_, text, _, _), matches in zip(valid, paired, strict=True)
    ]
    if client_gone(request.environ):
        return Response(status=499)  # the client hung up: nobody to pair
    # Only confident answers are pairings. Stored in one transaction: the whole
    # call, or (on an error) none of it.
    to_store = [
        NewPairing(
            matches[0], text, agreed, ref, request_key=item_key(key, position), ranking=ranking
        )
        for (position, text, ref, agreed), (matches, ranking), verdict in zip(
            valid, ranked, verdicts, strict=True
        )
        if verdict.confident
    ]
    stored = store(campaign, matcher, to_store, source="api", batch=True) if to_store else None
    replayed = stored is not None and stored.replayed
    if replayed and stored:
        keyed = [(p.request_key or "", p.match) for p in to_store]
        if not same_requests(stored, matcher.index, keyed):
            raise reused_key()
        earlier = stored.earlier or {}
        made_refs = iter(
            [earlier[p.request_key].shopper_ref for p in to_store if p.request_key in earlier]
        )
    else:
        made_refs = iter(stored.refs if stored else [])
    answers = iter(zip(paired, verdicts, strict=True))
    results: list[dict[str, Any]] = []
    stored_at = 0  # the next confident item's place among those stored
    with hint_locale(body):
        for position, (ref, text) in enumerate(zip(refs, checked, strict=True)):
            if isinstance(text, InputError):
                error = error_body(400, "invalid_text", f"{text}.", f"items[{position}].text")
                results.append({"shopper_ref": ref, **error})
                continue
            matches, verdict = next(answers)
            assigned = None
            if verdict.confident:
                assigned = assigned_field(stored, stored_at, item_key(key, position))
                stored_at += 1
            results.append(
                {
                    "shopper_ref": next(made_refs) if verdict.confident else ref,
                    "matches": [m.to_dict() for m in matches],
                    **verdict_fields(verdict),
                    "assigned": assigned,
                }
            )
    return replay_marked(
        replayed,
        {
            "results": results,
            "model": matcher.index.model_id,
            "campaign": campaign.slug,
            "batch_id": stored.batch_id if stored else None,
        },
    )


def replay_marked(replayed: bool, answer: dict[str, Any]) -> Response:
    """The JSON answer, marked ``Idempotent-Replayed: true`` if its pairings were stored before."""
    response = jsonify(answer)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/celebrities")
def celebrities() -> Response:
    """The active roster, for building a picker or a results page."""
    choose_campaign(request.args.get("campaign", DEFAULT_SLUG))
    matcher = current_matcher()
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
                for p in matcher.index.profiles
            ],
            "max_text_chars": matcher.max_chars,
        }
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(current_matcher().max_chars))


# -- reports, for planners' tools --------------------------------------------------------


def require_planner() -> None:
    """HTTP Basic with the planner's credentials, throttled apart from the login form.

    Raises:
        ApiError: 503 while the planner area is off, 429 after too many failures,
            401 without valid credentials.
    """
    from .planner import check_report_login

    check_report_login()


def _day(name: str) -> date | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        bad("invalid_date", f"{name} must be a day like 2026-11-25.", name)


def report_filter() -> tuple[PairingFilter, str | None]:
    """The report's campaign (every campaign when not named) and inclusive UTC days."""
    # since after until is an empty range, not a mistake: the answer is empty.
    since, until = _day("since"), _day("until")
    slug = request.args.get("campaign")
    campaign_id = None
    if slug is not None:
        choose_campaign(slug)
        campaign_id = current_campaign().id
    return PairingFilter(campaign_id, since, until), slug


@bp.get("/reports/pairings")
def pairings_report() -> Response:
    """Stored pairings per celebrity, in total and per day (UTC)."""
    require_planner()
    where, slug = report_filter()
    db = database()
    return jsonify(
        {
            "campaign": slug,
            "since": where.since.isoformat() if where.since else None,
            "until": where.until.isoformat() if where.until else None,
            "total": count_pairings(db, where),
            "per_celebrity": celebrity_totals(db, where),
            "per_day": [
                {"day": day.isoformat(), "celebrity_id": celebrity, "pairings": n}
                for day, celebrity, n in daily_counts(db, where)
            ],
        }
    )


@bp.get("/reports/pairings.csv")
def pairings_csv() -> Response:
    """Stored pairings as CSV, oldest first, cells escaped; never the shoppers' texts."""
    require_planner()
    where, slug = report_filter()
    db = database()

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        for row in export_rows(db, where):
            writer.writerow([escape_cell(cell) for cell in row])
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    name = f"pairings-{slug or 'all'}.csv"
    return Response(
        lines(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
