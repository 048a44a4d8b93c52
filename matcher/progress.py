"""Progress bars for long work on the command line: one bar per step, on stderr.

Fetching a model, building its graph and building an index take from
seconds to minutes; tqdm shows each step's rate and time left, and nothing
when asked to be quiet.
"""

from __future__ import annotations

import sys
from typing import Any


class Bars:
    """One tqdm bar per step of a long job, on stderr: rate and time left as it goes."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._bar: Any = None
        self._step = ""

    def __call__(self, step: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if self._bar is None or step != self._step:
            self.close()
            self._step = step
            self._bar = tqdm(total=total, desc=step, disable=self.quiet, file=sys.stderr)
        self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
