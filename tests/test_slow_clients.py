"""Slow and silent clients against a real ``matcher serve`` on 127.0.0.1, and its log lines.

Before, two idle connections took the service down (sync workers read on the
worker); now 50 idle and 50 slow-header connections leave a normal client
answered within 2 s, a connection that never finishes its headers is closed
after ``--head-timeout``, and a ``%0a`` in a URL cannot forge a log line.

The fast packaged encoder keeps the server's start short; what is tested is
the serving stack, which is the same for every model (the default model is
served in tests/test_serve.py and tests/test_overload.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.overload import (
    ANSWER_WITHIN_S,
    match_request,
    normal_client_under_attack,
    one_request,
    running_server,
)
from web.serving_worker import EscapeControl, escape_control

FAST_MODEL = "use-multilingual-v3:int8"
HEAD_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, Path]]:
    with running_server("front", FAST_MODEL, 2, extra=["--head-timeout", str(HEAD_TIMEOUT)]) as (
        port,
        _,
        folder,
    ):
        yield port, folder / "server.log"


def test_fifty_idle_and_fifty_slow_header_connections_leave_a_client_answered_in_2s(
    server: tuple[int, Path],
) -> None:
    port, _ = server
    opened, answers = asyncio.run(normal_client_under_attack(port, idle=50, slow=50))
    assert opened == 100
    assert [status for status, _ in answers] == [200, 200, 200]
    assert all(seconds <= ANSWER_WITHIN_S for _, seconds in answers), answers


def test_a_connection_that_never_finishes_its_headers_is_closed(server: tuple[int, Path]) -> None:
    port, _ = server
    for opening in (b"", b"POST /api/v1/match HTTP/1.1\r\nHost: x\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=HEAD_TIMEOUT + 10) as sock:
            sock.sendall(opening)
            start = time.monotonic()
            # Still connected while within the deadline; then the server hangs up.
            assert sock.recv(1) == b""
            waited = time.monotonic() - start
        assert HEAD_TIMEOUT - 0.5 <= waited <= HEAD_TIMEOUT + 5, waited


def test_a_line_break_in_a_url_or_header_cannot_forge_a_log_line(
    server: tuple[int, Path],
) -> None:
    port, log = server
    forged = '127.0.0.1 "GET /admin" 200 0 1ms'
    payload = (
        f"GET /x%0a{forged.replace(' ', '%20')}%0d%0a HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    status, _ = asyncio.run(one_request(port, payload, 10.0))
    assert status == 404
    asyncio.run(one_request(port, match_request("ok \u2028 fine"), 10.0))
    time.sleep(0.5)  # the access log line is written after the answer
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    assert not any(line.startswith(forged) for line in lines)
    logged = [line for line in lines if "/x\\n" in line]
    assert len(logged) == 1 and "\\r\\n" in logged[0], lines[-5:]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("/a\nb", "/a\\nb", id="newline"),
        pytest.param("/a\r\nb", "/a\\r\\nb", id="crlf"),
        pytest.param("a\x1b[31mred", "a\\x1b[31mred", id="terminal-escape"),
        pytest.param("a\u2028b\u0085c", "a\\u2028b\\x85c", id="unicode-line-breaks"),
        pytest.param("back\\slash", "back\\\\slash", id="backslash-kept-unambiguous"),
        pytest.param("caf\u00e9 茶", "caf\u00e9 茶", id="printable-unchanged"),
    ],
)
def test_escape_control_puts_anything_on_one_readable_line(text: str, expected: str) -> None:
    assert escape_control(text) == expected


def record(msg: str, args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("t", logging.ERROR, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]


def test_every_kind_of_log_record_is_one_line_per_record_after_the_filter() -> None:
    formatter = logging.Formatter("%(message)s")
    access = record(
        '%(h)s "%(m)s %(U)s" %(s)s', {"h": "1.2.3.4", "m": "GET", "U": "/a\nX", "s": "404"}
    )
    plain = record("unhandled %s on %s %s", ("KeyError", "GET", "/a\nFORGED"))
    try:
        raise ValueError("bad value\nFORGED line")
    except ValueError as exc:
        failed = record("request failed", (), exc)
    for item in (access, plain, failed):
        assert EscapeControl().filter(item)
    assert formatter.format(access) == '1.2.3.4 "GET /a\\nX" 404'
    assert formatter.format(plain) == "unhandled KeyError on GET /a\\nFORGED"
    text = formatter.format(failed)
    assert "ValueError: bad value\\nFORGED line" in text
    assert not re.search(r"(?m)^FORGED", text)
    assert "Traceback (most recent call last):" in text  # frames stay readable
