"""Charts as SVG made on the server: stacked bars per time bucket, one colour per group.

Colours are CSS classes (c0..c7), so dark mode restyles them and no inline style is needed (the
pages' CSP allows none). Every label is escaped.
"""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT = 800, 220
LEFT, BOTTOM, TOP = 60, 24, 10
COLOURS = 8


def _tick(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def stacked_bars(labels: list[str], series: list[tuple[str, list[float]]], title: str) -> Markup:
    """One bar per label, each the stack of the series' values at that position."""
    totals = [sum(values[index] for _, values in series) for index in range(len(labels))]
    peak = max(totals, default=0.0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(labels), 1)
    bar = max(step * 0.7, 1.0)
    parts = [Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="')
             + escape(title) + Markup('">'),
             Markup(f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 10}" y2="{TOP + plot_h}"/>'),
             Markup(f'<text x="{LEFT - 6}" y="{TOP + 8}" text-anchor="end">') + escape(_tick(peak)) + Markup("</text>"),
             Markup(f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>')]
    for index, label in enumerate(labels):
        x = LEFT + index * step + (step - bar) / 2
        y = float(TOP + plot_h)
        for number, (name, values) in enumerate(series):
            height = values[index] / peak * plot_h
            if height <= 0:
                continue
            y -= height
            parts.append(Markup(f'<rect class="c{number % COLOURS}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                                f'height="{height:.1f}"><title>') + escape(f"{label} · {name}: {_tick(values[index])}")
                         + Markup("</title></rect>"))
    shown = max(1, len(labels) // 8)  # at most about eight labels under the axis
    for index in range(0, len(labels), shown):
        x = LEFT + index * step + step / 2
        parts.append(Markup(f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">') + escape(labels[index])
                     + Markup("</text>"))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
