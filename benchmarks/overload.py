"""Slow clients and overload against a real server on 127.0.0.1: prints two tables.

1. *Connections needed to deny service*: N silent connections (connect, send
   nothing) or N slow-header ones (a header line every second, never the
   blank line that ends them) are opened, then a normal client asks for a
   match; the service is denied at N when that client is not answered within
   2 s. N doubles from 1 up to ``--max-connections``.
2. *Overload*: the capacity is measured (closed loop, two clients per
   worker), then requests arrive at a fixed rate (open loop, one new
   connection each) of 1x, 4x and 16x that capacity for ``--seconds``; each
   is given 5 s. Counted: answered (200), shed (503), timed out or failed,
   the p50/p99 latency of the answered ones, and whether ``/healthz`` answers
   right after.

Stacks (``--stack``, repeatable): ``front`` is ``matcher serve`` as shipped
(asyncio workers, bounded admission); ``sync`` and ``gthread`` are the same
Flask app under gunicorn's sync workers (how ``matcher serve`` ran before)
and its threaded workers (8 threads), for comparison.

    python benchmarks/overload.py --stack sync --stack front
    python benchmarks/overload.py --stack front --model use:int8 --skip-overload

The load generator runs on the same cores as the server: figures taken while
other work runs on the machine are noisy, and its own CPU time is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SAMPLE_PROFILES = REPO / "profiles"
#: A normal client must be answered within this to count the service as up.
ANSWER_WITHIN_S = 2.0
#: What each overload request is given before it counts as timed out.
REQUEST_TIMEOUT_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(
    stack: str, port: int, model: str, workers: int, folder: Path, extra: list[str]
) -> list[str]:
    if stack == "front":
        return [
            sys.executable, "-c", "from matcher.cli import main; main()", "serve",
            "--profiles", str(SAMPLE_PROFILES), "--index-dir", str(folder / "index"),
            "--port", str(port), "--workers", str(workers), "--model", model, *extra,
        ]  # fmt: skip
    return [
        sys.executable, str(Path(__file__).resolve()), "serve-old", stack,
        "--port", str(port), "--workers", str(workers), "--model", model,
        "--index-dir", str(folder / "index"),
    ]  # fmt: skip


@contextmanager
def running_server(
    stack: str,
    model: str,
    workers: int = 2,
    *,
    extra: list[str] | None = None,
    startup_limit: float = 240.0,
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """A server of ``stack`` on a free port, up (every worker's model loaded), then stopped.

    ``extra`` options go to ``matcher serve`` (the ``front`` stack).

    Yields the port, the process and the folder holding its log (``server.log``).
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="matcher-overload-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "MATCHER_INSTANCE_DIR": str(folder / "instance")}
        env.pop("MATCHER_PLANNER_PASSWORD", None)  # its warning marks a worker as loaded
        with open(folder / "server.log", "wb") as log:
            server = subprocess.Popen(
                serve_command(stack, port, model, workers, folder, extra or []),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_up(port, server, workers, startup_limit, folder / "server.log")
            yield port, server, folder
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()


def wait_until_up(
    port: int, server: subprocess.Popen[bytes], workers: int, limit: float, log: Path
) -> None:
    """Until every worker has loaded its model: the log says so once per worker."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
        text = log.read_text(errors="replace")
        if "Traceback" in text:
            raise RuntimeError(f"a worker failed: {text[-2000:]}")
        ready = text.count("planner area is off") >= workers
        if ready and health(port, timeout=5.0) == 200:
            return
        time.sleep(0.5)
    raise RuntimeError(f"server not up in {limit:.0f} s: {log.read_text(errors='replace')[-2000:]}")


def health(port: int, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def match_request(text: str, extra_headers: str = "") -> bytes:
    body = json.dumps({"text": text}).encode("utf-8")
    return (
        "POST /api/v1/match HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra_headers}\r\n"
    ).encode("ascii") + body


async def one_request(port: int, payload: bytes, timeout: float) -> tuple[int, float]:
    """Send ``payload`` on a new connection; (status, seconds), status 0 on a timeout or failure."""
    start = time.perf_counter()

    async def exchange() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(payload)
            await writer.drain()
            line = await reader.readline()
            await reader.read()  # the rest: the server closes after the answer
            parts = line.split()
            return int(parts[1]) if len(parts) > 1 else 0
        finally:
            writer.close()

    try:
        status = await asyncio.wait_for(exchange(), timeout)
    except (TimeoutError, OSError, ValueError):
        status = 0
    return status, time.perf_counter() - start


# -- slow clients -----------------------------------------------------------------------


@dataclass
class Attack:
    """Connections held open against the server while a normal client is timed."""

    port: int
    idle: int = 0
    slow: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    opened: int = 0

    async def open(self) -> None:
        async def connect(slow: bool) -> None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return
            self.writers.append(writer)
            self.opened += 1
            if slow:
                writer.write(b"POST /api/v1/match HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        await asyncio.gather(
            *(connect(False) for _ in range(self.idle)), *(connect(True) for _ in range(self.slow))
        )

    async def drip(self, seconds: float) -> None:
        """Keep the slow ones sending a header line a second, never finishing."""
        until = time.monotonic() + seconds
        step = 0
        while time.monotonic() < until:
            await asyncio.sleep(1.0)
            step += 1
            for writer in self.writers[self.idle :]:
                if not writer.is_closing():
                    writer.write(f"X-Slow-{step}: a\r\n".encode("ascii"))

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


async def normal_client_under_attack(
    port: int, idle: int, slow: int, *, tries: int = 3, text: str = "a walk by the sea"
) -> tuple[int, list[tuple[int, float]]]:
    """Open the attack, then time ``tries`` normal matches; (connections opened, answers)."""
    attack = Attack(port, idle, slow)
    await attack.open()
    dripping = asyncio.create_task(attack.drip(tries * (ANSWER_WITHIN_S + 1) + 2))
    await asyncio.sleep(1.0)  # let the server accept them all
    answers = []
    for n in range(tries):
        answers.append(await one_request(port, match_request(f"{text} {n}"), ANSWER_WITHIN_S))
    dripping.cancel()
    attack.close()
    return attack.opened, answers


def denied(answers: list[tuple[int, float]]) -> bool:
    return any(status != 200 or seconds > ANSWER_WITHIN_S for status, seconds in answers)


def connections_to_deny(port: int, kind: str, limit: int) -> str:
    """The smallest N (doubling) of ``kind`` connections that denies service, or ``> limit``."""
    n = 1
    while n <= limit:
        idle, slow = (n, 0) if kind == "silent" else (0, n)
        _, answers = asyncio.run(normal_client_under_attack(port, idle, slow))
        if denied(answers):
            return str(n)
        n *= 2
        time.sleep(0.5)
    return f"> {limit}"


# -- overload ---------------------------------------------------------------------------


def texts(count: int, seed: int) -> list[str]:
    sys.path.insert(0, str(HERE))
    from synthetic import shopper_texts

    return list(shopper_texts(count, seed=seed))


def capacity(port: int, workers: int, seconds: float = 6.0) -> float:
    """Answers a second with two clients per worker sending one request after another."""
    pool = iter(texts(5000, seed=11))

    async def client(until: float, done: list[int]) -> None:
        while time.monotonic() < until:
            status, _ = await one_request(port, match_request(next(pool)), 30.0)
            done[0] += status == 200

    async def run() -> float:
        await one_request(port, match_request("warm up the workers"), 30.0)
        done = [0]
        start = time.monotonic()
        await asyncio.gather(*(client(start + seconds, done) for _ in range(2 * workers)))
        return done[0] / (time.monotonic() - start)

    return asyncio.run(run())


@dataclass
class RateResult:
    rate: float
    sent: int
    answered: int
    shed: int
    failed: int
    latencies: list[float]
    healthy_after: bool
    client_cpu: float

    def row(self, label: str) -> str:
        ordered = sorted(self.latencies)

        def pct(q: float) -> str:
            if not ordered:
                return "-"
            return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f}"

        return (
            f"| {label} | {self.rate:.0f} | {self.sent} | {self.answered} | {self.shed} |"
            f" {self.failed} | {pct(0.5)} | {pct(0.99)} |"
            f" {'yes' if self.healthy_after else 'NO'} | {self.client_cpu:.0%} |"
        )


def open_loop(port: int, rate: float, seconds: float, *, seed: int = 23) -> RateResult:
    """Requests at ``rate`` a second for ``seconds``, each on its own connection, 5 s each."""
    count = int(rate * seconds)
    pool = texts(count + 10, seed=seed)

    async def run() -> list[tuple[int, float]]:
        start = time.monotonic()
        tasks = []
        for n in range(count):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            payload = match_request(pool[n])
            tasks.append(asyncio.create_task(one_request(port, payload, REQUEST_TIMEOUT_S)))
        return await asyncio.gather(*tasks)

    cpu = time.process_time()
    began = time.monotonic()
    results = asyncio.run(run())
    client_cpu = (time.process_time() - cpu) / max(1e-9, time.monotonic() - began)
    answered = [seconds for status, seconds in results if status == 200]
    shed = sum(1 for status, _ in results if status == 503)
    return RateResult(
        rate=rate,
        sent=len(results),
        answered=len(answered),
        shed=shed,
        failed=len(results) - len(answered) - shed,
        latencies=answered,
        healthy_after=health(port, timeout=ANSWER_WITHIN_S) == 200,
        client_cpu=client_cpu,
    )


# -- the old stacks, for comparison --------------------------------------------------------


def serve_old(worker: str, port: int, workers: int, model: str, index_dir: str) -> None:
    """The Flask app under gunicorn's ``sync`` (the previous ``matcher serve``) or ``gthread``."""
    from gunicorn.app.base import BaseApplication

    from web.cli import app_config, thread_budget, worker_environment

    os.environ.update(worker_environment(thread_budget(workers)))
    config = app_config(SAMPLE_PROFILES, model, Path(index_dir))

    class Old(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "bind": f"127.0.0.1:{port}",
                "workers": workers,
                "worker_class": worker,
                "threads": 8 if worker == "gthread" else 1,
                "timeout": 120,
                "control_socket_disable": True,
                "accesslog": None,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> object:
            from web import create_app

            return create_app(config)

    Old().run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    old = sub.add_parser("serve-old", help="(used by the benchmark itself)")
    old.add_argument("worker", choices=["sync", "gthread"])
    old.add_argument("--port", type=int, required=True)
    old.add_argument("--workers", type=int, default=2)
    old.add_argument("--model", required=True)
    old.add_argument("--index-dir", required=True)
    parser.add_argument("--stack", action="append", choices=["front", "sync", "gthread"])
    parser.add_argument("--model", default="embeddinggemma-300m", help="the server's encoder")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each overload run")
    parser.add_argument("--max-connections", type=int, default=1024)
    parser.add_argument("--rates", default="1,4,16", help="multiples of the capacity")
    parser.add_argument("--skip-overload", action="store_true")
    parser.add_argument("--skip-slow", action="store_true")
    args = parser.parse_args()
    if args.command == "serve-old":
        serve_old(args.worker, args.port, args.workers, args.model, args.index_dir)
        return
    stacks = args.stack or ["sync", "front"]
    deny_rows, load_rows = [], []
    for stack in stacks:
        with running_server(stack, args.model, args.workers) as (port, _, _):
            if not args.skip_slow:
                silent = connections_to_deny(port, "silent", args.max_connections)
                slow = connections_to_deny(port, "slow", args.max_connections)
                deny_rows.append(f"| {stack} | {silent} | {slow} |")
            if not args.skip_overload:
                cap = capacity(port, args.workers)
                for multiple in (float(m) for m in args.rates.split(",")):
                    result = open_loop(port, cap * multiple, args.seconds)
                    load_rows.append(result.row(f"{stack}, {multiple:g}x of {cap:.1f}/s"))
                    time.sleep(REQUEST_TIMEOUT_S)  # let the queue drain between runs
    print(f"model {args.model}, {args.workers} workers, {os.cpu_count()} cores")
    if deny_rows:
        within = f"{ANSWER_WITHIN_S:g} s"
        print(f"\nconnections that deny service (a normal match not answered in {within})")
        print("| stack | silent | slow headers |\n|---|---|---|")
        print("\n".join(deny_rows))
    if load_rows:
        print(f"\noverload, {args.seconds:g} s per rate, {REQUEST_TIMEOUT_S:g} s per request")
        print(
            "| stack, rate | per s | sent | answered | shed (503) | timed out/failed"
            " | p50 ms | p99 ms | healthy after | client CPU |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(load_rows))


if __name__ == "__main__":
    main()
