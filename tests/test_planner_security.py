"""Planner login under attack: the shared throttle, revocable sessions, cookies, trusted proxies.

The throttle's counts live in the database, so these tests run on SQLite and
PostgreSQL (``database_url``), with two apps (two workers) or a second Python
process on one database, and once against ``matcher serve`` with two workers. Time is moved by rewriting the stored failure and
session times, never by sleeping. The fake matcher stands in for the model:
nothing here depends on a ranking.
"""

from __future__ import annotations

import hashlib
import heapq
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from matcher.errors import ConfigError
from matcher.matching import Matcher
from matcher.store import Database, LoginThrottle, ThrottlePolicy
from matcher.store.schema import LoginFailureRow, PlannerSessionRow
from matcher.store.security import client_key
from web.campaigns import database
from web.planner.auth import DEVICE_COOKIE, refused
from web.planner.base import LOGIN_SALT
from web.security import form_token, signed_token

from .conftest import PLANNER_PASSWORD
from .conftest import make_app as shared_make_app

PASSWORD = PLANNER_PASSWORD
ATTACKER = "203.0.113.9"
PLANNER = "198.51.100.7"
REPO = Path(__file__).resolve().parent.parent
SLOW = ThrottlePolicy(base_delay=60.0)


def make_app(tmp_path: Path, matcher: Matcher, url: str | None = None, **config: Any) -> Flask:
    """The shared app factory on database ``url``, with login throttling that waits a minute."""
    app = shared_make_app(
        tmp_path,
        matcher,
        MATCHER_PROFILES=str(tmp_path / "roster"),
        MATCHER_DATABASE_URL=url,
        **config,
    )
    # Waits of a minute rather than a second, so that a slow machine cannot see one
    # end before the test looks; the core's own tests pin the default figures.
    for scope in ("login", "reports"):
        throttle = LoginThrottle(database(app), scope, SLOW)
        app.extensions[f"matcher.throttle.{scope}"] = throttle
    return app


@pytest.fixture
def app(tmp_path: Path, fake_matcher: Matcher, database_url: str) -> Flask:
    return make_app(tmp_path, fake_matcher, database_url)


def login_token(app: Flask) -> str:
    with app.test_request_context():
        return signed_token(LOGIN_SALT)


def login(
    client: FlaskClient,
    address: str = PLANNER,
    password: str = PASSWORD,
    user: str = "planner",
    **kwargs: Any,
) -> Any:
    assert client.application is not None
    data = {"token": login_token(client.application), "user": user, "password": password}
    environ = {"REMOTE_ADDR": address, **kwargs.pop("environ_overrides", {})}
    return client.post("/planner/login", data=data, environ_overrides=environ, **kwargs)


def page_token(client: FlaskClient) -> str:
    page = client.get("/planner/login").get_data(as_text=True)
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def basic(user: str, password: str) -> dict[str, str]:
    import base64

    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def age_failures(app: Flask, seconds: float) -> None:
    """Move every stored failure ``seconds`` into the past, as if that time had gone by."""
    with database(app).write() as session:
        for row in session.scalars(select(LoginFailureRow)):
            row.failed_at = row.failed_at - timedelta(seconds=seconds)


def cookie_headers(response: Any, name: str) -> list[str]:
    return [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]


# -- the throttle, in the core ----------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "key"),
    [pytest.param("203.0.113.9", "203.0.113.9", id="ipv4"),
     pytest.param("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", id="ipv6-is-its-64"),
     pytest.param("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64", id="same-64"),
     pytest.param("::ffff:203.0.113.9", "203.0.113.9", id="ipv4-mapped")],
)  # fmt: skip
def test_client_keys_group_what_one_party_holds(address: str, key: str) -> None:
    assert client_key(address) == key


def test_a_non_address_gets_a_short_fixed_key() -> None:
    assert client_key("unix:socket") == client_key("unix:socket")
    assert client_key("unix:socket") != client_key("")
    assert len(client_key("x" * 500)) < 40


def guesses_in(throttle: LoginThrottle, addresses: list[str], seconds: float) -> dict[str, int]:
    """Every address guesses as soon as it may, for ``seconds``: how many guesses each got."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    queue = [(0.0, address) for address in addresses]
    guesses = dict.fromkeys(addresses, 0)
    while queue:
        at, address = heapq.heappop(queue)
        if at >= seconds:
            continue
        now = start + timedelta(seconds=at)
        wait = throttle.retry_after("planner", address, now=now)
        if wait == 0:
            throttle.failed("planner", address, now=now)
            guesses[address] += 1
            wait = throttle.retry_after("planner", address, now=now)
        heapq.heappush(queue, (at + max(wait, 1e-6), address))
    return guesses


def test_one_address_gets_five_free_guesses_then_waits_double(database: Database) -> None:
    # 5 free, then waits of 1, 2, 4 ... 1024 s (2047 s in all) allow 11 more; the
    # next wait, 2048 s, ends past the hour.
    assert guesses_in(LoginThrottle(database, "login"), [ATTACKER], 3600) == {ATTACKER: 16}


def test_many_addresses_are_slowed_once_the_account_is_under_attack(database: Database) -> None:
    addresses = [f"192.0.2.{n}" for n in range(1, 21)]
    guesses = guesses_in(LoginThrottle(database, "login"), addresses, 600)
    # Alone, each would have 5 + 9 (waits of 1 ... 256 s) in ten minutes. The 20 first
    # guesses put the account under attack; then an address that failed waits 60, 120,
    # 240, 480 s: guesses at 0, 60, 180 and 420 s.
    assert guesses == dict.fromkeys(addresses, 4)


def test_under_attack_each_address_gets_six_guesses_an_hour(database: Database) -> None:
    addresses = [f"192.0.2.{n}" for n in range(1, 21)]
    guesses = guesses_in(LoginThrottle(database, "login"), addresses, 3600)
    # ... and at 900 and 1860 s; the next, at 3780 s, is past the hour.
    assert guesses == dict.fromkeys(addresses, 6)


def test_during_an_attack_a_fresh_address_is_always_let_try(database: Database) -> None:
    throttle = LoginThrottle(database, "login")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(50):
        throttle.failed("planner", f"192.0.2.{n}", now=now)
    assert throttle.retry_after("planner", "192.0.2.1", now=now) == 60
    assert throttle.retry_after("planner", PLANNER, now=now) == 0
    assert throttle.retry_after("someone-else", "192.0.2.1", now=now) == 0


def test_a_known_device_is_judged_on_its_own_failures(database: Database) -> None:
    throttle = LoginThrottle(database, "login")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(10):
        throttle.failed("planner", PLANNER, now=now)
    assert throttle.retry_after("planner", PLANNER, now=now) > 0
    assert throttle.retry_after("planner", PLANNER, device="laptop", now=now) == 0
    for _ in range(5):
        throttle.failed("planner", PLANNER, device="laptop", now=now)
    assert throttle.retry_after("planner", PLANNER, device="laptop", now=now) == 1


def test_scopes_count_apart(database: Database) -> None:
    login, reports = LoginThrottle(database, "login"), LoginThrottle(database, "reports")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(8):
        reports.failed("planner", ATTACKER, now=now)
    assert reports.retry_after("planner", ATTACKER, now=now) == 8
    assert login.retry_after("planner", ATTACKER, now=now) == 0


def test_failures_past_the_memory_are_forgotten_and_pruned(database: Database) -> None:
    login = LoginThrottle(database, "login", ThrottlePolicy(memory=3600))
    reports = LoginThrottle(database, "reports")
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(8):
        login.failed("planner", ATTACKER, now=long_ago)
        reports.failed("planner", ATTACKER, now=long_ago)
    later = long_ago + timedelta(hours=2)
    assert login.retry_after("planner", ATTACKER, now=later) == 0
    login.failed("someone", PLANNER, now=later)
    with database.read() as session:
        keys = [row.key for row in session.scalars(select(LoginFailureRow))]
    assert sum(key.startswith("login:") for key in keys) == 3, "only the new failure's rows"
    assert sum(key.startswith("reports:") for key in keys) == 24, "another scope's are its own"


def test_a_second_process_sees_the_same_count(database: Database, database_url: str) -> None:
    script = (
        "import sys\n"
        "from datetime import datetime\n"
        "from matcher.store import Database, LoginThrottle\n"
        "db = Database(sys.argv[1])\n"
        "for _ in range(5):\n"
        "    LoginThrottle(db, 'login').failed('planner', sys.argv[2], now=datetime.fromisoformat(sys.argv[3]))\n"
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    subprocess.run(
        [sys.executable, "-c", script, database_url, ATTACKER, now.isoformat()],
        check=True,
        cwd=REPO,
        timeout=60,
    )
    throttle = LoginThrottle(database, "login")
    assert throttle.retry_after("planner", ATTACKER, now=now) == 1
    assert throttle.retry_after("planner", PLANNER, now=now) == 0


# -- the login form ---------------------------------------------------------------------


def test_failed_logins_wait_then_the_right_password_works_again(app: Flask) -> None:
    client = app.test_client()
    for _ in range(5):
        assert login(client, ATTACKER, password="guess").status_code == 403
    refused = login(client, ATTACKER)
    assert refused.status_code == 429
    assert 55 <= int(refused.headers["Retry-After"]) <= 60
    assert "Too many failed logins. Try again in 1 " in refused.get_data(as_text=True)
    assert client.get("/planner/").status_code == 302, "the right password was not checked"
    age_failures(app, 61)
    assert login(client, ATTACKER).status_code == 303


@pytest.mark.parametrize(
    ("wait", "lang", "said"),
    [
        pytest.param(1, "en", "Try again in 1 minute.", id="one-minute"),
        pytest.param(61, "en", "Try again in 2 minutes.", id="minutes"),
        pytest.param(600, "zh", "请在 10 分钟后重试。", id="chinese"),
    ],
)
def test_the_wait_is_said_in_whole_minutes(app: Flask, wait: int, lang: str, said: str) -> None:
    with app.test_request_context(f"/planner/login?lang={lang}"):
        assert refused(wait).endswith(said)


def test_two_workers_share_one_count(
    tmp_path: Path, fake_matcher: Matcher, database_url: str
) -> None:
    first = make_app(tmp_path, fake_matcher, database_url)
    second = make_app(tmp_path, fake_matcher, database_url)
    for worker in (first, second, first, second, first):
        assert login(worker.test_client(), ATTACKER, password="guess").status_code == 403
    assert login(second.test_client(), ATTACKER).status_code == 429
    assert login(first.test_client(), ATTACKER).status_code == 429


def test_a_success_clears_the_addresss_count(app: Flask) -> None:
    client = app.test_client()
    for _ in range(4):
        login(client, PLANNER, password="typo")
    assert login(client, PLANNER).status_code == 303
    other = app.test_client()
    for _ in range(4):
        assert login(other, PLANNER, password="typo").status_code == 403
    assert login(other, PLANNER).status_code == 303, "four fresh failures, not eight"


def test_an_attack_cannot_lock_the_planner_out(app: Flask) -> None:
    planner_browser = app.test_client()
    assert login(planner_browser, ATTACKER).status_code == 303, "logged in once, earlier"
    planner_browser.post("/planner/logout", data={"token": page_token(planner_browser)})
    attacker = app.test_client()
    for n in range(30):
        for address in (ATTACKER, f"192.0.2.{n}"):
            login(attacker, address, password=f"guess{n}")
    assert login(attacker, ATTACKER).status_code == 429, "the attacker's own address waits"
    assert login(attacker, f"192.0.2.{40}", password="guess").status_code == 403
    assert login(app.test_client(), PLANNER).status_code == 303, "a fresh address"
    remembered = login(planner_browser, ATTACKER)
    assert remembered.status_code == 303, "the planner's browser, sharing the attacker's address"


def test_failed_report_calls_do_not_make_the_login_form_wait(app: Flask) -> None:
    client = app.test_client()
    attacker = {"REMOTE_ADDR": ATTACKER}
    for n in range(30):
        client.get(
            "/api/v1/reports/pairings",
            headers=basic("planner", f"g{n}"),
            environ_overrides=attacker,
        )
    refused = client.get(
        "/api/v1/reports/pairings", headers=basic("planner", PASSWORD), environ_overrides=attacker
    )
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["error"]["code"] == "too_many_attempts"
    assert login(client, ATTACKER).status_code == 303
    other = {"REMOTE_ADDR": PLANNER}
    answer = client.get(
        "/api/v1/reports/pairings", headers=basic("planner", PASSWORD), environ_overrides=other
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_report_calls_without_credentials_are_not_counted(app: Flask) -> None:
    client = app.test_client()
    for _ in range(20):
        assert client.get("/api/v1/reports/pairings").status_code == 401
    with database(app).read() as session:
        assert session.scalars(select(LoginFailureRow)).first() is None


# -- trusted proxies --------------------------------------------------------------------


def test_forwarded_addresses_are_ignored_without_trusted_proxies(app: Flask) -> None:
    client = app.test_client()
    for n in range(6):
        forwarded = {"X-Forwarded-For": f"192.0.2.{n}"}
        login(client, ATTACKER, password="guess", headers=forwarded)
    assert login(client, ATTACKER, headers={"X-Forwarded-For": PLANNER}).status_code == 429


def test_behind_a_trusted_proxy_each_client_counts_alone(
    tmp_path: Path, fake_matcher: Matcher, database_url: str
) -> None:
    app = make_app(tmp_path, fake_matcher, database_url, MATCHER_TRUSTED_PROXIES="1")
    proxy = "127.0.0.1"
    client = app.test_client()
    for _ in range(6):
        login(client, proxy, password="guess", headers={"X-Forwarded-For": ATTACKER})
    assert login(client, proxy, headers={"X-Forwarded-For": ATTACKER}).status_code == 429
    # The client's own claim comes first; the proxy appends the address it saw.
    spoofed = {"X-Forwarded-For": f"{PLANNER}, {ATTACKER}"}
    assert login(client, proxy, headers=spoofed).status_code == 429
    planner = app.test_client()
    answer = login(
        planner, proxy, headers={"X-Forwarded-For": PLANNER, "X-Forwarded-Proto": "https"}
    )
    assert answer.status_code == 303
    assert all("Secure" in h for h in cookie_headers(answer, "session")), "HTTPS at the proxy"


@pytest.mark.parametrize("value", ["one", "-1", "99", "1.5"])
def test_a_bad_trusted_proxies_setting_stops_the_start(
    tmp_path: Path, fake_matcher: Matcher, value: str
) -> None:
    with pytest.raises(ConfigError, match="MATCHER_TRUSTED_PROXIES"):
        make_app(tmp_path, fake_matcher, None, MATCHER_TRUSTED_PROXIES=value)


# -- sessions and cookies ---------------------------------------------------------------


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session", path="/planner")
    assert cookie is not None
    return cookie.value


def test_logout_revokes_the_session_for_a_replayed_cookie(app: Flask) -> None:
    client = app.test_client()
    assert login(client).status_code == 303
    stolen = session_cookie(client)
    assert client.post("/planner/logout", data={"token": page_token(client)}).status_code == 303
    replay = app.test_client()
    replay.set_cookie("session", stolen, path="/planner")
    response = replay.get("/planner/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/planner/login")
    with database(app).read() as session:
        assert session.scalars(select(PlannerSessionRow.revoked_at)).one() is not None


def test_the_table_holds_only_a_hash_of_the_cookies_token(app: Flask) -> None:
    client = app.test_client()
    login(client)
    payload = app.session_interface.get_signing_serializer(app).loads(session_cookie(client))  # type: ignore[attr-defined]
    token = payload["planner"]["sid"]
    with database(app).read() as session:
        row = session.scalars(select(PlannerSessionRow)).one()
    assert row.id == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.id, row.account, row.csrf_token)
    assert PASSWORD not in row.account


def test_a_new_password_revokes_every_session_for_good(
    tmp_path: Path, fake_matcher: Matcher, database_url: str
) -> None:
    app = make_app(tmp_path, fake_matcher, database_url)
    clients = [app.test_client(), app.test_client()]
    cookies = []
    for client in clients:
        assert login(client).status_code == 303
        cookies.append(session_cookie(client))
    make_app(tmp_path, fake_matcher, database_url, MATCHER_PLANNER_PASSWORD="rotated")
    with database(app).read() as session:
        assert all(session.scalars(select(PlannerSessionRow.revoked_at)))
    back = make_app(tmp_path, fake_matcher, database_url)  # the old password again
    for cookie in cookies:
        client = back.test_client()
        client.set_cookie("session", cookie, path="/planner")
        assert client.get("/planner/").status_code == 302


@pytest.mark.parametrize(
    ("column", "hours"),
    [pytest.param("seen_at", 3, id="idle"), pytest.param("created_at", 13, id="past-lifetime")],
)
def test_old_sessions_end(app: Flask, column: str, hours: int) -> None:
    client = app.test_client()
    login(client)
    assert client.get("/planner/").status_code == 200
    past = datetime.now(UTC) - timedelta(hours=hours)
    with database(app).write() as session:
        session.execute(update(PlannerSessionRow).values({column: past}))
    assert client.get("/planner/").status_code == 302


def test_a_used_session_stays_alive(app: Flask) -> None:
    client = app.test_client()
    login(client)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1.5)
    with database(app).write() as session:
        session.execute(update(PlannerSessionRow).values(seen_at=an_hour_ago))
    assert client.get("/planner/").status_code == 200
    with database(app).read() as session:
        seen = session.scalars(select(PlannerSessionRow.seen_at)).one()
    assert seen.replace(tzinfo=UTC) > datetime.now(UTC) - timedelta(minutes=1)


def test_a_form_token_dies_with_its_session(app: Flask) -> None:
    client = app.test_client()
    login(client)
    old = page_token(client)
    client.post("/planner/logout", data={"token": old})
    login(client)
    assert page_token(client) != old
    response = client.post("/planner/refresh", data={"token": old})
    assert response.status_code == 403
    assert client.post("/planner/logout", data={"token": form_token_of(app)}).status_code == 403


def test_the_login_form_refuses_a_public_pages_token(app: Flask) -> None:
    client = app.test_client()
    data = {"token": form_token_of(app), "user": "planner", "password": PASSWORD}
    response = client.post("/planner/login", data=data)
    assert response.status_code == 403
    assert client.get("/planner/").status_code == 302


def form_token_of(app: Flask) -> str:
    with app.test_request_context():
        return form_token()


@pytest.mark.parametrize(
    ("base_url", "always", "secure"),
    [pytest.param("http://localhost", False, False, id="http"),
     pytest.param("https://localhost", False, True, id="https"),
     pytest.param("http://localhost", True, True, id="always-secure")],
)  # fmt: skip
def test_cookies_are_secure_over_https(
    tmp_path: Path, fake_matcher: Matcher, base_url: str, always: bool, secure: bool
) -> None:
    app = make_app(tmp_path, fake_matcher, None, SESSION_COOKIE_SECURE=always)
    response = login(app.test_client(), base_url=base_url)
    assert response.status_code == 303
    for name in ("session", DEVICE_COOKIE):
        (header,) = cookie_headers(response, name)
        assert ("; Secure" in header) is secure, header
        assert "HttpOnly" in header, header
    (session_header,) = cookie_headers(response, "session")
    assert "SameSite=Lax" in session_header
    assert "Path=/planner" in session_header, "the public pages and the API never get it"
    (device_header,) = cookie_headers(response, DEVICE_COOKIE)
    assert "Path=/planner" in device_header and "SameSite=Strict" in device_header


def test_a_device_cookie_of_other_credentials_is_not_believed(
    tmp_path: Path, fake_matcher: Matcher
) -> None:
    first = make_app(tmp_path, fake_matcher, None)
    browser = first.test_client()
    assert login(browser, ATTACKER).status_code == 303
    rotated = make_app(tmp_path, fake_matcher, None, MATCHER_PLANNER_PASSWORD="rotated")
    client = rotated.test_client()
    device = browser.get_cookie(DEVICE_COOKIE, path="/planner")
    assert device is not None
    client.set_cookie(DEVICE_COOKIE, device.value, path="/planner")
    for _ in range(5):
        login(client, ATTACKER, password="guess")
    assert login(client, ATTACKER, password="rotated").status_code == 429


# -- a real server ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``matcher serve --workers 2`` behind one (pretended) proxy: every request on a new connection."""

    def __init__(self, port: int) -> None:
        self.port = port

    def send(
        self, method: str, path: str, form: dict[str, str] | None = None, **headers: str
    ) -> tuple[int, list[str], str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8")
            cookies = [
                v.split(";")[0] for k, v in response.getheaders() if k.lower() == "set-cookie"
            ]
            return response.status, cookies, text
        finally:
            connection.close()

    def login(self, address: str, password: str) -> tuple[int, list[str], str]:
        _, _, page = self.send("GET", "/planner/login")
        found = re.search(r'name="token" value="([^"]+)"', page)
        assert found
        form = {"token": found.group(1), "user": "planner", "password": password}
        return self.send("POST", "/planner/login", form, **{"X-Forwarded-For": address})


@pytest.fixture
def server(tmp_path: Path) -> Any:
    port = free_port()
    env = {
        **os.environ,
        "MATCHER_INSTANCE_DIR": str(tmp_path / "instance"),
        "MATCHER_PLANNER_PASSWORD": PASSWORD,
        "MATCHER_TRUSTED_PROXIES": "1",
    }
    command = [
        sys.executable, "-c", "from matcher.cli import main; main()", "serve",
        "--profiles", str(REPO / "profiles"), "--index-dir", str(tmp_path / "index"),
        "--model", "use-multilingual-v3:int8", "--port", str(port), "--workers", "2",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    break
            except OSError:
                assert process.poll() is None, "the server stopped"
                assert time.monotonic() < deadline, "the server did not start in 3 minutes"
                time.sleep(0.5)
        yield Server(port)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def test_two_server_workers_share_the_count_and_the_logout(server: Server) -> None:
    addresses = [f"192.0.2.{n}" for n in range(1, 21)]
    first = [server.login(address, "guess")[0] for address in addresses]
    assert first == [403] * 20
    # Twenty failures of the account in all, whichever worker took each: it is under
    # attack, so every address that failed now waits a minute. Counted per worker,
    # neither would have seen twenty.
    again = [server.login(address, "guess")[0] for address in addresses]
    assert again == [429] * 20
    status, cookies, _ = server.login(PLANNER, PASSWORD)
    assert status == 303, "the planner, from an address that has not failed"
    jar = "; ".join(cookies)
    assert [server.send("GET", "/planner/", Cookie=jar)[0] for _ in range(6)] == [200] * 6
    page = server.send("GET", "/planner/login", Cookie=jar)[2]
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found
    assert server.send("POST", "/planner/logout", {"token": found.group(1)}, Cookie=jar)[0] == 303
    assert [server.send("GET", "/planner/", Cookie=jar)[0] for _ in range(6)] == [302] * 6
