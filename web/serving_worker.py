"""gunicorn as ``matcher serve`` runs it: asyncio workers, a deadline for headers, safe logs.

gunicorn's ``asgi`` worker reads connections in an event loop, so clients
that send nothing, or send slowly, cost no thread; :class:`~web.serving.Front`
then reads each body there and admits requests to the Flask app. Its one gap
is the first request on a connection, whose headers it waits for without a
limit (later requests on a kept-alive connection get gunicorn's ``keepalive``
limit): :class:`HeadDeadlineProtocol` closes a connection whose first request
line and headers are not all in within ``head_timeout`` seconds.

Every log line is one line: control characters in anything a client chose
(a path with ``%0a``, a header, an exception message quoting them) are
escaped, in the access log and the error log, and in the app's own log
records, which reach the same stream (:class:`SafeLogger`).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import Any

from gunicorn import glogging
from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

#: C0 and C1 control characters, DEL, the Unicode line and paragraph
#: separators, and the backslash (so an escape in the log is never ambiguous).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\\\\]")


def escape_control(text: str) -> str:
    """``text`` on one line: ``\\n`` for a newline, ``\\xNN``/``\\uNNNN`` for other controls."""

    def one(match: re.Match[str]) -> str:
        char = match.group()
        named = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
        if char in named:
            return named[char]
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE.sub(one, text)


def _safe_traceback(exc_info: Any) -> str:
    """A traceback whose frames are kept as they are and whose exception messages are escaped.

    Frames show this project's code; the messages may quote what a client sent.
    """
    exc = exc_info[1]
    chain = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    parts = []
    for exc in reversed(chain):
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(exc.__traceback__))
        message = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
        parts.append(escape_control(message) + "\n")
    return "".join(parts).rstrip("\n")


class EscapeControl(logging.Filter):
    """Render each record's message with control characters escaped, before it is formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_escaped", False):
            return True
        if isinstance(record.args, dict):
            # gunicorn's access line: a %(name)s format of this project's over a dict of atoms.
            record.args = {
                k: escape_control(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
            message = record.getMessage()
        else:
            message = escape_control(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = _safe_traceback(record.exc_info)
            record.exc_info = None
        record._escaped = True
        return True


class SafeLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger with every line escaped, the app's records included."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.addFilter(EscapeControl())
        # The app's modules log through the root logger; without a handler
        # Python's last-resort handler would print their records unescaped.
        root = logging.getLogger()
        for handler in root.handlers:
            if not any(isinstance(f, EscapeControl) for f in handler.filters):
                handler.addFilter(EscapeControl())
        if not root.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(self.error_fmt, self.datefmt))
            handler.addFilter(EscapeControl())
            root.addHandler(handler)
            root.setLevel(logging.WARNING)


class HeadDeadlineProtocol(ASGIProtocol):  # type: ignore[misc]
    """gunicorn's HTTP protocol, closing a connection whose first request head is late."""

    #: Seconds from connecting to the end of the first request's headers; set by ``serve``.
    head_timeout = 10.0

    def __init__(self, worker: Any) -> None:
        super().__init__(worker)
        self._head_timer: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.worker.nr_conns > self.worker.cfg.worker_connections:
            # Past the cap the connection is closed at once, before file
            # descriptors run out for the database and the index.
            self._head_overdue()
            return
        self._head_timer = self.worker.loop.call_later(self.head_timeout, self._head_overdue)

    def _on_headers_complete(self) -> Any:
        self._cancel_head_timer()
        return super()._on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self._closed:
            return
        if self._request_ready is not None:
            self._keepalive_timeout()  # closes the transport and ends the connection's task
        else:
            self._close_transport()


class ServingWorker(gasgi.ASGIWorker):  # type: ignore[misc]
    """gunicorn's asgi worker serving :class:`HeadDeadlineProtocol` connections."""

    def init_process(self) -> None:
        # The asgi worker builds each connection's protocol from this module
        # name; the subclass only adds the head deadline (gunicorn is pinned <28).
        gasgi.ASGIProtocol = HeadDeadlineProtocol
        super().init_process()
