"""Hostile input at every route: never a 5xx, never a traceback, never markup rendered.

The table is built from the app itself: every rule in ``app.url_map`` is sent
every hostile value in each of its path parts, its query string and, for the
routes that take a body, in each field of the forms that post to it (found by
reading every page the app serves, so a new field is covered without editing
this file), as JSON for the API, and as raw bodies that cannot be parsed at
all. A route that none of these reaches fails the test. Everything runs on
SQLite and, when a server is configured, PostgreSQL, where a NUL character
in a text or a reference is refused by the database itself.

The encoder is the fake one (tests/fakes.py): what is checked is how input is
read, not how well it matches.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from werkzeug.test import TestResponse

from matcher.index import build_index
from matcher.matching import Matcher
from matcher.profiles import load_profiles
from web import create_app
from web.campaigns import database

from .conftest import write_roster
from .fakes import HashingEncoder

PASSWORD = "hostile-pw"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"planner:{PASSWORD}".encode()).decode()}
#: Small, so that an over-limit body is cheap to send; the API has its own, smaller limit.
BODY_LIMIT = 256 * 1024

#: Markup a page must never render: each has a piece that survives only unescaped.
MARKUP = {
    "script": "<script>alert(1)</script>",
    "attribute": '"><img src=x onerror=alert(1)>',
    "refresh": '<meta http-equiv="refresh" content="0;url=//x">',
}
RAW_MARKERS = ("<script>alert(1)", "<img src=x", "<meta http-equiv")

#: Values a client controls, sent in every place a value goes.
HOSTILE: dict[str, str] = {
    "empty": "",
    "blank": " \t\r\n ",
    "nul": "tea\x00time",
    "only-nul": "\x00",
    "controls": "\x1b[31mred\x07\x7f",
    "crlf-header": "x\r\nX-Injected: 1\r\n\r\nforged line",
    "huge-number": "9" * 5000,
    "negative": "-1",
    "float": "1e400",
    "far-date": "9999-12-31",
    "first-date": "0001-01-01",
    "past-date": "99999-01-01",
    "no-such-date": "2025-02-30",
    "overlong": "x" * 100_000,
    "path": "../../../../etc/passwd",
    "absolute-path": "/etc",
    "format": "%(n)s %s {0} {{x}}",
    "bidi": "\u202egnp.exe\ufeff",
    "emoji": "\U0001f375" * 50,
    "formula": ' =HYPERLINK("http://x")',
    **{f"markup-{name}": value for name, value in MARKUP.items()},
}
#: The same for JSON, with what only JSON can carry.
JSON_HOSTILE: dict[str, Any] = {
    **HOSTILE,
    "surrogate": "\ud800tea",
    "null": None,
    "true": True,
    "int": 10**30,
    "list": ["tea"],
    "object": {"text": "tea"},
    "deep": json.loads("[" * 500 + "]" * 500),
}
#: Values also sent in each field alone (the rest all at once, in every field).
ONE_BY_ONE = (
    "empty", "nul", "controls", "crlf-header", "huge-number", "far-date", "past-date",
    "overlong", "format", "markup-script", "markup-attribute", "formula",
)  # fmt: skip
QUERY_ONE_BY_ONE = ("nul", "huge-number", "far-date", "past-date", "overlong", "markup-script")
#: Query parameter names any view reads; every one is sent on every GET.
QUERY_NAMES = (
    "lang", "campaign", "since", "until", "scope", "ref", "next", "format", "text",
    "page", "celebrity", "top_k", "q", "id",
)  # fmt: skip

#: Headers a client controls (a value holding a line break cannot be sent at all).
HOSTILE_HEADERS: dict[str, dict[str, str]] = {
    "accept-language": {"Accept-Language": "zh;q=NaN, *;q=9e999, " + "x-" * 2000},
    "origin": {"Origin": "null", "Sec-Fetch-Site": "<script>"},
    "forwarded": {
        "X-Forwarded-For": "999.999.999.999, ::g, " + "1." * 3000,
        "Forwarded": 'for="[::1',
    },
    "idempotency-key": {"Idempotency-Key": "\x7f" + "k" * 5000, "Content-Type": "application/json"},
    "authorization": {"Authorization": "Basic !!!not-base64", "Cookie": "session=" + "A" * 4000},
    "accept": {"Accept": "application/json;q=2, */*;q=-1"},
    "content-length": {"Content-Length": "99999999999999999999"},
}
#: Raw bodies for every route that takes one: (content type, bytes).
RAW_BODIES: dict[str, tuple[str, bytes]] = {
    "empty-form": ("application/x-www-form-urlencoded", b""),
    "bad-utf8-form": ("application/x-www-form-urlencoded", b"text=\xff\xfe\xc3\x28&lang=\xed\xa0\x80"),
    "over-limit-form": ("application/x-www-form-urlencoded", b"text=" + b"x" * (BODY_LIMIT + 1)),
    "over-limit-json": ("application/json", b'{"text": "' + b"x" * (BODY_LIMIT + 1) + b'"}'),
    "broken-multipart": ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nunterminated"),
    "multipart-no-boundary": ("multipart/form-data", b"text=tea"),
    "deep-json": ("application/json", b"[" * 100_000),
    "not-json": ("application/json", b"\xff{'text': tea,}"),
    "json-nan": ("application/json", b'{"text": NaN, "top_k": Infinity}'),
    "wrong-type": ("text/plain", b"tea"),
    "xml": ("application/xml", b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a SYSTEM 'file:///etc/passwd'>]><x>&a;</x>"),
}  # fmt: skip

ROSTER_MARKUP = f"""\
id: masked
name: '{MARKUP["script"]}'
name_zh: '{MARKUP["attribute"].replace("'", "''")}'
tagline: '{MARKUP["refresh"]}'
facets:
  style: 'tea and books {MARKUP["script"]} tea and books'
  lifestyle: 'reading by the window {MARKUP["attribute"].replace("'", "''")}'
tags: ['{MARKUP["refresh"]}']
"""


# -- the app ----------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    profiles = write_roster(tmp_path / "profiles")
    (profiles / "masked.yaml").write_text(ROSTER_MARKUP, encoding="utf-8")
    encoder = HashingEncoder(record=False)
    matcher = Matcher(encoder, build_index(load_profiles(profiles), encoder)[0])
    rosters = tmp_path / "rosters"
    shutil.copytree(profiles, rosters / "spring")
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "MATCHER_PROFILES": str(profiles),
            "MATCHER_ROSTERS_DIR": str(rosters),
            "MATCHER_DATABASE_URL": database_url,
            "MATCHER_PLANNER_PASSWORD": PASSWORD,
            "MATCHER_EMBED_ORIGINS": None,
            "MAX_CONTENT_LENGTH": BODY_LIMIT,
        },
        matcher=matcher,
    )
    yield app
    database(app).dispose()


class Forms(HTMLParser):
    """Every POST form of a page: its action (without query or fragment), its fields' values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.open = False
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.open = values.get("method", "get").lower() == "post"
            if self.open:
                action = re.split(r"[?#]", values.get("action", ""))[0]
                self.forms.append((action, {}))
        elif tag in ("input", "textarea", "select", "button") and self.open and "name" in values:
            fields = self.forms[-1][1]
            if values.get("type") in ("checkbox", "radio") and values["name"] in fields:
                return
            fields[values["name"]] = values.get("value", "")
            self.textarea = values["name"] if tag == "textarea" else None

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.forms[-1][1][self.textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self.textarea = None
        elif tag == "form":
            self.open = False


def forms_of(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = Forms()
    parser.feed(html)
    return parser.forms


def log_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    page = client.get("/planner/login").get_data(as_text=True)
    (_, fields), *_ = [form for form in forms_of(page) if form[0].endswith("/planner/login")]
    response = client.post(
        "/planner/login", data={**fields, "user": "planner", "password": PASSWORD}
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def make_campaign(planner: FlaskClient, slug: str = "spring", **fields: str) -> TestResponse:
    """A second campaign on the roster folder ``rosters/spring``, through the planner's form."""
    page = planner.get("/planner/campaigns").get_data(as_text=True)
    (_, form), *_ = [f for f in forms_of(page) if f[0].endswith("/planner/campaigns")]
    form.update(slug=slug, name="Spring", brand="Lueur", profiles_dir="spring")
    form.update(consent_text="May we keep your words?", moods="calm", scents="woody")
    form.update(fields)
    return planner.post("/planner/campaigns", data=form)


# -- checks -----------------------------------------------------------------------------


class Tally:
    """Counts requests per route, and fails on the first bad answer, saying which."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    def check(self, rule: str, what: str, response: TestResponse) -> None:
        self.sent[rule] += 1
        body = response.get_data(as_text=True)
        where = f"{rule} with {what}: {response.status_code}"
        assert response.status_code < 500, f"{where}\n{body[:800]}"
        assert "Traceback" not in body and 'File "/' not in body, where
        if response.mimetype == "text/html":
            for marker in RAW_MARKERS:
                assert marker not in body, f"{where}: markup rendered as HTML: {marker}"
        for name, value in response.headers.items():
            assert "\n" not in value and "\r" not in value, f"{where}: header {name} split"
            assert name.lower() != "x-injected", f"{where}: a header was injected"


def path_values(rule: Any, campaign: str) -> Iterator[tuple[str, str]]:
    """The rule's URL with good arguments, then with each hostile value in each argument."""
    good = {
        "campaign": campaign,
        "filename": "app.css",
        "job_id": "AAAAAAAAAAAAAAAA",
        "celebrity_id": "ocean",
    }

    def build(values: dict[str, str]) -> str:
        path = rule.rule
        for name in rule.arguments:
            from urllib.parse import quote

            path = re.sub(rf"<(?:\w+:)?{name}>", quote(values[name], safe=""), path)
        return path

    yield "good path", build({name: good.get(name, "x") for name in rule.arguments})
    for name in sorted(rule.arguments):
        for label, value in HOSTILE.items():
            if label not in ONE_BY_ONE and "path" not in label:
                continue
            values = {n: good.get(n, "x") for n in rule.arguments}
            values[name] = value or "%20"
            yield f"{name}={label}", build(values)


def planner_forms(app: Flask, planner: FlaskClient) -> dict[str, dict[str, str]]:
    """Every form action the app's pages carry (public and planner), with its fields."""
    pages = [
        "/", "/embed", "/c/spring/", "/c/spring/embed", "/planner/login", "/planner/",
        "/planner/try", "/planner/batches", "/planner/campaigns", "/planner/settings",
        "/planner/embed", "/planner/dashboard", "/planner/privacy", "/planner/branding",
        "/planner/casting", "/planner/history", "/planner/roster/new", "/planner/roster/ocean/edit",
    ]  # fmt: skip
    found: dict[str, dict[str, str]] = {}
    for path in pages:
        response = planner.get(path)
        assert response.status_code == 200, path
        for action, fields in forms_of(response.get_data(as_text=True)):
            target = action or path
            found.setdefault(target, {}).update(fields)
    # The corrections form appears once a text was tried.
    tried = planner.post("/planner/try", data={**found["/planner/try"], "text": "tea and books"})
    for action, fields in forms_of(tried.get_data(as_text=True)):
        found.setdefault(action, {}).update(fields)
    # The roster's preview, publish and discard forms appear once a draft exists.
    edit = "/planner/roster/ocean/edit"
    drafted = planner.post(edit, data={**found[edit], "active": "yes"})
    assert drafted.status_code == 303, drafted.get_data(as_text=True)
    for action, fields in forms_of(planner.get("/planner/").get_data(as_text=True)):
        found.setdefault(action, {}).update(fields)
    # The swap and make-this-the-roster forms appear once a set was cast.
    sample = {"brief_key": "lueur", "pool_key": "lueur", "k": "3"}
    cast = planner.post("/planner/casting", data={**found["/planner/casting"], **sample})
    assert cast.status_code == 200, cast.get_data(as_text=True)
    for action, fields in forms_of(cast.get_data(as_text=True)):
        found.setdefault(action, {}).update(fields)
    # A batch's start (column choice) and cancel forms are on its own page; the
    # table's job id names no job, so these carry the fields those forms have.
    job = "/planner/batches/AAAAAAAAAAAAAAAA"
    token = {"token": found["/planner/batches"]["token"]}
    found.setdefault(
        f"{job}/start", {**token, "id_column": "id", "text_column": "text", "top_k": "3"}
    )
    found.setdefault(f"{job}/cancel", token)
    return found


def matches_rule(app: Flask, path: str, method: str) -> str | None:
    adapter = app.url_map.bind("localhost")
    try:
        rule, _ = adapter.match(path, method=method, return_rule=True)
    except Exception:
        return None
    return str(rule.rule)


# -- the table --------------------------------------------------------------------------


API_FIELDS = {
    "/api/v1/match": ("text", "top_k", "lang", "consent", "shopper_ref", "campaign"),
    "/api/v1/match/batch": ("items", "top_k", "lang", "campaign"),
}


def test_no_route_answers_5xx_tracebacks_or_markup_to_hostile_input(app: Flask) -> None:
    planner = log_in(app)
    assert make_campaign(planner).status_code == 303
    public = app.test_client()
    tally = Tally()
    forms = planner_forms(app, planner)
    rules = [r for r in app.url_map.iter_rules()]
    logout_rule = "/planner/logout"
    # Logging in again and out come last, so the planner's session holds for the rest.
    for rule in sorted(rules, key=lambda r: (r.rule == "/planner/login", r.rule == logout_rule)):
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        paths = list(path_values(rule, "spring"))
        if "campaign" in rule.arguments:
            paths.append(("no such campaign", next(path_values(rule, "nosuch"))[1]))
        for what, path in paths:
            if True:
                for method in methods:
                    if method == "POST" and rule.rule == logout_rule:
                        continue
                    client = planner if "/planner/" in path else public
                    headers = AUTH if "/reports/" in path else {}
                    tally.check(
                        rule.rule,
                        f"{method} {what}",
                        client.open(path, method=method, headers=headers),
                    )
        good_path = next(path_values(rule, "spring"))[1]
        headers = AUTH if "/reports/" in good_path else {}
        client = planner if good_path.startswith("/planner/") else public
        if "GET" in methods:
            for label, value in HOSTILE.items():
                query = {name: value for name in QUERY_NAMES}
                tally.check(
                    rule.rule,
                    f"query {label}",
                    client.get(good_path, query_string=query, headers=headers),
                )
                if label not in QUERY_ONE_BY_ONE:
                    continue
                for name in QUERY_NAMES:
                    # Alone too: one bad value must not hide behind another refused first.
                    response = client.get(good_path, query_string={name: value}, headers=headers)
                    tally.check(rule.rule, f"?{name}={label}", response)
        if "POST" not in methods:
            continue
        if good_path in API_FIELDS:
            send_json(tally, public, rule.rule, good_path)
        elif rule.rule != logout_rule:
            fields = forms.get(good_path)
            assert fields is not None, f"no page has a form that posts to {good_path}"
            send_forms(tally, client, rule.rule, good_path, fields)
        for label, (content_type, raw) in RAW_BODIES.items():
            tally.check(
                rule.rule,
                f"body {label}",
                client.post(good_path, data=raw, content_type=content_type, headers=headers),
            )
    for rule in rules:
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        good_path = next(path_values(rule, "spring"))[1]
        for label, headers in HOSTILE_HEADERS.items():
            for method in methods:
                if rule.rule in (logout_rule, "/planner/login"):
                    continue
                response = public.open(good_path, method=method, headers=headers)
                tally.check(rule.rule, f"{method} headers {label}", response)
    # Last, so the planner stays logged in for everything else.
    for label, value in HOSTILE.items():
        response = planner.post(logout_rule, data={"token": value})
        tally.check(logout_rule, f"token={label}", response)
    assert set(tally.sent) == {str(r.rule) for r in rules}, "a route the table missed"
    print(f"\nhostile requests per route ({sum(tally.sent.values())} in all):")
    for rule_text, count in sorted(tally.sent.items()):
        print(f"  {count:6d}  {rule_text}")


#: What makes each form's submission valid, so that one hostile field at a time
#: reaches as far as it can (the database, the matcher), not only the first check.
VALID: dict[str, dict[str, str]] = {
    **{
        path: {"text": "tea and books by the window", "consent": "yes", "picks": "calm"}
        for path in ("/", "/embed", "/c/spring/", "/c/spring/embed")
    },
    "/planner/login": {"user": "planner", "password": PASSWORD},
    "/planner/campaigns": {
        "name": "Summer", "brand": "Lueur", "profiles_dir": "spring", "consent_text": "Keep?",
        "consent_version": "1", "retention_days": "180", "moods": "calm", "scents": "woody",
        "embed_origins": "https://shop.example",
    },
    "/planner/settings": {"consent_version": "7", "embed_origins": "https://shop.example"},
    "/planner/try": {"text": "tea and books"},
    "/planner/corrections": {"text": "tea and books", "right": "library", "wrong": "ocean",
                             "confirm": "yes"},
    "/planner/privacy": {"action": "export", "ref": "abc"},
}  # fmt: skip
GOOD_UPLOAD = b"id,text\na,tea and books\nb,quiet reading by the window\n"


def send_forms(
    tally: Tally, client: FlaskClient, rule: str, path: str, fields: dict[str, str]
) -> None:
    """Each hostile value in each field, the others valid (the page's token too); then all at once."""
    hidden = {name: value for name, value in fields.items() if name == "token"}
    valid = {**fields, **VALID.get(path, {})}
    upload = path.endswith("/batches")
    sent = 0
    for label, value in HOSTILE.items():
        everything = {**{name: value for name in fields}, **hidden}
        tally.check(rule, f"form all={label}", client.post(path, data=everything))
        if label not in ONE_BY_ONE:
            continue
        for name in fields:
            sent += 1
            data: dict[str, Any] = {**valid, name: value}
            if "slug" in data and name != "slug":
                data["slug"] = f"h{sent}"  # a new campaign each time, so each one is stored
            if upload and name != "file":
                data["file"] = (io.BytesIO(GOOD_UPLOAD), "a.csv")
            tally.check(rule, f"form {name}={label}", client.post(path, data=data))
    if path.endswith("/batches"):
        for label, body in UPLOADS.items():
            for name in ("a.csv", "a.jsonl", "a.tsv", "a.txt", "../../x.csv", "\x00.csv"):
                data: dict[str, Any] = {**fields, "file": (io.BytesIO(body), name)}
                response = client.post(path, data=data, content_type="multipart/form-data")
                tally.check(rule, f"upload {label} as {name!r}", response)


def send_json(tally: Tally, client: FlaskClient, rule: str, path: str) -> None:
    good: dict[str, Any] = (
        {"text": "tea and books"} if path.endswith("/match") else {"items": [{"text": "tea"}]}
    )
    for label, value in JSON_HOSTILE.items():
        for name in API_FIELDS[path]:
            tally.check(rule, f"json {name}={label}", client.post(path, json={**good, name: value}))
        if path.endswith("/batch"):
            for name in ("text", "shopper_ref", "consent"):
                body = {"items": [{"text": "tea", name: value}, {"text": "books"}]}
                tally.check(rule, f"json items.{name}={label}", client.post(path, json=body))
            tally.check(rule, f"json items={label}", client.post(path, json={"items": [value] * 3}))
        tally.check(rule, f"json body={label}", client.post(path, json=value))
        tally.check(
            rule,
            f"json unknown field={label}",
            client.post(path, json={**good, str(value)[:50]: 1}),
        )


#: Upload bodies: every file-level problem the readers know of, one file each.
UPLOADS: dict[str, bytes] = {
    "nul-id": b"id,text\na\x00b,tea and books\nc,quiet reading\n",
    "nul-text": b"id,text\na,tea\x00books\nb,quiet reading\n",
    "bad-utf8": b"id,text\na,\xff\xfe tea\nb,books\n",
    "utf16": "id,text\na,tea\n".encode("utf-16"),
    "empty": b"",
    "header-only": b"id,text\n",
    "no-columns": b"foo,bar\n1,2\n",
    "huge-cell": b"id,text\na," + b"x" * 200_000 + b"\n",
    "overlong-id": b"id,text\n" + b"i" * 5000 + b",tea\n",
    "formula": b"id,text\n =1,tea\n@SUM(A1),books\n",
    "deep-json": b'{"id": "a", "text": ' + b"[" * 100_000 + b"\n",
    "json-huge-int": b'{"id": ' + b"9" * 5000 + b', "text": "tea"}\n',
    "json-wrong-types": b'{"id": {"a": 1}, "text": ["tea"]}\n{"id": true, "text": 1}\n[1,2]\n',
    "json-nan": b'{"id": NaN, "text": "tea"}\n',
    "markup": ("id,text\n" + ",".join(MARKUP.values()) + "\n").encode(),
    "crlf-only": b"\r\n\r\n\r\n",
}


# -- markup in every field a planner or a shopper sets ----------------------------------

#: A quick pick that navigates the page away if it is rendered (40 characters at most).
REFRESH_PICK = "<meta http-equiv=refresh content=0;/x>"
PLANNER_MARKUP = {
    "name": MARKUP["script"],
    "brand": MARKUP["attribute"],
    "consent_text": MARKUP["refresh"],
    "consent_version": MARKUP["script"],
    "moods": f"calm, {REFRESH_PICK}",
    "scents": MARKUP["attribute"],
}


def assert_escaped(response: TestResponse, *, shows: str | None = None) -> str:
    html = response.get_data(as_text=True)
    assert response.status_code < 500, html[:800]
    for marker in RAW_MARKERS:
        assert marker not in html, f"{marker} rendered as HTML in {response.request.path}"
    if shows is not None:
        assert str(escape(shows)) in html, f"{shows!r} is not shown (escaped) on the page"
    return html


def test_markup_in_every_planner_and_shopper_field_is_shown_as_text(app: Flask) -> None:
    planner = log_in(app)
    created = make_campaign(planner, **PLANNER_MARKUP)
    assert created.status_code == 303, created.get_data(as_text=True)
    shopper = app.test_client()
    page = assert_escaped(shopper.get("/c/spring/?ref=" + MARKUP["script"]), shows=REFRESH_PICK)
    assert str(escape(MARKUP["refresh"])) in page  # the consent notice
    (_, fields), *_ = forms_of(page)
    posted = {
        **fields,
        "text": f"tea and books {MARKUP['script']}",
        "picks": [REFRESH_PICK, MARKUP["attribute"]],
        "consent": "yes",
        "ref": MARKUP["attribute"],
    }
    for path in ("/c/spring/", "/c/spring/embed"):
        # The result page (after the form's redirect) shows no shopper text at all.
        result = assert_escaped(shopper.post(path, data=posted, follow_redirects=True))
        assert "tea and books" not in result and 'id="result"' in result
    assert_escaped(shopper.get("/c/spring/embed"), shows=REFRESH_PICK)
    # The default roster holds a profile written in markup, shown on every planner page.
    for path in ("/planner/", "/planner/campaigns", "/planner/embed", "/planner/dashboard"):
        assert_escaped(planner.get(path))
    assert_escaped(planner.get("/planner/"), shows=MARKUP["script"])
    assert_escaped(planner.get("/planner/campaigns"), shows=MARKUP["script"])
    assert_escaped(planner.get("/planner/settings?campaign=spring"), shows=REFRESH_PICK)
    try_page = planner.get("/planner/try").get_data(as_text=True)
    (_, try_fields), *_ = [f for f in forms_of(try_page) if f[0].endswith("/planner/try")]
    tried = planner.post("/planner/try", data={**try_fields, "text": MARKUP["attribute"] + " tea"})
    assert_escaped(tried, shows=MARKUP["script"])  # the masked profile's name in the ranking
    privacy = planner.get("/planner/privacy").get_data(as_text=True)
    (_, privacy_fields), *_ = [f for f in forms_of(privacy) if f[0].endswith("/planner/privacy")]
    searched = planner.post(
        "/planner/privacy", data={**privacy_fields, "action": "export", "ref": MARKUP["script"]}
    )
    assert_escaped(searched, shows=MARKUP["script"])


def test_a_quick_pick_cannot_navigate_the_shoppers_browser(app: Flask) -> None:
    from playwright.sync_api import sync_playwright

    from .test_browser import CHROMIUM, CHROMIUM_ARGS, serve

    planner = log_in(app)
    assert make_campaign(planner, moods=f"calm, {REFRESH_PICK}").status_code == 303
    with serve(app) as origin, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            for path in ("/c/spring/", "/c/spring/embed"):
                page = browser.new_page()
                page.goto(origin + path)
                # A rendered refresh of 0 s leaves at once; wait well past it.
                page.wait_for_timeout(1500)
                assert page.url == origin + path
                assert page.get_by_text(REFRESH_PICK, exact=True).count() == 1
                assert page.locator("meta[http-equiv=refresh]").count() == 0
                page.close()
        finally:
            browser.close()


# -- uploads and file formats -----------------------------------------------------------


def test_one_bad_reference_does_not_sink_an_upload(app: Flask) -> None:
    """A NUL, a line break or an over-long id gets a made-up reference; the rest is stored."""
    from web.planner import job_registry

    planner = log_in(app)
    page = planner.get("/planner/batches").get_data(as_text=True)
    (_, fields), *_ = [f for f in forms_of(page) if f[0].endswith("/planner/batches")]
    rows = ["id,text", "a\x00b,tea and books", '"c\nd",quiet reading', "i" * 500 + ",tea"]
    rows += [f"ok-{n},tea and books by the window number {n}" for n in range(5)]
    body = ("\n".join(rows) + "\n").encode()
    data: dict[str, Any] = {**fields, "file": (io.BytesIO(body), "sh\x00op\x1bpers.csv")}
    response = planner.post("/planner/batches", data=data, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    job_id = response.headers["Location"].split("?")[0].rsplit("/", 1)[1]
    view = wait_for_job(job_registry(app), job_id)
    assert view.status.value == "done", view
    from sqlalchemy import select

    from matcher.store.schema import BatchRow, PairingRow

    with database(app).read() as session:
        refs = session.scalars(select(PairingRow.shopper_ref)).all()
        names = session.scalars(select(BatchRow.filename)).all()
    assert view.stored and len(refs) == view.stored
    assert all("\x00" not in ref and "\n" not in ref and len(ref) <= 200 for ref in refs)
    assert names == ["shoppers.csv"]


def wait_for_job(registry: Any, job_id: str, timeout: float = 60.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        view = registry.get(job_id)
        if view is not None and view.finished:
            return view
        assert time.monotonic() < deadline, f"batch {job_id} did not finish"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        pytest.param(name, label, id=f"{label}-{name.rsplit('.', 1)[1]}")
        for label in UPLOADS
        for name in ("in.csv", "in.jsonl", "in.tsv")
    ],
)
def test_batch_files_never_stop_the_command_with_a_traceback(
    tmp_path: Path, name: str, label: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``matcher batch`` on each hostile file: exit 0, 1 or 3 with one-line messages."""
    from click.testing import CliRunner

    from matcher import cli

    profiles = write_roster(tmp_path / "profiles")
    encoder = HashingEncoder(record=False)
    matcher = Matcher(encoder, build_index(load_profiles(profiles), encoder)[0])
    monkeypatch.setattr(cli, "_open_matcher", lambda *args: matcher)
    source = tmp_path / name
    source.write_bytes(UPLOADS[label])
    output = tmp_path / "out.csv"
    result = CliRunner().invoke(
        cli.cli, ["batch", "-q", "--profiles", str(profiles), str(source), "-o", str(output)]
    )
    assert result.exit_code in (0, 1, 3), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    if output.exists():
        import csv

        with output.open(encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                # The id is the client's; a spreadsheet skips spaces before a formula.
                assert not row[0].lstrip().startswith(("=", "+", "-", "@")), row


def test_the_documents_control_pattern_is_the_cores() -> None:
    """``TEXT_CONTROL`` in the OpenAPI document refuses what ``has_controls`` refuses."""
    from matcher.text import has_controls, ref_problem
    from web.openapi import REF_CONTROL, TEXT_CONTROL

    for code in [*range(0x3100), 0xFEFF, 0x1F375, 0x10FFFF]:  # every control is below 0xA0
        ch = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        assert bool(re.search(TEXT_CONTROL, ch)) == has_controls(ch), hex(code)
        refused = ref_problem(f"a{ch}b") is not None
        assert bool(re.search(REF_CONTROL, ch)) == refused, hex(code)


# -- roster folders ---------------------------------------------------------------------


def test_campaign_rosters_stay_inside_the_rosters_folder(app: Flask, tmp_path: Path) -> None:
    """Links are followed before the check, and a stored folder is checked again at use."""
    from matcher.store import CampaignSettings, create_campaign

    planner = log_in(app)
    outside = write_roster(tmp_path / "elsewhere")
    rosters = Path(app.config["MATCHER_ROSTERS_DIR"])
    (rosters / "link").symlink_to(outside, target_is_directory=True)
    sneaky = rosters / "sneaky"
    sneaky.mkdir()
    for name in ("ocean.yaml", "library.yaml"):
        (sneaky / name).symlink_to(outside / name)
    for folder, problem in (
        ("link", "Choose a folder inside"),
        (str(outside), "Choose a folder inside"),
        ("sneaky", "a link to a file outside the rosters folder"),
        (str(rosters), "Choose a folder inside"),
    ):
        response = make_campaign(planner, slug="fall", profiles_dir=folder)
        assert response.status_code == 400, folder
        assert str(escape(problem)) in response.get_data(as_text=True), folder
    # A campaign stored with a folder outside (before the root existed) is not loaded.
    create_campaign(
        database(app),
        CampaignSettings(slug="old", name="Old", brand="Lueur", profiles_dir=str(outside)),
    )
    shopper = app.test_client()
    page = shopper.get("/c/old/").get_data(as_text=True)
    (_, fields), *_ = forms_of(page)
    response = shopper.post("/c/old/", data={**fields, "text": "tea and books"})
    assert response.status_code == 503
    assert str(outside) not in response.get_data(as_text=True)
    # Its planner can still see where it points, and move it inside.
    settings = planner.get("/planner/settings?campaign=old")
    assert settings.status_code == 200 and str(outside) in settings.get_data(as_text=True)
    assert planner.get("/planner/?campaign=old").status_code == 503
    assert sorted(p.name for p in outside.iterdir()) == ["library.yaml", "ocean.yaml", "stage.yaml"]


def test_a_planted_files_values_never_reach_the_page(app: Flask) -> None:
    planner = log_in(app)
    planted = Path(app.config["MATCHER_ROSTERS_DIR"]) / "planted"
    planted.mkdir()
    (planted / "settings.yaml").write_text(
        "database_password: PLANTED-hunter2\napi_key: [PLANTED-k3y]\nid: PLANTED-id\n",
        encoding="utf-8",
    )
    response = make_campaign(planner, slug="fall", profiles_dir="planted")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "settings.yaml" in page and "database_password" in page  # file and field
    assert "PLANTED" not in page
    assert not (planted / ".index").exists() and not (planted / "corrections.jsonl").exists()


# -- the one bridge from core errors to HTTP --------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code", "shown"),
    [
        pytest.param("InputError", 400, "invalid_input", True, id="input"),
        pytest.param("BatchInputError", 400, "invalid_file", True, id="batch-input"),
        pytest.param("ProfileError", 503, "roster_unavailable", False, id="profile"),
        pytest.param("IndexStateError", 503, "index_unavailable", False, id="index-state"),
        pytest.param("ConfigError", 503, "not_configured", False, id="config"),
        pytest.param("MatcherError", 503, "unavailable", False, id="matcher"),
    ],
)
def test_each_core_error_has_one_answer(
    tmp_path: Path, error: str, status: int, code: str, shown: bool
) -> None:
    """A view lets a core error rise; web/errors.py answers it, quoting only a client's mistake."""
    from matcher import errors

    profiles = write_roster(tmp_path / "profiles")
    encoder = HashingEncoder(record=False)
    matcher = Matcher(encoder, build_index(load_profiles(profiles), encoder)[0])
    app = create_app(
        {"TESTING": True, "INSTANCE_PATH": str(tmp_path / "i"), "MATCHER_PROFILES": str(profiles)},
        matcher=matcher,
    )
    secret = "/srv/rosters/PLANTED.yaml: 7: name: hunter2"

    def fail() -> str:
        kind = getattr(errors, error)
        if kind is errors.ProfileError:
            raise kind([errors.Problem(secret, "", "bad")])
        raise kind(secret)

    app.add_url_rule("/api/v1/fail", "fail", fail)
    app.add_url_rule("/fail", "fail_page", fail)
    try:
        answer = app.test_client().get("/api/v1/fail")
        assert answer.status_code == status
        assert answer.get_json()["error"]["code"] == code
        assert (secret in answer.get_json()["error"]["message"]) is shown
        page = app.test_client().get("/fail")
        assert page.status_code == status and page.mimetype == "text/html"
        assert ("hunter2" in page.get_data(as_text=True)) is shown
    finally:
        database(app).dispose()


def test_the_database_holds_the_largest_value_the_limits_allow() -> None:
    from matcher import limits
    from matcher.store.schema import BatchRow, PairingRow

    assert PairingRow.__table__.c.shopper_ref.type.length >= limits.MAX_REF_CHARS
    assert PairingRow.__table__.c.shopper_text.type.length is None  # Text: any length
    assert BatchRow.__table__.c.filename.type.length >= 120  # web/planner/batches.py keeps 120


def test_every_layer_reads_the_one_table_of_limits(app: Flask) -> None:
    from matcher import limits
    from web.openapi import MAX_BATCH, MAX_BODY_BYTES, openapi_document

    schemas = openapi_document(limits.MAX_TEXT_CHARS)["components"]["schemas"]
    assert schemas["MatchRequest"]["properties"]["text"]["maxLength"] == limits.MAX_TEXT_CHARS
    assert schemas["MatchRequest"]["properties"]["shopper_ref"]["maxLength"] == limits.MAX_REF_CHARS
    assert (MAX_BATCH, MAX_BODY_BYTES) == (limits.MAX_API_BATCH, limits.MAX_API_BODY_BYTES)
    from click.testing import CliRunner

    from matcher.cli import cli
    from web.settings import defaults

    batch_help = CliRunner().invoke(cli, ["batch", "--help"]).output
    assert f"at most {limits.MAX_BATCH_SIZE}" in batch_help

    assert defaults()["MAX_CONTENT_LENGTH"] == limits.MAX_UPLOAD_BYTES
    page = log_in(app).get("/planner/try").get_data(as_text=True)
    assert f'maxlength="{limits.MAX_TEXT_CHARS}"' in page


def test_an_unwritable_output_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from matcher import cli

    profiles = write_roster(tmp_path / "profiles")
    encoder = HashingEncoder(record=False)
    matcher = Matcher(encoder, build_index(load_profiles(profiles), encoder)[0])
    monkeypatch.setattr(cli, "_open_matcher", lambda *args: matcher)
    source = tmp_path / "in.csv"
    source.write_bytes(GOOD_UPLOAD)
    output = tmp_path / "no" / "such" / "folder" / "out.csv"
    result = CliRunner().invoke(cli.cli, ["batch", "-q", str(source), "-o", str(output)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exc_info
    assert result.output.startswith("Error: ") and "No such file or directory" in result.output
