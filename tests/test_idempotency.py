"""Request keys: a retried match gets its first pairing back and stores no second row.

On SQLite and PostgreSQL (``database_url``), through the app: the API's
``Idempotency-Key`` on a single match and a batch, the form's per-page key,
and two workers storing the same retry at once (the unique index decides).
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from matcher.matching import Matcher
from matcher.store import Database, NewPairing, get_campaign, index_version, record_pairings
from matcher.store.schema import BatchRow, PairingRow

from .test_web import token_from

TEXT = "quiet mornings with green tea, linen shirts and a good novel"
OTHER = "weekend treks between mountain huts, phone switched off"


@pytest.fixture
def app(db_app: Flask) -> Flask:
    """Every test here runs on SQLite and, when configured, PostgreSQL."""
    return db_app


def rows(db: Database) -> list[PairingRow]:
    with db.read() as session:
        return list(session.scalars(select(PairingRow).order_by(PairingRow.id)))


def match(client: FlaskClient, key: str | None, **body: Any) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/api/v1/match", json={"text": TEXT, **body}, headers=headers)


def test_a_retried_match_gets_the_first_pairing_and_stores_one_row(
    client: FlaskClient, db: Database
) -> None:
    first = match(client, "order-1234", consent=True)
    again = match(client, "order-1234", consent=True)
    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["shopper_ref"] == first.get_json()["shopper_ref"]
    assert again.get_json()["text_stored"] is True
    [row] = rows(db)
    assert row.shopper_ref == first.get_json()["shopper_ref"]
    assert row.request_key == "order-1234"


def test_without_a_key_or_with_another_key_each_match_is_stored(
    client: FlaskClient, db: Database
) -> None:
    refs = {
        match(client, None).get_json()["shopper_ref"],
        match(client, None).get_json()["shopper_ref"],
        match(client, "a").get_json()["shopper_ref"],
        match(client, "b").get_json()["shopper_ref"],
    }
    assert len(refs) == 4
    assert len(rows(db)) == 4


def test_a_key_reused_for_another_text_is_refused(client: FlaskClient, db: Database) -> None:
    assert match(client, "k-1").status_code == 200
    reused = client.post("/api/v1/match", json={"text": OTHER}, headers={"Idempotency-Key": "k-1"})
    assert reused.status_code == 422
    assert reused.get_json()["error"]["code"] == "idempotency_key_reused"
    assert reused.get_json()["error"]["field"] == "Idempotency-Key"
    assert len(rows(db)) == 1


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 65, id="too-long"),
        pytest.param("has space", id="space"),
        pytest.param("semi;colon", id="semicolon"),
        pytest.param("caf\u00e9", id="non-ascii"),
        pytest.param("a#1", id="batch-separator"),
    ],
)
def test_a_malformed_key_is_a_clear_400_and_stores_nothing(
    client: FlaskClient, db: Database, key: str
) -> None:
    headers = [("Idempotency-Key", key.encode("utf-8").decode("latin-1"))]
    response = client.post("/api/v1/match", json={"text": TEXT}, headers=headers)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_idempotency_key"
    assert error["field"] == "Idempotency-Key"
    assert "1 to 64" in error["message"]
    assert rows(db) == []


def test_the_longest_key_fits_even_for_the_last_item_of_a_full_batch(
    client: FlaskClient, db: Database
) -> None:
    key = "k" * 64
    items = [{"text": f"{TEXT} {n}"} for n in range(100)]
    response = client.post(
        "/api/v1/match/batch", json={"items": items}, headers={"Idempotency-Key": key}
    )
    assert response.status_code == 200
    stored = {row.request_key for row in rows(db)}
    assert stored and all(k is not None and k.startswith(f"{key}#") for k in stored)


def test_a_retried_batch_gets_its_first_batch_and_refs(client: FlaskClient, db: Database) -> None:
    items = [{"text": TEXT}, {"text": "   "}, {"text": OTHER, "shopper_ref": "mine-7"}]
    headers = {"Idempotency-Key": "batch-77"}
    first = client.post("/api/v1/match/batch", json={"items": items}, headers=headers)
    again = client.post("/api/v1/match/batch", json={"items": items}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    one, two = first.get_json(), again.get_json()
    assert two["batch_id"] == one["batch_id"] is not None
    assert [r["shopper_ref"] for r in two["results"]] == [r["shopper_ref"] for r in one["results"]]
    assert one["results"][2]["shopper_ref"] == "mine-7"
    stored = rows(db)
    assert len(stored) == 2
    assert {r.request_key for r in stored} == {"batch-77#0", "batch-77#2"}
    with db.read() as session:
        assert session.scalar(select(func.count(BatchRow.id))) == 1


def test_the_form_resubmitted_with_its_page_key_stores_once(
    client: FlaskClient, db: Database
) -> None:
    page = client.get("/").get_data(as_text=True)
    key = re.search(r'name="request_key" value="([^"]+)"', page)
    assert key, "the form carries a key of its own"
    fields = {"token": token_from(page), "request_key": key.group(1), "text": TEXT}
    first = client.post("/", data=fields, follow_redirects=True).get_data(as_text=True)
    again = client.post("/", data=fields, follow_redirects=True).get_data(as_text=True)
    ref = re.search(r"<code>([^<]+)</code>", first)
    assert ref and f"<code>{ref.group(1)}</code>" in again
    assert len(rows(db)) == 1
    # Each page gets a new key: the result page's form is a new request.
    assert f'value="{key.group(1)}"' not in first
    # The same page's key with another text (the back button) is a new pairing.
    client.post("/", data={**fields, "text": OTHER})
    assert len(rows(db)) == 2


def test_two_workers_storing_the_same_retry_at_once_store_one_row(
    app: Flask, db: Database, sample_matcher: Matcher
) -> None:
    campaign = get_campaign(db, "default")
    best = sample_matcher.match(TEXT, 1)[0]
    version = index_version(sample_matcher.index)
    results = []
    start = threading.Barrier(4)

    def store() -> None:
        start.wait()
        results.append(
            record_pairings(
                db,
                campaign,
                [NewPairing(best, TEXT, False, request_key="same-retry")],
                model_id=sample_matcher.index.model_id,
                index_version=version,
                source="api",
            )
        )

    threads = [threading.Thread(target=store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert len({r.refs[0] for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert len(rows(db)) == 1
