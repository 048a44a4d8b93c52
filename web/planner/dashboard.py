"""The dashboard a planner reads at a glance, and the CSV export of its pairings.

The funnel runs views → submissions → pairings → call-to-action clicks. Views,
submissions and clicks are counters (:mod:`matcher.store.events`); pairings
are the stored pairings (:mod:`matcher.store.reports`). Days are those of the
campaign's time zone. Every filter is in the query string, so a view can be
shared as a link: campaign (or every campaign), first and last day, source,
language and celebrity. Charts are drawn by :mod:`web.charts`; each has its
figures in a table beside it. Exports leave the shopper's text out.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, TypeVar

from flask import Response, render_template, request, stream_with_context
from flask_babel import gettext

from matcher.batch import escape_cell
from matcher.capacity import limits_of
from matcher.matching import Matcher
from matcher.store import Campaign, Database, PairingFilter
from matcher.store.events import SOURCES, EventCount, EventFilter, daily_events
from matcher.store.fills import campaign_fills
from matcher.store.reports import EXPORT_COLUMNS, daily_sources, export_rows, score_bins

from .. import charts
from ..campaigns import current_campaign, database
from ..errors import ApiError
from ..i18n import LANGUAGES, select_locale
from ..jobs import SCORE_BIN_WIDTH
from ..pairing import current_matcher
from .base import bp

#: The funnel's steps, in order; pairings come from the pairings table, the rest are events.
STEPS = ("view", "submission", "pairing", "cta_click")
#: The sources of shoppers answering live, which the dashboard shows unless told otherwise:
#: a planner's upload of a CRM file is thousands of pairings at once, not shoppers' visits.
LIVE = ("form", "embed", "api")
#: The source filter's choices: live shoppers, everything, or one source.
SOURCE_CHOICES = ("live", "all", *SOURCES)
#: Which sources can take each step: a rate compares a step with the one before over the
#: sources that have both (the API has no page to view; an upload has no submission; a
#: click comes from the pages' call to action only).
STEP_SOURCES = {
    "view": ("form", "embed"),
    "submission": ("form", "embed", "api"),
    "pairing": SOURCES,
    "cta_click": ("form", "embed"),
}
Filter = TypeVar("Filter", PairingFilter, EventFilter)
#: The per-day charts cover the filter's days up to this many; beyond, the days with data.
MAX_CHART_DAYS = 366


@dataclass(frozen=True)
class Report:
    """Which pairings and events the dashboard covers, as typed and as store filters."""

    form: dict[str, str]
    errors: dict[str, str]
    where: PairingFilter
    events: EventFilter

    @property
    def everywhere(self) -> bool:
        return self.form["scope"] == "all"

    @property
    def sources(self) -> tuple[str, ...]:
        return self.where.sources or SOURCES

    def link_args(self, **changes: str | None) -> dict[str, str | None]:
        """The query string of this view (with ``changes``), for links that keep the filters."""
        args: dict[str, str | None] = {name: value or None for name, value in self.form.items()}
        if args.get("scope") == "campaign":
            args["scope"] = None
        if args.get("source") == "live":
            args["source"] = None
        args.update(changes)
        return args


def _day(value: str) -> date:
    """A day typed as YYYY-MM-DD (what ``<input type="date">`` sends)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(value)
    return date.fromisoformat(value)


def report_filter(campaign: Campaign, celebrities: Sequence[str] = ()) -> Report:
    """The dashboard's filters from the query string, checked field by field.

    ``since`` and ``until`` are days of the campaign's time zone; ``source`` is
    ``live`` (the default), ``all`` or one source; ``lang`` is the page's own
    language, so the language filter is ``language``.
    """
    form = {
        "scope": request.args.get("scope", "campaign").strip() or "campaign",
        "since": request.args.get("since", "").strip(),
        "until": request.args.get("until", "").strip(),
        "source": request.args.get("source", "live").strip() or "live",
        "language": request.args.get("language", "").strip(),
        "celebrity": request.args.get("celebrity", "").strip(),
    }
    errors: dict[str, str] = {}
    if form["scope"] not in ("campaign", "all"):
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
    if form["source"] not in SOURCE_CHOICES:
        errors["source"] = gettext("Choose a source from the list.")
    if form["language"] and form["language"] not in LANGUAGES:
        errors["language"] = gettext("Choose a language from the list.")
    if form["celebrity"] and celebrities and form["celebrity"] not in celebrities:
        errors["celebrity"] = gettext("Choose a celebrity of this campaign's roster.")
    sources: tuple[str, ...] | None
    if form["source"] == "live":
        sources = LIVE
    elif form["source"] in SOURCES:
        sources = (form["source"],)
    else:
        sources = None
    campaign_id = None if form["scope"] == "all" else campaign.id
    celebrity = form["celebrity"] or None
    where = PairingFilter(
        campaign_id=campaign_id,
        since=since,
        until=until,
        time_zone=campaign.time_zone,
        sources=sources,
        celebrity_id=celebrity,
    )
    events = EventFilter(
        campaign_id=campaign_id,
        since=since,
        until=until,
        time_zone=campaign.time_zone,
        sources=sources,
        language=form["language"] or None,
        celebrity_id=celebrity,
    )
    return Report(form, errors, where, events)


def celebrity_labels(matcher: Matcher) -> dict[str, str]:
    """Celebrities' names in the planner's language, in roster order."""
    chinese = select_locale() == "zh"
    return {p.id: p.name_zh if chinese else p.name for p in matcher.index.profiles}


def step_labels() -> dict[str, str]:
    return {
        "view": gettext("Views"),
        "submission": gettext("Submissions"),
        "pairing": gettext("Pairings"),
        "cta_click": gettext("Clicks"),
    }


def source_labels() -> dict[str, str]:
    return {
        "form": gettext("Form"),
        "embed": gettext("Embed"),
        "api": gettext("API"),
        "upload": gettext("Upload"),
    }


@dataclass(frozen=True)
class Counts:
    """Every step's count, by day, source, language and celebrity, under the report's filters.

    ``pairings`` are ``None`` by language: a pairing does not record the page's language.
    """

    events: list[EventCount]
    pairings: list[tuple[date, str, str, int]]
    by_language: bool

    def total(self, step: str, sources: Sequence[str] | None = None) -> int | None:
        if step == "pairing":
            if self.by_language:
                return None
            return sum(n for _, s, _, n in self.pairings if sources is None or s in sources)
        return sum(
            one.count
            for one in self.events
            if one.kind == step and (sources is None or one.source in sources)
        )

    def per_day(self, step: str, days: Sequence[date]) -> tuple[int, ...]:
        counts: Counter[date] = Counter()
        if step == "pairing":
            for day, _source, _celebrity, n in self.pairings:
                counts[day] += n
        else:
            for one in self.events:
                if one.kind == step:
                    counts[one.day] += one.count
        return tuple(counts.get(day, 0) for day in days)

    def used_days(self) -> list[date]:
        return sorted({one.day for one in self.events} | {row[0] for row in self.pairings})


def rate(counts: Counts, step: str, before: str, sources: Sequence[str]) -> float | None:
    """``step`` as a share of ``before``, over the sources that can take both."""
    shared = [s for s in sources if s in STEP_SOURCES[step] and s in STEP_SOURCES[before]]
    if not shared:
        return None
    after_n, before_n = counts.total(step, shared), counts.total(before, shared)
    if after_n is None or not before_n:
        return None
    return after_n / before_n


def funnel_steps(counts: Counts, sources: Sequence[str]) -> list[charts.Step]:
    """The four steps with their rates, worded for the chart and the table."""
    labels = step_labels()
    notes = {
        "submission": gettext("%(rate)s of views"),
        "pairing": gettext("%(rate)s of submissions"),
        "cta_click": gettext("%(rate)s of pairings"),
    }
    steps = []
    for index, step in enumerate(STEPS):
        value = counts.total(step)
        share = rate(counts, step, STEPS[index - 1], sources) if index else None
        note = ""
        if index and share is not None:
            note = notes[step] % {"rate": f"{100 * share:.1f}%"}
        elif step == "pairing" and value is None:
            note = gettext("not counted by language")
        steps.append(charts.Step(step, labels[step], value, share, note))
    return steps


def breakdown(counts: Counts, key: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of a table by source or by language: each step's count per key."""
    rows = []
    for value in keys:
        row: dict[str, Any] = {"key": value}
        for step in STEPS:
            if step == "pairing":
                if key == "language" or counts.by_language:
                    row[step] = None
                    continue
                row[step] = sum(n for _, s, _, n in counts.pairings if s == value)
            else:
                row[step] = sum(
                    one.count
                    for one in counts.events
                    if one.kind == step and getattr(one, key) == value
                )
        rows.append(row)
    return rows


def _chart_days(report: Report, counts: Counts) -> list[date]:
    """Every day of the filter's range, empty ones too, so time runs evenly across a chart."""
    used = counts.used_days()
    if not used:
        return []
    first = report.where.since or used[0]
    last = report.where.until or used[-1]
    if (last - first).days >= MAX_CHART_DAYS:
        # A far-off bound (a typo, or "since 2000"): draw the days that have data.
        first, last = used[0], used[-1]
    return [date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]


@bp.get("/dashboard")
def dashboard() -> tuple[str, int]:
    """The funnel, by day, source, language and celebrity, for the filters in the query string."""
    campaign = current_campaign()
    matcher = current_matcher()
    labels = celebrity_labels(matcher)
    report = report_filter(campaign, list(labels))
    context: dict[str, Any] = {
        "report": report,
        "time_zone": campaign.time_zone,
        "labels": labels,
        "source_labels": source_labels(),
        "source_choices": SOURCE_CHOICES,
        "languages": LANGUAGES,
        "step_labels": step_labels(),
        "steps": STEPS,
        "total": 0,
    }
    if report.errors:
        return render_template("planner/dashboard.html", **context), 400
    db = database()
    counts = Counts(
        daily_events(db, report.events),
        daily_sources(db, report.where),
        by_language=report.events.language is not None,
    )
    # The whole-source table ignores the source filter, so an upload is seen apart.
    every_source = Counts(
        daily_events(db, _all_sources(report.events)),
        daily_sources(db, _all_sources(report.where)),
        by_language=report.events.language is not None,
    )
    steps = funnel_steps(counts, report.sources)
    total = counts.total("pairing") if not counts.by_language else 0
    days = _chart_days(report, counts)
    day_series = [
        charts.Series(step, step_labels()[step], counts.per_day(step, days))
        for step in STEPS
        if not (step == "pairing" and counts.by_language)
    ]
    context.update(
        total=total or 0,
        anything=any(step.value for step in steps),
        funnel=steps,
        funnel_svg=charts.funnel(
            steps,
            chart_id="chart-funnel",
            title=gettext("Funnel"),
            description=", ".join(
                f"{step.label} {'–' if step.value is None else step.value}"
                + (f" ({step.note})" if step.note else "")
                for step in steps
            ),
        ),
        days=days,
        day_series=day_series,
        days_svg=charts.day_panels(
            days,
            day_series,
            chart_id="chart-funnel-days",
            title=gettext("The funnel by day"),
            description=gettext(
                "Each step per day from %(first)s to %(last)s (%(zone)s), one row per step, "
                "each on its own scale.",
                first=days[0].isoformat() if days else "",
                last=days[-1].isoformat() if days else "",
                zone=campaign.time_zone,
            ),
        )
        if days
        else None,
        by_source=breakdown(every_source, "source", SOURCES),
        by_language=breakdown(counts, "language", list(LANGUAGES)),
    )
    context.update(celebrity_section(counts, labels, days))
    if total:
        bins = charts.score_bins(score_bins(db, report.where, SCORE_BIN_WIDTH), SCORE_BIN_WIDTH)
        context.update(
            bins=bins,
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
    if not report.everywhere and total:
        context.update(places(db, campaign, matcher, days, context["series"]))
    return render_template("planner/dashboard.html", **context), 200


def _all_sources(where: Filter) -> Filter:
    return replace(where, sources=None)


def celebrity_section(counts: Counts, labels: dict[str, str], days: list[date]) -> dict[str, Any]:
    """Pairings and clicks per celebrity, and the pairings per day stacked by celebrity."""
    paired: Counter[str] = Counter()
    for _when, _source, celebrity, n in counts.pairings:
        paired[celebrity] += n
    clicks: Counter[str] = Counter()
    for one in counts.events:
        if one.kind == "cta_click" and one.celebrity_id:
            clicks[one.celebrity_id] += one.count
    keys = list(labels) + sorted((set(paired) | set(clicks)) - set(labels))
    total = sum(paired.values())
    rows = [
        {
            "key": key,
            "label": labels.get(key, key),
            "pairings": paired.get(key, 0),
            "share": paired.get(key, 0) / total if total else None,
            "clicks": clicks.get(key, 0),
            "click_rate": clicks.get(key, 0) / paired[key] if paired.get(key) else None,
        }
        for key in keys
    ]
    bars = [charts.Bar(row["key"], row["label"], row["pairings"]) for row in rows]
    daily = [(day, celebrity, n) for day, _source, celebrity, n in counts.pairings]
    _, series = charts.per_day(daily, labels, first=days[0], last=days[-1]) if days else ([], [])
    section: dict[str, Any] = {"per_celebrity": rows, "series": series}
    if total and not counts.by_language:
        section.update(
            bar_svg=charts.bar_chart(
                bars,
                chart_id="chart-celebrities",
                title=gettext("Pairings per celebrity"),
                description=gettext(
                    "How many of the %(n)d pairings went to each celebrity.", n=total
                ),
            ),
            stacked_svg=charts.stacked_days(
                days,
                series,
                chart_id="chart-days",
                title=gettext("Pairings per day"),
                description=gettext(
                    "Pairings on each day from %(first)s to %(last)s, one column per day, "
                    "stacked by celebrity: %(legend)s.",
                    first=days[0].isoformat() if days else "",
                    last=days[-1].isoformat() if days else "",
                    legend=", ".join(f"{s.label} {s.total}" for s in series),
                ),
            ),
            day_totals=[sum(one.values[n] for one in series) for n in range(len(days))],
        )
    return section


def places(
    db: Database,
    campaign: Campaign,
    matcher: Matcher,
    days: list[date],
    series: list[charts.Series],
) -> dict[str, Any]:
    """Each celebrity's places promised against the roster's quotas and shares, when it has any."""
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
    if report.where.sources is not None:
        parts.append("-".join(report.where.sources))
    if report.where.celebrity_id is not None:
        parts.append(re.sub(r"[^A-Za-z0-9_-]", "_", report.where.celebrity_id)[:40])
    if report.where.since is not None:
        parts.append(f"from-{report.where.since.isoformat()}")
    if report.where.until is not None:
        parts.append(f"to-{report.where.until.isoformat()}")
    return "-".join(parts) + ".csv"


@bp.get("/pairings.csv")
def export_pairings() -> Response:
    """The dashboard's pairings as CSV, streamed: one row per pairing, never the shopper's text.

    The same filters as the dashboard but the language (a pairing has none).
    Every cell is escaped against spreadsheet formulas, as in batch downloads.
    """
    campaign = current_campaign()
    report = report_filter(campaign, list(celebrity_labels(current_matcher())))
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
