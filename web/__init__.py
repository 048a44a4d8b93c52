"""The web layer: a Flask app factory over the matcher core.

One blueprint per area: ``shopper`` (the form at ``/``), ``embed`` (the same
flow for an iframe), ``api`` (JSON at ``/api/v1``) and ``planner`` (behind a
login). The shopper and embed blueprints are mounted a second time under
``/c/<campaign>/`` for the instance's other campaigns (``campaigns.py``).
The default campaign's matcher is loaded once per process and kept in
``app.extensions["matcher"]``; the database in ``app.extensions["matcher.db"]``.
Views parse input, call the core and render.
Flask is imported inside the factory so that ``matcher --help`` can list
``serve`` without loading it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .settings import defaults, instance_secret, parse_origins

if TYPE_CHECKING:
    from flask import Flask

    from matcher.matching import Matcher

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None, *, matcher: Matcher | None = None) -> Flask:
    """Build the app: defaults, then ``MATCHER_*`` environment variables, then ``config``.

    Args:
        config: overrides, e.g. a test configuration.
        matcher: an already loaded matcher (tests pass one); otherwise it is
            loaded from ``MATCHER_PROFILES`` with ``MATCHER_MODEL``.

    Raises:
        MatcherError: the roster, the model or a setting (such as an embed
            origin) cannot be used; the CLI shows it as one line.
    """
    from flask import Flask

    # The same default as the CLI's, so `matcher privacy` finds the server's database.
    instance = (
        (config or {}).get("INSTANCE_PATH") or os.environ.get("MATCHER_INSTANCE_DIR") or "instance"
    )
    app = Flask(__name__, instance_path=str(Path(instance).resolve()))
    app.config.from_mapping(defaults())
    if config:
        app.config.from_mapping(config)
    parse_origins(app.config["MATCHER_EMBED_ORIGINS"])  # a bad setting fails at start

    from matcher.store import (
        Database,
        default_campaign_settings,
        default_database_url,
        ensure_campaign,
        update_campaign,
    )

    from .campaigns import DB_KEY, request_settings

    database = Database(
        app.config["MATCHER_DATABASE_URL"] or default_database_url(app.instance_path)
    )
    database.migrate()
    if not app.config["SECRET_KEY"]:
        # One secret per database: every worker of every machine signs alike.
        app.config["SECRET_KEY"] = instance_secret(app.instance_path, database)
    profiles = str(app.config["MATCHER_PROFILES"])
    default = ensure_campaign(database, default_campaign_settings(profiles))
    if default.profiles_dir != profiles:
        # The default campaign follows the roster the server was started on.
        update_campaign(database, default.slug, {"profiles_dir": profiles})
    app.extensions[DB_KEY] = database

    # The request's campaign's embed origins and quick picks.
    app.extensions["matcher.settings"] = request_settings

    # Serve the published roster (the folder imported on the first start); a
    # matcher handed in (tests, embedding apps) is taken to serve it as it is.
    from .roster import initial_matcher, start_serving

    matcher_owned = matcher is None
    if matcher is None:
        matcher = initial_matcher(app, database, default)
    start_serving(app, database, default, matcher, owned=matcher_owned)

    from . import api, embed, planner, shopper
    from .campaigns import register_campaign_urls
    from .errors import register_error_handlers
    from .events import register_events
    from .i18n import register_i18n
    from .security import register_security

    register_error_handlers(app)
    register_security(app)
    register_i18n(app)
    register_campaign_urls(app)
    register_events(app)
    app.register_blueprint(shopper.bp)
    app.register_blueprint(embed.bp)
    app.register_blueprint(shopper.bp, name="campaign_shopper", url_prefix="/c/<campaign>")
    app.register_blueprint(embed.bp, name="campaign_embed", url_prefix="/c/<campaign>")
    app.register_blueprint(api.bp)
    app.register_blueprint(planner.bp)
    from .planner.base import job_registry

    # What a killed worker left (a batch's upload, half-written pairings) goes now.
    job_registry(app).sweep_at_start()
    if not app.config["MATCHER_PLANNER_PASSWORD"]:
        log.warning("planner area is off: set MATCHER_PLANNER_PASSWORD to turn it on")
    return app
