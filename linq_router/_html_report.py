"""``simulate --report``: the results as one self-contained HTML page.

The charts are inline SVG drawn here in Python, with inline CSS and a few lines of
inline JavaScript; nothing is fetched when the page is viewed. Once the page has
loaded, the script sets ``data-charts`` on ``<body>`` to the number of charts it
found, so a headless browser can tell the page rendered.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from ._models import Reputation
from ._simulate import TICK_SECONDS, LineHistory, RunResult, percent

__all__ = ["BAR_COLOR", "REPUTATION_HEX", "render_html"]

REPUTATION_HEX = {
    Reputation.HEALTHY: "#2ca02c",
    Reputation.AT_RISK: "#f2b01e",
    Reputation.CRITICAL: "#d62728",
    Reputation.UNKNOWN: "#9467bd",
}
"""Chart colours of each reputation."""
BAR_COLOR = "#1f77b4"
"""The colour of the share-of-picks bars."""
_ABSENT = "#dddddd"

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; }
table.figures { border-collapse: collapse; margin: 12px 0; }
table.figures th, table.figures td { border: 1px solid #ccc; padding: 4px 10px;
  text-align: left; vertical-align: top; }
table.figures th { background: #f4f4f4; }
.ok { color: #2ca02c; font-weight: bold; } .bad { color: #d62728; font-weight: bold; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px;
  vertical-align: middle; }
svg.chart { display: block; margin: 8px 0; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  document.body.dataset.charts = String(document.querySelectorAll("svg.chart").length);
});
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _lines_chart(result: RunResult) -> str:
    """Rows of: number, reputation timeline strip, share-of-picks bar with its value."""
    row_h, label_w, strip_w, bar_w, gap = 22, 150, 360, 300, 16
    width = label_w + strip_w + gap + bar_w + 70
    height = row_h * len(result.lines) + 28
    peak = max((result.share(h.id) for h in result.lines), default=0.0) or 1.0
    parts = [
        f'<svg class="chart lines" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="share of picks per line">',
        f'<text x="{label_w}" y="14">reputation over time ({_e(_duration(result))})</text>',
        f'<text x="{label_w + strip_w + gap}" y="14">share of picks</text>',
    ]
    for row, history in enumerate(result.lines):
        y = 22 + row * row_h
        parts.append(f'<text x="0" y="{y + 14}">{_e(history.phone_number)}</text>')
        parts.append(_strip(history, label_w, y, strip_w, row_h - 6))
        share = result.share(history.id)
        w = bar_w * share / peak
        x = label_w + strip_w + gap
        parts.append(
            f'<rect x="{x}" y="{y}" width="{w:.1f}" height="{row_h - 6}" fill="{BAR_COLOR}">'
            f"<title>{_e(history.phone_number)}: {result.picks.get(history.id, 0):,} picks"
            f"</title></rect>"
        )
        parts.append(f'<text x="{x + w + 6:.1f}" y="{y + 13}">{100 * share:.1f}%</text>')
    parts.append("</svg>")
    return "".join(parts)


def _duration(result: RunResult) -> str:
    ticks = len(result.lines[0].reputations) if result.lines else 0
    return f"{ticks * TICK_SECONDS / 60:g} simulated minutes"


def _strip(history: LineHistory, x0: float, y: float, width: float, height: float) -> str:
    ticks = len(history.reputations) or 1
    cell = width / ticks
    rects = []
    for t, (reputation, flagged) in enumerate(
        zip(history.reputations, history.flagged, strict=True)
    ):
        colour = _ABSENT if reputation is None else REPUTATION_HEX[reputation]
        # Flagged stretches keep their reputation colour, faded: paused, not gone.
        fade = ' fill-opacity="0.35"' if flagged else ""
        # Solid cells overlap a hair to hide seams; faded ones would darken where they do.
        overlap = 0.0 if flagged else 0.3
        rects.append(
            f'<rect x="{x0 + t * cell:.2f}" y="{y}" width="{cell + overlap:.2f}" '
            f'height="{height}" fill="{colour}"{fade}/>'
        )
    return "".join(rects)


def _reputation_chart(result: RunResult) -> str:
    """One stacked bar: the share of picks that went to each reputation."""
    width, height = 660, 34
    parts = [
        f'<svg class="chart reputation" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="share of picks by reputation">'
    ]
    x = 0.0
    for reputation in Reputation:
        count = result.by_reputation.get(reputation.value, 0)
        if not count:
            continue
        w = width * count / result.sends
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" '
            f'fill="{REPUTATION_HEX[reputation]}"><title>{reputation.value}: '
            f"{percent(count, result.sends)}</title></rect>"
        )
        if w > 90:
            parts.append(
                f'<text x="{x + 6:.1f}" y="{height / 2 + 4}">{reputation.value} '
                f"{percent(count, result.sends)}</text>"
            )
        x += w
    parts.append("</svg>")
    return "".join(parts)


def _figures(results: Sequence[RunResult]) -> str:
    def row(name: str, cells: list[str]) -> str:
        return f"<tr><th>{_e(name)}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    def critical(r: RunResult) -> str:
        cls = "ok" if r.to_critical == 0 else "bad"
        return f'<span class="{cls}">{r.to_critical:,}</span> ({percent(r.to_critical, r.sends)})'

    def stay(r: RunResult) -> str:
        if r.stay_rate is None:
            return "-"
        return f"{100 * r.stay_rate:.1f}% of {r.returning:,} returning sends"

    def reps(r: RunResult) -> str:
        return ", ".join(
            f"{rep.value} {percent(r.by_reputation.get(rep.value, 0), r.sends)}"
            for rep in Reputation
            if rep is not Reputation.UNKNOWN or r.by_reputation.get(rep.value)
        )

    rows = [
        row("policy", [f"<code>{_e(r.spec)}</code>" for r in results]),
        row("sends", [f"{r.sends:,} from {r.workers} threads" for r in results]),
        row("picks/s", [f"{r.picks_per_second:,.0f}" for r in results]),
        row("share by reputation", [reps(r) for r in results]),
        row(
            "API calls",
            [f"{r.api_calls:,} list requests vs {r.naive_api_calls:,} naive" for r in results],
        ),
        row("retries", [str(r.retries) for r in results]),
        row("refreshes (failed)", [f"{r.refreshes} ({r.failures})" for r in results]),
        row("picks to a CRITICAL line (expected 0)", [critical(r) for r in results]),
        row("picks to a FLAGGED line", [f"{r.to_flagged:,}" for r in results]),
        row("returning recipients kept their line", [stay(r) for r in results]),
        row("no eligible line", [f"{r.no_eligible:,}" for r in results]),
    ]
    return '<table class="figures">' + "".join(rows) + "</table>"


def _legend() -> str:
    items = "".join(
        f'<span style="background:{REPUTATION_HEX[r]}"></span>{r.value}'
        for r in (Reputation.HEALTHY, Reputation.AT_RISK, Reputation.CRITICAL)
    )
    return (
        f'<p class="legend">{items}<span style="background:{_ABSENT}"></span>not in pool'
        f'<span style="background:{BAR_COLOR}"></span>share of picks '
        "(faded cells: FLAGGED)</p>"
    )


def render_html(results: Sequence[RunResult], *, demo: bool = True) -> str:
    """The whole page for one or more runs of the same workload."""
    first = results[0]
    title = "linq-router simulate: " + ", ".join(r.spec for r in results)
    events = "".join(
        f"<li>t={e.tick * TICK_SECONDS:.0f}s: {_e(e.label)}</li>" for e in first.events
    )
    sections = "".join(
        f"<h2>{_e(r.spec)}</h2>{_reputation_chart(r)}{_lines_chart(r)}" for r in results
    )
    pool = "the embedded demo pool" if demo else "the real API (read only)"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f"<p>{first.sends:,} sends per policy, seed {first.seed}, on {pool}.</p>"
        f"{_figures(results)}"
        f"{_legend()}{sections}"
        f"<h2>Pool events</h2><ul>{events or '<li>none</li>'}</ul>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
