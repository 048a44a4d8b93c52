"""Campaigns and pairings in a database (SQLAlchemy 2, Alembic migrations).

SQLite by default, PostgreSQL by URL (``MATCHER_DATABASE_URL``). Imported only
by the code paths that store or report; matching itself needs no database.
"""

from .campaigns import (
    DEFAULT_SLUG,
    Campaign,
    CampaignSettings,
    check_settings,
    create_campaign,
    default_campaign_settings,
    ensure_campaign,
    find_campaign,
    get_campaign,
    list_campaigns,
    update_campaign,
)
from .database import Database, ScrubReport, default_database_url
from .pairings import NewPairing, Stored, index_version, record_pairings
from .reports import PairingFilter
from .security import LoginThrottle, PlannerSession, ThrottlePolicy

__all__ = [
    "DEFAULT_SLUG",
    "Campaign",
    "CampaignSettings",
    "Database",
    "LoginThrottle",
    "NewPairing",
    "PairingFilter",
    "PlannerSession",
    "ScrubReport",
    "Stored",
    "ThrottlePolicy",
    "check_settings",
    "create_campaign",
    "default_campaign_settings",
    "default_database_url",
    "ensure_campaign",
    "find_campaign",
    "get_campaign",
    "index_version",
    "list_campaigns",
    "record_pairings",
    "update_campaign",
]
