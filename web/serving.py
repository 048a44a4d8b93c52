"""The front of each server worker: read whole requests in the event loop, then admit or shed.

Why this exists: gunicorn's sync workers read a request on the worker
itself, so a client that connects and sends nothing (or sends its headers a
byte at a time) holds the worker until a timeout; as many such connections as
workers took the whole service down (docs/performance.md, "Serving").

Here the worker runs an asyncio event loop (gunicorn's ``asgi`` worker;
``serving_worker.py``), where a connection that sends nothing costs a few
kilobytes and no thread. This ASGI application, in front of the Flask app:

1. reads the whole body in the loop, within ``body_timeout`` seconds and
   ``max_body`` bytes (408 and 413 otherwise), so the app never waits on a
   client;
2. answers the health check and static files at once, outside the queue,
   so they stay answerable under any load;
3. admits every other request through :class:`~web.admission.Admission`: a
   bounded, time-limited queue, with a fast 503 and ``Retry-After`` when
   full (the API's JSON error shape under ``/api``, a small page otherwise);
4. drops a request whose client hung up while it waited, before any work;
5. runs the Flask app in the worker's own threads, one request per slot.

The app can ask whether its client is still there
(``environ["matcher.client_gone"]()``, see :func:`client_gone`), so a pairing
is not stored for a client that gave up.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from .admission import Admission, AdmissionLimits
from .errors import error_body

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: Answered outside the admission queue, on a thread of their own: the health
#: check (a load balancer sees a busy worker as alive) and the static files
#: (a page that was served gets its stylesheet, whatever the queue).
HEALTH_PATHS = frozenset({"/healthz"})
STATIC_PREFIX = "/static/"
#: The environ key holding a callable that says whether the client hung up.
CLIENT_GONE = "matcher.client_gone"
#: Bodies up to this size stay in memory; larger ones go to an unnamed temporary file.
SPOOL_BYTES = 256 * 1024


@dataclass(frozen=True)
class FrontLimits:
    """What a client must do in time, and how much a worker takes on.

    Attributes:
        body_timeout: seconds for the whole body to arrive once the headers have.
        max_body: the largest body read (the app's ``MAX_CONTENT_LENGTH``).
        admission: the queue's bounds (see :class:`AdmissionLimits`).
    """

    body_timeout: float = 30.0
    max_body: int = 20 * 1024 * 1024
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)


class BodyRefused(Exception):
    """The body was too slow or too large; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ClientGone(Exception):
    """The client hung up before its request was complete."""


def client_gone(environ: MutableMapping[str, Any]) -> bool:
    """Whether the client of this request has hung up (False when served another way)."""
    check = environ.get(CLIENT_GONE)
    return bool(check()) if callable(check) else False


class Front:
    """The ASGI application gunicorn's workers run, around the Flask (WSGI) app."""

    def __init__(self, app: WsgiApp, limits: FrontLimits) -> None:
        self.app = app
        self.limits = limits
        self.admission = Admission(limits.admission)
        # Sized to the admission slots: the queue, not the pool, decides who runs.
        self.pool = ThreadPoolExecutor(limits.admission.running, thread_name_prefix="request")
        self.health_pool = ThreadPoolExecutor(1, thread_name_prefix="health")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: nothing here speaks them
            await send({"type": "websocket.close", "code": 1003})
            return
        try:
            body = await asyncio.wait_for(
                read_body(scope, receive, self.limits.max_body), self.limits.body_timeout
            )
        except TimeoutError:
            await quick_answer(scope, send, 408, "request_timeout", "The body came too slowly.")
            return
        except BodyRefused as refused:
            await quick_answer(scope, send, refused.status, refused.code, refused.message)
            return
        except ClientGone:
            await hung_up(send)
            return
        with body:
            if _light(scope):
                await self.call_app(self.health_pool, scope, body, send, asyncio.Event())
                return
            await self.admit(scope, receive, send, body)

    async def admit(self, scope: Scope, receive: Receive, send: Send, body: IO[bytes]) -> None:
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        try:
            if not await self.admission.enter():
                retry = self.limits.admission.retry_after
                await quick_answer(
                    scope,
                    send,
                    503,
                    "overloaded",
                    f"The server is busy; retry in {retry} seconds.",
                    [(b"retry-after", str(retry).encode("ascii"))],
                )
                return
            try:
                if gone.is_set():
                    await hung_up(send)  # nobody is waiting for the answer: do no work
                    return
                await self.call_app(self.pool, scope, body, send, gone)
            finally:
                self.admission.leave()
        finally:
            watcher.cancel()

    async def call_app(
        self,
        pool: ThreadPoolExecutor,
        scope: Scope,
        body: IO[bytes],
        send: Send,
        gone: asyncio.Event,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            environ = build_environ(scope, body)
        except ValueError:
            await quick_answer(scope, send, 400, "bad_request", "The request could not be read.")
            return
        environ[CLIENT_GONE] = gone.is_set
        await loop.run_in_executor(pool, run_wsgi, self.app, environ, send, loop)


def _light(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    if path in HEALTH_PATHS:
        return True
    return path.startswith(STATIC_PREFIX) and scope.get("method") in ("GET", "HEAD")


async def read_body(scope: Scope, receive: Receive, limit: int) -> IO[bytes]:
    """The whole request body, spooled to an unnamed file past :data:`SPOOL_BYTES`.

    A declared length over ``limit`` is not read: the app answers it (413 in
    its own words) from the header alone. A chunked body is cut off at
    ``limit`` with a 413 here.

    Raises:
        BodyRefused: a chunked body over ``limit``.
        ClientGone: the client hung up first.
    """
    body: IO[bytes] = SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        scope["matcher.body_skipped"] = True
        return body
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyRefused(413, "body_too_large", f"The body is larger than {limit} bytes.")
            body.write(chunk)
            if not message.get("more_body", False):
                break
    except BaseException:
        body.close()
        raise
    body.seek(0)
    return body


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    """Set ``gone`` when the client hangs up (the body is read, so nothing else arrives)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def build_environ(scope: Scope, body: IO[bytes]) -> dict[str, Any]:
    """A PEP 3333 environ for the request: strings are bytes read as Latin-1, as WSGI says.

    Raises:
        ValueError: the request line cannot be expressed in a WSGI environ.
    """
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    script_name = scope.get("root_path", "").encode("utf-8").decode("latin-1")
    path_info = unquote_to_bytes(raw_path.split(b"?", 1)[0]).decode("latin-1")
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name) :]
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 0),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = str(scope["client"][0])
    if scope.get("matcher.body_skipped"):
        environ["wsgi.input"] = io.BytesIO()
        environ["matcher.body_skipped"] = True
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").upper().replace("-", "_")
        if key not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            key = f"HTTP_{key}"
        text = value.decode("latin-1")
        # Repeated headers are joined as one, the way a proxy would (RFC 9110 5.3).
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def run_wsgi(app: WsgiApp, environ: dict[str, Any], send: Send, loop: Any) -> None:
    """Call the WSGI app in this (pool) thread and stream its answer through the event loop."""
    started: list[Message] = []
    sent = [False]

    def deliver(message: Message) -> None:
        asyncio.run_coroutine_threadsafe(send(message), loop).result()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and sent[0]:
            raise exc_info[1].with_traceback(exc_info[2])
        fields = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if environ.get("matcher.body_skipped"):
            fields.append((b"connection", b"close"))  # the unread body is still coming
        started[:] = [{"type": "http.response.start", "status": int(status[:3]), "headers": fields}]
        return lambda data: None  # the legacy write() callable; Flask never uses it

    result = app(environ, start_response)
    try:
        for chunk in result:
            if not chunk:
                continue
            if not sent[0]:
                deliver(started[0])
                sent[0] = True
            deliver({"type": "http.response.body", "body": chunk, "more_body": True})
        if not sent[0]:
            deliver(started[0])
        deliver({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


async def hung_up(send: Send) -> None:
    """Close the exchange of a client that left; logged as 499 (the client closed the request).

    Left unanswered, gunicorn would log a 500 for it, which is nobody's fault here.
    """
    await send(
        {"type": "http.response.start", "status": 499, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _wants_json(scope: Scope) -> bool:
    if str(scope.get("path", "")).startswith("/api/"):
        return True
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            return parse_accept_header(value.decode("latin-1"), MIMEAccept).best == (
                "application/json"
            )
    return False


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{status}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{status}</h1><p role="alert">{message}</p>
<p lang="zh-CN">{message_zh}</p></main></body></html>
"""
#: The shopper's page is bilingual; the quick answers come before the app picks a language.
PAGE_MESSAGES_ZH = {
    503: "现在人有点多，请稍后再试。",
    408: "请求发送得太慢了，请重试。",
    413: "内容太多了，我们一次收不下。",
    400: "无法读取这个请求。",
}


async def quick_answer(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer from the event loop, without the app: the API's error shape, or a small page."""
    if _wants_json(scope):
        payload = json.dumps(error_body(status, code, message)).encode("utf-8")
        kind = b"application/json"
    else:
        page = PAGE.format(
            status=status,
            message=html.escape(message),
            message_zh=html.escape(PAGE_MESSAGES_ZH.get(status, "")),
        )
        payload, kind = page.encode("utf-8"), b"text/html; charset=utf-8"
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(payload)).encode("ascii")),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        *(extra or []),
    ]
    if status in (408, 413):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})
