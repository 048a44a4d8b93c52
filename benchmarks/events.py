"""What the funnel's counting costs: recording one view, and the dashboard's query on 1M events.

1. ``record_event``, one call per page view, as the web's hook makes it:
   the time per call from one process (median and 99th percentile), and the
   views per second 4 processes recording at once manage, all on the same
   counter (the worst case: every writer waits for the same row or file),
   with the count checked afterwards (no view lost).
2. A page view through the real app (``GET /embed``, Flask's test client,
   the sample roster): the time per request with counting on and off.
3. The dashboard's reading of the funnel (:func:`daily_events`) over
   1,000,000 events spread over 30 days, 2 sources with pages plus the API,
   2 languages and 7 celebrities' clicks: the counters it reads, and the time.

    python benchmarks/events.py                                 # SQLite
    python benchmarks/events.py --database "$(scripts/postgres)"
    python benchmarks/events.py --no-pages                      # without the app (no model)
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from matcher.store import Database, check_settings, create_campaign  # noqa: E402
from matcher.store.events import (  # noqa: E402
    NO_CELEBRITY,
    EventFilter,
    daily_events,
    record_event,
    slot_of,
    total_events,
)
from matcher.store.schema import CampaignEventRow  # noqa: E402

CELEBRITIES = [f"celebrity-{n}" for n in range(7)]
EVENTS = 1_000_000
DAYS = 30


def fresh_database(url: str | None, folder: Path) -> tuple[Database, str, object]:
    """A migrated, empty database: a SQLite file, or a new schema on the PostgreSQL server."""
    if url is None:
        target = f"sqlite:///{folder / 'events.db'}"
        cleanup = None
    else:
        import secrets

        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        schema = f"bench_{secrets.token_hex(4)}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        target = (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )

        def cleanup() -> None:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()

    db = Database(target)
    db.migrate()
    return db, target, cleanup


def campaign_id(db: Database, slug: str) -> int:
    settings = check_settings(
        {"slug": slug, "name": slug, "brand": "Bench", "profiles_dir": str(REPO / "profiles")}
    )
    return create_campaign(db, settings).id


def one_writer(db: Database, campaign: int, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        record_event(db, campaign, "view", source="embed", language="zh")
        times.append(time.perf_counter() - start)
    return times


def _writer(url: str, campaign: int, n: int, start: object) -> None:  # a child process
    db = Database(url)
    start.wait()  # type: ignore[attr-defined]
    for _ in range(n):
        record_event(db, campaign, "view", source="form", language="zh")
    db.dispose()


def many_writers(url: str, campaign: int, processes: int, each: int) -> float:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes + 1)
    workers = [
        context.Process(target=_writer, args=(url, campaign, each, start)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise SystemExit(f"a writer failed (exit code {worker.exitcode})")
    return time.perf_counter() - began


def page_views(url: str, folder: Path, n: int) -> dict[str, float]:
    """Median time of ``GET /embed`` through the real app, counting on and off."""
    from matcher.matching import load_matcher
    from web import create_app

    profiles = folder / "profiles"
    shutil.copytree(REPO / "profiles", profiles)
    matcher, _ = load_matcher(profiles)
    result = {}
    for counting in (False, True):
        app = create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(folder / f"instance-{counting}"),
                "MATCHER_PROFILES": str(profiles),
                "MATCHER_DATABASE_URL": url,
                "MATCHER_COUNT_EVENTS": counting,
                "SECRET_KEY": "bench",
            },
            matcher=matcher,
        )
        client = app.test_client()
        for _ in range(20):
            client.get("/embed?lang=zh")  # warm the templates and the campaign cache
        times = []
        for _ in range(n):
            start = time.perf_counter()
            response = client.get("/embed?lang=zh")
            times.append(time.perf_counter() - start)
            assert response.status_code == 200
        result["on" if counting else "off"] = statistics.median(times)
        app.extensions["matcher.db"].dispose()
    return result


def million_events(db: Database, campaign: int, seed: int = 15) -> int:
    """1,000,000 events over 30 days, as the counters they make; returns the counter rows."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    seconds = rng.integers(0, DAYS * 86400, EVENTS)
    kinds = rng.choice(3, EVENTS, p=[0.7, 0.22, 0.08])  # view, submission, click
    sources = rng.choice(3, EVENTS, p=[0.6, 0.3, 0.1])  # form, embed, api
    languages = rng.choice(2, EVENTS, p=[0.7, 0.3])
    celebrities = rng.integers(0, len(CELEBRITIES), EVENTS)
    sources = np.where((kinds != 1) & (sources == 2), 0, sources)  # the API has no page
    quarter = seconds // 900
    celebrity = np.where(kinds == 2, celebrities, -1)
    keys = np.stack([quarter, kinds, sources, languages, celebrity], axis=1)
    unique, counts = np.unique(keys, axis=0, return_counts=True)
    names = (("view", "submission", "cta_click"), ("form", "embed", "api"), ("zh", "en"))
    rows = [
        {
            "campaign_id": campaign,
            "slot": slot_of(start + timedelta(seconds=int(q) * 900)),
            "kind": names[0][k],
            "source": names[1][s],
            "language": names[2][lang],
            "celebrity_id": CELEBRITIES[c] if c >= 0 else NO_CELEBRITY,
            "count": int(n),
        }
        for (q, k, s, lang, c), n in zip(unique.tolist(), counts.tolist(), strict=True)
    ]
    from sqlalchemy import insert

    with db.write() as session:
        for begin in range(0, len(rows), 10_000):
            session.execute(insert(CampaignEventRow), rows[begin : begin + 10_000])
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="a PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--calls", type=int, default=2000, help="record_event calls, one process")
    parser.add_argument("--processes", type=int, default=4, help="processes recording at once")
    parser.add_argument("--each", type=int, default=500, help="calls per process")
    parser.add_argument("--no-pages", action="store_true", help="skip the app's page views")
    parser.add_argument("--views", type=int, default=500, help="page views with counting on/off")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-events-"))
    db, url, cleanup = fresh_database(args.database, folder)
    backend = "PostgreSQL" if args.database else "SQLite"
    try:
        live = campaign_id(db, "live")
        times = one_writer(db, live, args.calls)
        race = campaign_id(db, "race")
        elapsed = many_writers(url, race, args.processes, args.each)
        counted = total_events(daily_events(db, EventFilter(race)), "view")
        expected = args.processes * args.each
        rows = [
            ("record_event, 1 process: median", f"{1000 * statistics.median(times):.2f} ms"),
            ("record_event, 1 process: p99", f"{1000 * np.percentile(times, 99):.2f} ms"),
            (
                f"record_event, {args.processes} processes, one counter",
                f"{expected / elapsed:,.0f} views/s ({counted:,} of {expected:,} counted)",
            ),
        ]
        if not args.no_pages:
            pages = page_views(url, folder, args.views)
            rows.append(("GET /embed, counting off: median", f"{1000 * pages['off']:.2f} ms"))
            rows.append(("GET /embed, counting on: median", f"{1000 * pages['on']:.2f} ms"))
        big = campaign_id(db, "million")
        counters = million_events(db, big)
        where = EventFilter(big, time_zone="Asia/Shanghai")
        daily_events(db, where)  # warm the cache, as a dashboard in use is
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            counts = daily_events(db, where)
            runs.append(time.perf_counter() - start)
        total = sum(one.count for one in counts)
        assert total == EVENTS, total
        one_week = EventFilter(
            big,
            since=date(2026, 3, 10),
            until=date(2026, 3, 16),
            time_zone="Asia/Shanghai",
            sources=("form",),
            language="zh",
        )
        start = time.perf_counter()
        daily_events(db, one_week)
        week = time.perf_counter() - start
        rows += [
            (f"{EVENTS:,} events over {DAYS} days: counter rows", f"{counters:,}"),
            (
                "dashboard funnel query, all 30 days: median",
                f"{1000 * statistics.median(runs):.0f} ms",
            ),
            ("dashboard funnel query, 1 week, form, zh", f"{1000 * week:.0f} ms"),
        ]
        print(f"\nFunnel events on {backend}\n")
        width = max(len(name) for name, _ in rows)
        print(f"| {'measure':<{width}} | value |")
        print(f"|{'-' * (width + 2)}|-------|")
        for name, value in rows:
            print(f"| {name:<{width}} | {value} |")
        if counted != expected:
            raise SystemExit(f"lost views: {expected - counted}")
    finally:
        db.dispose()
        if cleanup is not None:
            cleanup()  # type: ignore[operator]
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
