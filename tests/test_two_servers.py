"""Two ``matcher serve`` instances on two ports sharing one database, as two machines would.

Each instance has its own instance folder (its own index cache); they share
PostgreSQL (a fresh schema on ``MATCHER_TEST_POSTGRES_URL``), or a SQLite file
when no server is configured. Checked: keyed pairings sent to both, and
retried on the other, are stored once each; a roster published through one
is served by the other within seconds; a planner signed in on one is signed
in on the other (one secret per database); failed logins on both count
together. The servers are stopped by their pid.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from benchmarks.two_servers import (
    Instance,
    send_pairings,
    sign_in,
    stored_per_key,
    try_login,
    two_instances,
    wait_for_ranking,
)
from benchmarks.two_servers import fresh_database as shared_database
from benchmarks.two_servers import publish_active as publish_through_pages

from .conftest import POSTGRES_URL

#: How long the other instance may take to serve a publish: its poll is every 2 s.
SPREAD_LIMIT = 30.0


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with shared_database(POSTGRES_URL) as url:
        yield url


@pytest.fixture(scope="module")
def instances(database_url: str) -> Iterator[tuple[Instance, Instance]]:
    with two_instances(database_url) as pair:
        yield pair


def test_keyed_pairings_through_both_are_stored_once_each(
    instances: tuple[Instance, Instance], database_url: str
) -> None:
    run = f"t{secrets.token_hex(4)}"
    sent = send_pairings(instances, 24, 4, run)
    assert sent["failures"] == []
    assert len(sent["firsts"]) == len(sent["retries"]) == 24
    assert sent["retries"] == sent["firsts"], "a retry on the other finds the first pairing"
    assert stored_per_key(database_url, run) == {f"{run}-{n}": 1 for n in range(24)}


def test_a_roster_published_through_one_is_served_by_the_other(
    instances: tuple[Instance, Instance],
) -> None:
    one, two = instances
    before = two.ranked()
    assert one.ranked() == before
    victim = before[0]
    cookie = sign_in(one)
    publish_through_pages(one, cookie, victim, active=False, note="off for a day")
    wait_for_ranking(two, absent=victim, present=None, limit=SPREAD_LIMIT)
    assert two.ranked() == before[1:]
    assert one.ranked() == before[1:]
    publish_through_pages(one, cookie, victim, active=True, note="back")
    wait_for_ranking(two, absent=None, present=victim, limit=SPREAD_LIMIT)
    assert two.ranked() == before


def test_a_planner_signed_in_on_one_is_signed_in_on_the_other(
    instances: tuple[Instance, Instance],
) -> None:
    one, two = instances
    cookie = sign_in(one)
    page = two.get("/planner/", cookie)
    assert page.status == 200, page.status
    assert "Logged in as planner" in page.body
    history = two.get("/planner/history", cookie)
    assert history.status == 200 and 'data-version="1"' in history.body
    assert two.get("/planner/").status == 302, "without the cookie: the login page"


def test_failed_logins_on_both_count_together(instances: tuple[Instance, Instance]) -> None:
    one, two = instances
    # Five failures per account and address are free: three on one instance and two on the
    # other use them up only if both count in one place; then the next try must wait.
    for instance in (one, one, one, two, two):
        assert try_login(instance, password="wrong").status == 403
    refused = try_login(one, password="wrong")
    assert refused.status == 429, refused.status
    assert try_login(two).status == 429, "even the right password waits"
