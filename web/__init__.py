"""The web layer: a Flask app factory over the matcher core.

The core is loaded once per process and kept in ``app.extensions["matcher"]``;
views parse input, call the core and render. Flask is imported inside the
factory so that ``matcher --help`` can list ``serve`` without loading it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from matcher.embedding import DEFAULT_MODEL

if TYPE_CHECKING:
    from flask import Flask

    from matcher.matching import Matcher


def create_app(config: Mapping[str, Any] | None = None, *, matcher: Matcher | None = None) -> Flask:
    """Build the app: defaults, then ``MATCHER_*`` environment variables, then ``config``.

    Args:
        config: overrides, e.g. a test configuration.
        matcher: an already loaded matcher (tests pass one); otherwise it is
            loaded from ``MATCHER_PROFILES`` with ``MATCHER_MODEL``.
    """
    from flask import Flask

    app = Flask(__name__)
    app.config.from_mapping(
        MATCHER_PROFILES=os.environ.get("MATCHER_PROFILES", "profiles"),
        MATCHER_MODEL=os.environ.get("MATCHER_MODEL", DEFAULT_MODEL),
        MATCHER_INDEX_DIR=os.environ.get("MATCHER_INDEX_DIR") or None,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    if config:
        app.config.from_mapping(config)
    if matcher is None:
        from matcher.matching import load_matcher

        matcher, _ = load_matcher(
            app.config["MATCHER_PROFILES"],
            model=app.config["MATCHER_MODEL"],
            index_dir=app.config["MATCHER_INDEX_DIR"],
        )
    app.extensions["matcher"] = matcher

    from . import shopper

    app.register_blueprint(shopper.bp)
    return app
