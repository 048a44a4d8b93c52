"""``matcher serve``: real gunicorn workers, models loaded after the fork, thread budgets.

Slow clients and overload against the same stack: tests/test_slow_clients.py
and tests/test_overload.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from matcher.cli import cli
from matcher.encoders import check_model, load_encoder
from matcher.errors import ConfigError
from web.cli import thread_budget, worker_environment

from .conftest import SAMPLE_PROFILES


@pytest.mark.parametrize(
    ("workers", "cores", "threads"),
    [(1, 2, 2), (2, 2, 1), (4, 2, 1), (2, 8, 4), (3, 8, 2)],
)
def test_workers_times_threads_never_exceed_cores(workers: int, cores: int, threads: int) -> None:
    assert thread_budget(workers, cores) == threads
    assert workers * threads <= max(cores, workers)


def test_worker_environment_pins_every_math_library() -> None:
    env = worker_environment(1)
    assert {env[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")} == {"1"}
    assert env["HF_HUB_OFFLINE"] == "1"


def test_serve_refuses_a_broken_roster_in_one_line(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("id: [\n", encoding="utf-8")
    result = runner.invoke(cli, ["serve", "--profiles", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.yaml:2: (file): not valid YAML" in result.output
    assert "Traceback" not in result.output


def test_serve_on_a_busy_port_says_to_pick_another(runner: CliRunner) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(cli, ["serve", "--host", "127.0.0.1", "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "pick another port with --port" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_serve_refuses_a_model_that_is_not_installed_in_one_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATCHER_MODEL_CACHE", str(tmp_path))
    result = runner.invoke(cli, ["serve", "--model", "embeddinggemma-300m+use"])
    assert result.exit_code == 1
    assert "run `matcher models fetch embeddinggemma-300m` once" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["serve", "--model", "use:fast"])
    assert result.exit_code == 1
    assert "unknown runtime 'fast'" in result.output


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("gemma:numpy", "has no runtime 'numpy'; use int8 or full or bf16"),
        ("all-MiniLM-L6-v2:bf16", "the bf16 runtime is for embeddinggemma-300m only"),
        ("e5:int8", "has one runtime"),
        ("use*abc+e5", "weight 'abc' is not a number"),
        ("use*0", "needs a positive weight"),
        ("use+", "empty part"),
        ("no-such-model", "not a local model folder, and not in the local Hugging Face cache"),
        ("./no/such/folder:int8", "not in the local Hugging Face cache"),
    ],
)
def test_check_model_refuses_what_load_encoder_would(model: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_model(model)
    with pytest.raises(ConfigError, match=message):
        load_encoder(model)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_with_gunicorn_workers(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MATCHER_INSTANCE_DIR": str(tmp_path / "instance")}
    command = [
        sys.executable, "-c", "from matcher.cli import main; main()", "serve",
        "--profiles", str(SAMPLE_PROFILES), "--index-dir", str(tmp_path / "index"),
        "--port", str(port), "--workers", "2", "--queue", "5", "--queue-wait", "1.5",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        health = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    health = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert health == {"status": "ok", "celebrities": 7}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/match",
            data=json.dumps({"text": "weekend treks between mountain huts"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        assert body["matches"][0]["celebrity_id"] == "zhao-feng"
        # Through the front, a retry with the same key gets the first pairing back.
        answers = []
        for _ in range(2):
            keyed = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/match",
                data=json.dumps({"text": "a quiet tea house and a novel"}).encode(),
                headers={"Content-Type": "application/json", "Idempotency-Key": "serve-1"},
            )
            with urllib.request.urlopen(keyed, timeout=60) as response:
                answers.append(
                    (response.headers.get("Idempotent-Replayed"), json.loads(response.read()))
                )
        assert [replayed for replayed, _ in answers] == [None, "true"]
        assert answers[0][1]["shopper_ref"] == answers[1][1]["shopper_ref"]
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    assert f"2 worker(s) x {thread_budget(2)} thread(s), 5 waiting at most 1.5 s each" in output
    # Each worker loads the app (and its model) itself, after the fork.
    assert "Using worker: web.serving_worker.ServingWorker" in output
    assert output.count("ASGI server listening") == 2
    assert "weekend treks" not in output  # the access log never holds shopper text
