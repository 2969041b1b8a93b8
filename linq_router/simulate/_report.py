"""``linq-router simulate``'s terminal report: rich tables of one run or several side by side.

Everything here reads ``RunResult`` values and builds rich renderables; printing is
the caller's. The tables fit the console they are printed on (``_fit``): on a
narrow terminal they drop the bars, the line type and the timeline, in that order,
but never a number, a pick count or a share. The timeline (``_timeline``) marks the
feedback loop's ejections; the figures compare the loop with the naive worker. The
HTML report (``_html``) shows the same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
from rich.console import Group, OverflowMethod, RenderableType
from rich.table import Table
from rich.text import Text

from linq_router._fit import Fit
from linq_router._models import Reputation

from ._results import RunResult, SendFigures, percent
from ._timeline import REPUTATION_COLOR, ejection_note, legend, periods_text, timeline
from ._workload import TICK_SECONDS

__all__ = [
    "budget_row",
    "critical_verdict",
    "loop_verdict",
    "render_compare",
    "render_run",
    "sticky_verdict",
]

_BAR_WIDTH = 24


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
            text.append(f" {percent(count, result.attempts)}")
    if result.no_eligible:
        text.append(f"  no eligible line {percent(result.no_eligible, result.attempts)}")
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
    refused = single and results[0].sending is not None
    for result in results:
        label = "picks" if single else result.spec
        table.add_column(label, justify="right", no_wrap=single and not fold, overflow=overflow)
        if refused:
            table.add_column("refused", justify="right", no_wrap=not fold, overflow=overflow)
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
            periods = [p for r in results for p in r.ejected_in(history.phone_number)]
            row.append(timeline(history, periods))
        for result in results:
            row += _share_cells(result, history.id, peak, single=single, bars=columns.bars)
        table.add_row(*row)
    return table


def _share_cells(
    result: RunResult, line_id: str, peak: float, *, single: bool, bars: bool
) -> list[RenderableType]:
    """One run's cells of a line's row: picks, refusals, share and bar alone; or a share."""
    share = result.share(line_id)
    if single:
        cells: list[RenderableType] = [f"{result.picks.get(line_id, 0):,}"]
        if result.sending is not None:
            cells.append(f"{result.hits.get(line_id, 0):,}")
        cells.append(f"{100 * share:.1f}%")
        return [*cells, _bar(share, peak)] if bars else cells
    if bars:
        return [Text.assemble(_bar(share, peak, 10), f" {100 * share:5.1f}%")]
    return [f"{100 * share:.1f}%"]


def _lines_block(results: Sequence[RunResult], title: str) -> Fit:
    """The per-line table (with its legend) in the richest layout the width allows."""
    loop = any(r.ejection is not None and r.sending is not None for r in results)

    def layout(columns: _Columns, *, fold: bool = False) -> Callable[[], Group]:
        def build() -> Group:
            parts: list[RenderableType] = [_lines_table(results, title, columns, fold=fold)]
            if columns.timeline:
                parts += legend(loop=loop, several=len(results) > 1)
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
        (f"{result.to_critical:,} ({percent(result.to_critical, result.attempts)})", "bold red"),
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


def _sends(n: int, what: str) -> str:
    return f"{n:,} send{'' if n == 1 else 's'} hit {what}"


def loop_verdict(result: RunResult) -> Text | None:
    """'with the loop: 4 sends hit ineligible lines (naive worker: 73)', or None."""
    sending, naive = result.sending, _naive_sending(result)
    if sending is None or naive is None:
        return None
    good = sending.ineligible < naive.ineligible or naive.ineligible == 0
    return Text.assemble(
        "with the loop: ",
        (_sends(sending.ineligible, "ineligible lines"), "bold green" if good else "bold red"),
        f" (naive worker: {naive.ineligible:,})",
    )


def _naive_sending(result: RunResult) -> SendFigures | None:
    return None if result.naive is None else result.naive.sending


def _versus(result: RunResult, figure: Callable[[SendFigures], int], what: str) -> str:
    sending, naive = result.sending, _naive_sending(result)
    assert sending is not None  # only asked of runs that sent
    text = f"{figure(sending):,} {what}"
    return text + (f" (naive worker: {figure(naive):,})" if naive is not None else "")


def _send_rows(result: RunResult) -> list[tuple[str, RenderableType]]:
    """The rows about the sends and the feedback loop; none for a run that only picked."""
    sending = result.sending
    if sending is None:
        return []
    verdict = loop_verdict(result)
    ineligible: RenderableType = (
        verdict
        if verdict is not None
        else _versus(result, lambda s: s.ineligible, "sends answered 403/2027")
    )
    returned = sum(p.end is not None for p in result.ejections)
    return [
        ("to an ineligible line", ineligible),
        (
            "to a failing line",
            _versus(result, lambda s: s.failing, "sends hit a failing line, none resent"),
        ),
        ("repicks", _versus(result, lambda s: s.repicks, "resends on a new pick after a 2027")),
        ("lost sends", _versus(result, lambda s: s.lost, "never accepted")),
        (
            "feedback loop",
            f"{len(result.ejections)} ejections, {returned} returns"
            if result.ejection is not None
            else "off (the naive worker)",
        ),
    ]


def _summary_rows(result: RunResult) -> list[tuple[str, RenderableType]]:
    factor = result.uncached_api_calls / result.api_calls if result.api_calls else float("inf")
    # A run shorter than the TTL schedule can make more calls than it has sends.
    saving = f"{factor:,.0f}x fewer" if factor >= 1.5 else "no saving on a run this short"
    threads = "thread" if result.workers == 1 else "threads"
    sending = result.sending
    sends = f"{result.sends:,} from {result.workers} {threads}"
    if sending is not None:
        sends += f": {sending.requests:,} creates sent to the fake, {sending.accepted:,} accepted"
    rows: list[tuple[str, RenderableType]] = [("sends", sends)]
    if sending is not None:
        rows.append(("sends/s", f"{result.sends_per_second:,.0f} (HTTP to the fake included)"))
    rows += [
        ("picks/s", f"{result.picks_per_second:,.0f}"),
        ("share by reputation", _reputation_share(result)),
        (
            "API calls",
            f"{result.api_calls:,} list requests vs {result.uncached_api_calls:,} when listing "
            f"before each send: {saving}",
        ),
        (
            "retries / refreshes",
            f"{result.retries} retries, {result.refreshes} refreshes, {result.failures} failed",
        ),
        ("to a CRITICAL line", critical_verdict(result)),
        ("to a FLAGGED line", f"{result.to_flagged:,}"),
        ("returning recipients", sticky_verdict(result)),
    ]
    rows += _send_rows(result)
    budgets = budget_row(result)
    return rows if budgets is None else [*rows, ("budgets", budgets)]


def budget_row(result: RunResult) -> str | None:
    """'per_line 7000/day: busiest line +1... used 154 (2.2%); per_pair 30/minute: ...'."""
    figures = result.budgets
    if figures is None or result.sending is None:
        return None
    if not figures.paced:
        return "off (pacing=None)"
    numbers = {h.id: h.phone_number for h in result.lines}
    parts = []
    if figures.per_line is not None:
        line, used = figures.peak
        rate = figures.per_line
        who = f"busiest line {numbers.get(line, line)}" if line is not None else "no line"
        parts.append(f"per_line {rate.text}: {who} used {used:,} ({percent(used, rate.amount)})")
    if figures.per_pair is not None:
        pairs = "pair" if figures.pairs_reached == 1 else "pairs"
        parts.append(
            f"per_pair {figures.per_pair.text}: {figures.pairs_reached:,} {pairs} reached it, "
            f"{figures.pair_limited:,} 429s from the fake"
        )
    if figures.out_of_budget:
        parts.append(f"{figures.out_of_budget:,} picks found every line out of budget")
    return "; ".join(parts) or "none set"


def _events(result: RunResult) -> Text:
    text = Text("pool events: ")
    text.append(
        "; ".join(f"t={e.tick * TICK_SECONDS:.0f}s {e.label}" for e in result.events) or "none"
    )
    return text


def _loop_lines(results: Sequence[RunResult]) -> list[RenderableType]:
    """Where the loop ejected lines in each run, and with which settings."""
    looped = [r for r in results if r.ejection is not None and r.sending is not None]
    if not looped:
        return []
    lines: list[RenderableType] = []
    for result in looped:
        who = f" ({result.spec})" if len(results) > 1 else ""
        lines.append(Text(f"feedback loop{who}: {periods_text(result.ejections)}"))
    first = looped[0]
    assert first.ejection is not None
    run_seconds = len(first.lines[0].reputations) * TICK_SECONDS if first.lines else 0.0
    lines.append(Text(ejection_note(first.ejection, run_seconds), style="dim"))
    return lines


def render_run(result: RunResult, *, demo: bool = True) -> RenderableType:
    """The report of one run: the per-line table, the events, then the figures."""
    title = f"simulate: {result.spec!r}, seed {result.seed}" + (" (demo pool)" if demo else "")
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    for name, value in _summary_rows(result):
        summary.add_row(name, value)
    loop = _loop_lines([result])
    return Group(_lines_block([result], title), _events(result), *loop, "", summary)


def render_compare(results: Sequence[RunResult], *, demo: bool = True) -> RenderableType:
    """Several runs of the same workload side by side, with the verdicts."""
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
    return Group(
        _lines_block(results, title),
        _events(first),
        *_loop_lines(results),
        "",
        figures,
        _verdicts(results),
    )


def _verdicts(results: Sequence[RunResult]) -> Text:
    """Which specs kept off CRITICAL lines, how sticky stuck, what the loop saved."""
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
    for result in results:
        verdict = loop_verdict(result)
        if verdict is not None:
            verdicts.append(f"\n{result.spec!r} ")
            verdicts.append_text(verdict)
    return verdicts
