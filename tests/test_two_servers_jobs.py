"""Two real servers on one database: a batch job started on one is seen, downloaded and
cancelled on the other.

Two ``matcher serve`` processes on two ports of 127.0.0.1 stand for two
machines behind a load balancer: each has its own instance folder (so
nothing is shared through files) and both use one database (a SQLite file,
and a PostgreSQL schema when the test server is there). The fast model keeps
the start-up short; the job's files travel only through the database.
"""

from __future__ import annotations

import csv
import http.client
import io
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from matcher.store import Database
from matcher.store.schema import BatchJobFileRow, PairingRow

from .conftest import REPO
from .test_serve import free_port

PASSWORD = "two-servers-secret"
FAST_MODEL = "use-multilingual-v3:int8"
TEXTS = [
    "weekend treks between mountain huts, phone off",
    "a quiet tea house and a novel all afternoon",
    "karaoke with friends and dancing till late",
    "surfing at dawn, salt in my hair",
]


class Planner:
    """A planner's browser on one server: its cookies, its form token, no redirects followed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            sent = dict(headers or {})
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self.cookies[key] = rest.split(";", 1)[0]
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            connection.close()

    def page(self, path: str) -> tuple[int, str]:
        status, _, body = self.send("GET", path)
        return status, body.decode("utf-8")

    def token(self) -> str:
        found = re.search(r'name="token" value="([^"]+)"', self.page("/planner/batches")[1])
        assert found, "the page carries a form token"
        return found.group(1)

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        body = urllib.parse.urlencode(fields).encode()
        return self.send("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def login(self) -> None:
        found = re.search(r'name="token" value="([^"]+)"', self.page("/planner/login")[1])
        assert found
        status, _, _ = self.post(
            "/planner/login", {"token": found.group(1), "user": "planner", "password": PASSWORD}
        )
        assert status == 303

    def upload(self, name: str, data: bytes) -> str:
        boundary = secrets.token_hex(16)
        fields = {"token": self.token(), "top_k": "2", "id_column": "id", "text_column": "text"}
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            for key, value in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: text/csv\r\n\r\n".encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, headers, body = self.send(
            "POST",
            "/planner/batches",
            b"".join(parts),
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert status == 303, body.decode("utf-8", "replace")
        found = re.fullmatch(r".*/planner/batches/([\w-]{16})", headers["location"])
        assert found, headers["location"]
        return found.group(1)

    def status_of(self, job_id: str) -> str:
        status, page = self.page(f"/planner/batches/{job_id}")
        assert status == 200, page
        found = re.search(r'<p class="status" role="status">\s*(.*?)\s*</p>', page, re.S)
        assert found, page
        return found.group(1).strip()


def wait_until(condition: Any, what: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def start_server(
    tmp_path: Path, name: str, database_url: str
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "MATCHER_INSTANCE_DIR": str(tmp_path / name / "instance"),
        "MATCHER_DATABASE_URL": database_url,
        "MATCHER_PLANNER_PASSWORD": PASSWORD,
    }
    command = [
        sys.executable, "-c", "from matcher.cli import main; main()", "serve",
        "--profiles", str(REPO / "profiles"), "--index-dir", str(tmp_path / name / "index"),
        "--model", FAST_MODEL, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    log.close()
    return process, port


def healthy(process: subprocess.Popen[bytes], port: int) -> bool:
    assert process.poll() is None, "a server stopped"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@pytest.fixture
def servers(tmp_path: Path, database_url: str) -> Iterator[tuple[Planner, Planner, Database]]:
    # The first start migrates the database and seeds the default campaign; the
    # second comes up on it as a later machine would.
    started = [start_server(tmp_path, "a", database_url)]
    try:
        wait_until(lambda: healthy(*started[0]), "server A")
        started.append(start_server(tmp_path, "b", database_url))
        wait_until(lambda: healthy(*started[1]), "server B")
        planners = (Planner(started[0][1]), Planner(started[1][1]))
        for planner in planners:
            planner.login()
        db = Database(database_url)
        yield planners[0], planners[1], db
        db.dispose()
    finally:
        for process, _ in started:
            process.send_signal(signal.SIGTERM)
        for process, _ in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
    assert b"tea house" not in b"".join(
        (tmp_path / f"{name}.log").read_bytes() for name in ("a", "b")
    ), "no shopper text in the servers' logs"


def shoppers(count: int, prefix: str) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["ID", "Text"])
    writer.writerows((f"{prefix}-{n}", TEXTS[n % len(TEXTS)]) for n in range(count))
    return out.getvalue().encode("utf-8")


def stored_pairings(db: Database, prefix: str) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(func.count()).where(PairingRow.shopper_ref.like(f"{prefix}-%")))
            or 0
        )


def test_a_job_started_on_one_server_is_seen_downloaded_and_cancelled_on_the_other(
    servers: tuple[Planner, Planner, Database],
) -> None:
    a, b, db = servers

    # A small job started on A: B lists it at once, and both download the same pairings.
    small = a.upload("crm-small.csv", shoppers(20, "small"))
    assert "crm-small.csv" in b.page("/planner/batches")[1]
    wait_until(lambda: b.status_of(small) == "done, ready to download", "the small job")
    _, page = b.page(f"/planner/batches/{small}")
    assert "<dd>20</dd>" in page and "of 21" not in page, "20 shoppers, the header not counted"
    downloads = []
    for planner in (b, a, b):
        status, headers, body = planner.send("GET", f"/planner/batches/{small}/pairings.csv")
        assert status == 200 and headers["content-type"].startswith("text/csv")
        downloads.append(body)
    rows = list(csv.DictReader(io.StringIO(downloads[0].decode("utf-8"))))
    assert [row["id"] for row in rows] == [f"small-{n}" for n in range(20)]
    assert downloads[0] == downloads[1] == downloads[2], "the same file from either server"
    assert stored_pairings(db, "small") == 20

    # A large job started on A is followed and cancelled from B; A's worker stops.
    large = a.upload("crm-large.csv", shoppers(40_000, "large"))
    wait_until(lambda: "matching:" in b.status_of(large), "the large job to run")
    _, page = b.page(f"/planner/batches/{large}")
    assert "of 40000 shoppers" in page and 'http-equiv="refresh"' in page
    assert wait_until(lambda: re.search(r"shoppers a second · <span id=\"time-left\">", b.page(f"/planner/batches/{large}")[1]), "a rate and the time left")  # fmt: skip
    status, _, _ = b.post(f"/planner/batches/{large}/cancel", {"token": b.token()})
    assert status == 303
    asked = time.monotonic()
    wait_until(lambda: a.status_of(large) == "cancelled", "A's worker to stop", timeout=30)
    print(f"two servers: a cancel on B stopped A's worker in {time.monotonic() - asked:.1f} s")
    assert b.status_of(large) == "cancelled"
    assert b.send("GET", f"/planner/batches/{large}/pairings.csv")[0] == 409
    assert stored_pairings(db, "large") == 0, "nothing of a cancelled batch is stored"
    with db.read() as session:
        kinds = set(
            session.scalars(select(BatchJobFileRow.kind).where(BatchJobFileRow.job_id == large))
        )
    assert kinds == set(), "the cancelled job's upload is gone from the database"
