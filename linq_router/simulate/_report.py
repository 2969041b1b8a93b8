"""``linq-router simulate``'s terminal report: rich tables of one run or several side by side.

Everything here reads ``RunResult`` values and builds rich renderables; printing is
the caller's. The tables fit the console they are printed on (``_fit``): on a
narrow terminal they drop the bars, the line type and the timeline, in that order,
but never a number, a pick count or a share. The HTML report (``_html``)
shows the same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
from rich.console import Group, OverflowMethod, RenderableType
from rich.table import Table
from rich.text import Text

from linq_router._fit import Fit
from linq_router._models import Reputation

from ._engine import TICK_SECONDS, LineHistory, RunResult, percent

__all__ = [
    "GLYPH",
    "REPUTATION_COLOR",
    "critical_verdict",
    "render_compare",
    "render_run",
    "sticky_verdict",
    "timeline_cells",
]

REPUTATION_COLOR = {
    Reputation.HEALTHY: "green",
    Reputation.AT_RISK: "yellow",
    Reputation.CRITICAL: "red",
    Reputation.UNKNOWN: "magenta",
}
GLYPH = {
    Reputation.HEALTHY: "█",
    Reputation.AT_RISK: "▒",
    Reputation.CRITICAL: "░",
    Reputation.UNKNOWN: "?",
}
"""Timeline cells differ in shape as well as colour, so piped output still reads."""
_TIMELINE_WIDTH = 30
_BAR_WIDTH = 24


def timeline_cells(
    history: LineHistory, width: int = _TIMELINE_WIDTH
) -> list[tuple[Reputation | None, bool]]:
    """The line's reputation over the run in ``width`` cells: (worst reputation, flagged).

    Each cell covers a run of ticks and shows the worst standing seen in it, so a
    short drop to CRITICAL is never averaged away.
    """
    ticks = len(history.reputations)
    cells = []
    for k in range(min(width, ticks)):
        lo, hi = k * ticks // width, max((k + 1) * ticks // width, k * ticks // width + 1)
        seen = [r for r in history.reputations[lo:hi] if r is not None]
        worst = max(seen, key=lambda r: r.rank) if seen else None
        cells.append((worst, any(history.flagged[lo:hi])))
    return cells


def _timeline(history: LineHistory) -> Text:
    text = Text()
    for reputation, flagged in timeline_cells(history):
        if reputation is None:
            text.append(" ")
        else:
            text.append("x" if flagged else GLYPH[reputation], style=REPUTATION_COLOR[reputation])
    return text


def _bar(share: float, peak: float, width: int = _BAR_WIDTH) -> Text:
    filled = round(width * share / peak) if peak > 0 else 0
    return Text("█" * filled, style="cyan")


def _reputation_share(result: RunResult) -> Text:
    text = Text()
    for reputation in Reputation:
        count = result.by_reputation.get(reputation.value, 0)
        if count or reputation is not Reputation.UNKNOWN:
            if text:
                text.append("  ")
            text.append(reputation.value, style=REPUTATION_COLOR[reputation])
            text.append(f" {percent(count, result.sends)}")
    if result.no_eligible:
        text.append(f"  no eligible line {percent(result.no_eligible, result.sends)}")
    return text


def _legend() -> Text:
    text = Text("reputation over time (each cell a stretch of the run, worst shown): ")
    for reputation in (Reputation.HEALTHY, Reputation.AT_RISK, Reputation.CRITICAL):
        text.append(GLYPH[reputation], style=REPUTATION_COLOR[reputation])
        text.append(f" {reputation.value}  ")
    text.append("x FLAGGED")
    return text


@attrs.frozen
class _Columns:
    """Which of the per-line table's optional columns a layout shows."""

    bars: bool = True
    line_type: bool = True
    timeline: bool = True

    def hidden(self) -> list[str]:
        """The names of the columns worth saying are missing (bars are not)."""
        return [
            name
            for name, shown in (
                ("line type", self.line_type),
                ("reputation over time", self.timeline),
            )
            if not shown
        ]


# Narrower and narrower: first the bars go (the share says the same), then the line
# type, then the timeline; the numbers, picks and shares always stay.
_LAYOUTS = (
    _Columns(),
    _Columns(bars=False),
    _Columns(bars=False, line_type=False),
    _Columns(bars=False, line_type=False, timeline=False),
)


def _lines_table(
    results: Sequence[RunResult],
    title: str,
    columns: _Columns = _LAYOUTS[0],
    *,
    fold: bool = False,
) -> Table:
    # ``fold`` is the last resort: the values people copy (numbers, picks, shares) fold
    # onto a second line rather than lose characters.
    overflow: OverflowMethod = "fold" if fold else "ellipsis"
    table = Table(title=title, title_justify="left")
    table.add_column("line", no_wrap=not fold, overflow=overflow)
    if columns.line_type:
        table.add_column("type", no_wrap=True)
    if columns.timeline:
        table.add_column("reputation over time", no_wrap=True)
    single = len(results) == 1
    for result in results:
        label = "picks" if single else result.spec
        table.add_column(label, justify="right", no_wrap=single and not fold, overflow=overflow)
        if single:
            table.add_column("share", justify="right", no_wrap=not fold, overflow=overflow)
            if columns.bars:
                table.add_column("", no_wrap=True)
    peak = max((r.share(h.id) for r in results for h in r.lines), default=0.0)
    for history in results[0].lines:
        row: list[RenderableType] = [history.phone_number]
        if columns.line_type:
            row.append(history.line_type or "-")
        if columns.timeline:
            row.append(_timeline(history))
        for result in results:
            row += _share_cells(result, history.id, peak, single=single, bars=columns.bars)
        table.add_row(*row)
    return table


def _share_cells(
    result: RunResult, line_id: str, peak: float, *, single: bool, bars: bool
) -> list[RenderableType]:
    """One run's cells of a line's row: picks, share and bar alone; a share beside others."""
    share = result.share(line_id)
    if single:
        cells: list[RenderableType] = [f"{result.picks.get(line_id, 0):,}", f"{100 * share:.1f}%"]
        return [*cells, _bar(share, peak)] if bars else cells
    if bars:
        return [Text.assemble(_bar(share, peak, 10), f" {100 * share:5.1f}%")]
    return [f"{100 * share:.1f}%"]


def _lines_block(results: Sequence[RunResult], title: str) -> Fit:
    """The per-line table (with its legend) in the richest layout the width allows."""

    def layout(columns: _Columns, *, fold: bool = False) -> Callable[[], Group]:
        def build() -> Group:
            parts: list[RenderableType] = [_lines_table(results, title, columns, fold=fold)]
            if columns.timeline:
                parts.append(_legend())
            hidden = columns.hidden()
            if hidden:
                note = f"({' and '.join(hidden)} not shown at this width; see --report)"
                parts.append(Text(note, style="dim"))
            return Group(*parts)

        return build

    return Fit([layout(c) for c in _LAYOUTS], fallback=layout(_LAYOUTS[-1], fold=True))


def critical_verdict(result: RunResult) -> Text:
    """'picks to a CRITICAL line: 0 (expected: none)', red with examples when not zero."""
    if not result.to_critical:
        return Text.assemble("picks to a CRITICAL line: ", ("0", "bold green"), " (expected: none)")
    text = Text.assemble(
        "picks to a CRITICAL line: ",
        (f"{result.to_critical:,} ({percent(result.to_critical, result.sends)})", "bold red"),
        " (expected: none), e.g. ",
    )
    text.append(
        ", ".join(f"send #{i} to {to} from {line}" for i, to, line in result.critical_examples[:2])
    )
    return text


def sticky_verdict(result: RunResult) -> str:
    """How often returning recipients stayed on their previous line."""
    rate = result.stay_rate
    if rate is None:
        return "none in this workload"
    return f"kept their previous line: {100 * rate:.1f}% of {result.returning:,} returning sends"


def _summary_rows(result: RunResult) -> list[tuple[str, RenderableType]]:
    factor = result.naive_api_calls / result.api_calls if result.api_calls else float("inf")
    # A run shorter than the TTL schedule can make more calls than it has sends.
    saving = f"{factor:,.0f}x fewer" if factor >= 1.5 else "no saving on a run this short"
    threads = "thread" if result.workers == 1 else "threads"
    return [
        ("sends", f"{result.sends:,} from {result.workers} {threads}"),
        ("picks/s", f"{result.picks_per_second:,.0f}"),
        ("share by reputation", _reputation_share(result)),
        (
            "API calls",
            f"{result.api_calls:,} list requests vs {result.naive_api_calls:,} naive "
            f"(list before each send): {saving}",
        ),
        (
            "retries / refreshes",
            f"{result.retries} retries, {result.refreshes} refreshes, {result.failures} failed",
        ),
        ("to a CRITICAL line", critical_verdict(result)),
        ("to a FLAGGED line", f"{result.to_flagged:,}"),
        ("returning recipients", sticky_verdict(result)),
    ]


def _events(result: RunResult) -> Text:
    text = Text("pool events: ")
    text.append(
        "; ".join(f"t={e.tick * TICK_SECONDS:.0f}s {e.label}" for e in result.events) or "none"
    )
    return text


def render_run(result: RunResult, *, demo: bool = True) -> RenderableType:
    """The report of one run: the per-line table, then the figures."""
    title = f"simulate: {result.spec!r}, seed {result.seed}" + (" (demo pool)" if demo else "")
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    for name, value in _summary_rows(result):
        summary.add_row(name, value)
    return Group(_lines_block([result], title), _events(result), "", summary)


def render_compare(results: Sequence[RunResult], *, demo: bool = True) -> RenderableType:
    """Several runs of the same workload side by side, with the two verdicts."""
    first = results[0]
    title = (
        f"simulate --compare: {first.sends:,} sends, seed {first.seed}"
        + (" (demo pool)" if demo else "")
        + ": share of picks per line"
    )
    rows = [_summary_rows(r) for r in results]

    def side_by_side() -> Table:
        figures = Table(title="side by side", title_justify="left")
        figures.add_column("", style="bold", no_wrap=True)
        for result in results:
            figures.add_column(result.spec)
        for k, (name, _value) in enumerate(rows[0]):
            if name == "sends":
                continue
            figures.add_row(name, *(row[k][1] for row in rows))
        return figures

    def one_after_another() -> Group:
        # Too narrow for the specs side by side: each spec's figures on their own.
        parts: list[RenderableType] = []
        for result, summary_rows in zip(results, rows, strict=True):
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="bold", no_wrap=True)
            grid.add_column(overflow="fold")
            for name, value in summary_rows:
                if name != "sends":
                    grid.add_row(name, value)
            parts += [Text(result.spec, style="bold underline", overflow="fold"), grid, ""]
        return Group(*parts)

    figures = Fit([side_by_side], fallback=one_after_another)
    verdicts = Text()
    clean = [r.spec for r in results if r.to_critical == 0]
    dirty = [r.spec for r in results if r.to_critical]
    verdicts.append("CRITICAL lines at zero picks: ")
    verdicts.append(", ".join(clean) or "none", style="green")
    if dirty:
        verdicts.append("; not: ")
        verdicts.append(", ".join(dirty), style="red")
    for result in results:
        if "sticky" in result.spec and result.stay_rate is not None:
            others = [r for r in results if r is not result and r.stay_rate is not None]
            verdicts.append(
                f"\nsticky keeps returning recipients on one line: {result.spec!r} "
                f"{100 * result.stay_rate:.1f}%"
            )
            if others:
                verdicts.append(
                    " vs "
                    + ", ".join(f"{r.spec!r} {100 * (r.stay_rate or 0):.1f}%" for r in others)
                )
    return Group(_lines_block(results, title), _events(first), "", figures, verdicts)
