"""Run a function in several fresh processes at once, started together, and collect how each ended."""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections.abc import Callable, Sequence
from typing import Any


def _run(
    target: Callable[..., None], args: tuple[Any, ...], n: int, start: Any, results: Any
) -> None:  # pragma: no cover - child
    try:
        start.wait(60)
        target(*args)
        results.put((n, "ok"))
    except BaseException:
        results.put((n, traceback.format_exc()))


def run_together(
    target: Callable[..., None], args: Sequence[tuple[Any, ...]], timeout: float = 180
) -> dict[int, str]:
    """``target(*args[n])`` in process ``n``, all released at once; ``"ok"`` or a traceback each.

    ``target`` must be importable (the processes are spawned, as web workers are).
    """
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(args))
    results = context.Queue()
    processes = [
        context.Process(target=_run, args=(target, one, n, start, results))
        for n, one in enumerate(args)
    ]
    for process in processes:
        process.start()
    outcomes: dict[int, str] = {}
    try:
        for _ in processes:
            n, outcome = results.get(timeout=timeout)
            outcomes[n] = outcome
    except queue.Empty:
        pass
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
    return outcomes
