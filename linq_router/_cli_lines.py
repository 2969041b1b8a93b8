"""How the command line shows lines: a table that fits the terminal, JSON, a summary.

And their budgets (``budgets_table``): each line's use of each ``Pacing`` rate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ._fit import Fit
from ._models import PhoneNumber, Reputation

if TYPE_CHECKING:
    from .pacing import Budget

__all__ = [
    "REPUTATION_STYLE",
    "budgets_table",
    "line_json",
    "lines_table",
    "reputation_summary",
    "resets_in",
]

REPUTATION_STYLE = {
    Reputation.HEALTHY: "green",
    Reputation.AT_RISK: "yellow",
    Reputation.CRITICAL: "red",
    Reputation.UNKNOWN: "magenta",
}


def line_json(line: PhoneNumber) -> dict[str, Any]:
    """A line as plain JSON, for ``--json`` output."""
    return {
        "id": line.id,
        "phone_number": line.phone_number,
        "reputation": line.reputation_raw or line.reputation.value,
        "line_type": line.line_type,
        "status": line.status,
        "forwarding_number": line.forwarding_number,
    }


def reputation_summary(lines: list[PhoneNumber]) -> str:
    """'12 lines: 9 HEALTHY, 2 AT_RISK, 1 CRITICAL' (only the statuses present)."""
    counts = Counter(line.reputation for line in lines)
    parts = [f"{counts[r]} {r.value}" for r in Reputation if counts[r]]
    flagged = sum(line.is_flagged for line in lines)
    if flagged:
        parts.append(f"{flagged} FLAGGED")
    return f"{len(lines)} lines: " + (", ".join(parts) if parts else "none")


_LINE_COLUMNS = ("number", "id", "reputation", "status", "line type", "forwarding")
# Dropped in this order when the terminal is too narrow; the number and the id, which
# people copy (into `update`, say), always stay.
_DROPPABLE = ("forwarding", "line type", "status")


def lines_table(lines: list[PhoneNumber], title: str) -> Fit:
    """The lines as a table, with as many columns as the console's width allows."""

    def layout(hidden: tuple[str, ...], *, fold: bool = False) -> Callable[[], Group]:
        def build() -> Group:
            table = Table(title=title)
            columns = [c for c in _LINE_COLUMNS if c not in hidden]
            for column in columns:
                # The last resort folds values onto a second line rather than cut them.
                table.add_column(column, no_wrap=not fold, overflow="fold" if fold else "ellipsis")
            for line in lines:
                style = REPUTATION_STYLE[line.reputation]
                cells = {
                    "number": line.phone_number,
                    "id": line.id,
                    "reputation": f"[{style}]{line.reputation_raw or line.reputation.value}"
                    f"[/{style}]",
                    "status": "[red]FLAGGED[/red]" if line.is_flagged else (line.status or "-"),
                    "line type": line.line_type or "-",
                    "forwarding": line.forwarding_number or "-",
                }
                table.add_row(*(cells[c] for c in columns))
            parts: list[RenderableType] = [table]
            if hidden:
                names = _and([c for c in _LINE_COLUMNS if c in hidden])
                note = f"({names} not shown at this width; --json has every field)"
                parts.append(Text(note, style="dim"))
            return Group(*parts)

        return build

    layouts = [layout(_DROPPABLE[:k]) for k in range(len(_DROPPABLE) + 1)]
    return Fit(layouts, fallback=layout(_DROPPABLE, fold=True))


def _and(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def resets_in(seconds: float) -> str:
    """'23h 50m', '4m 10s', '12s': how long until a window frees room."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def budgets_table(budgets: Sequence[Budget], now: float, title: str) -> Table:
    """Each line's budgets: line, kind, limit, used, remaining and when it resets.

    ``now`` is the router's clock (``Budget.resets_at`` is on it); a window that holds
    nothing has nothing to reset ("-"). Values fold rather than lose characters.
    """
    table = Table(title=title, title_justify="left")
    table.add_column("line", no_wrap=True)
    table.add_column("kind", overflow="fold")
    table.add_column("limit", overflow="fold")
    for name in ("used", "remaining"):
        table.add_column(name, justify="right", overflow="fold")
    table.add_column("resets in", justify="right", overflow="fold")
    for budget in budgets:
        out = budget.remaining == 0
        table.add_row(
            budget.line,
            budget.kind,
            budget.limit,
            f"{budget.used:,}",
            f"[red]{budget.remaining:,}[/red]" if out else f"{budget.remaining:,}",
            resets_in(budget.resets_at - now) if budget.used else "-",
        )
    return table
