"""Charts for the planner dashboard, drawn on the server as inline SVG.

The pages run under a strict Content-Security-Policy (no inline script,
styles only from our stylesheet), so a chart library in the browser is out.
These are small pure functions from numbers to SVG markup: sizes and colours
are SVG presentation attributes (which the policy allows), never ``style``
attributes, and every label is escaped. Each chart names itself with
``<title>`` and ``<desc>``; the page puts the same figures in a table below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
