"""Bounded admission: a worker runs a few requests, queues a few more, and sheds the rest fast.

A worker's requests are CPU-bound (encoding a text takes the worker's whole
thread budget), so running more of them at once only makes each slower, and
an unbounded queue makes every answer late once the arrival rate passes what
the cores can do: at four times that rate, answers wait ever longer until
clients give up, and their pairings are still stored. Here a worker runs at
most ``running`` requests, lets at most ``queued`` more wait, for at most
``wait`` seconds each, first come first served; any other request is answered
at once with 503 and ``Retry-After``, without touching the app. A request
whose client hung up while it waited is dropped before it starts, so no work
is done (and no pairing stored) for nobody.

This module is plain asyncio, with no Flask and no gunicorn, so its rules are
tested on their own (tests/test_overload.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class AdmissionLimits:
    """How much one worker takes on.

    Attributes:
        running: requests in the app at once (one per worker: each uses the
            worker's whole thread budget).
        queued: requests allowed to wait for a slot; the next one is shed.
        wait: seconds a request may wait for a slot before it is shed, so an
            admitted request is answered within ``wait`` plus its own work.
        retry_after: seconds a shed client is told to wait (``Retry-After``).
    """

    running: int = 1
    queued: int = 8
    wait: float = 2.0
    retry_after: int = 2

    def __post_init__(self) -> None:
        if self.running < 1 or self.queued < 0 or self.wait <= 0 or self.retry_after < 1:
            raise ValueError(f"admission limits out of range: {self}")


class Admission:
    """A first-come-first-served gate with a bounded, time-limited queue (one per worker).

    ``await enter()`` returns True with a slot held (give it back with
    :meth:`leave`) or False when the request is to be shed. Only the event
    loop's thread calls it, so plain counters need no lock.
    """

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        #: Requests shed since start, for the log and the benchmark.
        self.shed = 0

    @property
    def waiting(self) -> int:
        return sum(1 for future in self._waiting if not future.done())

    async def enter(self) -> bool:
        """Take a slot, waiting up to ``limits.wait`` seconds; False if the request is shed."""
        if self.running < self.limits.running and not self.waiting:
            self.running += 1
            return True
        if self.waiting >= self.limits.queued:
            self.shed += 1
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await asyncio.wait_for(turn, self.limits.wait)
        except TimeoutError:
            self._forget(turn)
            self.shed += 1
            return False
        except asyncio.CancelledError:
            # Handed a slot at the moment the caller was cancelled: give it on.
            if turn.done() and not turn.cancelled():
                self.leave()
            self._forget(turn)
            raise
        return True

    def leave(self) -> None:
        """Give the slot back: straight to the longest waiter, else free it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on; ``running`` is unchanged
                return
        self.running -= 1

    def _forget(self, turn: asyncio.Future[None]) -> None:
        try:
            self._waiting.remove(turn)
        except ValueError:
            pass
