"""How many passwords an attacker can try against the planner account, and whether the planner
still gets in.

Runs the real throttle (:class:`matcher.store.LoginThrottle`) on a throwaway
SQLite database with a simulated clock: every attacking address guesses
again the moment it is allowed to, for the period asked. Then the planner
types the right password from an address that has not failed, and from the
attacker's own address with the browser it logged in with before (its device
id). The policy is the shipped default.

    python benchmarks/login_guessing.py
    python benchmarks/login_guessing.py --addresses 1 10 100 --hours 1 24
"""

from __future__ import annotations

import argparse
import heapq
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from matcher.store import Database, LoginThrottle

START = datetime(2026, 1, 1, tzinfo=UTC)


def attack(throttle: LoginThrottle, addresses: int, seconds: float) -> int:
    """Guesses made in ``seconds`` by ``addresses`` addresses, each retrying as soon as allowed."""
    queue = [(0.0, f"10.{n // 65536}.{n // 256 % 256}.{n % 256}") for n in range(addresses)]
    guesses = 0
    while queue:
        at, address = heapq.heappop(queue)
        if at >= seconds:
            continue
        now = START + timedelta(seconds=at)
        wait = throttle.retry_after("planner", address, now=now)
        if wait == 0:
            throttle.failed("planner", address, now=now)
            guesses += 1
            wait = throttle.retry_after("planner", address, now=now)
        heapq.heappush(queue, (at + max(wait, 1e-6), address))
    return guesses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--hours", type=float, nargs="+", default=[1, 24])
    args = parser.parse_args()
    print("| addresses | hours | guesses | per address per hour | planner, fresh address | "
          "planner's browser, attacker's address |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for hours in args.hours:
        for addresses in args.addresses:
            with tempfile.TemporaryDirectory() as folder:
                db = Database(f"sqlite:///{Path(folder) / 'throttle.db'}")
                db.migrate()
                throttle = LoginThrottle(db, "login")
                guesses = attack(throttle, addresses, hours * 3600)
                end = START + timedelta(hours=hours)
                fresh = throttle.retry_after("planner", "192.0.2.1", now=end)
                known = throttle.retry_after("planner", "10.0.0.0", device="laptop", now=end)
                db.dispose()
            rate = guesses / addresses / hours
            print(
                f"| {addresses} | {hours:g} | {guesses} | {rate:.1f} | "
                f"{'let in' if fresh == 0 else f'waits {fresh} s'} | "
                f"{'let in' if known == 0 else f'waits {known} s'} |"
            )


if __name__ == "__main__":
    main()
