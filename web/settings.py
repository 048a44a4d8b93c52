"""Web settings: defaults, then ``MATCHER_*`` environment variables, then explicit config.

Read once by the app factory. What a planner may change at run time (embed
origins, quick picks, consent notice, retention) belongs to a campaign and
lives in the database (``matcher.store.campaigns``); ``MATCHER_EMBED_ORIGINS``
still wins for the default campaign, so an operator keeps the last word.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matcher.encoders import DEFAULT_MODEL
from matcher.limits import MAX_UPLOAD_BYTES
from matcher.origins import parse_origins

if TYPE_CHECKING:
    from matcher.store import Database

__all__ = ["DEFAULT_QUICK_PICKS", "defaults", "instance_secret", "parse_origins"]

DEFAULT_QUICK_PICKS: dict[str, list[str]] = {
    "moods": ["calm", "romantic", "adventurous", "playful", "bold", "elegant", "creative"],
    "scents": ["floral", "woody", "fresh", "citrus", "spicy", "powdery"],
}


def defaults() -> dict[str, Any]:
    env = os.environ
    return {
        "MATCHER_PROFILES": env.get("MATCHER_PROFILES", "profiles"),
        "MATCHER_MODEL": env.get("MATCHER_MODEL", DEFAULT_MODEL),
        "MATCHER_INDEX_DIR": env.get("MATCHER_INDEX_DIR") or None,
        # Where other campaigns' rosters must live; default INSTANCE/rosters.
        "MATCHER_ROSTERS_DIR": env.get("MATCHER_ROSTERS_DIR") or None,
        # Default: a SQLite file in the instance folder.
        "MATCHER_DATABASE_URL": env.get("MATCHER_DATABASE_URL") or None,
        "MATCHER_EMBED_ORIGINS": env.get("MATCHER_EMBED_ORIGINS"),
        "MATCHER_PLANNER_USER": env.get("MATCHER_PLANNER_USER", "planner"),
        "MATCHER_PLANNER_PASSWORD": env.get("MATCHER_PLANNER_PASSWORD") or None,
        "SECRET_KEY": env.get("MATCHER_SECRET_KEY") or None,
        # Shopper texts are short; planner uploads are the only large bodies.
        "MAX_CONTENT_LENGTH": MAX_UPLOAD_BYTES,
        "BABEL_DEFAULT_LOCALE": "en",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Only the planner area has sessions: the public pages and the API never get the cookie.
        "SESSION_COOKIE_PATH": "/planner",
        # Secure whenever the request came over HTTPS (web/security.py); "1" for always.
        "SESSION_COOKIE_SECURE": env.get("MATCHER_SECURE_COOKIES", "").lower()
        in ("1", "true", "yes", "on"),
        # Reverse proxies in front of the server whose X-Forwarded-For/-Proto are believed.
        "MATCHER_TRUSTED_PROXIES": env.get("MATCHER_TRUSTED_PROXIES") or None,
    }


def instance_secret(instance_path: str, db: Database) -> str:
    """The secret key every worker of every machine on ``db`` shares, made once in it.

    Kept in the database (:func:`matcher.store.secret.instance_secret`), so two
    machines on one database accept each other's sessions and tokens. An
    instance that kept its key in ``INSTANCE/secret_key`` hands that key to its
    database the first time, so its planners stay signed in.
    """
    from matcher.store.secret import instance_secret as stored_secret

    def from_file() -> str | None:
        try:
            return (Path(instance_path) / "secret_key").read_text(encoding="ascii").strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    return stored_secret(db, seed=from_file)
