"""Schemathesis against the API's OpenAPI document, calling the app with the real matcher.

Every operation gets the coverage phase (boundary and schema-breaking cases)
and a bounded fuzzing run. The default checks apply: no 5xx; status codes,
content types and bodies as documented; schema-breaking requests refused and
schema-keeping ones accepted; 405 for undocumented methods.

The schema is loaded from the document at import, because Schemathesis
parametrizes tests at collection, before the session's model is loaded; the
document the app serves is checked to be this very document, so what is
fuzzed is what clients read.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth, missing_required_header

from matcher.matching import Matcher
from matcher.text import MAX_TEXT_CHARS
from web import create_app
from web.openapi import openapi_document

#: Enough to reach texts, batches and option combinations; the real model
#: takes 10-20 ms a text, so the whole file stays well under a minute.
MAX_EXAMPLES = 40
PASSWORD = "schema-check"

schema = schemathesis.openapi.from_dict(openapi_document(MAX_TEXT_CHARS))


@pytest.fixture
def app(sample_matcher: Matcher, tmp_path: Path) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path),
            "MATCHER_EMBED_ORIGINS": "https://shop.example",
            "MATCHER_PLANNER_PASSWORD": PASSWORD,
        },
        matcher=sample_matcher,
    )


def test_app_serves_the_fuzzed_document(app: Flask, sample_matcher: Matcher) -> None:
    assert sample_matcher.max_chars == MAX_TEXT_CHARS
    served = app.test_client().get("/api/v1/openapi.json")
    assert served.status_code == 200
    assert served.get_json() == schema.raw_schema


def test_document_describes_its_operations() -> None:
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert labels == {
        "POST /match",
        "POST /match/batch",
        "GET /celebrities",
        "GET /reports/pairings",
        "GET /reports/pairings.csv",
    }


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    # Reproducible in CI, and no example database written into the checkout.
    derandomize=True,
    database=None,
    # One app serves all the examples of an operation, on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_keeps_to_its_document(case: schemathesis.Case, app: Flask) -> None:
    excluded: list[Any] = []
    if case.path.startswith("/reports/"):
        # Reports need the planner's credentials; without them every case is a 401.
        token = base64.b64encode(f"planner:{PASSWORD}".encode()).decode()
        case.headers = {**(case.headers or {}), "Authorization": f"Basic {token}"}
        # Those checks resend without credentials over HTTP, or drop only headers
        # the document lists (not ours); test_web_storage checks the 401 itself.
        excluded += [missing_required_header, ignored_auth]
    # call_and_validate raises on any failed check (5xx, schema mismatch...).
    response = case.call_and_validate(app=app, excluded_checks=excluded)
    assert response.status_code < 500
