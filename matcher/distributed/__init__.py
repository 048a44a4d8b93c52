"""``matcher batch`` on a Ray cluster: the local batch, its matching spread over workers.

- ``sources.py``: shopper files (CSV, JSON Lines, Parquet) as Ray Data
  datasets, read by the core's own readers.
- ``worker.py``: the actor each worker runs, one encoder each, the index
  shipped once.
- ``run.py``: joining or starting the cluster, and the batch itself, written
  in input order with the core's writers.
- ``parquet_output.py``: pairings as Parquet.
- ``command.py``: the command line's side of it.

Ray is imported only when a batch runs on it: ``matcher --help`` and the
local batch never load it. See docs/scale.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Cluster", "RayBatchSummary", "connect", "disconnect", "run_batch_on_ray"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the command line imports the options module from
    # here on every start, and should not pay for the batch modules then.
    if name in __all__:
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
