"""Real server and CLI processes on the fake encoder, for the fault-injection tests.

``python -m tests.faults_launcher ARGS...`` is ``matcher ARGS...`` (``matcher
serve`` with its gunicorn workers included) with
:class:`~tests.fakes.HashingEncoder` in place of the model, so a process starts in a second or two and can be killed and
restarted many times. ``FAULT_ENCODE_DELAY`` (seconds per encoder call) slows
encoding down, so that a kill can land in the middle of a batch or an index build.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .fakes import HashingEncoder


class SlowHashingEncoder(HashingEncoder):
    def __init__(self, delay: float) -> None:
        super().__init__(record=False)
        self.delay = delay

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        return super().encode(texts)


def _fake_encoder(*_args: Any, **_kwargs: Any) -> SlowHashingEncoder:
    return SlowHashingEncoder(float(os.environ.get("FAULT_ENCODE_DELAY", "0")))


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


def _patch() -> None:
    import matcher.encoders
    import matcher.matching

    matcher.encoders.load_encoder = _fake_encoder  # type: ignore[assignment]
    matcher.matching.load_encoder = _fake_encoder  # type: ignore[assignment]
    # serve checks the model and prepares its files before workers start: nothing to do.
    matcher.encoders.check_model = _nothing  # type: ignore[assignment]
    matcher.encoders.prepare_model = _nothing  # type: ignore[assignment]


def main(argv: list[str]) -> None:
    """``matcher ARGS...``, ``matcher serve`` included, on the fake encoder."""
    _patch()
    from matcher.cli import cli

    cli.main(argv, prog_name="matcher")


if __name__ == "__main__":
    main(sys.argv[1:])
