"""Overload: bounded admission sheds fast with 503 and Retry-After, admitted requests stay quick.

The rules are tested in-process on the front (``web/serving.py``) around a
small WSGI app; then against a real ``matcher serve`` with the default
model: four times its measured capacity for 10 s, and every request is
answered (200 or 503) within 5 s, and the server is healthy afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from benchmarks.overload import (
    REQUEST_TIMEOUT_S,
    capacity,
    match_request,
    one_request,
    open_loop,
    running_server,
)
from matcher.encoders import DEFAULT_MODEL
from web.admission import Admission, AdmissionLimits
from web.serving import CLIENT_GONE, Front, FrontLimits, build_environ


def slow_app(calls: list[str]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        time.sleep(float(environ.get("HTTP_X_WORK", "0")))
        gone = environ[CLIENT_GONE]()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"gone" if gone else b"done"]

    return app


class Exchange:
    """One request to the front, with a client that can hang up."""

    def __init__(
        self, path: str, *, work: float = 0.0, body: bytes = b"", accept: str = ""
    ) -> None:
        headers = [(b"x-work", str(work).encode()), (b"content-length", str(len(body)).encode())]
        if accept:
            headers.append((b"accept", accept.encode()))
        self.scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
            "http_version": "1.1",
            "scheme": "http",
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 5555),
        }
        self.pending = [{"type": "http.request", "body": body, "more_body": False}]
        self.hang_up = asyncio.Event()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.pending:
            return self.pending.pop(0)
        await self.hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"]) if self.sent else 0

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def front(calls: list[str], **limits: Any) -> Front:
    admission = AdmissionLimits(**{"running": 1, "queued": 1, "wait": 0.3, **limits})
    return Front(slow_app(calls), FrontLimits(max_body=1000, admission=admission))


async def run(app: Front, *exchanges: Exchange, stagger: float = 0.02) -> None:
    tasks = []
    for exchange in exchanges:
        tasks.append(asyncio.create_task(app(exchange.scope, exchange.receive, exchange.send)))
        await asyncio.sleep(stagger)
    await asyncio.gather(*tasks)


def test_past_the_queue_requests_are_shed_at_once_with_retry_after() -> None:
    calls: list[str] = []
    app = front(calls, retry_after=7)
    running, waiting, shed = (Exchange("/api/v1/match", work=0.2) for _ in range(3))
    start = time.monotonic()
    asyncio.run(run(app, running, waiting, shed))
    assert [running.status, waiting.status, shed.status] == [200, 200, 503]
    assert shed.headers[b"retry-after"] == b"7"
    assert json.loads(shed.body) == {
        "error": {
            "status": 503,
            "code": "overloaded",
            "message": "The server is busy; retry in 7 seconds.",
        }
    }
    assert calls == ["/api/v1/match", "/api/v1/match"]  # the shed one did no work
    assert time.monotonic() - start < 1.0


def test_a_request_that_waited_past_the_budget_is_shed_not_served_late() -> None:
    calls: list[str] = []
    app = front(calls, wait=0.2)
    busy, late = Exchange("/", work=0.6), Exchange("/", work=0.0)
    asyncio.run(run(app, busy, late))
    assert [busy.status, late.status] == [200, 503]
    assert b"text/html" in late.headers[b"content-type"]
    assert b"<h1>503</h1>" in late.body and b"retry in 2 seconds" in late.body
    assert calls == ["/"]


def test_the_health_check_is_answered_while_the_queue_is_full() -> None:
    calls: list[str] = []
    app = front(calls, queued=0)
    busy, check = Exchange("/api/v1/match", work=0.5), Exchange("/healthz")

    async def both() -> float:
        task = asyncio.create_task(app(busy.scope, busy.receive, busy.send))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        await app(check.scope, check.receive, check.send)
        took = time.monotonic() - start
        await task
        return took

    took = asyncio.run(both())
    assert check.status == 200 and took < 0.3
    assert busy.status == 200


def test_static_files_skip_the_queue_but_a_post_there_does_not() -> None:
    calls: list[str] = []
    app = front(calls, queued=0)
    busy = Exchange("/api/v1/match", work=0.4)
    style = Exchange("/static/matcher.css")
    style.scope["method"] = "GET"
    posted = Exchange("/static/matcher.css")

    async def scenario() -> None:
        task = asyncio.create_task(app(busy.scope, busy.receive, busy.send))
        await asyncio.sleep(0.05)
        await app(style.scope, style.receive, style.send)
        await app(posted.scope, posted.receive, posted.send)
        await task

    asyncio.run(scenario())
    assert [busy.status, style.status, posted.status] == [200, 200, 503]


def test_a_client_that_hung_up_while_queued_costs_no_work() -> None:
    calls: list[str] = []
    app = front(calls, queued=2, wait=2.0)
    busy = Exchange("/api/v1/match", work=0.4)
    quitter = Exchange("/api/v1/quit")

    async def scenario() -> None:
        first = asyncio.create_task(app(busy.scope, busy.receive, busy.send))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(app(quitter.scope, quitter.receive, quitter.send))
        await asyncio.sleep(0.05)
        quitter.hang_up.set()
        await asyncio.gather(first, second)

    asyncio.run(scenario())
    assert calls == ["/api/v1/match"]
    assert quitter.status == 499 and quitter.body == b""


def test_the_app_can_tell_its_client_hung_up_mid_request() -> None:
    calls: list[str] = []
    app = front(calls)
    leaving = Exchange("/api/v1/match", work=0.3)

    async def scenario() -> None:
        task = asyncio.create_task(app(leaving.scope, leaving.receive, leaving.send))
        await asyncio.sleep(0.1)
        leaving.hang_up.set()
        await task

    asyncio.run(scenario())
    assert leaving.body == b"gone"


def test_a_chunked_body_over_the_limit_is_a_413_without_the_app() -> None:
    calls: list[str] = []
    app = front(calls)
    big = Exchange("/api/v1/match")
    big.scope["headers"] = [(b"transfer-encoding", b"chunked")]
    big.pending = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 2
    asyncio.run(run(app, big))
    assert big.status == 413
    assert json.loads(big.body)["error"]["code"] == "body_too_large"
    assert big.headers[b"connection"] == b"close"
    assert calls == []


def test_a_body_that_never_finishes_is_a_408() -> None:
    calls: list[str] = []
    app = Front(slow_app(calls), FrontLimits(body_timeout=0.2, max_body=1000))
    stalled = Exchange("/api/v1/match")
    stalled.pending = [{"type": "http.request", "body": b"{", "more_body": True}]
    asyncio.run(run(app, stalled))
    assert stalled.status == 408
    assert calls == []


def test_admission_is_first_come_first_served_and_hands_slots_on() -> None:
    order: list[int] = []

    async def scenario() -> list[bool]:
        gate = Admission(AdmissionLimits(running=1, queued=3, wait=1.0))

        async def one(n: int) -> bool:
            if not await gate.enter():
                return False
            order.append(n)
            await asyncio.sleep(0.05)
            gate.leave()
            return True

        tasks = []
        for n in range(5):
            tasks.append(asyncio.create_task(one(n)))
            await asyncio.sleep(0.001)
        results = await asyncio.gather(*tasks)
        assert gate.running == 0 and gate.waiting == 0
        return list(results)

    assert asyncio.run(scenario()) == [True, True, True, True, False]
    assert order == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("raw", "path_info"),
    [
        pytest.param(b"/a%0ab", "/a\nb", id="escaped-newline-reaches-the-app-decoded"),
        pytest.param(b"/caf%C3%A9", "/caf\u00c3\u00a9", id="utf8-as-latin1-per-pep3333"),
        pytest.param(b"/bad%ff", "/bad\u00ff", id="invalid-utf8-is-no-crash"),
    ],
)
def test_the_environ_follows_pep_3333(raw: bytes, path_info: str) -> None:
    scope = Exchange("/").scope
    scope.update(raw_path=raw, query_string="q=\u00e9".encode("latin-1"))
    environ = build_environ(scope, None)  # type: ignore[arg-type]
    assert environ["PATH_INFO"] == path_info
    assert environ["QUERY_STRING"] == "q=\u00e9"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"


def test_four_times_the_capacity_for_10s_every_request_answered_within_5s() -> None:
    with running_server("front", DEFAULT_MODEL, 2) as (port, _, _):
        measured = capacity(port, workers=2)
        assert measured > 0
        result = open_loop(port, 4 * measured, 10.0)
        assert result.sent >= int(40 * measured) - 1
        # Every request got an answer, 200 or 503, within REQUEST_TIMEOUT_S.
        assert result.failed == 0, result
        assert result.answered > 0 and result.shed > 0, result
        assert max(result.latencies) <= REQUEST_TIMEOUT_S
        assert result.healthy_after
        # And a shopper is served again, at once.
        status, seconds = asyncio.run(one_request(port, match_request("tea and books"), 5.0))
        assert status == 200 and seconds <= 2.0
