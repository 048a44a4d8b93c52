"""Two serving machines on one database: how fast a publish spreads, and pairings stored once.

Starts two ``matcher serve`` instances on two ports of 127.0.0.1, each with
its own instance folder (its own index cache, as two machines have) and one
shared database, then measures:

- **publish to the other instance**: a planner signed in on the first
  instance deactivates (then reactivates) a celebrity and publishes; the time
  until the second instance's answers reflect the new version (median and
  max over ``--publishes``). Each instance asks the database for the served
  version every ``CHECK_INTERVAL`` (2 s) and then loads the index.
- **pairings under load through both**: ``--clients`` threads send
  ``--pairings`` API requests, each with its own ``Idempotency-Key``,
  alternately to the two instances; then every request is retried on the
  other instance with the same key. Counted: requests sent, pairings stored,
  and duplicates (stored rows beyond one per key), read from the database.

    python benchmarks/two_servers.py                                   # SQLite file
    python benchmarks/two_servers.py --database "$(scripts/postgres)"  # a fresh schema

The helpers here (start an instance, sign in, publish through the pages)
are also what ``tests/test_two_servers.py`` drives the instances with.
"""

from __future__ import annotations

import argparse
import html
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PROFILES = REPO / "profiles"
#: The fast model: two instances start in seconds on two cores.
FAST_MODEL = "use-multilingual-v3:int8"
PASSWORD = "two-servers-s3cret"
#: A text the sample roster pairs clearly (with Zhao Feng).
PROBE = "Weekends I'm off trekking between mountain huts, phone off."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Instance:
    """One running ``matcher serve``: its port, process and log."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
            # Several Set-Cookie headers are joined; only the planner's session matters here.
            found = {k.lower(): v for k, v in response.getheaders()}
            return Answer(response.status, text, found)
        finally:
            connection.close()

    def api(self, path: str, body: dict[str, Any], key: str | None = None) -> Answer:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        return self.request("POST", path, json.dumps(body).encode("utf-8"), headers)

    def get(self, path: str, cookie: str = "") -> Answer:
        return self.request("GET", path, headers={"Cookie": cookie} if cookie else {})

    def post_form(self, path: str, fields: dict[str, str], cookie: str = "") -> Answer:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if cookie:
            headers["Cookie"] = cookie
        return self.request("POST", path, urllib.parse.urlencode(fields).encode(), headers)

    def ranked(self, text: str = PROBE) -> list[str]:
        """Every celebrity this instance ranks for ``text``, best first (stored as a pairing)."""
        answer = self.api("/api/v1/match", {"text": text, "top_k": 20})
        if answer.status != 200:
            raise RuntimeError(f"{self.name}: {answer.status} {answer.body[:200]}")
        return [m["celebrity_id"] for m in answer.json()["matches"]]


def serve_command(port: int, profiles: Path, index_dir: Path, model: str) -> list[str]:
    return [
        sys.executable, "-c", "from matcher.cli import main; main()", "serve",
        "--profiles", str(profiles), "--index-dir", str(index_dir),
        "--port", str(port), "--workers", "1", "--model", model,
    ]  # fmt: skip


def start_instance(
    name: str, folder: Path, database_url: str, *, profiles: Path, model: str = FAST_MODEL
) -> Instance:
    """Start ``matcher serve`` with its own instance folder on the shared database."""
    port = free_port()
    home = folder / name
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "MATCHER_INSTANCE_DIR": str(home / "instance"),
        "MATCHER_DATABASE_URL": database_url,
        "MATCHER_PLANNER_PASSWORD": PASSWORD,
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("MATCHER_SECRET_KEY", None)  # the secret must come from the database
    log = home / "server.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            serve_command(port, profiles, home / "index", model),
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Instance(name, port, process, log)


def wait_until_ready(instance: Instance, limit: float = 240.0) -> None:
    """Until the instance answers a match (its worker's model loaded), or fail."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if instance.process.poll() is not None:
            raise RuntimeError(f"{instance.name} exited:\n{instance.log.read_text()[-3000:]}")
        try:
            if instance.api("/api/v1/match", {"text": "tea"}).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{instance.name} did not start in {limit} s")


def stop_instance(instance: Instance) -> None:
    """Stop the server and its workers (its own process group), by its pid."""
    if instance.process.poll() is None:
        os.killpg(instance.process.pid, signal.SIGTERM)
        try:
            instance.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(instance.process.pid, signal.SIGKILL)
            instance.process.wait()


@contextmanager
def two_instances(
    database_url: str, *, model: str = FAST_MODEL
) -> Iterator[tuple[Instance, Instance]]:
    """Two instances on one database, started together, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="matcher-two-") as tmp:
        folder = Path(tmp)
        profiles = folder / "profiles"
        shutil.copytree(SAMPLE_PROFILES, profiles, ignore=shutil.ignore_patterns(".index"))
        started: list[Instance] = []
        try:
            for name in ("one", "two"):
                started.append(start_instance(name, folder, database_url, profiles=profiles))
            for instance in started:
                wait_until_ready(instance)
            yield started[0], started[1]
        finally:
            for instance in started:
                stop_instance(instance)


@contextmanager
def fresh_database(base: str | None) -> Iterator[str]:
    """A fresh PostgreSQL schema on ``base`` (dropped afterwards), or a SQLite file."""
    if not base:
        with tempfile.TemporaryDirectory(prefix="matcher-two-db-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'matcher.db'}"
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    schema = f"two_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


# -- a planner in the pages -------------------------------------------------------------


def form_token(page: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page)
    if not found:
        raise RuntimeError("the page has no form token")
    return html.unescape(found.group(1))


def session_cookie(answer: Answer) -> str:
    """The ``name=value`` of the session cookie an answer sets."""
    raw = answer.headers.get("set-cookie", "")
    found = re.search(r"(session=[^;]+)", raw)
    if not found:
        raise RuntimeError(f"no session cookie in {raw!r}")
    return found.group(1)


def try_login(instance: Instance, password: str = PASSWORD) -> Answer:
    page = instance.get("/planner/login")
    fields = {"token": form_token(page.body), "user": "planner", "password": password}
    return instance.post_form("/planner/login", fields)


def sign_in(instance: Instance) -> str:
    """Sign the planner in on ``instance``; the session cookie."""
    answer = try_login(instance)
    if answer.status != 303:
        raise RuntimeError(f"login on {instance.name}: {answer.status}")
    return session_cookie(answer)


def edit_fields(page: str) -> dict[str, str]:
    """The fields of a celebrity's edit form, as a browser would post them."""
    form = page[page.index('class="planner-form roster-edit"') :]
    form = form[: form.index("</form>")]
    fields = {
        name: html.unescape(value)
        for name, value in re.findall(
            r'<input type="(?:text|hidden)"[^>]* name="([^"]+)" value="([^"]*)"', form
        )
    }
    for name, value in re.findall(
        r'<textarea[^>]* name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S
    ):
        fields[name] = html.unescape(value)
    if re.search(r'name="active" value="yes" checked', form):
        fields["active"] = "yes"
    return fields


def publish_active(
    instance: Instance, cookie: str, celebrity_id: str, active: bool, note: str = ""
) -> None:
    """Through the pages: set a celebrity (in)active in the draft, then publish it."""
    path = f"/planner/roster/{celebrity_id}/edit"
    page = instance.get(path, cookie)
    if page.status != 200:
        raise RuntimeError(f"{path}: {page.status}")
    fields = edit_fields(page.body)
    fields.pop("active", None)
    if active:
        fields["active"] = "yes"
    saved = instance.post_form(path, fields, cookie)
    if saved.status != 303:
        raise RuntimeError(f"saving {celebrity_id}: {saved.status} {saved.body[-500:]}")
    token = form_token(instance.get("/planner/", cookie).body)
    done = instance.post_form("/planner/roster/publish", {"token": token, "note": note}, cookie)
    if done.status != 303:
        raise RuntimeError(f"publishing: {done.status}")


def wait_for_ranking(
    instance: Instance, absent: str | None, present: str | None, limit: float = 60.0
) -> float:
    """Poll until ``absent`` is not (and ``present`` is) among the instance's answers; seconds."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        ranked = instance.ranked()
        if (absent is None or absent not in ranked) and (present is None or present in ranked):
            return time.monotonic() - start
        time.sleep(0.05)
    raise RuntimeError(f"{instance.name} did not serve the new roster in {limit} s")


# -- pairings through both --------------------------------------------------------------


TEXTS = [
    "Slow mornings with oolong tea, a book of essays and ten minutes of meditation.",
    "I dance at every concert and sing karaoke with my friends until sunrise.",
    "Trail running before dawn, climbing on weekends, and I hate heavy perfume.",
    "Silk dresses, red lipstick and a seat at the opera on opening night.",
    "周末喜欢在家看书、喝茶、听雨，不喜欢热闹。",
    "我喜欢去演唱会，和朋友们一起唱歌跳舞。",
]


def send_pairings(
    instances: tuple[Instance, Instance], count: int, clients: int, run: str
) -> dict[str, Any]:
    """``count`` keyed pairings alternately to the two instances, then each retried on the
    other; the keys, the first answers' references, and what the retries answered."""
    firsts: dict[str, str] = {}
    retries: dict[str, str] = {}
    failures: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(count))

    def work() -> None:
        while True:
            with lock:
                n = next(cursor, None)
            if n is None:
                return
            key = f"{run}-{n}"
            body = {"text": TEXTS[n % len(TEXTS)], "shopper_ref": f"{run}-shopper-{n}"}
            first, other = instances[n % 2], instances[(n + 1) % 2]
            for target, into in ((first, firsts), (other, retries)):
                answer = target.api("/api/v1/match", body, key=key)
                with lock:
                    if answer.status == 200:
                        into[key] = answer.json()["shopper_ref"]
                    else:
                        failures.append(f"{target.name} {answer.status}")

    threads = [threading.Thread(target=work) for _ in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "firsts": firsts,
        "retries": retries,
        "failures": failures,
        "seconds": time.monotonic() - start,
    }


def stored_per_key(database_url: str, prefix: str) -> dict[str, int]:
    """How many pairings the database holds per request key starting with ``prefix``."""
    from sqlalchemy import func, select

    from matcher.store import Database
    from matcher.store.schema import PairingRow

    db = Database(database_url)
    try:
        with db.read() as session:
            rows = session.execute(
                select(PairingRow.request_key, func.count())
                .where(PairingRow.request_key.like(f"{prefix}-%"))
                .group_by(PairingRow.request_key)
            ).all()
        return {str(key): int(n) for key, n in rows}
    finally:
        db.dispose()


# -- the benchmark ----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="a PostgreSQL URL (a fresh schema is made on it)")
    parser.add_argument("--publishes", type=int, default=6, help="publishes timed")
    parser.add_argument("--pairings", type=int, default=400, help="keyed pairings sent")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--model", default=FAST_MODEL, help="the model both instances serve")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    with fresh_database(args.database) as url, two_instances(url, model=args.model) as pair:
        one, two = pair
        backend = "postgresql" if url.startswith("postgresql") else "sqlite"
        cookie = sign_in(one)
        victim = two.ranked()[0]
        times = []
        for n in range(args.publishes):
            active = n % 2 == 1
            publish_active(one, cookie, victim, active, note=f"benchmark {n}")
            published_at = time.monotonic()
            wait_for_ranking(
                two, absent=None if active else victim, present=victim if active else None
            )
            times.append(time.monotonic() - published_at)
        run = f"bench{secrets.token_hex(3)}"
        sent = send_pairings(pair, args.pairings, args.clients, run)
        stored = stored_per_key(url, run)
    requests = len(sent["firsts"]) + len(sent["retries"]) + len(sent["failures"])
    same = sum(sent["retries"].get(k) == v for k, v in sent["firsts"].items())
    print(f"two instances (1 worker each, {args.model}) on one {backend} database\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| publish on one -> served by the other, median | {statistics.median(times):.2f} s |")
    print(f"| publish on one -> served by the other, max | {max(times):.2f} s |")
    print(f"| publishes timed | {len(times)} |")
    print(f"| keyed requests sent (first tries + retries on the other) | {requests} |")
    print(f"| failed requests | {len(sent['failures'])} |")
    print(f"| distinct keys | {len(sent['firsts'])} |")
    print(f"| pairings stored | {sum(stored.values())} |")
    print(f"| duplicates (stored beyond one per key) | {sum(n - 1 for n in stored.values())} |")
    print(f"| retries answered with the first pairing's reference | {same} |")
    print(f"| requests per second through both | {requests / sent['seconds']:.0f} |")


if __name__ == "__main__":
    main()
