"""A small HTTP load generator: N client threads POSTing JSON on loopback.

Each client sends one request at a time and waits for the answer (closed
loop), reconnecting when the server closes the connection (gunicorn's sync
workers did after every answer; ``matcher serve`` keeps it open). A 503 is
the server shedding load (``web/admission.py``), counted apart from errors;
``benchmarks/overload.py`` measures past capacity. It runs on the same two cores as the server,
so it is kept cheap: ``http.client``, no framework, a body per request built
from a pre-made list of texts. The CPU time it used is reported beside the
figures.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """Latencies (seconds) of the answers inside the measured window."""

    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    #: 503 answers in the window: requests the server shed because its queue was full.
    shed: int = 0
    client_cpu: float = 0.0
    #: Every 200 answer, warm-up included (what the server did, not what was timed).
    answered: int = 0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def post_json(
    connection: http.client.HTTPConnection | None, host: str, port: int, path: str, body: bytes
) -> tuple[http.client.HTTPConnection | None, int]:
    """One POST; returns the connection to reuse (or None when the server closed it)."""
    if connection is None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        status = response.status
        if response.will_close:
            connection.close()
            connection = None
        return connection, status
    except (OSError, http.client.HTTPException):
        connection.close()
        return None, 0


def run_load(
    host: str,
    port: int,
    path: str,
    texts: Sequence[str],
    *,
    clients: int,
    seconds: float,
    warmup: float,
) -> LoadResult:
    """Keep ``clients`` requests in flight for ``warmup + seconds``; time the last ``seconds``.

    Client ``i`` sends texts ``i, i + clients, ...``; ``texts`` must be long
    enough that none repeats within the run, or a cache would answer.
    """
    start = time.perf_counter()
    begin, end = start + warmup, start + warmup + seconds
    result = LoadResult(clients, seconds)
    lock = threading.Lock()

    def client(number: int) -> None:
        connection = None
        own: list[float] = []
        errors = 0
        shed = 0
        answered = 0
        position = number
        while True:
            sent = time.perf_counter()
            if sent >= end:
                break
            body = json.dumps({"text": texts[position % len(texts)], "top_k": 3}).encode()
            position += clients
            connection, status = post_json(connection, host, port, path, body)
            done = time.perf_counter()
            answered += status == 200
            if sent >= begin and done <= end:
                if status == 200:
                    own.append(done - sent)
                elif status == 503:
                    shed += 1
                else:
                    errors += 1
        if connection is not None:
            connection.close()
        with lock:
            result.latencies += own
            result.errors += errors
            result.shed += shed
            result.answered += answered

    cpu = time.process_time()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.client_cpu = (time.process_time() - cpu) / (warmup + seconds)
    return result
