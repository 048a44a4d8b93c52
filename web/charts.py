"""Charts for the planner dashboard, drawn on the server as inline SVG.

The pages run under a strict Content-Security-Policy (no inline script,
styles only from our stylesheet), so a chart library in the browser is out.
These are small pure functions from numbers to SVG markup: sizes and colours
are SVG presentation attributes (which the policy allows), never ``style``
attributes, and every label is escaped. Each chart names itself with
``<title>`` and ``<desc>``; the page puts the same figures in a table below.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from markupsafe import Markup, escape

BAR_COLOUR = "#8a5a2b"
INK = "#1d1a17"
MUTED = "#6b625a"
FONT = "system-ui, sans-serif"


@dataclass(frozen=True)
class Bar:
    """One bar: what it is (``key``, for machines), what it says (``label``) and its count."""

    key: str
    label: str
    value: int


def _svg_open(chart_id: str, width: int, height: int, title: str, description: str) -> str:
    ident = escape(chart_id)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{ident}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" font-family="{FONT}" font-size="13">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(description)}</desc>'
    )


def _bar(bar: Bar, x: float, y: float, width: float, height: float) -> str:
    return (
        f'<g class="bar" data-key="{escape(bar.key)}" data-value="{bar.value}">'
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
        f'fill="{BAR_COLOUR}"><title>{escape(bar.label)}: {bar.value}</title></rect>'
    )


def bar_chart(bars: Sequence[Bar], *, chart_id: str, title: str, description: str) -> Markup:
    """Horizontal bars, one row per item, labelled on the left with the count on the right.

    Args:
        bars: the rows, in the order to draw them; zero counts still get a row.
        chart_id: a unique id on the page (prefixes the title and desc ids).
        title, description: the accessible name and summary of the chart.

    Returns:
        SVG markup, safe to put in a template as is.
    """
    label_width, plot_width, value_width, row, pad = 190, 380, 60, 28, 8
    width = label_width + plot_width + value_width
    height = max(1, len(bars)) * row + 2 * pad
    top = max((bar.value for bar in bars), default=0)
    parts = [_svg_open(chart_id, width, height, title, description)]
    for number, bar in enumerate(bars):
        y = pad + number * row
        length = plot_width * bar.value / top if top else 0.0
        parts.append(_bar(bar, label_width, y + 4, length, row - 8))
        parts.append(
            f'<text x="{label_width - 8}" y="{y + row / 2:.1f}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{INK}">{escape(bar.label)}</text>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + row / 2:.1f}" '
            f'dominant-baseline="middle" fill="{INK}">{bar.value}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def score_bins(bin_counts: Mapping[int, int], width: float) -> list[Bar]:
    """Histogram bars from counts per bin index (bin ``i`` is ``[i*width, (i+1)*width)``).

    Bins between the lowest and the highest used one are included even when
    empty, so the bars sit on an even scale.
    """
    used = [index for index, count in bin_counts.items() if count]
    if not used:
        return []
    decimals = max(0, -math.floor(math.log10(width))) if width < 1 else 0
    decimals = max(decimals, 2)
    bars = []
    for index in range(min(used), max(used) + 1):
        low, high = index * width, (index + 1) * width
        bars.append(
            Bar(
                key=f"{low:.{decimals}f}",
                label=f"{low:.{decimals}f}–{high:.{decimals}f}",
                value=bin_counts.get(index, 0),
            )
        )
    return bars


def histogram(bars: Sequence[Bar], *, chart_id: str, title: str, description: str) -> Markup:
    """Vertical bars side by side (bins in order), the lower bin edge under each.

    Args:
        bars: the bins, lowest first (see :func:`score_bins`).
        chart_id, title, description: as for :func:`bar_chart`.

    Returns:
        SVG markup, safe to put in a template as is.
    """
    width, plot_height, left, bottom, top_pad = 640, 200, 44, 40, 16
    height = top_pad + plot_height + bottom
    plot_width = width - left - 8
    slot = plot_width / max(1, len(bars))
    top = max((bar.value for bar in bars), default=0)
    every = max(1, math.ceil(len(bars) / 10))
    parts = [_svg_open(chart_id, width, height, title, description)]
    base = top_pad + plot_height
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{width - 8}" y2="{base}" stroke="{MUTED}"/>'
        f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" fill="{MUTED}">{top}</text>'
        f'<text x="{left - 6}" y="{base}" text-anchor="end" fill="{MUTED}">0</text>'
    )
    for number, bar in enumerate(bars):
        x = left + number * slot
        bar_height = plot_height * bar.value / top if top else 0.0
        parts.append(_bar(bar, x + 1, base - bar_height, max(1.0, slot - 2), bar_height))
        if number % every == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{base + 18}" text-anchor="middle" '
                f'fill="{INK}">{escape(bar.key)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))


#: Series colours: the brand colour, then Okabe and Ito's palette (told apart with
#: the common colour-vision deficiencies) and two greys/purples. Past ten series they
#: repeat; the legend order, the segment tooltips and the table still tell them apart.
SERIES_COLOURS = (
    BAR_COLOUR,
    "#0072b2",
    "#d55e00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#e69f00",
    "#1d1a17",
    "#999999",
    "#7a4f9a",
)


@dataclass(frozen=True)
class Series:
    """One celebrity over time: a count per day, in the order of the chart's days."""

    key: str
    label: str
    values: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.values)


def per_day(
    counts: Iterable[tuple[date, str, int]],
    labels: Mapping[str, str],
    *,
    first: date | None = None,
    last: date | None = None,
) -> tuple[list[date], list[Series]]:
    """Shape ``(day, key, count)`` rows into every day of a range and one series per key.

    Args:
        counts: counts per day and key, in any order (missing pairs count 0).
        labels: the label of each key, in the order the series should take;
            keys not in it follow, sorted, labelled with the key itself.
        first, last: the range to cover; by default the first and last day
            with a count. Days with no count are kept, so time runs evenly.

    Returns:
        The days, oldest first, and the series of every key with a count.
    """
    table: dict[str, dict[date, int]] = {}
    for day, key, count in counts:
        row = table.setdefault(key, {})
        row[day] = row.get(day, 0) + count
    used = [day for row in table.values() for day, count in row.items() if count]
    if not used:
        return [], []
    start = first or min(used)
    end = last or max(used)
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    keys = [key for key in labels if key in table]
    keys += sorted(key for key in table if key not in labels)
    series = [
        Series(key, labels.get(key, key), tuple(table[key].get(day, 0) for day in days))
        for key in keys
    ]
    return days, [s for s in series if s.total]


def stacked_days(
    days: Sequence[date], series: Sequence[Series], *, chart_id: str, title: str, description: str
) -> Markup:
    """One column per day, stacked by series (first series at the bottom), with a legend.

    Args:
        days: the days, oldest first (see :func:`per_day`).
        series: one count per day each, in legend order.
        chart_id, title, description: as for :func:`bar_chart`.

    Returns:
        SVG markup, safe to put in a template as is. Each segment carries its
        day, key and count as ``data-`` attributes and a tooltip title.
    """
    width, plot_height, left, right, top_pad, axis = 720, 220, 44, 8, 16, 40
    legend_item, legend_row = 176, 22
    plot_width = width - left - right
    per_row = max(1, plot_width // legend_item)
    legend_height = -(-len(series) // per_row) * legend_row
    height = top_pad + plot_height + axis + legend_height + 8
    slot = plot_width / max(1, len(days))
    column = min(max(1.0, slot - 2), 48.0)
    totals = [sum(s.values[n] for s in series) for n in range(len(days))]
    top = max(totals, default=0)
    every = max(1, math.ceil(len(days) / 8))
    base = top_pad + plot_height
    parts = [_svg_open(chart_id, width, height, title, description)]
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="{MUTED}"/>'
        f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" fill="{MUTED}">{top}</text>'
        f'<text x="{left - 6}" y="{base}" text-anchor="end" fill="{MUTED}">0</text>'
    )
    for number, day in enumerate(days):
        x = left + number * slot + (slot - column) / 2
        y = float(base)
        parts.append(f'<g class="day" data-day="{day.isoformat()}" data-total="{totals[number]}">')
        for index, one in enumerate(series):
            count = one.values[number]
            if not count:
                continue
            segment = plot_height * count / top
            y -= segment
            parts.append(
                f'<rect class="segment" data-key="{escape(one.key)}" data-value="{count}" '
                f'x="{x:.1f}" y="{y:.1f}" width="{column:.1f}" height="{segment:.1f}" '
                f'fill="{SERIES_COLOURS[index % len(SERIES_COLOURS)]}" stroke="#ffffff">'
                f"<title>{escape(one.label)}, {day.isoformat()}: {count}</title></rect>"
            )
        parts.append("</g>")
        if number % every == 0:
            parts.append(
                f'<text x="{left + number * slot + slot / 2:.1f}" y="{base + 18}" '
                f'text-anchor="middle" fill="{INK}">{day.isoformat()[5:]}</text>'
            )
    legend_top = base + axis
    parts.append('<g class="legend">')
    for index, one in enumerate(series):
        x = left + (index % per_row) * legend_item
        y = legend_top + (index // per_row) * legend_row
        parts.append(
            f'<g class="legend-item" data-key="{escape(one.key)}">'
            f'<rect x="{x}" y="{y}" width="12" height="12" '
            f'fill="{SERIES_COLOURS[index % len(SERIES_COLOURS)]}"/>'
            f'<text x="{x + 18}" y="{y + 6}" dominant-baseline="middle" fill="{INK}">'
            f"{escape(one.label)} ({one.total})</text></g>"
        )
    parts.append("</g></svg>")
    return Markup("".join(parts))


def fill_lines(
    days: Sequence[date],
    series: Sequence[Series],
    quotas: Mapping[str, int],
    *,
    chart_id: str,
    title: str,
    description: str,
) -> Markup:
    """Each celebrity's running total of pairings over the days, against its quota.

    Args:
        days: the days, oldest first (see :func:`per_day`).
        series: per celebrity, the pairings of each day (summed here as it goes).
        quotas: the celebrities with a quota: a dashed line in their colour.
        chart_id, title, description: as for :func:`bar_chart`.
    """
    width, plot_height, left, right, top_pad, axis, legend_row = 720, 220, 52, 8, 16, 40, 22
    plot_width = width - left - right
    running = [list(itertools.accumulate(one.values)) for one in series]
    top = max([r[-1] for r in running if r] + [quotas.get(s.key, 0) for s in series] + [1])
    height = top_pad + plot_height + axis + len(series) * legend_row + 8
    base = top_pad + plot_height
    step = plot_width / max(1, len(days) - 1)

    def y_of(value: float) -> float:
        return base - plot_height * value / top

    parts = [_svg_open(chart_id, width, height, title, description)]
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="{MUTED}"/>'
        f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" fill="{MUTED}">{top}</text>'
        f'<text x="{left - 6}" y="{base}" text-anchor="end" fill="{MUTED}">0</text>'
    )
    for index, (one, totals) in enumerate(zip(series, running, strict=True)):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        points = " ".join(
            f"{left + n * step:.1f},{y_of(total):.1f}" for n, total in enumerate(totals)
        )
        last = totals[-1] if totals else 0
        parts.append(
            f'<g class="fill" data-key="{escape(one.key)}" data-total="{last}">'
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(one.label)}: {last}</title></polyline>"
        )
        parts.extend(
            f'<circle cx="{left + n * step:.1f}" cy="{y_of(total):.1f}" r="3" fill="{colour}"/>'
            for n, total in enumerate(totals)
        )
        if one.key in quotas:
            quota_y = y_of(quotas[one.key])
            parts.append(
                f'<line class="quota" data-value="{quotas[one.key]}" x1="{left}" '
                f'y1="{quota_y:.1f}" x2="{width - right}" y2="{quota_y:.1f}" stroke="{colour}" '
                f'stroke-dasharray="6 4"><title>{escape(one.label)}: quota '
                f"{quotas[one.key]}</title></line>"
            )
        parts.append("</g>")
    every = max(1, math.ceil(len(days) / 8))
    for number, day in enumerate(days):
        if number % every == 0:
            parts.append(
                f'<text x="{left + number * step:.1f}" y="{base + 18}" text-anchor="middle" '
                f'fill="{INK}">{day.isoformat()[5:]}</text>'
            )
    parts.append('<g class="legend">')
    for index, (one, totals) in enumerate(zip(series, running, strict=True)):
        y = base + axis + index * legend_row
        quota = f" / {quotas[one.key]}" if one.key in quotas else ""
        parts.append(
            f'<g class="legend-item" data-key="{escape(one.key)}">'
            f'<rect x="{left}" y="{y}" width="12" height="12" '
            f'fill="{SERIES_COLOURS[index % len(SERIES_COLOURS)]}"/>'
            f'<text x="{left + 18}" y="{y + 6}" dominant-baseline="middle" fill="{INK}">'
            f"{escape(one.label)} ({totals[-1] if totals else 0}{quota})</text></g>"
        )
    parts.append("</g></svg>")
    return Markup("".join(parts))


#: The funnel's steps, darkest first: one hue, so the eye reads one flow narrowing.
FUNNEL_COLOURS = ("#5c3a1a", "#8a5a2b", "#b07d4f", "#d1a77c")


@dataclass(frozen=True)
class Step:
    """One step of the funnel: its count and, after the first, how it compares with the one before.

    ``rate`` is ``None`` when it cannot be worked out (nothing at the step before,
    or a filter the step is not counted by); ``note`` then says why, or what the
    rate is of ("41.2% of views").
    """

    key: str
    label: str
    value: int | None
    rate: float | None = None
    note: str = ""


def funnel(steps: Sequence[Step], *, chart_id: str, title: str, description: str) -> Markup:
    """The funnel as bars narrowing from the top, each step's count and rate beside it.

    Bars share one scale (the largest step), so a narrowing is seen at once;
    a step that cannot be counted under the filters draws a dashed outline
    and the note instead of a bar.
    """
    label_width, plot_width, text_width, row, pad = 150, 330, 250, 46, 6
    width = label_width + plot_width + text_width
    height = len(steps) * row + 2 * pad
    top = max((step.value or 0 for step in steps), default=0)
    parts = [_svg_open(chart_id, width, height, title, description)]
    for number, step in enumerate(steps):
        y = pad + number * row
        middle = y + row / 2
        colour = FUNNEL_COLOURS[min(number, len(FUNNEL_COLOURS) - 1)]
        value = "–" if step.value is None else f"{step.value:,}"
        parts.append(
            f'<g class="step" data-key="{escape(step.key)}" '
            f'data-value="{"" if step.value is None else step.value}">'
            f'<text x="{label_width - 10}" y="{middle:.1f}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{INK}" font-size="15">{escape(step.label)}</text>'
        )
        if step.value is None:
            parts.append(
                f'<rect x="{label_width}" y="{y + 6}" width="{plot_width}" height="{row - 12}" '
                f'fill="none" stroke="{MUTED}" stroke-dasharray="4 4"/>'
            )
            length = 0.0
        else:
            length = max(2.0, plot_width * step.value / top) if top and step.value else 0.0
            parts.append(
                f'<rect x="{label_width}" y="{y + 6}" width="{length:.1f}" height="{row - 12}" '
                f'fill="{colour}"><title>{escape(step.label)}: {value}</title></rect>'
            )
        # The count sits inside a long bar (in white) and beside a short one.
        inside = length > 90
        x = label_width + (length - 8 if inside else length + 8)
        parts.append(
            f'<text x="{x:.1f}" y="{middle:.1f}" text-anchor="{"end" if inside else "start"}" '
            f'dominant-baseline="middle" font-size="16" font-weight="700" '
            f'fill="{"#ffffff" if inside else INK}">{value}</text>'
        )
        if step.note:
            # Beside the bar and its count, so the eye does not jump across the chart.
            after = label_width + (length + 14 if inside else length + 22 + 10 * len(value))
            parts.append(
                f'<text x="{after:.1f}" y="{middle:.1f}" '
                f'dominant-baseline="middle" fill="{MUTED}">{escape(step.note)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))


def day_panels(
    days: Sequence[date], rows: Sequence[Series], *, chart_id: str, title: str, description: str
) -> Markup:
    """One row of daily columns per series, each on its own scale (small multiples).

    Views may outnumber clicks a hundred times: on one shared scale the clicks
    would vanish. Each row says its own peak and total, and the days share one
    axis below, so a day is read straight down through every step.
    """
    width, left, right, panel, gap, axis = 720, 150, 90, 52, 14, 26
    plot_width = width - left - right
    height = len(rows) * (panel + gap) + axis
    slot = plot_width / max(1, len(days))
    column = min(max(1.0, slot - 2), 36.0)
    parts = [_svg_open(chart_id, width, height, title, description)]
    for number, one in enumerate(rows):
        top_y = number * (panel + gap) + 4
        base = top_y + panel
        peak = max(one.values, default=0)
        colour = FUNNEL_COLOURS[min(number, len(FUNNEL_COLOURS) - 1)]
        parts.append(
            f'<g class="panel" data-key="{escape(one.key)}" data-total="{one.total}">'
            f'<text x="{left - 10}" y="{top_y + panel / 2 - 8:.1f}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{INK}" font-weight="600">{escape(one.label)}</text>'
            f'<text x="{left - 10}" y="{top_y + panel / 2 + 10:.1f}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{MUTED}">{one.total:,}</text>'
            f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#d8d0c6"/>'
            f'<text x="{width - right + 8}" y="{top_y + 8}" dominant-baseline="middle" '
            f'fill="{MUTED}" font-size="11">{peak:,}</text>'
        )
        for index, (day, count) in enumerate(zip(days, one.values, strict=True)):
            if not count:
                continue
            bar = max(1.0, (panel - 4) * count / peak)
            x = left + index * slot + (slot - column) / 2
            parts.append(
                f'<rect class="day" data-day="{day.isoformat()}" data-value="{count}" '
                f'x="{x:.1f}" y="{base - bar:.1f}" width="{column:.1f}" height="{bar:.1f}" '
                f'fill="{colour}"><title>{escape(one.label)}, {day.isoformat()}: {count}</title>'
                f"</rect>"
            )
        parts.append("</g>")
    base = len(rows) * (panel + gap)
    every = max(1, math.ceil(len(days) / 8))
    for index, day in enumerate(days):
        if index % every == 0 or index == len(days) - 1 and len(days) <= 8:
            parts.append(
                f'<text x="{left + index * slot + slot / 2:.1f}" y="{base + 10}" '
                f'text-anchor="middle" fill="{INK}" font-size="12">{day.isoformat()[5:]}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
