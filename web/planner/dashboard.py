"""The dashboard of stored pairings and their CSV export.

It reads the pairings stored in the database (:mod:`matcher.store`); charts
are drawn by :mod:`web.charts`. Exports leave the shopper's text out.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import (
    Response,
    render_template,
    request,
    stream_with_context,
)
from flask_babel import gettext

from matcher.batch import escape_cell
from matcher.capacity import limits_of
from matcher.matching import Matcher
from matcher.store import (
    Campaign,
    Database,
    PairingFilter,
)
from matcher.store.fills import campaign_fills
from matcher.store.reports import (
    EXPORT_COLUMNS,
    celebrity_totals,
    count_pairings,
    daily_counts,
    export_rows,
    score_bins,
)

from .. import charts
from ..campaigns import (
    current_campaign,
    database,
)
from ..errors import ApiError
from ..i18n import select_locale
from ..jobs import SCORE_BIN_WIDTH
from ..pairing import current_matcher
from .base import bp

# -- dashboard --------------------------------------------------------------------------

#: The dashboard's choice of campaigns: the selected one, or every campaign.
SCOPES = ("campaign", "all")
#: The per-day chart covers the filter's days up to this many; beyond, the days with pairings.
MAX_CHART_DAYS = 366


@dataclass(frozen=True)
class Report:
    """Which pairings the dashboard and the export cover, as typed and as a store filter."""

    form: dict[str, str]
    errors: dict[str, str]
    where: PairingFilter

    @property
    def everywhere(self) -> bool:
        return self.form["scope"] == "all"


def _day(value: str) -> date:
    """A day typed as YYYY-MM-DD (what ``<input type="date">`` sends)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(value)
    return date.fromisoformat(value)


def report_filter(campaign: Campaign) -> Report:
    """The dashboard's filters from the query string: scope, ``since`` and ``until`` (UTC days)."""
    form = {
        "scope": request.args.get("scope", "campaign"),
        "since": request.args.get("since", "").strip(),
        "until": request.args.get("until", "").strip(),
    }
    errors: dict[str, str] = {}
    if form["scope"] not in SCOPES:
        errors["scope"] = gettext("Choose this campaign or all campaigns.")
    days: dict[str, date | None] = {"since": None, "until": None}
    for name in days:
        if form[name]:
            try:
                days[name] = _day(form[name])
            except ValueError:
                errors[name] = gettext("Give a date as YYYY-MM-DD, such as 2025-03-31.")
    since, until = days["since"], days["until"]
    if since is not None and until is not None and since > until:
        errors["until"] = gettext("The last day comes before the first day.")
    where = PairingFilter(
        campaign_id=None if form["scope"] == "all" else campaign.id, since=since, until=until
    )
    return Report(form, errors, where)


def celebrity_labels(matcher: Matcher) -> dict[str, str]:
    """Celebrities' names in the planner's language, in roster order."""
    chinese = select_locale() == "zh"
    return {p.id: p.name_zh if chinese else p.name for p in matcher.index.profiles}


@bp.get("/dashboard")
def dashboard() -> tuple[str, int]:
    """The stored pairings: per celebrity, per day and by top score, for the chosen filters."""
    campaign = current_campaign()
    report = report_filter(campaign)
    context: dict[str, Any] = {"report": report, "total": 0}
    if report.errors:
        return render_template("planner/dashboard.html", **context), 400
    db = database()
    total = count_pairings(db, report.where)
    context["total"] = total
    if not total:
        return render_template("planner/dashboard.html", **context), 200
    labels = celebrity_labels(current_matcher())
    counts = celebrity_totals(db, report.where)
    # The selected campaign's roster, in order (zeros included); then any other celebrity
    # paired (another campaign's, or one since removed from the roster), by id.
    per_celebrity = [charts.Bar(key, label, counts.get(key, 0)) for key, label in labels.items()]
    per_celebrity += [
        charts.Bar(key, key, count) for key, count in sorted(counts.items()) if key not in labels
    ]
    daily = daily_counts(db, report.where)
    used = [day for day, _, count in daily if count]
    first, last = report.where.since or min(used), report.where.until or max(used)
    if (last - first).days >= MAX_CHART_DAYS:
        # A far-off bound (a typo, or "since 2000"): draw the days that have pairings.
        first, last = min(used), max(used)
    days, series = charts.per_day(daily, labels, first=first, last=last)
    bins = charts.score_bins(score_bins(db, report.where, SCORE_BIN_WIDTH), SCORE_BIN_WIDTH)
    context.update(
        per_celebrity=per_celebrity,
        days=days,
        series=series,
        day_totals=[sum(one.values[n] for one in series) for n in range(len(days))],
        bins=bins,
        bar_svg=charts.bar_chart(
            per_celebrity,
            chart_id="chart-celebrities",
            title=gettext("Pairings per celebrity"),
            description=gettext(
                "How many of the %(n)d pairings went to each celebrity.",
                n=total,
            ),
        ),
        days_svg=charts.stacked_days(
            days,
            series,
            chart_id="chart-days",
            title=gettext("Pairings per day"),
            description=gettext(
                "Pairings on each day from %(first)s to %(last)s (UTC), "
                "one column per day, stacked by celebrity: %(legend)s.",
                first=days[0].isoformat() if days else "",
                last=days[-1].isoformat() if days else "",
                legend=", ".join(f"{s.label} {s.total}" for s in series),
            ),
        ),
        histogram_svg=charts.histogram(
            bins,
            chart_id="chart-scores",
            title=gettext("Top-1 scores"),
            description=gettext(
                "How many shoppers' best match scored in each band of %(width).2f.",
                width=SCORE_BIN_WIDTH,
            ),
        ),
    )
    if not report.everywhere:
        context.update(places(db, campaign, days, series))
    return render_template("planner/dashboard.html", **context), 200


def places(
    db: Database, campaign: Campaign, days: list[date], series: list[charts.Series]
) -> dict[str, Any]:
    """Each celebrity's places promised against the roster's quotas and shares, when it has any."""
    matcher = current_matcher()
    limits = limits_of(matcher.index.profiles)
    if not limits:
        return {}
    labels = celebrity_labels(matcher)
    promised = campaign_fills(db, campaign.id)
    total = sum(promised.values())
    rows = [
        {
            "key": key,
            "label": label,
            "promised": promised.get(key, 0),
            "limits": limits.get(key),
            "share": promised.get(key, 0) / total if total else 0.0,
        }
        for key, label in labels.items()
    ]
    quotas = {key: lim.quota for key, lim in limits.items() if lim.quota is not None}
    return {
        "places": rows,
        "fill_svg": charts.fill_lines(
            days,
            series,
            quotas,
            chart_id="chart-fill",
            title=gettext("Places filled over time"),
            description=gettext(
                "Each celebrity's pairings added up day by day; a dashed line marks a quota."
            ),
        ),
    }


def _report_filename(campaign: Campaign, report: Report) -> str:
    parts = ["pairings", "all-campaigns" if report.everywhere else campaign.slug]
    if report.where.since is not None:
        parts.append(f"from-{report.where.since.isoformat()}")
    if report.where.until is not None:
        parts.append(f"to-{report.where.until.isoformat()}")
    return "-".join(parts) + ".csv"


@bp.get("/pairings.csv")
def export_pairings() -> Response:
    """The dashboard's pairings as CSV, streamed: one row per pairing, never the shopper's text.

    Every cell is escaped against spreadsheet formulas, as in batch downloads.
    """
    campaign = current_campaign()
    report = report_filter(campaign)
    if report.errors:
        raise ApiError(400, "bad_filter", " ".join(report.errors.values()))
    db = database()

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        for number, row in enumerate(export_rows(db, report.where), start=1):
            writer.writerow([escape_cell(cell) for cell in row])
            if number % 500 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{_report_filename(campaign, report)}"'
        },
    )


# -- settings ---------------------------------------------------------------------------
