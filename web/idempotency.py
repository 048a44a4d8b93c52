"""Request keys: a retried match is answered with its first pairing, never stored twice.

API clients send ``Idempotency-Key: <key>`` on ``POST /api/v1/match`` and
``/match/batch``; the shopper form and the embed carry a key made for each
page they render, so a resubmitted form (a reload, a double click, a retry
after a timeout) finds the pairing its first submission stored. Keys are
scoped to a campaign; a batch's items are stored under ``KEY#position``.

The answer to a retry is matched again (the matches are not stored), but
its pairing, the ``shopper_ref`` and whether the text was kept are the
first answer's, and ``Idempotent-Replayed: true`` says so. A key reused for a
different text is told apart by the stored score, which the same text on the
same index reproduces exactly: the API answers 422, the form stores the new
text as a new pairing.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

from flask import request

from matcher.limits import MAX_REQUEST_KEY_CHARS
from matcher.matching import Match
from matcher.store.pairings import Stored, index_version

from .errors import ApiError

HEADER = "Idempotency-Key"
#: Letters, digits and ``. _ ~ : / + = -``: UUIDs, ULIDs, base64 and base64url all fit.
KEY_PATTERN = rf"[A-Za-z0-9._~:/+=-]{{1,{MAX_REQUEST_KEY_CHARS}}}"
_KEY = re.compile(KEY_PATTERN)
#: The form field holding the page's key.
FORM_FIELD = "request_key"


def header_key() -> str | None:
    """The request's ``Idempotency-Key``, checked; None when it was not sent.

    Raises:
        ApiError: 400 when the key is empty, too long or has other characters.
    """
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"{HEADER} must be 1 to {MAX_REQUEST_KEY_CHARS} letters, digits or . _ ~ : / + = -"
            " (a UUID fits).",
            HEADER,
        )
    return value


def item_key(key: str | None, position: int) -> str | None:
    """The key a batch item's pairing is stored under."""
    return None if key is None else f"{key}#{position}"


def new_form_key() -> str:
    """A key for one rendering of the form: its submissions are one request."""
    return secrets.token_urlsafe(16)


def form_key() -> str | None:
    """The key the submitted form carries, or None when it carries none that is well-formed.

    The form's key is only ever the server's own; a missing or altered one
    means the submission is simply not deduplicated.
    """
    value = request.form.get(FORM_FIELD, "")
    return value if _KEY.fullmatch(value) else None


def same_requests(stored: Stored, index: object, answers: Sequence[tuple[str, Match]]) -> bool:
    """Whether a replayed ``stored`` is the request answered now (``(key, first match)`` each).

    On the index the pairings were made with, the same text gives the same
    celebrity and the same score, to the stored four decimals; on another
    index (the roster changed since) nothing can be told, and the key is trusted.
    """
    earlier = stored.earlier or {}
    version = index_version(index)  # type: ignore[arg-type]
    for key, match in answers:
        before = earlier.get(key)
        if before is None or before.index_version != version:
            continue
        if before.first_choice is not None:
            # Paired with another under the limits: its score is that celebrity's.
            if before.first_choice != match.celebrity_id:
                return False
        elif before.celebrity_id != match.celebrity_id or round(before.score, 4) != round(
            match.score, 4
        ):
            return False
    return True


def reused_key() -> ApiError:
    return ApiError(
        422,
        "idempotency_key_reused",
        f"This {HEADER} was used for a different request; send a new key for a new request.",
        HEADER,
    )
