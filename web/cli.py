"""``matcher serve``: registered with the core CLI through the ``matcher.commands`` entry point.

Production serving runs gunicorn with the model loaded in each worker after
the fork (torch in a process forked after loading can hang), and thread pools
sized so that workers do not fight over the cores: each worker's ONNX Runtime,
torch, BLAS and FAISS get ``cores // workers`` threads: workers x threads
above the cores made every request wait for a core (docs/performance.md).

Each worker reads its connections in an event loop and admits requests to
the app through a bounded queue, shedding the rest with a fast 503
(``web/serving.py``, ``web/serving_worker.py``, ``web/admission.py``): a
slow or silent client costs no thread, and a crowd cannot make every answer
late (docs/performance.md, "Serving: slow clients and overload").
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any

import click

from matcher.cli import roster_options


def thread_budget(workers: int, cores: int | None = None) -> int:
    """Threads each worker's math libraries may use so that workers x threads <= cores."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def worker_environment(threads: int) -> dict[str, str]:
    """Set before torch or numpy load in the worker: they read these once, at import."""
    return {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }


def app_config(profiles_dir: Path, model: str, index_dir: Path | None) -> dict[str, Any]:
    return {
        "MATCHER_PROFILES": str(profiles_dir),
        "MATCHER_MODEL": model,
        "MATCHER_INDEX_DIR": str(index_dir) if index_dir else None,
    }


@click.command("serve")
@roster_options
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; 127.0.0.1 keeps it private to this machine.",
)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes, each with its own copy of the models. Default: the number of cores.",
)
@click.option(
    "--queue",
    type=click.IntRange(0, 1000),
    default=8,
    show_default=True,
    help="Requests each worker lets wait for it; past that a request is answered 503 at once.",
)
@click.option(
    "--queue-wait",
    type=click.FloatRange(0.1, 60),
    default=2.0,
    show_default=True,
    help="Seconds a request may wait for its worker before it is answered 503 instead.",
)
@click.option(
    "--head-timeout",
    type=click.FloatRange(0.5, 300),
    default=10.0,
    show_default=True,
    help="Seconds a new connection has to send its request line and headers.",
)
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader.")
def serve(
    profiles_dir: Path,
    model: str,
    index_dir: Path | None,
    host: str,
    port: int,
    workers: int | None,
    queue: int,
    queue_wait: float,
    head_timeout: float,
    dev: bool,
) -> None:
    """Serve the shopper form, the embeddable widget, the JSON API and the planner area.

    Each worker reads requests in an event loop (a silent or slow client
    costs it no thread), runs one request at a time and lets --queue more
    wait, each at most --queue-wait seconds; any other request is answered
    503 with Retry-After at once. /healthz is always answered.

    \b
    Examples:
      matcher serve
      matcher serve --profiles campaigns/lueur --port 8000 --workers 2
      MATCHER_PLANNER_PASSWORD=... MATCHER_EMBED_ORIGINS=https://shop.example matcher serve
    """
    from matcher.encoders import check_model, prepare_model
    from matcher.profiles import load_profiles
    from matcher.progress import Bars

    from .settings import defaults, parse_origins

    # Fail here, in one line, before any worker starts.
    check_port(host, port)
    load_profiles(profiles_dir)
    check_model(model)
    # What the model's runtime loads (EmbeddingGemma's int8 graph) is checked,
    # or built, here, so no worker builds it or runs a corrupt one.
    bars = Bars(quiet=False)
    try:
        prepare_model(model, progress=bars)
    finally:
        bars.close()
    parse_origins(defaults()["MATCHER_EMBED_ORIGINS"])
    config = app_config(profiles_dir, model, index_dir)
    if dev:
        from . import create_app

        click.echo(f"Development server on http://{host}:{port}/ (Ctrl+C to stop)", err=True)
        create_app(config).run(host=host, port=port, debug=True, load_dotenv=False)
        return

    from .admission import AdmissionLimits

    workers = workers or os.cpu_count() or 1
    threads = thread_budget(workers)
    os.environ.update(worker_environment(threads))
    click.echo(
        f"Serving on http://{host}:{port}/ with {workers} worker(s) x {threads} thread(s), "
        f"{queue} waiting at most {queue_wait:g} s each (Ctrl+C to stop)",
        err=True,
    )
    admission = AdmissionLimits(running=1, queued=queue, wait=queue_wait)
    options = {"bind": f"{host}:{port}", "workers": workers}
    GunicornServer(config, admission, head_timeout, options).run()


def check_port(host: str, port: int) -> None:
    """Say at once, in one line, that the port is taken, instead of gunicorn retrying and exiting.

    The probe socket is closed before the server binds; ``SO_REUSEADDR`` matches
    what gunicorn sets, so a port left in TIME_WAIT by a stopped server is free.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is already in use: stop what is serving there, "
                    f"or pick another port with --port"
                ) from None
            if exc.errno == errno.EACCES:
                raise click.ClickException(
                    f"port {port} on {host} needs privileges: pick a port above 1023 with --port"
                ) from None
            raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from None


def GunicornServer(  # noqa: N802
    config: dict[str, Any],
    admission: Any,
    head_timeout: float,
    options: dict[str, Any],
) -> Any:
    """A gunicorn application that builds the Flask app, and the front around it, in each worker.

    gunicorn is imported here, lazily, so that ``matcher --help`` stays fast.
    """
    from gunicorn.app.base import BaseApplication

    from .serving_worker import HeadDeadlineProtocol

    # Set before the fork, so every worker inherits it.
    HeadDeadlineProtocol.head_timeout = head_timeout

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                **options,
                # An event loop per worker reads connections; the app runs in
                # its threads (web/serving.py, docs/performance.md "Serving").
                "worker_class": "web.serving_worker.ServingWorker",
                "logger_class": "web.serving_worker.SafeLogger",
                "asgi_lifespan": "off",
                "preload_app": False,  # load torch after the fork, never before
                # The worker's heartbeat. Loading the model (and, at a first
                # start, embedding the roster) counts against it, on a busy
                # machine for over a minute; once serving, the event loop
                # never waits on the app, so a long limit costs nothing.
                "timeout": 300,
                "graceful_timeout": 10,
                "keepalive": 5,
                # Open connections per worker; past this a new one is closed at once.
                "worker_connections": 4000,
                # Several servers may run side by side; none needs gunicornc.
                "control_socket_disable": True,
                "accesslog": "-",
                # Paths and status only: never query strings or bodies (shopper text).
                "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # The budget reaches every pool through OMP_NUM_THREADS, set before
            # the fork: torch and OpenBLAS read it at import, and the encoders
            # size ONNX Runtime and their own threads by it. Nothing here
            # imports torch, which the default int8 encoder never needs.
            from . import create_app
            from .serving import Front, FrontLimits

            app = create_app(config)
            max_body = int(app.config["MAX_CONTENT_LENGTH"])
            limits = FrontLimits(max_body=max_body, admission=admission)
            return Front(app, limits)

    return Server()
