"""``linq-router simulate --day``'s report: each line's day against its budgets, paced and not.

Reads a ``DayResult`` and builds rich renderables; printing is the caller's. The
table keeps every number whole at any width (it folds rather than cuts).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from linq_router._models import Reputation

from ._budgets import BudgetFigures
from ._day import BURST_SIZE, BURSTS, DAY_TICK_SECONDS, DAY_TICKS, DayResult
from ._results import RunResult
from ._timeline import REPUTATION_COLOR

__all__ = ["render_day"]


def _figures(result: RunResult) -> BudgetFigures:
    assert result.budgets is not None  # a day always measures its budgets
    return result.budgets


def _reputation(result: RunResult, line_id: str) -> Text:
    history = next(h for h in result.lines if h.id == line_id)
    last = next((r for r in reversed(history.reputations) if r is not None), None)
    reputation = last or Reputation.UNKNOWN
    return Text(reputation.value, style=REPUTATION_COLOR[reputation])


def _peak_cell(figures: BudgetFigures, line_id: str) -> Text:
    peak = figures.line_peaks.get(line_id, 0)
    rate = figures.per_line
    over = rate is not None and peak > rate.amount
    return Text(f"{peak:,}", style="bold red" if over else "")


def _table(day: DayResult) -> Table:
    paced, unpaced = _figures(day.paced), _figures(day.unpaced)
    table = Table(title="each line's day: the most it sent within any 24 h", title_justify="left")
    table.add_column("line", no_wrap=True)
    table.add_column("reputation", no_wrap=True)
    table.add_column("per_line", justify="right")
    table.add_column("paced: most in 24 h", justify="right")
    table.add_column("429s", justify="right")
    table.add_column("unpaced: most in 24 h", justify="right")
    table.add_column("429s", justify="right")
    budget = paced.per_line.text if paced.per_line else "-"
    for history in day.paced.lines:
        line = history.id
        table.add_row(
            history.phone_number,
            _reputation(day.paced, line),
            budget,
            _peak_cell(paced, line),
            f"{paced.line_429s.get(line, 0):,}",
            _peak_cell(unpaced, line),
            f"{unpaced.line_429s.get(line, 0):,}",
        )
    return table


def _run_line(result: RunResult, numbers: dict[str, str]) -> Text:
    """'no line over its budget: the busiest, +1..., sent 200 of 200/day ...; 0 429/1007'."""
    figures = _figures(result)
    over = figures.lines_over
    good = over == 0 and figures.pair_limited == 0
    line, peak = figures.peak
    rate = figures.per_line
    text = Text()
    if over:
        text.append(f"{over} line{'s' if over > 1 else ''} over budget", style="bold red")
    else:
        text.append("no line over budget", style="bold green")
    if rate is not None and line is not None:
        text.append(
            f" (busiest: {numbers.get(line, line)}, {peak:,} sends within 24 h, "
            f"budget {rate.amount:,})"
        )
    text.append("; ")
    text.append(
        f"{figures.pair_limited:,} 429/1007 from the fake",
        style="bold green" if figures.pair_limited == 0 else "bold red",
    )
    if figures.per_pair is not None and figures.paced:
        text.append(
            f"; {figures.pairs_reached:,} pairs held at {figures.per_pair.text}, "
            f"{figures.pairs_over:,} passed it"
        )
    if figures.out_of_budget:
        text.append(f"; {figures.out_of_budget:,} picks found every line out of budget")
    text.append(f"; {result.elapsed:.1f} s of wall time")
    if not good and figures.paced:
        text.stylize("red")
    return text


def render_day(day: DayResult) -> RenderableType:
    """The day's report: the per-line table, the budgets chosen, then each run's verdict."""
    paced = day.paced
    seconds = DAY_TICKS * DAY_TICK_SECONDS
    title = Text(
        f"simulate --day: {paced.spec!r}, seed {paced.seed} (demo pool): {paced.sends:,} "
        f"sends over {seconds:,.0f} simulated seconds ({DAY_TICKS} ticks of "
        f"{DAY_TICK_SECONDS:.0f} s), {paced.workers} in flight",
        style="bold",
    )
    numbers = {h.id: h.phone_number for h in paced.lines}
    figures = _figures(paced)
    per_line = figures.per_line.text if figures.per_line else "off"
    per_pair = figures.per_pair.text if figures.per_pair else "off"
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row(
        "budgets",
        f"per_line {per_line} (Linq's 7000/day scaled to this day: an eighth of its sends); "
        f"per_pair {per_pair} (Linq's hard limit, unscaled)",
    )
    grid.add_row(
        "workload",
        f"new and returning recipients all day, and {BURSTS} bursts of {BURST_SIZE} "
        "messages to one recipient within a tick",
    )
    grid.add_row("with pacing", _run_line(paced, numbers))
    grid.add_row("without pacing", _run_line(day.unpaced, numbers))
    sent = paced.sending
    if sent is not None and paced.workers > 1:
        grid.add_row(
            "note",
            f"{paced.workers} sends in flight: a line may pass its budget by the sends "
            "picked before the one that filled it was reported",
        )
    return Group(title, _table(day), "", grid)
