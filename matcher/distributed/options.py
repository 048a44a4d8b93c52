"""The options ``matcher batch`` gains for Ray, and the switch to the Ray batch.

Kept apart from ``command.py`` so that the command line's start-up imports
only click from here; Ray and the batch modules load when a batch runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def ray_options(func: F) -> F:
    """Add ``--ray``, ``--ray-address``, ``--workers`` and ``--worker-threads`` to a batch command.

    With any of the first three, the command runs on Ray
    (:func:`matcher.distributed.command.ray_batch`) instead of in this process.
    """

    @functools.wraps(func)
    def command(
        *args: Any,
        use_ray: bool,
        ray_address: str | None,
        workers: int | None,
        worker_threads: int,
        **options: Any,
    ) -> Any:
        if not (use_ray or ray_address or workers is not None):
            return func(*args, **options)
        from .command import ray_batch

        return ray_batch(address=ray_address, workers=workers, threads=worker_threads, **options)

    decorated: Any = command
    for option in reversed(
        [
            click.option(
                "--ray",
                "use_ray",
                is_flag=True,
                help="Run on Ray: join the cluster at RAY_ADDRESS when it is set, else start "
                "a local one. Reads and writes .parquet too. See docs/scale.md.",
            ),
            click.option(
                "--ray-address",
                metavar="HOST:PORT",
                help="Run on the Ray cluster whose head is at HOST:PORT ('ray start --head' "
                "prints it; ray://HOST:PORT for Ray Client). Implies --ray.",
            ),
            click.option(
                "--workers",
                type=click.IntRange(min=1),
                help="Ray workers, each loading the model once (default: the cluster's CPUs "
                "/ --worker-threads). Implies --ray; a local cluster gets as many CPUs.",
            ),
            click.option(
                "--worker-threads",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="CPUs, and encoder threads, per Ray worker.",
            ),
        ]
    ):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]
