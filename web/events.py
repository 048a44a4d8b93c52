"""Counting the funnel's views and submissions as requests end, without touching the views.

One ``after_request`` hook recognises the shopper pages by endpoint name and
method and adds one to the campaign's counter (:func:`matcher.store.events.record_event`):

- a page shown (``GET`` of the form or the embed, answered 200) is a *view*;
- a text sent and taken (``POST`` of the form or the embed, or an API call,
  answered below 400) is a *submission*; a batch API call counts each of its
  texts; a replayed API request (``Idempotent-Replayed``) counts nothing new.

Pairings are not counted here: the pairings table is their record. Clicks on
a call to action are counted by the redirect that serves them. Nothing of the
request is kept but the campaign, the source, the page's language and the
quarter of an hour: no text, address or cookie, so the embed stays cookie-free.
A counting failure is logged by its type and never fails the page.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from matcher.errors import InputError
from matcher.store.events import record_event

from .campaigns import campaign_slug, database, lookup
from .i18n import select_locale

log = logging.getLogger(__name__)

#: Endpoints of the shopper pages, by the source the funnel files them under.
PAGES = {
    "shopper.form": "form",
    "campaign_shopper.form": "form",
    "embed.form": "embed",
    "campaign_embed.form": "embed",
}
#: API endpoints that take shoppers' texts.
API = {"api.match", "api.match_batch"}
#: Set ``MATCHER_COUNT_EVENTS`` to false to count nothing (a load test of the bare pages).
CONFIG_KEY = "MATCHER_COUNT_EVENTS"


def what_happened(
    endpoint: str | None, method: str, response: Response
) -> tuple[str, str, int] | None:
    """The (kind, source, count) a finished request counts as, or ``None`` for none."""
    if endpoint in PAGES:
        if method == "GET" and response.status_code == 200:
            return "view", PAGES[endpoint], 1
        if method == "POST" and response.status_code < 400:
            return "submission", PAGES[endpoint], 1
        return None
    if endpoint in API and method == "POST" and response.status_code == 200:
        if response.headers.get("Idempotent-Replayed") == "true":
            return None
        if endpoint == "api.match":
            return "submission", "api", 1
        body = response.get_json(silent=True)
        results = body.get("results") if isinstance(body, dict) else None
        count = len(results) if isinstance(results, list) else 0
        return ("submission", "api", count) if count else None
    return None


def count_request(response: Response) -> Response:
    """The ``after_request`` hook: count the request if it is a view or a submission."""
    if not current_app.config.get(CONFIG_KEY, True):
        return response
    event = what_happened(request.endpoint, request.method, response)
    if event is None:
        return response
    kind, source, count = event
    campaign = lookup(campaign_slug())
    if campaign is None:
        return response
    try:
        record_event(
            database(), campaign.id, kind, source=source, language=select_locale(), count=count
        )
    except (InputError, SQLAlchemyError) as exc:
        log.warning("%s not counted: %s", kind, type(exc).__name__)
    return response


def register_events(app: Flask) -> None:
    """Count views and submissions of every shopper page and API call."""
    app.after_request(count_request)
