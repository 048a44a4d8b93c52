"""Every size limit of the service, in one table.

The core checks texts and references against these numbers, the web layer
sizes request bodies and form fields by them, the OpenAPI document publishes
them and the CLI's help quotes them, so a limit changed here changes
everywhere at once. The database columns are sized to hold the largest value
allowed here (``matcher/store/schema.py``; tests/test_hostile.py checks that
the two agree).
"""

from __future__ import annotations

#: Longest shopper text: a shopper's taste fits in a paragraph, and the models
#: only read their first ~256 word pieces anyway.
MAX_TEXT_CHARS = 1000

#: Longest shopper reference (a microsite's order or session id, an upload's id
#: column, a privacy search): what the ``pairings.shopper_ref`` column holds.
MAX_REF_CHARS = 200

#: Longest ``Idempotency-Key`` (and form request key). A batch's pairings are
#: stored under ``KEY#position``, which must fit ``pairings.request_key`` (100).
MAX_REQUEST_KEY_CHARS = 64

#: Texts per ``POST /api/v1/match/batch``: about a second of encoding, a page of results.
MAX_API_BATCH = 100

#: Largest body the JSON API reads. The biggest valid batch (100 texts of
#: 1000 characters, each written as 12-byte ``\\uXXXX`` pairs) stays under 1.5 MiB.
MAX_API_BODY_BYTES = 2 * 1024 * 1024

#: Largest request body of any other kind: a planner's upload of shoppers.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024

#: Texts embedded together by ``matcher batch`` and planner uploads.
DEFAULT_BATCH_SIZE = 64
#: The most a caller may ask for with ``--batch-size``: larger batches only use more memory.
MAX_BATCH_SIZE = 4096

#: Quick picks a planner may list per group, and the length of each.
MAX_PICKS = 20
MAX_PICK_CHARS = 40

#: Longest column name a planner may give for an upload's id or text column.
MAX_COLUMN_CHARS = 100
