"""Quotas under load through a real server: violations, fit lost, shares at the end.

Starts ``matcher serve`` (2 workers) on a copy of the sample roster whose
quotas and shares bind: the two faces the labelled texts prefer most get 60%
of their natural share as a quota, no face may carry more than 30%, and the
least preferred is owed 10%. 8 clients send 2,000 texts (the labelled set,
cycled) to ``/api/v1/match`` with every celebrity in the answer. Afterwards
the stored pairings are read in the order they were stored; the offline
optimum is solved on the same shoppers with the same bounds, and the online
fit is compared with it.

    python benchmarks/online_server.py                      # SQLite
    python benchmarks/online_server.py --database "$(scripts/postgres)"
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from speed_servers import bench_env, free_port  # noqa: E402

from matcher.assignment import assign  # noqa: E402
from matcher.capacity import Limits, bounds_for  # noqa: E402


def texts() -> list[dict[str, Any]]:
    with open(HERE / "eval_set.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def roster_with_limits(folder: Path, requests: int) -> dict[str, Limits]:
    """Copy the sample roster into ``folder`` with quotas and shares that bind."""
    folder.mkdir(parents=True)
    natural = Counter(row["label"] for row in texts())
    ranked = [celebrity for celebrity, _ in natural.most_common()]
    total = sum(natural.values())
    limits: dict[str, Limits] = {}
    for path in sorted((REPO / "profiles").glob("*.yaml")):
        celebrity = path.stem
        limit = Limits(max_share=0.3)
        if celebrity in ranked[:2]:
            quota = math.floor(0.6 * requests * natural[celebrity] / total)
            limit = Limits(quota=quota, max_share=0.3)
        elif celebrity == ranked[-1]:
            limit = Limits(min_share=0.1, max_share=0.3)
        limits[celebrity] = limit
        extra = "".join(
            f"{name}: {value}\n"
            for name, value in (
                ("quota", limit.quota),
                ("min_share", limit.min_share),
                ("max_share", limit.max_share),
            )
            if value is not None
        )
        (folder / path.name).write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return limits


def post(port: int, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/match",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    for attempt in range(20):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
            time.sleep(float(exc.headers.get("Retry-After", "1")) * (1 + attempt / 10))
    raise RuntimeError("the server kept shedding the request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in a temp folder)")
    parser.add_argument("--model", default="embeddinggemma-300m")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="matcher-online-"))
    roster = work / "profiles"
    limits = roster_with_limits(roster, args.requests)
    port = free_port()
    env = bench_env()
    env.update(
        {
            "MATCHER_INSTANCE_DIR": str(work / "instance"),
            "MATCHER_MODEL": args.model,
        }
    )
    schema = None
    if args.database:
        # A schema of its own, dropped at the end: the server starts on an empty database.
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        schema = f"bench_{time.time_ns()}"
        admin = create_engine(args.database, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        args.database = (
            make_url(args.database)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
        env["MATCHER_DATABASE_URL"] = args.database
    command = [
        str(Path(sys.executable).with_name("matcher")),
        "serve",
        "--profiles",
        str(roster),
        "--port",
        str(port),
        "--workers",
        "2",
        "--queue",
        "16",
    ]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(1)
        pool = texts()
        answers: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()
        counter = iter(range(args.requests))

        def client() -> None:
            for n in counter:
                ref = f"shopper-{n}"
                body = {"text": pool[n % len(pool)]["text"], "shopper_ref": ref, "top_k": 7}
                answer = post(port, body)
                with lock:
                    answers[ref] = answer

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    # The order the pairings were stored in is the arrival order the server saw.
    from sqlalchemy import select

    from matcher.store import Database
    from matcher.store.fills import campaign_fills
    from matcher.store.schema import PairingRow

    url = args.database or f"sqlite:///{work / 'instance' / 'matcher.db'}"
    db = Database(url)
    with db.read() as session:
        stored = session.execute(
            select(PairingRow.shopper_ref, PairingRow.celebrity_id).order_by(PairingRow.id)
        ).all()
        campaign_id = session.scalar(select(PairingRow.campaign_id).limit(1))
    fills = campaign_fills(db, int(campaign_id or 0))
    db.dispose()
    celebrities = sorted(limits)
    column = {c: j for j, c in enumerate(celebrities)}
    scores = np.zeros((len(stored), len(celebrities)), np.float32)
    online = np.zeros(len(stored), np.int32)
    for i, (ref, celebrity) in enumerate(stored):
        for match in answers[ref]["matches"]:
            scores[i, column[match["celebrity_id"]]] = match["score"]
        online[i] = column[celebrity]
    unsure = sum(1 for a in answers.values() if not a["confident"])
    bounds = bounds_for(celebrities, limits, len(stored))
    optimum = assign(scores, bounds)
    online_fit = float(scores[np.arange(len(stored)), online].sum(dtype=np.float64))
    counts = np.bincount(online, minlength=len(celebrities))
    violations = sum(
        int(counts[column[c]] > lim.quota) for c, lim in limits.items() if lim.quota is not None
    )
    shares = counts / max(1, counts.sum())
    worst = 0.0
    for c, lim in limits.items():
        share = shares[column[c]]
        if lim.max_share is not None:
            worst = max(worst, share - lim.max_share)
        if lim.min_share is not None:
            worst = max(worst, lim.min_share - share)
    backend = "PostgreSQL" if args.database else "SQLite"
    print(
        f"{backend}, {args.clients} clients, 2 workers, "
        f"{args.requests:,} requests in {seconds:.0f} s"
    )
    print(f"({unsure} unsure answers stored nothing)\n")
    print("| celebrity | quota | share range | paired | share | fill counter |")
    print("|---|---|---|---|---|---|")
    for c in celebrities:
        lim = limits[c]
        span = f"{(lim.min_share or 0) * 100:.0f}-{(lim.max_share or 1) * 100:.0f}%"
        print(
            f"| {c} | {lim.quota if lim.quota is not None else '-'} | {span} "
            f"| {counts[column[c]]} | {shares[column[c]] * 100:.1f}% | {fills.get(c, 0)} |"
        )
    lost = (optimum.total_fit - online_fit) / optimum.total_fit * 100
    print(
        f"\nquota violations: {violations}; fit lost against the offline optimum on the same "
        f"arrival order: {lost:.2f}% (mean {online_fit / len(stored):.4f} against "
        f"{optimum.total_fit / len(stored):.4f}); worst share off its range: {worst * 100:.2f} pts"
    )
    shutil.rmtree(work, ignore_errors=True)
    if schema:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
