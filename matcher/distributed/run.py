"""A batch on a Ray cluster: read once, matched by a pool of workers, written in input order.

The same batch as :func:`matcher.batch.run_batch`, with the matching spread
over Ray workers:

1. The driver (this process) checks the input, loads the roster's index and
   puts it into Ray's object store once (``ray.put``).
2. Ray Data reads the file with the core's reader (``sources.py``), in blocks.
3. A pool of :class:`~matcher.distributed.worker.MatchWorker` actors, each with
   its own encoder loaded once, matches the blocks with the core's
   ``match_rows``.
4. The driver takes the rows back in input order (Ray Data's
   ``preserve_order``) and writes them with the core's writers; under quotas or
   shares it solves the assignment once, over every row's fit with every
   celebrity, with the core's ``place_rows``.

So the output is the local one, row for row: the same readers, the same
matcher settings, the same index vectors, the same writers. Writing is cheap
beside encoding (tens of thousands of rows a second), so one driver keeps up
with many machines.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batch import BatchSummary, best_placed
from ..batch_assign import AssignmentReport, place_rows
from ..batch_output import CsvPairingWriter, JsonlPairingWriter, PairingWriter
from ..batch_rows import BadRow, Paired
from ..capacity import limits_of
from ..errors import BatchInputError, ConfigError, MatcherError
from ..limits import DEFAULT_BATCH_SIZE
from ..matching import DEFAULT_TOP_K, Matcher
from .parquet_output import ParquetPairingWriter
from .sources import check_source, is_parquet, shopper_dataset
from .worker import MatcherPayload, MatchWorker

#: Rows handed to a worker per call: small enough to share a few hundred
#: rows between several workers, large enough that a call's overhead is nothing.
WORKER_BATCH_ROWS = 256
#: Blocks per worker at least, when the input is small enough to allow it...
BLOCKS_PER_WORKER = 4
#: ...but never blocks smaller than this (the total is counted in lines, which
#: says little of an Excel file's rows).
MIN_BLOCK_ROWS = 16
#: How long to wait for a cluster's address to answer before saying it cannot be reached.
CONNECT_TIMEOUT = 5.0


@dataclass
class RayBatchSummary(BatchSummary):
    """A batch's counts, and what the cluster did."""

    #: Workers in the pool.
    workers: int = 0
    #: Seconds to start or join the cluster (``ray.init``).
    connect_seconds: float = 0.0
    #: Peak resident memory (bytes) of each worker process that matched rows, by pid.
    worker_peak_rss: dict[int, int] = field(default_factory=dict)
    #: When the first block's matching began and the last one's ended (wall clock, seconds).
    matching_began: float | None = None
    matching_ended: float | None = None

    @property
    def matching_seconds(self) -> float:
        """From the first block's start to the last one's end: the batch without start-up."""
        if self.matching_began is None or self.matching_ended is None:
            return 0.0
        return self.matching_ended - self.matching_began


@dataclass(frozen=True)
class Cluster:
    """Where the batch runs, and whether this process started it (and must stop it)."""

    address: str
    started: bool
    cpus: int


def connect(address: str | None = None, *, cpus: int | None = None) -> Cluster:
    """Join the Ray cluster at ``address`` (or ``RAY_ADDRESS``), or start a local one.

    Args:
        address: ``HOST:PORT`` of a running cluster's head (``ray start --head``
            prints it), ``ray://HOST:PORT`` for Ray Client, or ``auto`` for the
            cluster started on this machine. ``None``: ``RAY_ADDRESS``, else a
            new local cluster.
        cpus: CPUs of a new local cluster (default: every core).

    Raises:
        ConfigError: the cluster cannot be reached, saying where and why.
    """
    import ray

    if ray.is_initialized():  # the caller connected already
        return Cluster("(already connected)", False, _cpus())
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    # Ray's C++ side prints on stderr past the progress bar; its failures still
    # surface as Python exceptions, which become one line here.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if address is None:
        # A new local cluster admits only holders of its token (written to
        # ~/.ray/auth_token), as Ray does by default: no need to warn of it.
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
        ray.init(
            address="local",
            num_cpus=cpus or os.cpu_count() or 1,
            include_dashboard=False,
            **quiet,  # type: ignore[arg-type]
        )
        return Cluster("local", True, _cpus())
    _check_reachable(address)
    try:
        ray.init(address=address, **quiet)  # type: ignore[arg-type]
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address}: {_first_line(exc)}") from exc
    return Cluster(address, True, _cpus())


def _cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]


def check_address(address: str | None = None) -> None:
    """Check the cluster named by ``address`` (or ``RAY_ADDRESS``) answers, before slow work.

    Raises:
        ConfigError: the address is malformed or nothing answers there.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        _check_reachable(address)


def _check_reachable(address: str) -> None:
    """Fail in seconds with a clear line when nothing listens at ``address``.

    Ray itself retries an unreachable address for about a minute and then
    raises a long error; a plain TCP connection says the same at once.
    """
    target = address.removeprefix("ray://")
    if target in ("auto", "local"):
        return
    host, sep, port = target.rpartition(":")
    valid_port = port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535
    if not sep or not valid_port or not host:
        raise ConfigError(
            f"the Ray address {address!r} is not HOST:PORT (for example 10.0.0.5:6379), "
            "ray://HOST:PORT or auto"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(
            f"cannot reach the Ray cluster at {address}: {why}. Start one with "
            "'ray start --head' (it prints the address), or leave out --ray-address "
            "and RAY_ADDRESS to start a local cluster"
        ) from exc


def disconnect(cluster: Cluster) -> None:
    """Leave the cluster (and stop it, when it was started here)."""
    import ray

    if cluster.started and ray.is_initialized():
        ray.shutdown()


def output_kind(path: str | Path) -> str:
    """``"csv"``, ``"jsonl"`` or ``"parquet"`` for an output name, or :class:`BatchInputError`."""
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if is_parquet(path):
        return "parquet"
    raise BatchInputError(
        f"{Path(path).name}: unknown output type {suffix or '(none)'!r}; "
        "use .csv, .jsonl or .parquet"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _quiet_ray_data() -> None:
    """Input order kept, and Ray Data's own progress bars and banners off (the CLI has one)."""
    from ray.data import DataContext

    with warnings.catch_warnings():
        # Ray Data 2.60's own defaults set settings it deprecates, warning the
        # first time the context is made; nothing here sets them.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\.")
        context = DataContext.get_current()
    context.execution_options.preserve_order = True
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context.enable_progress_bars = False
    if hasattr(context, "print_on_execution_start"):
        context.print_on_execution_start = False


def _matcher_error(exc: BaseException) -> MatcherError | None:
    """The core's error inside a worker's failure, if that is what it was."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MatcherError):
            return current
        cause = getattr(current, "cause", None)
        if isinstance(cause, BaseException) and id(cause) not in seen:
            current = cause
            continue
        current = current.__cause__ or current.__context__
    return None


def run_batch_on_ray(
    matcher: Matcher,
    model: str,
    input_path: str | Path,
    output_path: str | Path,
    *,
    k: int = DEFAULT_TOP_K,
    id_column: str = "id",
    text_column: str = "text",
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    threads: int = 1,
    cache_dir: str | Path | None = None,
    address: str | None = None,
    on_row: Callable[[int], None] | None = None,
    on_bad_row: Callable[[BadRow], None] | None = None,
    on_ready: Callable[[], None] | None = None,
    rows_per_call: int | None = None,
) -> RayBatchSummary:
    """:func:`matcher.batch.run_batch` with the matching spread over Ray workers.

    Args:
        matcher: the driver's matcher: its index and settings go to every worker.
        model: the encoder each worker loads (``matcher``'s model).
        workers: actors in the pool (default: the cluster's CPUs / ``threads``).
        threads: CPUs, and encoder threads, per worker.
        cache_dir: where workers keep int8 exports of the model (the index's ``models/``).
        address: the cluster to join (see :func:`connect`); without one, and
            without ``RAY_ADDRESS``, a local cluster is started, and stopped at the end.
        on_row, on_bad_row: as for ``run_batch``.
        on_ready: called once Ray is up, before the first row is read.
        rows_per_call: rows handed to a worker at a time (default
            :data:`WORKER_BATCH_ROWS`, fewer when the input is small, so that
            every worker gets a share).

    Raises:
        BatchInputError: the input cannot be read, or the output type is unknown.
        ConfigError: the cluster cannot be reached, or a worker cannot load the model.
    """
    from ..files import open_private, sweep_temporaries, temporary_path

    input_path = Path(input_path)
    output_path = Path(output_path)
    out_format = output_kind(output_path)
    parquet_out = out_format == "parquet"
    k = matcher.check_k(k)
    threads = max(1, threads)
    total = check_source(input_path, id_column=id_column, text_column=text_column)
    limits = limits_of(matcher.index.profiles)
    celebrities = [profile.id for profile in matcher.index.profiles]
    summary = RayBatchSummary()
    began = time.perf_counter()
    cluster = connect(address, cpus=(workers * threads) if workers else None)
    summary.connect_seconds = time.perf_counter() - began
    try:
        summary.workers = workers or max(1, cluster.cpus // threads)
        if rows_per_call is None:
            # A small input still makes a few blocks per worker, so a worker
            # that loaded its model late still gets its share.
            share = -(-total // (summary.workers * BLOCKS_PER_WORKER))
            rows_per_call = max(MIN_BLOCK_ROWS, min(WORKER_BATCH_ROWS, share))
        _quiet_ray_data()
        if on_ready is not None:
            on_ready()
        items = _matched(
            matcher,
            model,
            input_path,
            k=len(celebrities) if limits else k,
            id_column=id_column,
            text_column=text_column,
            batch_size=batch_size,
            workers=summary.workers,
            threads=threads,
            cache_dir=cache_dir,
            rows_per_call=rows_per_call,
            summary=summary,
        )

        def counted(stream: Iterable[Paired | BadRow]) -> Iterator[Paired | BadRow]:
            for item in stream:
                if isinstance(item, BadRow):
                    summary.add_bad(item)
                    if on_bad_row is not None:
                        on_bad_row(item)
                else:
                    summary.matched += 1
                    summary.unsure += not item.assessment.confident
                if on_row is not None:
                    on_row(item.line if isinstance(item, BadRow) else item.row.line)
                yield item

        sweep_temporaries(output_path.parent)
        tmp = temporary_path(output_path, ".part")
        try:
            mode = "wb" if parquet_out else "w"
            text: dict[str, Any] = {} if parquet_out else {"encoding": "utf-8", "newline": ""}
            with open_private(tmp, mode, **text) as handle:
                writer: PairingWriter
                if parquet_out:
                    writer = ParquetPairingWriter(handle, k)
                elif out_format == "csv":
                    writer = CsvPairingWriter(handle, k)
                else:
                    writer = JsonlPairingWriter(handle)
                if limits:
                    # Every row's fit with every celebrity came back from the
                    # workers; the assignment is solved here, once.
                    summary.assignment = AssignmentReport()
                    placed: Iterable[Any] = place_rows(
                        counted(items),
                        celebrities,
                        limits,
                        temporary_path(output_path, ".tmp"),
                        k=k,
                        report=summary.assignment,
                    )
                else:
                    placed = (
                        item if isinstance(item, BadRow) else best_placed(item)
                        for item in counted(items)
                    )
                for item in placed:
                    if not isinstance(item, BadRow):
                        writer.write(item)
                writer.close()
            os.replace(tmp, output_path)
        finally:
            if tmp.exists():
                tmp.unlink()
    finally:
        disconnect(cluster)
    return summary


def _matched(
    matcher: Matcher,
    model: str,
    input_path: Path,
    *,
    k: int,
    id_column: str,
    text_column: str,
    batch_size: int,
    workers: int,
    threads: int,
    cache_dir: str | Path | None,
    rows_per_call: int,
    summary: RayBatchSummary,
) -> Iterator[Paired | BadRow]:
    """The rows of ``input_path`` matched on the cluster, in input order."""
    import ray
    import ray.data

    payload = ray.put(MatcherPayload.of(matcher))
    dataset = shopper_dataset(
        input_path,
        id_column=id_column,
        text_column=text_column,
        max_chars=matcher.max_chars,
        block_rows=rows_per_call,
    ).map_batches(
        MatchWorker,
        fn_constructor_kwargs={
            "payload": [payload],
            "model": model,
            "cache_dir": str(cache_dir) if cache_dir is not None else None,
            "threads": threads,
            "k": k,
            "batch_size": batch_size,
        },
        batch_size=rows_per_call,
        batch_format="pyarrow",
        # A block goes to a worker only when it is free: a block takes seconds,
        # and a queue at the first worker up would leave the others idle.
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        num_cpus=threads,
    )
    try:
        for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            columns = block.to_pydict()
            for pid, peak in zip(columns["worker"], columns["peak_rss"], strict=True):
                summary.worker_peak_rss[pid] = max(peak, summary.worker_peak_rss.get(pid, 0))
            if columns["started"]:
                began, ended = min(columns["started"]), max(columns["finished"])
                if summary.matching_began is None or began < summary.matching_began:
                    summary.matching_began = began
                if summary.matching_ended is None or ended > summary.matching_ended:
                    summary.matching_ended = ended
            for raw in columns["item"]:
                yield pickle.loads(raw)  # noqa: S301 - our own workers' rows, this run
    except MatcherError:
        raise
    except Exception as exc:
        inner = _matcher_error(exc)
        if inner is not None:
            raise inner from exc
        if isinstance(exc, ray.exceptions.RayError):
            raise ConfigError(f"the batch failed on the Ray cluster: {_first_line(exc)}") from exc
        raise
