"""The planner area at ``/planner``: behind a login, off until a password is configured.

Planners manage the instance's campaigns, check a campaign's roster, try a
shopper text against the whole ranking, correct a wrong pairing, match a whole
file of shoppers in the background, follow the stored pairings on a dashboard
(and export them), edit a campaign's settings and answer shoppers' privacy
requests.

One module per area: :mod:`.base` (the blueprint and the hooks every page
passes), :mod:`.auth`, :mod:`.roster`, :mod:`.batches`, :mod:`.dashboard`,
:mod:`.campaigns` and :mod:`.privacy`.

- Login: one account from configuration (``MATCHER_PLANNER_USER`` and
  ``MATCHER_PLANNER_PASSWORD``, plain or a werkzeug hash), kept in Flask's
  signed session cookie. The area is never framed, so the cookie is
  first-party; every POST still carries a form token (``security.py``). A
  session ends at logout, after :data:`SESSION_HOURS`, or when the configured
  credentials change. Failed logins are counted per client address and
  refused for a while past :data:`MAX_FAILED_LOGINS`.
- Campaigns: every page acts on the campaign named by ``?campaign=`` (the
  default campaign without it); links and redirects within the area keep it.
- Batches run in :mod:`web.jobs`, which keeps their state in the instance
  folder, so every server worker shows the same jobs and downloads. The
  dashboard reads the pairings stored in the database (:mod:`matcher.store`);
  charts are drawn by :mod:`web.charts`.
- Shopper text is never logged here, nor shown: bad rows are shown as line and
  reason, exports of pairings leave the text out, and shopper references travel
  in POST bodies, not in URLs.
"""

from __future__ import annotations

from . import auth, batches, campaigns, dashboard, privacy, roster
from .auth import login_throttle, password_matches
from .base import MAX_FAILED_LOGINS, bp, job_registry

__all__ = [
    "MAX_FAILED_LOGINS",
    "auth",
    "batches",
    "bp",
    "campaigns",
    "dashboard",
    "job_registry",
    "login_throttle",
    "password_matches",
    "privacy",
    "roster",
]
