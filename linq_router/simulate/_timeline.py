"""The terminal report's per-line timeline: reputation over the run, and the loop's ejections.

Each of a row's cells covers a stretch of the run's ticks. It shows the worst
reputation the registry listed for the line in that stretch (so a short drop to
CRITICAL is never averaged away), or ``x`` where Linq listed it FLAGGED; the feedback
loop's marks go over both: ``-`` where the router had ejected the line, ``+`` where it
came back (and stayed). Glyphs differ in shape as well as colour, so piped output
still reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs
from rich.text import Text

from linq_router._models import Reputation
from linq_router.feedback import Ejection

from ._results import EjectedPeriod, LineHistory
from ._workload import TICK_SECONDS

__all__ = [
    "EJECTED_GLYPH",
    "GLYPH",
    "REPUTATION_COLOR",
    "RETURNED_GLYPH",
    "TIMELINE_WIDTH",
    "Cell",
    "Mark",
    "ejection_note",
    "legend",
    "periods_text",
    "timeline",
    "timeline_cells",
]

REPUTATION_COLOR = {
    Reputation.HEALTHY: "green",
    Reputation.AT_RISK: "yellow",
    Reputation.CRITICAL: "red",
    Reputation.UNKNOWN: "magenta",
}
"""The terminal colour of each reputation."""
GLYPH = {
    Reputation.HEALTHY: "█",
    Reputation.AT_RISK: "▒",
    Reputation.CRITICAL: "░",
    Reputation.UNKNOWN: "?",
}
"""Timeline cells differ in shape as well as colour, so piped output still reads."""
EJECTED_GLYPH = "-"
"""A stretch during which the feedback loop had ejected the line."""
RETURNED_GLYPH = "+"
"""The stretch in which the line came back from an ejection and stayed back."""
_LOOP_STYLE = "bold cyan"
TIMELINE_WIDTH = 30
"""Cells in a row's timeline."""

Mark = Literal["ejected", "returned"] | None
"""The feedback loop's mark on a cell, if any."""


@attrs.frozen
class Cell:
    """One timeline cell: the worst reputation listed, FLAGGED, and the loop's mark."""

    reputation: Reputation | None
    flagged: bool
    mark: Mark = None


def _mark(periods: Sequence[EjectedPeriod], lo: int, hi: int) -> Mark:
    """The loop's mark for ticks ``lo`` to ``hi`` (exclusive)."""
    out_at_end = any(p.covers(hi - 1) for p in periods)
    if not out_at_end and any(p.end is not None and lo <= p.end < hi for p in periods):
        return "returned"
    if any(p.start < hi and (p.end is None or p.end > lo) for p in periods):
        return "ejected"
    return None


def timeline_cells(
    history: LineHistory,
    periods: Sequence[EjectedPeriod] = (),
    width: int = TIMELINE_WIDTH,
) -> list[Cell]:
    """The line's run in ``width`` cells; ``periods`` are its ejections (any run's)."""
    ticks = len(history.reputations)
    cells = []
    for k in range(min(width, ticks)):
        lo, hi = k * ticks // width, max((k + 1) * ticks // width, k * ticks // width + 1)
        seen = [r for r in history.reputations[lo:hi] if r is not None]
        worst = max(seen, key=lambda r: r.rank) if seen else None
        cells.append(Cell(worst, any(history.flagged[lo:hi]), _mark(periods, lo, hi)))
    return cells


def timeline(history: LineHistory, periods: Sequence[EjectedPeriod] = ()) -> Text:
    """The row's timeline as rich text."""
    text = Text()
    for cell in timeline_cells(history, periods):
        if cell.mark == "ejected":
            text.append(EJECTED_GLYPH, style=_LOOP_STYLE)
        elif cell.mark == "returned":
            text.append(RETURNED_GLYPH, style=_LOOP_STYLE)
        elif cell.reputation is None:
            text.append(" ")
        else:
            glyph = "x" if cell.flagged else GLYPH[cell.reputation]
            text.append(glyph, style=REPUTATION_COLOR[cell.reputation])
    return text


def legend(*, loop: bool, several: bool = False) -> list[Text]:
    """What the glyphs mean; with ``loop``, a second line for the feedback loop's marks."""
    text = Text("reputation over time (each cell a stretch of the run, worst shown): ")
    for reputation in (Reputation.HEALTHY, Reputation.AT_RISK, Reputation.CRITICAL):
        text.append(GLYPH[reputation], style=REPUTATION_COLOR[reputation])
        text.append(f" {reputation.value}  ")
    text.append("x FLAGGED")
    if not loop:
        return [text]
    marks = Text()
    marks.append(EJECTED_GLYPH, style=_LOOP_STYLE)
    marks.append(" ejected by the feedback loop" + (" in any run" if several else "") + "  ")
    marks.append(RETURNED_GLYPH, style=_LOOP_STYLE)
    marks.append(" back from an ejection")
    return [text, marks]


def _seconds(tick: int) -> str:
    return f"{tick * TICK_SECONDS:.0f}s"


def periods_text(periods: Sequence[EjectedPeriod]) -> str:
    """'+1... out t=130s-190s, 190s-310s (2027); +1... out t=325s-355s (5xx), ...'."""
    by_line: dict[str, list[EjectedPeriod]] = {}
    for period in periods:
        by_line.setdefault(period.line, []).append(period)
    parts = []
    for line, own in by_line.items():
        stretches = ", ".join(
            f"{_seconds(p.start)}-{_seconds(p.end) if p.end is not None else 'end'}" for p in own
        )
        causes = sorted({"403/2027" if p.cause == "2027" else "5xx in a row" for p in own})
        parts.append(f"{line} out t={stretches} ({', '.join(causes)})")
    return "; ".join(parts) or "no line ejected"


def ejection_note(ejection: Ejection, run_seconds: float) -> str:
    """How the loop ejected in this run, and how that compares with the defaults."""
    default = Ejection()
    scaled = ""
    if ejection.ineligible_time != default.ineligible_time:
        scaled = (
            f" (the library's default, {default.ineligible_time:g} s, scaled to this "
            f"{run_seconds / 60:g}-minute run)"
        )
    return (
        f"ejection: a 2027 ejects a line for {ejection.ineligible_time:g} s, doubling on "
        f"repeats{scaled}; {ejection.consecutive_failures} failures in a row for "
        f"{ejection.base_time:g} s x n, at most {ejection.max_percent:g}% of the lines at once"
    )
