"""The processes ``speed.py`` starts: in-process workers, and each side's gunicorn server.

Every measurement runs in a process of its own with a stated thread budget
(``OMP_NUM_THREADS`` and friends), so none inherits another's threads,
caches or memory. A server is started the way it would be in production
(``matcher serve``; ``gunicorn`` for the plain recipes in ``baseline_app.py``),
timed to its first answer, loaded over loopback by ``loadgen.py`` and stopped
by its own process group.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from loadgen import run_load  # noqa: E402
from speed_workers import percentiles  # noqa: E402

#: Texts per HTTP run: more than any side answers in one, so none repeats.
HTTP_TEXTS = 20_000
#: Longest wait for a server's first answer (plain EmbeddingGemma embeds the
#: roster on one thread per worker at start).
STARTUP_LIMIT_S = 300.0


def bench_env(threads: int | None = None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(key, None)
        if threads is not None:
            env[key] = str(threads)
    return env


def run_worker(name: str, settings: dict[str, Any], threads: int) -> dict[str, Any]:
    """One ``speed_workers.py`` measurement in a fresh process with ``threads`` threads."""
    command = [sys.executable, str(HERE / "speed_workers.py"), name, json.dumps(settings)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=bench_env(threads), timeout=3600
    )
    if done.returncode != 0:
        raise SystemExit(f"worker {name} {settings.get('side', '')} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(port: int, text: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/match",
        data=json.dumps({"text": text, "top_k": 3}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def proc_status(pid: int, key: str) -> float:
    """A ``/proc/PID/status`` figure in MB (``VmHWM``: peak resident memory)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_workers(server: int, workers: int, limit: float) -> None:
    """Until every gunicorn worker exists and has gone quiet (its model loaded).

    The first answer comes from the first worker ready; measuring before the
    others are would time one worker, not the server.
    """
    until = time.perf_counter() + limit
    before: dict[int, float] = {}
    while time.perf_counter() < until:
        pids = children(server)
        now = {pid: cpu_seconds(pid) for pid in pids}
        quiet = all(now[pid] - before.get(pid, 0.0) < 0.1 for pid in pids)
        if len(pids) >= workers and quiet and set(before) == set(now):
            return
        before = now
        time.sleep(1.0)


def serve_command(side: str, args: argparse.Namespace, port: int) -> list[str]:
    if side == "matcher":
        return [
            sys.executable, "-c", "from matcher.cli import main; main()", "serve",
            "--profiles", args.profiles, "--index-dir", args.index_dir,
            "--port", str(port), "--workers", str(args.workers), "--model", args.model,
        ]  # fmt: skip
    # A longer timeout than the matcher's 120 s: gunicorn counts the model's
    # load against it, and plain EmbeddingGemma embeds the roster at start.
    return [
        sys.executable, "-m", "gunicorn", "--workers", str(args.workers),
        "--bind", f"127.0.0.1:{port}", "--chdir", str(HERE), "--timeout", "300",
        "--access-logfile", "-", "baseline_app:create_app()",
    ]  # fmt: skip


def measure_http(side: str, args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    """Start a server, time it to the first answer, load it, read its workers' peak memory."""
    port = free_port()
    env = bench_env(args.threads)
    env["BASELINE_PROFILES"] = args.profiles
    env["BASELINE_MODEL"] = {"plain-gemma": "embeddinggemma-300m"}.get(side, "all-MiniLM-L6-v2")
    env["MATCHER_INSTANCE_DIR"] = str(Path(args.work) / f"instance-{side}")
    log = Path(args.work) / f"server-{side}.log"
    start = time.perf_counter()
    with open(log, "wb") as errors:
        server = subprocess.Popen(
            serve_command(side, args, port),
            env=env,
            stdout=subprocess.DEVNULL,  # the access log
            stderr=errors,
            start_new_session=True,
        )
    try:
        startup = None
        while time.perf_counter() - start < STARTUP_LIMIT_S and server.poll() is None:
            try:
                if post(port, "a quiet weekend with tea and a book") == 200:
                    startup = time.perf_counter() - start
                    break
            except OSError:
                time.sleep(0.1)
        if startup is None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise SystemExit(
                f"{side}: no answer within {STARTUP_LIMIT_S:g} s (exit {server.poll()}):\n{tail}"
            )
        wait_for_workers(server.pid, args.workers, limit=max(10.0, 2 * startup))
        loads = {}
        for number, clients in enumerate(args.clients):
            result = run_load(
                "127.0.0.1", port, "/api/v1/match",
                texts[number * HTTP_TEXTS : (number + 1) * HTTP_TEXTS],
                clients=clients, seconds=args.http_seconds, warmup=args.warmup,
            )  # fmt: skip
            loads[str(clients)] = {
                **percentiles(result.latencies),
                "rps": result.rps,
                "errors": result.errors,
                "answered": result.answered,
                "client_cpu_cores": result.client_cpu,
            }
        rss = [proc_status(pid, "VmHWM") for pid in children(server.pid)]
    finally:
        stop(server)
    out = {"startup_s": startup, "load": loads, "worker_peak_rss_mb": rss}
    if side == "matcher":
        # The first answer, then every answer of the runs, warm-up included.
        out["answers"] = 1 + sum(v["answered"] for v in loads.values())
        out["pairings_stored"] = stored_pairings(Path(env["MATCHER_INSTANCE_DIR"]))
    return out


def stop(server: subprocess.Popen[bytes]) -> None:
    """End the server's own process group: gunicorn and the workers it forked."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:  # it had already exited, workers and all
        pass
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def stored_pairings(instance: Path) -> int:
    """Pairings in the server's SQLite database (``matcher.db`` in its instance folder).

    The API stores an answer only when the matcher is confident of it, so
    this says how many of the timed answers paid for a write.
    """
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(f"file:{instance / 'matcher.db'}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM pairings").fetchone()[0])
