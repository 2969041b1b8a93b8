"""How close a run came to its budgets, from its trace: ``BudgetFigures``. Pure.

Counted as the pacer counts (see ``Pacing``): a send Linq accepted or answered 429
counts against its line; an accepted one against its sender-recipient pair. Each
attempt's time is its tick's start, so "the most a line sent within any 24 h"
is exact for the run's sends whatever the router's storage held.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import attrs

from linq_router.pacing import Pacing
from linq_router.pacing._config import parse_rates

from ._attempt import Attempt

__all__ = ["BudgetFigures", "Rate", "budget_figures", "peak_in_window"]


@attrs.frozen
class Rate:
    """A budget's first rate: ``text`` as given ("7000/day"), ``amount`` per ``window`` s."""

    text: str
    amount: int
    window: float


def _first_rate(name: str, value: str | None) -> Rate | None:
    if value is None:
        return None
    item = parse_rates(name, value)[0]
    return Rate(value.split(";")[0].strip(), item.amount, float(item.get_expiry()))


def peak_in_window(times: Sequence[float], window: float) -> int:
    """The most of ``times`` (sorted) that fall within any ``window`` seconds.

    As ``limits``' moving window counts: an entry at ``t`` is in the window until
    ``t + window``.
    """
    best = first = 0
    for last, now in enumerate(times):
        while times[first] <= now - window:
            first += 1
        best = max(best, last - first + 1)
    return best


@attrs.frozen
class BudgetFigures:
    """A run's sends against a ``Pacing`` (the one it ran with, or would have).

    ``line_peaks`` maps each line id to the most it sent within any ``per_line``
    window; ``pairs_reached`` counts the sender-recipient pairs that sent ``per_pair``'s
    amount within its window, ``pairs_over`` those that sent more; ``pair_limited``
    the 429 / 1007 answers of the fake (``line_429s``: per line id);
    ``out_of_budget`` the picks that found every line out of budget
    (``BudgetExhaustedError``).
    """

    per_line: Rate | None
    per_pair: Rate | None
    paced: bool
    line_peaks: dict[str, int]
    pairs_reached: int
    pairs_over: int
    pair_limited: int
    out_of_budget: int
    line_429s: dict[str, int] = attrs.field(factory=dict)

    @property
    def peak(self) -> tuple[str | None, int]:
        """(line id, sends) of the line that sent the most within one window."""
        if not self.line_peaks:
            return None, 0
        line = max(self.line_peaks, key=lambda k: (self.line_peaks[k], k))
        return line, self.line_peaks[line]

    @property
    def lines_over(self) -> int:
        """Lines that sent more than ``per_line`` within one of its windows."""
        if self.per_line is None:
            return 0
        return sum(n > self.per_line.amount for n in self.line_peaks.values())


def budget_figures(
    attempts: Sequence[Attempt],
    recipients: Sequence[str],
    tick_seconds: float,
    pacing: Pacing | None,
    *,
    paced: bool,
) -> BudgetFigures:
    """The run's ``BudgetFigures`` against ``pacing`` (``None``: no budgets to meet)."""
    per_line = _first_rate("per_line", pacing.per_line) if pacing else None
    per_pair = _first_rate("per_pair", pacing.per_pair) if pacing else None
    line_times: dict[str, list[float]] = defaultdict(list)
    refused: Counter[str] = Counter()
    pair_times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for a in attempts:
        if a.line is None or a.answer not in ("accepted", "pair_limited"):
            continue
        at = a.tick * tick_seconds
        line_times[a.line].append(at)
        if a.answer == "pair_limited":
            refused[a.line] += 1
        else:
            pair_times[a.line, recipients[a.send]].append(at)
    window = per_line.window if per_line else 86_400.0
    peaks = {line: peak_in_window(times, window) for line, times in line_times.items()}
    reached = over = 0
    if per_pair is not None:
        for times in pair_times.values():
            if len(times) < per_pair.amount:
                continue
            peak = peak_in_window(times, per_pair.window)
            reached += peak >= per_pair.amount
            over += peak > per_pair.amount
    return BudgetFigures(
        per_line=per_line,
        per_pair=per_pair,
        paced=paced,
        line_peaks=peaks,
        pairs_reached=reached,
        pairs_over=over,
        pair_limited=sum(refused.values()),
        out_of_budget=sum(a.answer == "no_budget" for a in attempts),
        line_429s=dict(refused),
    )
