"""Charts of the Models page: each gate metric across the versions on the page, as inline SVG.

Drawn on the server from the rows the page already read (no extra query, no JavaScript library), so a
chart costs the same at 10 or 10,000 versions. Colours come from the theme's CSS variables, so the
charts follow light and dark mode with the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_bridge.plugin.tables import VersionRow

WIDTH, HEIGHT = 320, 140
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 10, 22


def metric_charts(rows: Sequence[VersionRow], metrics: Sequence[str]) -> str:
    """One small line chart per metric (versions in number order), the gate's bound as a dashed line."""
    ordered = sorted((r for r in rows if r.kind == "version"), key=lambda r: int(r.key))
    charts = [metric_chart(ordered, name) for name in metrics]
    shown = [c for c in charts if c]
    return f"<div class='charts'>{''.join(shown)}</div>" if shown else ""


def metric_chart(rows: Sequence[VersionRow], name: str) -> str:
    points = [(row, row.metrics.get(name)) for row in rows]
    values = [(row, float(v)) for row, v in points if v is not None]
    if not values:
        return ""
    bounds = []
    for row, _ in values:
        gate = next((g for g in row.gates if g.name == name), None)
        if gate is not None:
            bounds += [float(b) for b in (gate.min, gate.max) if isinstance(b, int | float)]
            break
    low = min([v for _, v in values] + bounds)
    high = max([v for _, v in values] + bounds)
    if high == low:
        low, high = low - 0.5 * (abs(low) or 1) * 0.01, high + 0.5 * (abs(high) or 1) * 0.01
    span_x = max(len(values) - 1, 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / span_x if len(values) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - low) / (high - low))

    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(values))
    dots = "".join(
        f"<circle class='dot{' live' if row.live else ''}' cx='{x(i):.1f}' cy='{y(v):.1f}' r='2.5'>"
        f"<title>{escape(row.label)}: {v:.4f}</title></circle>"
        for i, (row, v) in enumerate(values)
    )
    guides = "".join(
        f"<line class='bound' x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y(b):.1f}' y2='{y(b):.1f}'>"
        f"<title>gate bound {b:g}</title></line>"
        for b in bounds
    )
    axes = (
        f"<line class='axis' x1='{LEFT}' x2='{LEFT}' y1='{TOP}' y2='{HEIGHT - BOTTOM}'/>"
        f"<line class='axis' x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{HEIGHT - BOTTOM}' y2='{HEIGHT - BOTTOM}'/>"
        f"<text x='{LEFT - 4}' y='{TOP + 8}' text-anchor='end'>{high:.3g}</text>"
        f"<text x='{LEFT - 4}' y='{HEIGHT - BOTTOM}' text-anchor='end'>{low:.3g}</text>"
        f"<text x='{LEFT}' y='{HEIGHT - 6}'>{escape(values[0][0].label)}</text>"
        f"<text x='{WIDTH - RIGHT}' y='{HEIGHT - 6}' text-anchor='end'>{escape(values[-1][0].label)}</text>"
    )
    svg = (
        f"<svg role='img' aria-label='{escape(name)} across versions' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}'>{axes}{guides}<polyline class='line' points='{line}'/>{dots}</svg>"
    )
    caption = f"<figcaption class='small'>{escape(name)}</figcaption>"
    return f"<figure class='chart' data-metric='{escape(name)}'>{caption}{svg}</figure>"
