"""The HTML report's charts: inline SVG drawn in Python, nothing fetched.

Every chart has a ``viewBox`` and shrinks with the window (``max-width: 100%`` in
the page's CSS). The share-of-picks bars of every section share one scale, and the
reputation strips one time axis, on which the pool events are marked and numbered
as in the page's list of events and the feedback loop's ejections drawn as bands.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from linq_router._models import Reputation

from ._results import EjectedPeriod, LineHistory, RunResult, percent
from ._workload import TICK_SECONDS, PoolEvent

__all__ = [
    "ABSENT",
    "BAR_COLOR",
    "EJECTED_HEX",
    "EVENT",
    "FLAGGED_OPACITY",
    "REPUTATION_HEX",
    "RETURNED_HEX",
    "esc",
    "event_text",
    "lines_chart",
    "reputation_chart",
    "share_scale",
]

REPUTATION_HEX = {
    Reputation.HEALTHY: "#2ca02c",
    Reputation.AT_RISK: "#f2b01e",
    Reputation.CRITICAL: "#d62728",
    Reputation.UNKNOWN: "#9467bd",
}
"""Chart colours of each reputation."""
BAR_COLOR = "#1f77b4"
"""The colour of the share-of-picks bars."""
ABSENT = "#dddddd"
"""A strip's colour where the line was not in the pool."""
EVENT = "#333333"
"""The colour of the pool events' marks."""
FLAGGED_OPACITY = "0.35"
"""How strongly a FLAGGED stretch of a strip shows its reputation colour."""
EJECTED_HEX = "#17becf"
"""The band drawn over a strip where the feedback loop had ejected the line."""
RETURNED_HEX = "#0b5d66"
"""The tick that marks where an ejected line came back."""

# The lines chart, in viewBox units (CSS pixels when the window is wide enough): a
# label column, the reputation strips, then the share bars and their values.
_LABEL_W, _STRIP_W, _GAP, _BAR_W, _VALUE_W = 118.0, 360.0, 30.0, 220.0, 50.0
_CHART_W = _LABEL_W + _STRIP_W + _GAP + _BAR_W + _VALUE_W
_ROW_H, _CELL_H = 22.0, 16.0
_ROWS_TOP = 46.0
"""Where the first row starts: below the column titles and the event numbers."""
_AXIS_H = 34.0
_TIME_STEPS = (5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)


def esc(value: object) -> str:
    """``value`` as text safe inside HTML and its attributes."""
    return html.escape(str(value), quote=True)


def _svg(kind: str, width: float, height: float, label: str) -> str:
    """The opening tag of a chart that scales with the window (its viewBox)."""
    return (
        f'<svg class="chart {kind}" xmlns="http://www.w3.org/2000/svg" width="{width:g}" '
        f'height="{height:g}" viewBox="0 0 {width:g} {height:g}" role="img" '
        f'aria-label="{esc(label)}">'
    )


def _nice_step(span: float, most: int) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that cuts ``span`` in <= ``most``."""
    if span <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(span / most))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if span / (factor * power) <= most + 1e-9:
            return factor * power
    return 10.0 * power  # pragma: no cover - the loop always returns by factor 10


def share_scale(results: Sequence[RunResult]) -> tuple[float, float]:
    """(full-bar share, tick step): one scale for every section of the report."""
    peak = max((r.share(h.id) for r in results for h in r.lines), default=0.0)
    if peak <= 0:
        return 1.0, 0.25
    step = _nice_step(peak, 5)
    return math.ceil(peak / step - 1e-9) * step, step


def _ticks(result: RunResult) -> int:
    return len(result.lines[0].reputations) if result.lines else 0


def _time_x(tick: float, ticks: int) -> float:
    """The x of the start of ``tick`` on the strips' time axis."""
    return _LABEL_W + _STRIP_W * tick / (ticks or 1)


def lines_chart(result: RunResult, scale: tuple[float, float]) -> str:
    """Rows of: number, reputation strip over time, share-of-picks bar with its value.

    Over a strip, a band where the feedback loop had ejected the line, and a tick
    where it came back. Below the rows, a time axis under the strips and a share axis
    under the bars; across the strips, one numbered dashed line per pool event.
    """
    full, step = scale
    ticks = _ticks(result)
    rows_h = _ROW_H * len(result.lines)
    height = _ROWS_TOP + rows_h + _AXIS_H
    bar_x = _LABEL_W + _STRIP_W + _GAP
    parts = [
        _svg("lines", _CHART_W, height, "reputation over time and share of picks per line"),
        f'<text x="{_LABEL_W:g}" y="14">reputation, as the registry saw it</text>',
        f'<text x="{bar_x:g}" y="14">share of all sends</text>',
    ]
    for row, history in enumerate(result.lines):
        y = _ROWS_TOP + row * _ROW_H
        parts.append(f'<text x="0" y="{y + 13:g}">{esc(history.phone_number)}</text>')
        parts.append(_strip(history, _LABEL_W, y, _STRIP_W, _CELL_H))
        parts.extend(_ejected(p, ticks, y) for p in result.ejected_in(history.phone_number))
        share = result.share(history.id)
        w = _BAR_W * share / full
        parts.append(
            f'<rect x="{bar_x:g}" y="{y:g}" width="{w:.2f}" height="{_CELL_H:g}" '
            f'fill="{BAR_COLOR}"><title>{esc(history.phone_number)}: '
            f"{result.picks.get(history.id, 0):,} picks</title></rect>"
        )
        parts.append(f'<text x="{bar_x + w + 5:.1f}" y="{y + 13:g}">{100 * share:.1f}%</text>')
    axis_y = _ROWS_TOP + rows_h
    parts.append(_time_axis(ticks, axis_y))
    parts.append(_share_axis(full, step, bar_x, axis_y))
    parts.extend(
        _event_marker(number, event, ticks, axis_y)
        for number, event in enumerate(result.events, start=1)
    )
    parts.append("</svg>")
    return "".join(parts)


def _ejected(period: EjectedPeriod, ticks: int, y: float) -> str:
    """A band over the middle of the strip for the ejection, a tick at its return.

    The band leaves the strip's top and bottom showing: the list kept showing the
    line's reputation while the loop kept it out.
    """
    x0 = _time_x(period.start, ticks)
    end = ticks if period.end is None else period.end
    x1 = _time_x(end, ticks)
    until = "the end" if period.end is None else f"t={period.end * TICK_SECONDS:.0f}s"
    title = (
        f"<title>{esc(period.line)} ejected from t={period.start * TICK_SECONDS:.0f}s to "
        f"{until}: {esc(period.reason)}</title>"
    )
    band = (
        f'<rect class="ejected" x="{x0:.2f}" y="{y + 4:g}" width="{x1 - x0:.2f}" '
        f'height="{_CELL_H - 8:g}" fill="{EJECTED_HEX}">{title}</rect>'
    )
    if period.end is None:
        return band
    return band + (
        f'<line class="returned" x1="{x1:.2f}" y1="{y - 1:g}" x2="{x1:.2f}" '
        f'y2="{y + _CELL_H + 1:g}" stroke="{RETURNED_HEX}" stroke-width="2">{title}</line>'
    )


def _time_axis(ticks: int, y: float) -> str:
    """A baseline under the strips, a labelled tick every few simulated minutes.

    An unlabelled tick sits halfway between two labelled ones: more labels would crowd
    a narrow window.
    """
    end = ticks * TICK_SECONDS
    # Steps a clock reads well (two minutes, not 100 s); the last for runs of hours.
    step = next((s for s in _TIME_STEPS if end / s <= 6), _TIME_STEPS[-1])
    labelled = [step * k for k in range(int(end // step + 1e-9) + 1)]
    if end - labelled[-1] > step / 2:  # the run's end always gets a label
        labelled.append(end)
    elif labelled[-1] != end:
        labelled[-1] = end
    parts = [
        f'<line x1="{_LABEL_W:g}" y1="{y + 2:g}" x2="{_LABEL_W + _STRIP_W:g}" y2="{y + 2:g}" '
        f'stroke="#888"/>'
    ]
    minor = [s + step / 2 for s in labelled if s + step / 2 < end]
    for seconds in minor:
        x = _time_x(seconds / TICK_SECONDS, ticks)
        parts.append(
            f'<line x1="{x:.2f}" y1="{y + 2:g}" x2="{x:.2f}" y2="{y + 5:g}" stroke="#aaa"/>'
        )
    for seconds in labelled:
        x = _time_x(seconds / TICK_SECONDS, ticks)
        # The end labels sit inside the axis, clear of the share axis beside it.
        anchor = "start" if seconds == 0 else "end" if seconds == end else "middle"
        parts.append(
            f'<line x1="{x:.2f}" y1="{y + 2:g}" x2="{x:.2f}" y2="{y + 7:g}" stroke="#888"/>'
            f'<text class="axis" x="{x:.2f}" y="{y + 18:g}" text-anchor="{anchor}">'
            f"{seconds:.0f}s</text>"
        )
    parts.append(
        f'<text class="axis" x="{_LABEL_W + _STRIP_W / 2:g}" y="{y + 31:g}" '
        f'text-anchor="middle">simulated time ({esc(_duration(ticks))})</text>'
    )
    return "".join(parts)


def _share_axis(full: float, step: float, x0: float, y: float) -> str:
    """A baseline under the bars with the report-wide scale's percentages."""
    parts = [
        f'<line x1="{x0:g}" y1="{y + 2:g}" x2="{x0 + _BAR_W:g}" y2="{y + 2:g}" stroke="#888"/>'
    ]
    stops = round(full / step)
    for k in range(stops + 1):
        x = x0 + _BAR_W * k * step / full
        anchor = "start" if k == 0 else "middle"
        parts.append(
            f'<line x1="{x:.2f}" y1="{y + 2:g}" x2="{x:.2f}" y2="{y + 6:g}" stroke="#888"/>'
            f'<text class="axis" x="{x:.2f}" y="{y + 18:g}" text-anchor="{anchor}">'
            f"{100 * k * step:g}%</text>"
        )
    parts.append(
        f'<text class="axis" x="{x0 + _BAR_W / 2:g}" y="{y + 31:g}" text-anchor="middle">'
        f"same scale in every section</text>"
    )
    return "".join(parts)


def _event_marker(number: int, event: PoolEvent, ticks: int, axis_y: float) -> str:
    """A dashed line across the strips at the event's time, under its number."""
    x = _time_x(event.tick, ticks)
    title = f"<title>{number}. {esc(event_text(event))}</title>"
    return (
        f'<line class="event" x1="{x:.2f}" y1="{_ROWS_TOP - 6:g}" x2="{x:.2f}" '
        f'y2="{axis_y + 2:g}" stroke="{EVENT}" stroke-width="1.2" '
        f'stroke-dasharray="3 2">{title}</line>'
        f'<circle cx="{x:.2f}" cy="{_ROWS_TOP - 14:g}" r="7.5" fill="{EVENT}">{title}</circle>'
        f'<text class="event" x="{x:.2f}" y="{_ROWS_TOP - 10.5:g}" '
        f'text-anchor="middle">{number}</text>'
    )


def event_text(event: PoolEvent) -> str:
    """'t=80s: +12025550101 drops to CRITICAL'."""
    return f"t={event.tick * TICK_SECONDS:.0f}s: {event.label}"


def _duration(ticks: int) -> str:
    return f"{ticks * TICK_SECONDS / 60:g} minutes"


def _strip(history: LineHistory, x0: float, y: float, width: float, height: float) -> str:
    """One rect per run of ticks with the same reputation and status.

    Runs, not one rect per tick: scaled down to a narrow window, per-tick cells would
    show anti-aliased seams between them.
    """
    ticks = len(history.reputations) or 1
    cell = width / ticks
    states = list(zip(history.reputations, history.flagged, strict=True))
    rects = []
    start = 0
    for t in range(1, len(states) + 1):
        if t < len(states) and states[t] == states[start]:
            continue
        reputation, flagged = states[start]
        colour = ABSENT if reputation is None else REPUTATION_HEX[reputation]
        # Flagged stretches keep their reputation colour, faded: paused, not gone.
        fade = f' fill-opacity="{FLAGGED_OPACITY}"' if flagged else ""
        # A solid run overlaps the next a hair to hide the seam; a faded one would
        # darken where it does, and the last would run past the axis.
        overlap = 0.0 if flagged or t == len(states) else 0.5
        w = (t - start) * cell + overlap
        rects.append(
            f'<rect x="{x0 + start * cell:.2f}" y="{y:g}" width="{w:.2f}" height="{height:g}" '
            f'fill="{colour}"{fade}/>'
        )
        start = t
    return "".join(rects)


def reputation_chart(result: RunResult) -> str:
    """One stacked bar: the share of picks that went to each reputation."""
    width, height = _CHART_W, 30.0
    parts = [_svg("reputation", width, height, "share of picks by reputation")]
    x = 0.0
    for reputation in Reputation:
        count = result.by_reputation.get(reputation.value, 0)
        if not count:
            continue
        w = width * count / result.attempts
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height:g}" '
            f'fill="{REPUTATION_HEX[reputation]}"><title>{reputation.value}: '
            f"{percent(count, result.attempts)}</title></rect>"
        )
        if w > 100:
            parts.append(
                f'<text x="{x + 6:.1f}" y="{height / 2 + 4:g}">{reputation.value} '
                f"{percent(count, result.attempts)}</text>"
            )
        x += w
    parts.append("</svg>")
    return "".join(parts)
