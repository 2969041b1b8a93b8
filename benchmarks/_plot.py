"""A small SVG line chart for the benchmark report: pick latency against pool size."""

from __future__ import annotations

import math
from html import escape

COLOURS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000",
]  # fmt: skip


def latency_chart(series: dict[str, dict[int, float]], *, title: str) -> str:
    """Lines of nanoseconds per pick (y) over pool size (x, log scale), one per policy."""
    width, height = 760, 420
    left, right, top, bottom = 70, 230, 40, 50
    sizes = sorted({s for by_size in series.values() for s in by_size})
    peak = max(v for by_size in series.values() for v in by_size.values())
    y_max = _nice(peak * 1.1)
    lo, hi = math.log10(sizes[0]), math.log10(sizes[-1])

    def x(size: int) -> float:
        return left + (math.log10(size) - lo) / (hi - lo or 1) * (width - left - right)

    def y(ns: float) -> float:
        return top + (1 - ns / y_max) * (height - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15">{escape(title)}</text>',
    ]
    for i in range(6):
        value = y_max * i / 5
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{left - 8}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.0f}</text>'
        )
    for size in sizes:
        out.append(
            f'<text x="{x(size):.1f}" y="{height - bottom + 18}" text-anchor="middle">'
            f"{size:,}</text>"
        )
    out.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
        "lines in the pool (log scale)</text>"
        f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(top + height - bottom) / 2})">ns per pick</text>'
    )
    for index, (name, by_size) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        points = " ".join(f"{x(s):.1f},{y(by_size[s]):.1f}" for s in sorted(by_size))
        dash = ' stroke-dasharray="5 4"' if name.startswith("baseline") else ""
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        ly = top + 14 + index * 18
        out.append(
            f'<line x1="{width - right + 12}" x2="{width - right + 32}" y1="{ly - 4}" '
            f'y2="{ly - 4}" stroke="{colour}" stroke-width="2"{dash}/>'
            f'<text x="{width - right + 38}" y="{ly}">{escape(name)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _nice(value: float) -> float:
    """The next 'round' number at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power
