"""The JSON API with the real matcher: answers, the one error shape, limits, CORS, privacy."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from matcher.matching import DEFAULT_TOP_K, Match, Matcher
from matcher.store import update_campaign
from matcher.text import MAX_TEXT_CHARS
from web import campaigns
from web.openapi import LANGS, MAX_BATCH, MAX_BODY_BYTES, MAX_REF_CHARS, NOT_BLANK

from .conftest import make_app

LISTED = "https://shop.example"
UNLISTED = "https://elsewhere.example"
TEXT = "Slow mornings: a pot of oolong, a book of essays and ten minutes of breathing."
OTHER_TEXT = "Neon sneakers, karaoke with friends and sparkling citrus on a Friday night."


def assert_error(
    response: TestResponse, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """Pin the one error shape: ``{"error": {"status", "code", "message", "field"?}}``.

    Returns the ``error`` object, so a test can look at its message.
    """
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"status", "code", "message", "field"}
    assert error["status"] == status
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"].strip()
    assert "Traceback" not in error["message"]
    assert error.get("field") == field
    return error


@pytest.fixture
def app(sample_matcher: Matcher, tmp_path: Path) -> Flask:
    return make_app(tmp_path, sample_matcher, MATCHER_EMBED_ORIGINS=LISTED)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def expected_records(sample_matcher: Matcher, text: str, k: int) -> list[dict[str, Any]]:
    """What the core says for ``text``, in the API's field names."""
    return records(sample_matcher.match(text, k))


def records(matches: list[Match]) -> list[dict[str, Any]]:
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


# --- /match ---------------------------------------------------------------------------------


def first_id(matcher: Matcher, text: str) -> str:
    """The best fit by the core: the sample roster sets no quotas, so the pairing."""
    return matcher.match(text, 1)[0].celebrity_id


def test_match_returns_the_core_ranking(client: FlaskClient, sample_matcher: Matcher) -> None:
    response = client.post("/api/v1/match", json={"text": TEXT, "top_k": 2})
    assert response.status_code == 200
    body = response.get_json()
    assert body["shopper_ref"].startswith("s-")
    assert body == {
        "matches": expected_records(sample_matcher, TEXT, 2),
        "confident": True,
        "shopper_ref": body["shopper_ref"],
        "model": sample_matcher.index.model_id,
        "campaign": "default",
        "text_stored": False,
        "assigned": {
            "celebrity_id": sample_matcher.match(TEXT, 1)[0].celebrity_id,
            "assignment": "best",
        },
    }


def test_top_k_defaults_to_the_core_default(client: FlaskClient, sample_matcher: Matcher) -> None:
    matches = client.post("/api/v1/match", json={"text": TEXT}).get_json()["matches"]
    assert matches == expected_records(sample_matcher, TEXT, DEFAULT_TOP_K)


def test_top_k_beyond_the_roster_returns_everyone_once(
    client: FlaskClient, sample_matcher: Matcher
) -> None:
    roster = [p.id for p in sample_matcher.index.profiles]
    response = client.post("/api/v1/match", json={"text": TEXT, "top_k": len(roster) + 5})
    matches = response.get_json()["matches"]
    assert sorted(m["celebrity_id"] for m in matches) == sorted(roster)
    assert [m["rank"] for m in matches] == list(range(1, len(roster) + 1))


def test_integral_float_top_k_is_an_integer(client: FlaskClient, sample_matcher: Matcher) -> None:
    # JSON has one number type; JSON Schema counts 2.0 as the integer 2.
    matches = client.post("/api/v1/match", json={"text": TEXT, "top_k": 2.0}).get_json()["matches"]
    assert matches == expected_records(sample_matcher, TEXT, 2)


def test_chinese_text_matches_like_the_core(client: FlaskClient, sample_matcher: Matcher) -> None:
    text = "喜欢安静的早晨，一壶乌龙茶，读几页散文。"
    matches = client.post("/api/v1/match", json={"text": text, "top_k": 1}).get_json()["matches"]
    assert matches == expected_records(sample_matcher, text, 1)


def test_surrounding_whitespace_is_ignored(client: FlaskClient, sample_matcher: Matcher) -> None:
    response = client.post("/api/v1/match", json={"text": f"\n  {TEXT}\t"})
    assert response.get_json()["matches"] == expected_records(sample_matcher, TEXT, DEFAULT_TOP_K)


def test_options_are_accepted_and_the_reference_comes_back(
    client: FlaskClient, sample_matcher: Matcher
) -> None:
    body = {"text": TEXT, "top_k": 1, "lang": "zh", "consent": True, "shopper_ref": "order-42"}
    response = client.post("/api/v1/match", json=body)
    assert response.status_code == 200
    assert response.get_json() == {
        "matches": expected_records(sample_matcher, TEXT, 1),
        "confident": True,
        "shopper_ref": "order-42",
        "model": sample_matcher.index.model_id,
        "campaign": "default",
        # The default campaign keeps a consenting shopper's text.
        "text_stored": True,
        "assigned": {"celebrity_id": first_id(sample_matcher, TEXT), "assignment": "best"},
    }


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        pytest.param({}, "invalid_text", "text", id="missing-text"),
        pytest.param({"text": None}, "invalid_text", "text", id="null-text"),
        pytest.param({"text": 42}, "invalid_text", "text", id="number-text"),
        pytest.param({"text": ["tea"]}, "invalid_text", "text", id="list-text"),
        pytest.param({"text": ""}, "invalid_text", "text", id="empty-text"),
        pytest.param({"text": " \n\t "}, "invalid_text", "text", id="whitespace-text"),
        pytest.param({"text": "\u3000\x1c\xa0"}, "invalid_text", "text", id="unicode-whitespace-text"),
        pytest.param({"text": "x" * (MAX_TEXT_CHARS + 1)}, "invalid_text", "text", id="over-long-text"),
        pytest.param({"text": " " + "x" * MAX_TEXT_CHARS}, "invalid_text", "text", id="over-long-with-padding"),
        pytest.param({"text": "tea \ud800"}, "invalid_text", "text", id="lone-surrogate-text"),
        pytest.param({"text": TEXT, "top_k": 0}, "invalid_top_k", "top_k", id="zero-top-k"),
        pytest.param({"text": TEXT, "top_k": -3}, "invalid_top_k", "top_k", id="negative-top-k"),
        pytest.param({"text": TEXT, "top_k": 2.5}, "invalid_top_k", "top_k", id="fractional-top-k"),
        pytest.param({"text": TEXT, "top_k": "3"}, "invalid_top_k", "top_k", id="string-top-k"),
        pytest.param({"text": TEXT, "top_k": True}, "invalid_top_k", "top_k", id="boolean-top-k"),
        pytest.param({"text": TEXT, "top_k": None}, "invalid_top_k", "top_k", id="null-top-k"),
        pytest.param({"text": TEXT, "lang": "fr"}, "invalid_lang", "lang", id="unknown-lang"),
        pytest.param({"text": TEXT, "lang": "ZH"}, "invalid_lang", "lang", id="upper-case-lang"),
        pytest.param({"text": TEXT, "lang": None}, "invalid_lang", "lang", id="null-lang"),
        pytest.param({"text": TEXT, "lang": ["en"]}, "invalid_lang", "lang", id="list-lang"),
        pytest.param({"text": TEXT, "consent": "yes"}, "invalid_consent", "consent", id="string-consent"),
        pytest.param({"text": TEXT, "consent": 1}, "invalid_consent", "consent", id="number-consent"),
        pytest.param({"text": TEXT, "consent": None}, "invalid_consent", "consent", id="null-consent"),
        pytest.param({"text": TEXT, "shopper_ref": ""}, "invalid_shopper_ref", "shopper_ref", id="empty-ref"),
        pytest.param({"text": TEXT, "shopper_ref": "r" * (MAX_REF_CHARS + 1)}, "invalid_shopper_ref", "shopper_ref", id="over-long-ref"),
        pytest.param({"text": TEXT, "shopper_ref": 7}, "invalid_shopper_ref", "shopper_ref", id="number-ref"),
        pytest.param({"text": TEXT, "shopper_ref": None}, "invalid_shopper_ref", "shopper_ref", id="null-ref"),
        pytest.param({"text": TEXT, "shopper_ref": "\udc00"}, "invalid_shopper_ref", "shopper_ref", id="lone-surrogate-ref"),
        pytest.param({"text": TEXT, "colour": "red"}, "unknown_field", "colour", id="unknown-field"),
        pytest.param({"text": TEXT, "Text": TEXT}, "unknown_field", "Text", id="wrong-case-field"),
        pytest.param({"txt": TEXT}, "unknown_field", "txt", id="misspelt-text"),
    ],
)  # fmt: skip
def test_bad_match_request_is_a_400_naming_the_field(
    client: FlaskClient, body: dict[str, Any], code: str, field: str
) -> None:
    assert_error(client.post("/api/v1/match", json=body), 400, code, field)


def test_text_limits_follow_the_matcher(client: FlaskClient, sample_matcher: Matcher) -> None:
    longest = "tea " * (sample_matcher.max_chars // 4)
    assert client.post("/api/v1/match", json={"text": longest}).status_code == 200
    error = assert_error(
        client.post("/api/v1/match", json={"text": longest + "x"}), 400, "invalid_text", "text"
    )
    assert str(sample_matcher.max_chars) in error["message"]


def test_unknown_field_message_names_the_allowed_fields(client: FlaskClient) -> None:
    error = assert_error(
        client.post("/api/v1/match", json={"text": TEXT, "topk": 2}), 400, "unknown_field", "topk"
    )
    assert '"topk"' in error["message"] and "top_k" in error["message"]


# --- the body -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/match", "/api/v1/match/batch"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty-body"),
        pytest.param(b"{text: 'tea'}", id="not-json"),
        pytest.param(b'{"text": "tea",}', id="trailing-comma"),
        pytest.param(b'{"text": "tea"', id="truncated"),
        pytest.param(b'{"text": "tea", "top_k": NaN}', id="nan"),
        pytest.param(b'{"text": "tea", "top_k": Infinity}', id="infinity"),
        pytest.param(b'{"text": "t\xffa"}', id="invalid-utf8"),
        pytest.param(b"[" * 100_000, id="deeply-nested"),
        pytest.param(b'{"text": "tea", "top_k": 1' + b"0" * 5000 + b"}", id="huge-number"),
    ],
)
def test_malformed_json_is_a_400(client: FlaskClient, path: str, raw: bytes) -> None:
    response = client.post(path, data=raw, content_type="application/json")
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("path", ["/api/v1/match", "/api/v1/match/batch"])
@pytest.mark.parametrize(
    "body",
    [
        pytest.param([{"text": TEXT}], id="list"),
        pytest.param(TEXT, id="string"),
        pytest.param(3, id="number"),
        pytest.param(None, id="null"),
    ],
)
def test_body_that_is_not_an_object_is_a_400(client: FlaskClient, path: str, body: object) -> None:
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert_error(response, 400, "invalid_body")


@pytest.mark.parametrize("path", ["/api/v1/match", "/api/v1/match/batch"])
@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/plain", id="text-plain"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param(None, id="no-content-type"),
    ],
)
def test_body_not_sent_as_json_is_a_415(
    client: FlaskClient, path: str, content_type: str | None
) -> None:
    response = client.post(path, data=json.dumps({"text": TEXT}), content_type=content_type)
    assert_error(response, 415, "unsupported_media_type")


def test_json_with_a_charset_parameter_is_json(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/match",
        data=json.dumps({"text": TEXT}),
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 200


def test_body_over_the_api_limit_is_a_json_413(client: FlaskClient) -> None:
    raw = json.dumps({"text": "x" * MAX_BODY_BYTES}).encode()
    response = client.post("/api/v1/match", data=raw, content_type="application/json")
    error = assert_error(response, 413, "body_too_large")
    assert str(MAX_BODY_BYTES) in error["message"]


def test_body_over_max_content_length_is_a_json_413(app: Flask, client: FlaskClient) -> None:
    raw = b" " * (app.config["MAX_CONTENT_LENGTH"] + 1)
    for path in ("/api/v1/match", "/api/v1/match/batch"):
        response = client.post(path, data=raw, content_type="application/json")
        assert_error(response, 413, "body_too_large")


def test_largest_valid_batch_fits_under_the_body_limit(sample_matcher: Matcher) -> None:
    # Escaped astral characters are the longest way to write a text in JSON.
    item = {
        "text": "\U0001f375" * sample_matcher.max_chars,
        "shopper_ref": "\U0001f375" * MAX_REF_CHARS,
    }
    raw = json.dumps({"items": [item] * MAX_BATCH, "top_k": 3}, ensure_ascii=True)
    assert len(raw.encode()) <= MAX_BODY_BYTES


# --- addresses and methods ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/api/v1/nothing", id="unknown-endpoint"),
        pytest.param("/api/v2/match", id="unknown-version"),
        pytest.param("/api/v1/celebrities/chen-an", id="no-detail-endpoint"),
        pytest.param("/api/v1", id="bare-prefix"),
    ],
)
def test_unknown_api_address_is_a_json_404(client: FlaskClient, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")
    assert_error(client.post(path, json={"text": TEXT}), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("GET", "/api/v1/match", "POST", id="get-match"),
        pytest.param("PUT", "/api/v1/match", "POST", id="put-match"),
        pytest.param("DELETE", "/api/v1/match/batch", "POST", id="delete-batch"),
        pytest.param("POST", "/api/v1/celebrities", "GET", id="post-celebrities"),
        pytest.param("PATCH", "/api/v1/openapi.json", "GET", id="patch-document"),
    ],
)
def test_wrong_method_is_a_json_405_with_allow(
    client: FlaskClient, method: str, path: str, allowed: str
) -> None:
    response = client.open(path, method=method)
    error = assert_error(response, 405, "method_not_allowed")
    assert allowed in response.headers["Allow"].split(", ")
    assert method in error["message"] and allowed in error["message"]


# --- /match/batch ---------------------------------------------------------------------------


def test_batch_pairs_every_text_in_order(client: FlaskClient, sample_matcher: Matcher) -> None:
    items = [{"text": TEXT, "shopper_ref": "a"}, {"text": OTHER_TEXT}]
    response = client.post("/api/v1/match/batch", json={"items": items, "top_k": 2})
    # One encoder batch, as the API runs it: padding may move the last float bits.
    first, second = sample_matcher.match_many([TEXT, OTHER_TEXT], 2)
    assert response.status_code == 200
    body = response.get_json()
    made = body["results"][1]["shopper_ref"]
    assert made.startswith("s-")
    assert body == {
        "results": [
            {
                "shopper_ref": "a",
                "matches": records(first),
                "confident": True,
                "assigned": {"celebrity_id": first[0].celebrity_id, "assignment": "best"},
            },
            {
                "shopper_ref": made,
                "matches": records(second),
                "confident": True,
                "assigned": {"celebrity_id": second[0].celebrity_id, "assignment": "best"},
            },
        ],
        "model": sample_matcher.index.model_id,
        "campaign": "default",
        "batch_id": body["batch_id"],
    }
    assert isinstance(body["batch_id"], int)


def test_batch_gives_bad_texts_an_error_and_pairs_the_rest(
    client: FlaskClient, sample_matcher: Matcher
) -> None:
    too_long = "x" * (sample_matcher.max_chars + 1)
    items = [
        {"text": "   ", "shopper_ref": "blank"},
        {"text": TEXT, "shopper_ref": "good"},
        {"text": too_long, "shopper_ref": "long"},
        {"text": "tea \ud800", "shopper_ref": "surrogate"},
    ]
    response = client.post("/api/v1/match/batch", json={"items": items, "top_k": 1})
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["shopper_ref"] for r in results] == ["blank", "good", "long", "surrogate"]
    assert results[1] == {
        "shopper_ref": "good",
        "matches": expected_records(sample_matcher, TEXT, 1),
        "confident": True,
        "assigned": {"celebrity_id": first_id(sample_matcher, TEXT), "assignment": "best"},
    }
    for position in (0, 2, 3):
        assert set(results[position]) == {"shopper_ref", "error"}
        error = results[position]["error"]
        assert error["status"] == 400 and error["code"] == "invalid_text"
        assert error["field"] == f"items[{position}].text"
        assert error["message"].strip()
    assert str(sample_matcher.max_chars) in results[2]["error"]["message"]


def test_batch_of_only_bad_texts_still_answers(client: FlaskClient) -> None:
    response = client.post("/api/v1/match/batch", json={"items": [{"text": ""}, {"text": " "}]})
    assert response.status_code == 200
    assert [set(r) for r in response.get_json()["results"]] == [{"shopper_ref", "error"}] * 2


def test_batch_of_the_maximum_size_is_accepted(client: FlaskClient) -> None:
    items = [{"text": f"tea number {i}"} for i in range(MAX_BATCH)]
    response = client.post("/api/v1/match/batch", json={"items": items, "top_k": 1})
    assert response.status_code == 200
    assert len(response.get_json()["results"]) == MAX_BATCH


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        pytest.param({}, "invalid_items", "items", id="missing-items"),
        pytest.param({"items": []}, "invalid_items", "items", id="empty-items"),
        pytest.param({"items": {"text": TEXT}}, "invalid_items", "items", id="object-items"),
        pytest.param({"items": None}, "invalid_items", "items", id="null-items"),
        pytest.param({"items": [{"text": TEXT}] * (MAX_BATCH + 1)}, "too_many_items", "items", id="too-many-items"),
        pytest.param({"items": [{"text": TEXT}, TEXT]}, "invalid_item", "items[1]", id="string-item"),
        pytest.param({"items": [None]}, "invalid_item", "items[0]", id="null-item"),
        pytest.param({"items": [{"shopper_ref": "a"}]}, "invalid_text", "items[0].text", id="item-missing-text"),
        pytest.param({"items": [{"text": TEXT}, {"text": 5}]}, "invalid_text", "items[1].text", id="item-number-text"),
        pytest.param({"items": [{"text": TEXT, "ref": "a"}]}, "unknown_field", "items[0].ref", id="item-unknown-field"),
        pytest.param({"items": [{"text": TEXT, "shopper_ref": ""}]}, "invalid_shopper_ref", "items[0].shopper_ref", id="item-empty-ref"),
        pytest.param({"items": [{"text": TEXT, "shopper_ref": 1}]}, "invalid_shopper_ref", "items[0].shopper_ref", id="item-number-ref"),
        pytest.param({"items": [{"text": TEXT}], "top_k": 0}, "invalid_top_k", "top_k", id="zero-top-k"),
        pytest.param({"items": [{"text": TEXT}], "top_k": "2"}, "invalid_top_k", "top_k", id="string-top-k"),
        pytest.param({"items": [{"text": TEXT}], "colour": "red"}, "unknown_field", "colour", id="unknown-field"),
        pytest.param({"items": [{"text": TEXT}], "lang": "fr"}, "invalid_lang", "lang", id="unknown-lang"),
        pytest.param({"text": TEXT}, "unknown_field", "text", id="single-match-body"),
    ],
)  # fmt: skip
def test_bad_batch_request_is_a_400_naming_the_field(
    client: FlaskClient, body: dict[str, Any], code: str, field: str
) -> None:
    assert_error(client.post("/api/v1/match/batch", json=body), 400, code, field)


# --- /celebrities and the document ----------------------------------------------------------


def test_celebrities_lists_the_roster(client: FlaskClient, sample_matcher: Matcher) -> None:
    response = client.get("/api/v1/celebrities")
    assert response.status_code == 200
    body = response.get_json()
    profiles = sample_matcher.index.profiles
    assert [c["id"] for c in body["celebrities"]] == [p.id for p in profiles]
    assert [c["name_zh"] for c in body["celebrities"]] == [p.name_zh for p in profiles]
    assert [c["facets"] for c in body["celebrities"]] == [list(p.facets) for p in profiles]
    assert body["max_text_chars"] == sample_matcher.max_chars


def test_document_states_the_limits_the_server_enforces(
    client: FlaskClient, sample_matcher: Matcher
) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    text = schemas["MatchRequest"]["properties"]["text"]
    assert text["maxLength"] == sample_matcher.max_chars
    assert schemas["MatchRequest"]["properties"]["lang"]["enum"] == list(LANGS)
    assert schemas["MatchRequest"]["properties"]["top_k"]["default"] == DEFAULT_TOP_K
    assert schemas["BatchRequest"]["properties"]["items"]["maxItems"] == MAX_BATCH
    assert schemas["MatchRequest"]["properties"]["shopper_ref"]["maxLength"] == MAX_REF_CHARS


def test_document_lists_every_api_route(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    prefix = document["servers"][0]["url"]
    documented = {
        (method.upper(), prefix + path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(prefix + "/") and rule.rule != f"{prefix}/openapi.json"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert documented == served


def test_not_blank_pattern_is_what_the_core_strips() -> None:
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    whitespace = "".join(c for c in everything if c.isspace())
    # Python's reading of the pattern (Hypothesis generates with it)...
    assert re.sub(NOT_BLANK, "", everything) == whitespace
    # ...and the validator's, which Schemathesis checks answers and requests with.
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": NOT_BLANK})
    assert [c for c in whitespace if validator.is_valid(c)] == []
    assert all(validator.is_valid(c) for c in "a中\ufeff\x00-]^\\")


# --- CORS -----------------------------------------------------------------------------------


def cors_headers(response: TestResponse) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("POST", "/api/v1/match", {"text": TEXT}, id="match"),
        pytest.param("POST", "/api/v1/match", {"text": ""}, id="match-error"),
        pytest.param("GET", "/api/v1/celebrities", None, id="celebrities"),
        pytest.param("GET", "/api/v1/nothing", None, id="not-found"),
    ],
)
def test_listed_origin_may_read_answers_and_errors(
    client: FlaskClient, method: str, path: str, body: dict[str, str] | None
) -> None:
    response = client.open(path, method=method, json=body, headers={"Origin": LISTED})
    assert response.headers["Access-Control-Allow-Origin"] == LISTED
    assert "Origin" in response.headers["Vary"]
    other = client.open(path, method=method, json=body, headers={"Origin": UNLISTED})
    assert cors_headers(other) == {}
    assert "Origin" in other.headers["Vary"]


@pytest.mark.parametrize("path", ["/api/v1/match", "/api/v1/match/batch"])
def test_preflight_from_a_listed_origin_allows_json_posts(client: FlaskClient, path: str) -> None:
    response = client.options(
        path,
        headers={
            "Origin": LISTED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code in (200, 204)
    headers = cors_headers(response)
    assert headers["Access-Control-Allow-Origin"] == LISTED
    assert "POST" in [m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")]
    assert "content-type" in headers["Access-Control-Allow-Headers"].lower()


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param(UNLISTED, id="other-site"),
        pytest.param("http://shop.example", id="other-scheme"),
        pytest.param("https://shop.example:8443", id="other-port"),
        pytest.param("https://evil.shop.example", id="subdomain"),
        pytest.param("https://shop.example.evil", id="suffix"),
        pytest.param("null", id="null-origin"),
    ],
)
def test_preflight_from_other_origins_gets_no_cors_headers(
    client: FlaskClient, origin: str
) -> None:
    response = client.options(
        "/api/v1/match",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert cors_headers(response) == {}


def test_origins_saved_by_a_planner_are_honoured(sample_matcher: Matcher, tmp_path: Path) -> None:
    app = make_app(tmp_path, sample_matcher)
    client = app.test_client()
    assert cors_headers(client.get("/api/v1/celebrities", headers={"Origin": UNLISTED})) == {}
    update_campaign(app.extensions["matcher.db"], "default", {"embed_origins": [UNLISTED]})
    campaigns.forget(app, "default")
    response = client.get("/api/v1/celebrities", headers={"Origin": UNLISTED})
    assert response.headers["Access-Control-Allow-Origin"] == UNLISTED


def test_pages_outside_the_api_get_no_cors_headers(client: FlaskClient) -> None:
    assert cors_headers(client.get("/healthz", headers={"Origin": LISTED})) == {}


# --- failures and privacy -------------------------------------------------------------------


def test_server_fault_is_a_json_500_without_details(
    client: FlaskClient, sample_matcher: Matcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"index exploded at {__file__}")

    monkeypatch.setattr(sample_matcher, "match", broken)
    response = client.post("/api/v1/match", json={"text": TEXT})
    error = assert_error(response, 500, "internal_error")
    assert "exploded" not in error["message"] and __file__ not in error["message"]


def test_shopper_text_is_never_logged(
    client: FlaskClient,
    sample_matcher: Matcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "my secret wish is a lavender scented boat"
    caplog.set_level(logging.DEBUG)
    client.post("/api/v1/match", json={"text": secret})
    client.post("/api/v1/match", json={"text": secret, "top_k": 0})
    client.post("/api/v1/match", json={"text": secret * 100})
    client.post("/api/v1/match/batch", json={"items": [{"text": secret}, {"text": secret * 100}]})

    def choke(text: str, *args: object, **kwargs: object) -> None:
        # Libraries quote their input in messages; the log must not pass that on.
        raise ValueError(f"cannot tokenize {text!r}")

    monkeypatch.setattr(sample_matcher, "match", choke)
    assert client.post("/api/v1/match", json={"text": secret}).status_code == 500
    assert "ValueError" in caplog.text  # the fault itself is logged...
    assert "lavender" not in caplog.text  # ...but never the text
