"""Keep every web worker's matcher in step with the roster folder on disk.

Each gunicorn worker holds its own matcher. When a planner edits a profile or
files a correction, whichever worker handles that request refreshes itself;
the others notice the change here, by the files' modification times, and
reload too. The index on disk was already brought up to date by the first
worker, so the others re-embed nothing: they read the new vectors.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from flask import Flask

from matcher.errors import MatcherError
from matcher.feedback import CORRECTIONS_FILE
from matcher.matching import Matcher, load_matcher
from matcher.profiles import PROFILE_SUFFIXES

log = logging.getLogger(__name__)

#: Shared with the planner's explicit refresh, so two refreshes never overlap.
REFRESH_LOCK_KEY = "matcher.planner_refresh_lock"
WATCH_KEY = "matcher.roster_watch"
#: Look at the folder at most this often (seconds): a few stat calls per check.
CHECK_INTERVAL = 2.0


def roster_signature(folder: str | Path) -> tuple[tuple[str, int, int], ...]:
    """Name, modification time and size of every file that shapes the matcher."""
    folder = Path(folder)
    entries = []
    try:
        paths = sorted(folder.iterdir())
    except OSError:
        return ()
    for path in paths:
        if path.suffix in PROFILE_SUFFIXES or path.name == CORRECTIONS_FILE:
            try:
                stat = path.stat()
            except OSError:
                continue
            entries.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


def refresh_matcher(app: Flask) -> Matcher:
    """Reload the roster (with its corrections) into a new matcher and swap it in.

    Reuses the loaded encoder and the matcher's settings, and re-embeds only the
    profiles that changed. Requests already running keep the matcher they began
    with.

    Raises:
        MatcherError: the roster folder cannot be loaded; the old matcher stays.
    """
    lock: threading.Lock = app.extensions.setdefault(REFRESH_LOCK_KEY, threading.Lock())
    with lock:
        old: Matcher = app.extensions["matcher"]
        signature = roster_signature(app.config["MATCHER_PROFILES"])
        fresh, _ = load_matcher(
            app.config["MATCHER_PROFILES"],
            index_dir=app.config["MATCHER_INDEX_DIR"],
            encoder=old.encoder,
        )
        matcher = Matcher(
            old.encoder,
            fresh.index,
            scoring=old.scoring,
            example_weight=old.example_weight,
            correction_threshold=old.correction_threshold,
            reasons=old.reasons,
            max_chars=old.max_chars,
        )
        app.extensions["matcher"] = matcher
        app.extensions[WATCH_KEY] = RosterWatch(signature)
    return matcher


class RosterWatch:
    """Remembers the roster folder as the current matcher saw it."""

    def __init__(self, signature: tuple[tuple[str, int, int], ...]) -> None:
        self.signature = signature
        self.checked = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.checked >= CHECK_INTERVAL


def start_watching(app: Flask) -> None:
    app.extensions[WATCH_KEY] = RosterWatch(roster_signature(app.config["MATCHER_PROFILES"]))


def refresh_if_changed(app: Flask) -> None:
    """Reload the matcher when the roster folder changed since it was loaded.

    A roster that no longer loads (a planner's half-finished edit) leaves the
    current matcher serving; the problem is logged (file, line, field) once per
    change, without any shopper text.
    """
    watch: RosterWatch | None = app.extensions.get(WATCH_KEY)
    if watch is None or not watch.due():
        return
    watch.checked = time.monotonic()
    signature = roster_signature(app.config["MATCHER_PROFILES"])
    if signature == watch.signature:
        return
    try:
        refresh_matcher(app)
    except MatcherError as exc:
        watch.signature = signature
        log.warning("roster changed but cannot be loaded; still serving the previous one: %s", exc)
