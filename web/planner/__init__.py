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
  ``MATCHER_PLANNER_PASSWORD``, plain or a werkzeug hash). A session is a row
  in the database named by a token in the signed cookie; it ends at logout,
  when the configured credentials change, when idle and after a working day.
  Every POST carries that session's own form token. Failed logins are
  counted in the database for all workers, per account and address with a
  doubling wait, so guessing is slow and the planner is never locked out
  (:mod:`.auth`).
- Campaigns: every page acts on the campaign named by ``?campaign=`` (the
  default campaign without it); links and redirects within the area keep it.
- Batches run in :mod:`web.jobs`, which keeps them (state, upload, pairings)
  in the database, so every worker of every server shows the same jobs and
  downloads. The
  dashboard reads the pairings stored in the database (:mod:`matcher.store`);
  charts are drawn by :mod:`web.charts`.
- Shopper text is never logged here, nor shown: bad rows are shown as line and
  reason, exports of pairings leave the text out, and shopper references travel
  in POST bodies, not in URLs.
"""

from __future__ import annotations

from . import auth, batches, branding, campaigns, casting, dashboard, privacy, roster, roster_edit
from .auth import check_report_login, login_throttle, password_matches
from .base import bp, job_registry

__all__ = [
    "auth",
    "batches",
    "branding",
    "bp",
    "campaigns",
    "casting",
    "check_report_login",
    "dashboard",
    "job_registry",
    "login_throttle",
    "password_matches",
    "privacy",
    "roster",
    "roster_edit",
]
