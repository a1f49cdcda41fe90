"""Inline SVG charts for the report's HTML page: no script, no external file, so the page works saved to disk and
under the app's Content-Security-Policy. Values are integers of base units; `label` callbacks write them through
core.figures. Every chart carries a <title> and the table next to it states the same figures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2e7d32", "#f9a825", "#c62828", "#1565c0", "#6a1b9a", "#00838f")
BUDGET_PALETTE = ("#2e7d32", "#f9a825", "#b0bec5")  # disbursed, committed, still available (grey: nothing wrong)
_FONT = 'font-family="sans-serif" font-size="11"'


@dataclass(frozen=True)
class PricePoint:
    day: dt.date
    close_fen: int
    vwap_fen: int
    volume: int


LABEL_CHARS_MAX = 9  # a bar's label beside it; the table under the chart gives the full name


def short(label: str, limit: int = LABEL_CHARS_MAX) -> str:
    """`label` cut to `limit` characters with an ellipsis, to fit beside a bar."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _nice_max(value: int) -> int:
    """A round axis top at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def price_volume(
    title: str, points: Sequence[PricePoint], price_label: Callable[[int], str], volume_label: Callable[[int], str]
) -> str:
    """Close and VWAP as lines over the year's trading days, volume as bars below."""
    width, height = 760, 320
    left, right, top = 70, 20, 30
    price_h, gap, vol_h = 170, 20, 70
    if not points:
        return ""
    n = len(points)
    lo = min(min(p.close_fen, p.vwap_fen) for p in points)
    hi = max(max(p.close_fen, p.vwap_fen) for p in points)
    pad = max((hi - lo) // 10, 1)
    lo, hi = max(lo - pad, 0), hi + pad
    vmax = _nice_max(max(p.volume for p in points))
    plot_w = width - left - right

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(price: int) -> float:
        return top + price_h - price_h * (price - lo) / (hi - lo)

    vol_top = top + price_h + gap
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" class="chart">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{price_h}" fill="none" stroke="#bbb"/>',
        f'<rect x="{left}" y="{vol_top}" width="{plot_w}" height="{vol_h}" fill="none" stroke="#bbb"/>',
    ]
    for frac in (0, 0.5, 1):
        price = lo + int((hi - lo) * frac)
        parts.append(
            f'<text x="{left - 6}" y="{y(price) + 4:.1f}" text-anchor="end" {_FONT}>{escape(price_label(price))}</text>'
        )
    parts.append(
        f'<text x="{left - 6}" y="{vol_top + 10}" text-anchor="end" {_FONT}>{escape(volume_label(vmax))}</text>'
    )
    bar_w = max(plot_w / n * 0.7, 1)
    for i, p in enumerate(points):
        h = vol_h * p.volume / vmax
        parts.append(
            f'<rect x="{x(i) - bar_w / 2:.1f}" y="{vol_top + vol_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="#90a4ae"><title>{p.day.isoformat()} {escape(volume_label(p.volume))}</title></rect>'
        )
    for prices, color, dash in (
        ([p.close_fen for p in points], PALETTE[3], ""),
        ([p.vwap_fen for p in points], PALETTE[1], ' stroke-dasharray="4 3"'),
    ):
        coords = " ".join(f"{x(i):.1f},{y(price):.1f}" for i, price in enumerate(prices))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>')
        if n == 1:
            parts.append(f'<circle cx="{x(0):.1f}" cy="{y(prices[0]):.1f}" r="3" fill="{color}"/>')
    for i in sorted({0, n - 1, *(k for k in range(n) if points[k].day.day == 1 or k == n // 2)}):
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle" {_FONT}>{points[i].day.isoformat()}</text>'
        )
    parts.append(
        f'<text x="{left + 4}" y="{top - 10}" {_FONT} fill="{PALETTE[3]}">— 收盘价</text>'
        f'<text x="{left + 80}" y="{top - 10}" {_FONT} fill="{PALETTE[1]}">- - 成交均价</text>'
        f'<text x="{left + 170}" y="{top - 10}" {_FONT} fill="#607d8b">▮ 成交量</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(
    title: str,
    rows: Sequence[tuple[str, Sequence[int]]],
    series: Sequence[str],
    label: Callable[[int], str],
    palette: Sequence[str] = PALETTE,
) -> str:
    """Horizontal bars, one per row, each split into the series' parts, with the total written at its end."""
    if not rows:
        return ""
    bar_h, gap, left, right, top = 18, 8, 130, 150, 28
    width = 760
    height = top + len(rows) * (bar_h + gap) + 10
    vmax = max(sum(v) for _, v in rows) or 1
    plot_w = width - left - right
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    x_legend = left
    for k, name in enumerate(series):
        parts.append(
            f'<rect x="{x_legend}" y="8" width="10" height="10" fill="{palette[k % len(palette)]}"/>'
            f'<text x="{x_legend + 14}" y="17" {_FONT}>{escape(name)}</text>'
        )
        x_legend += 24 + 12 * len(name)
    for i, (name, values) in enumerate(rows):
        y0 = top + i * (bar_h + gap)
        parts.append(f'<text x="{left - 6}" y="{y0 + 13}" text-anchor="end" {_FONT}>{escape(short(name))}</text>')
        x0 = float(left)
        for k, v in enumerate(values):
            w = plot_w * v / vmax
            if w > 0:
                parts.append(
                    f'<rect x="{x0:.1f}" y="{y0}" width="{w:.1f}" height="{bar_h}" '
                    f'fill="{palette[k % len(palette)]}"><title>{escape(series[k])} {escape(label(v))}</title></rect>'
                )
            x0 += w
        parts.append(f'<text x="{x0 + 6:.1f}" y="{y0 + 13}" {_FONT}>{escape(label(sum(values)))}</text>')
    parts.append("</svg>")
    return "".join(parts)
