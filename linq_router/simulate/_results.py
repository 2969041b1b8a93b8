"""What one simulated run did: ``RunResult``, built from a run's raw trace by ``summarize``.

Pure: the engine (``_engine``) records a ``_Trace`` as it goes; everything the
reports show is computed here from it, in send order, so that the figures do not
depend on how the worker threads interleaved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import attrs

from linq_router._models import PhoneNumber, Reputation, Snapshot
from linq_router.feedback import Ejection

from ._attempt import Answer, Attempt
from ._workload import PoolEvent, Workload

if TYPE_CHECKING:  # _budgets reads attempts: only the annotation is needed here
    from linq_router.pacing import Budget

    from ._budgets import BudgetFigures

__all__ = [
    "Answer",
    "Attempt",
    "EjectedPeriod",
    "LineHistory",
    "RunResult",
    "SendFigures",
    "percent",
    "summarize",
]


def percent(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole`` to one decimal, or "-" when there is none."""
    return f"{100 * part / whole:.1f}%" if whole else "-"


@attrs.frozen
class EjectedPeriod:
    """A stretch of the run during which the feedback loop kept ``line`` out of the picks.

    ``start`` is the tick the router ejected it in, ``end`` the tick it returned at
    (``None``: still ejected when the run ended). ``cause`` is ``"2027"`` (a send
    answered 403 / 2027) or ``"failures"`` (5xx answers in a row, or one on trial).
    """

    line: str
    start: int
    end: int | None
    cause: Literal["2027", "failures"]
    reason: str

    def covers(self, tick: int) -> bool:
        """Whether the line was ejected during ``tick``."""
        return self.start <= tick and (self.end is None or tick < self.end)


@attrs.frozen
class LineHistory:
    """A line as the registry saw it: its reputation in the snapshot each tick picked from.

    ``reputations[t]`` is ``None`` for ticks where the line was not in the snapshot;
    ``flagged[t]`` is True where Linq reported it FLAGGED.
    """

    id: str
    phone_number: str
    line_type: str | None
    reputations: tuple[Reputation | None, ...]
    flagged: tuple[bool, ...]


@attrs.frozen
class SendFigures:
    """What a run's sends met at the (fake) API: one count per kind of answer.

    ``requests`` counts every ``POST /v3/chats``, resends included; ``repicks`` the
    picks made to resend after a 2027 (or a connect error); ``lost`` the sends that
    were never accepted (a 5xx is not resent: the chat may exist).
    """

    requests: int
    accepted: int
    ineligible: int
    failing: int
    pair_limited: int
    refused: int
    repicks: int
    lost: int


@attrs.frozen
class RunResult:
    """What one spec did with one workload. ``summarize`` builds it."""

    spec: str
    sends: int
    workers: int
    seed: int
    elapsed: float
    """Wall-clock seconds of the run, sends included."""
    lines: tuple[LineHistory, ...]
    picks: dict[str, int]
    """Attempts per line id: every pick that found a line, repicks included."""
    attempts: int
    """Picks the sends asked for: one per send, one more per resend."""
    by_reputation: dict[str, int]
    """Attempts per reputation the line had in the snapshot picked from."""
    to_critical: int
    to_flagged: int
    no_eligible: int
    """Attempts that found no eligible line."""
    returning: int
    """Sends to a recipient who had already been given a line."""
    stayed: int
    """Of those, sends that ended on the same line as that recipient's previous one."""
    api_calls: int
    retries: int
    refreshes: int
    failures: int
    events: tuple[PoolEvent, ...]
    critical_examples: tuple[tuple[int, str, str], ...]
    """Up to five (send index, recipient, line) picks that went to a CRITICAL line."""
    pick_calls: int = 0
    pick_seconds: float = 0.0
    """Calls of ``Router.pick`` and the seconds spent in them (one thread picks)."""
    sending: SendFigures | None = None
    """``None`` when nothing was sent (a run on the real API only picks)."""
    hits: dict[str, int] = attrs.field(factory=dict)
    """Per line id, attempts answered 403 / 2027 or 5xx."""
    ejections: tuple[EjectedPeriod, ...] = ()
    ejection: Ejection | None = None
    """The router's ejection settings; ``None``: the naive worker, no feedback loop."""
    naive: RunResult | None = None
    """The same spec and workload without the feedback loop, when it was run."""
    budgets: BudgetFigures | None = None
    """The sends against the run's budgets (``None``: not computed)."""
    budget_use: tuple[Budget, ...] = ()
    """``Router.budgets()`` at the end of the run (empty without pacing)."""
    ended_at: float = 0.0
    """The simulated clock when the run ended (``budget_use``'s ``resets_at`` is on it)."""

    @property
    def picked(self) -> int:
        """Attempts that got a line."""
        return self.attempts - self.no_eligible

    @property
    def picks_per_second(self) -> float:
        """Picks per second spent in ``Router.pick``."""
        return self.pick_calls / self.pick_seconds if self.pick_seconds > 0 else float("inf")

    @property
    def sends_per_second(self) -> float:
        """Sends handled per wall-clock second, HTTP round trips included."""
        return self.sends / self.elapsed if self.elapsed > 0 else float("inf")

    @property
    def uncached_api_calls(self) -> int:
        """List requests a sender that lists the lines before every send would make."""
        return self.sends

    @property
    def stay_rate(self) -> float | None:
        """The share of returning sends that stayed on their previous line."""
        return self.stayed / self.returning if self.returning else None

    def share(self, line_id: str) -> float:
        """The share of all attempts that went to ``line_id``."""
        return self.picks.get(line_id, 0) / self.attempts if self.attempts else 0.0

    def ejected_in(self, phone_number: str) -> tuple[EjectedPeriod, ...]:
        """The loop's ejections of the line with ``phone_number``, in order."""
        return tuple(p for p in self.ejections if p.line == phone_number)


@attrs.define
class _Trace:
    """Raw outcomes a run records; ``summarize`` turns them into a result."""

    attempts: list[Attempt] = attrs.Factory(list)
    snapshots: list[Snapshot] = attrs.Factory(list)
    ejections: list[EjectedPeriod] = attrs.Factory(list)
    pick_calls: int = 0
    pick_seconds: float = 0.0
    sent: bool = False


def _histories(snapshots: Sequence[Snapshot]) -> tuple[LineHistory, ...]:
    order: dict[str, PhoneNumber] = {}
    for snap in snapshots:
        for number in snap:
            order.setdefault(number.id, number)
    by_tick = [{n.id: n for n in snap} for snap in snapshots]
    histories = []
    for line_id, first in order.items():
        seen = [tick.get(line_id) for tick in by_tick]
        histories.append(
            LineHistory(
                line_id,
                first.phone_number,
                first.line_type,
                tuple(n.reputation if n else None for n in seen),
                tuple(bool(n and n.is_flagged) for n in seen),
            )
        )
    return tuple(histories)


def _send_figures(attempts: Sequence[Attempt], sends: int) -> SendFigures:
    answers = Counter(a.answer for a in attempts)
    accepted = {a.send for a in attempts if a.answer == "accepted"}
    unsent = ("unsent", "no_line", "no_budget")
    return SendFigures(
        requests=sum(n for answer, n in answers.items() if answer not in unsent),
        accepted=answers["accepted"],
        ineligible=answers["ineligible"],
        failing=answers["failing"],
        pair_limited=answers["pair_limited"],
        refused=answers["refused"],
        repicks=len(attempts) - len({a.send for a in attempts}),
        lost=sends - len(accepted),
    )


def summarize(
    spec: str,
    workload: Workload,
    trace: _Trace,
    *,
    workers: int,
    elapsed: float,
    counters: tuple[int, int, int, int],
    ejection: Ejection | None = None,
    budgets: BudgetFigures | None = None,
    budget_use: tuple[Budget, ...] = (),
    ended_at: float = 0.0,
) -> RunResult:
    """Aggregate a run's trace into a ``RunResult``.

    ``counters`` is (API calls, client retries, registry refreshes, failed refreshes).
    """
    lines = _histories(trace.snapshots)
    numbers = {h.id: h.phone_number for h in lines}
    attempts = trace.attempts
    picks = Counter(a.line for a in attempts if a.line is not None)
    by_rep = Counter(a.reputation.value for a in attempts if a.reputation is not None)
    hits = Counter(
        a.line for a in attempts if a.line is not None and a.answer in ("ineligible", "failing")
    )
    final: dict[int, str] = {}  # each send's last line: where its conversation went
    examples: list[tuple[int, str, str]] = []
    for a in attempts:
        if a.line is None:
            continue
        final[a.send] = a.line
        if a.reputation is Reputation.CRITICAL and len(examples) < 5:
            examples.append((a.send, workload.recipients[a.send], numbers.get(a.line, a.line)))
    previous: dict[str, str] = {}
    returning = stayed = 0
    # In send order, so "previous line" means the same thing whatever the threads did.
    for i, to in enumerate(workload.recipients):
        line = final.get(i)
        if line is None:
            continue
        before = previous.get(to)
        if before is not None:
            returning += 1
            stayed += before == line
        previous[to] = line
    api_calls, retries, refreshes, failures = counters
    sends = len(workload.recipients)
    return RunResult(
        spec=spec,
        sends=sends,
        workers=workers,
        seed=workload.seed,
        elapsed=elapsed,
        lines=lines,
        picks=dict(picks),
        attempts=len(attempts),
        by_reputation=dict(by_rep),
        to_critical=by_rep.get(Reputation.CRITICAL.value, 0),
        to_flagged=sum(a.flagged for a in attempts),
        no_eligible=sum(a.line is None for a in attempts),
        returning=returning,
        stayed=stayed,
        api_calls=api_calls,
        retries=retries,
        refreshes=refreshes,
        failures=failures,
        events=workload.events,
        critical_examples=tuple(examples),
        pick_calls=trace.pick_calls,
        pick_seconds=trace.pick_seconds,
        sending=_send_figures(attempts, sends) if trace.sent else None,
        hits=dict(hits),
        ejections=tuple(trace.ejections),
        ejection=ejection,
        budgets=budgets,
        budget_use=budget_use,
        ended_at=ended_at,
    )
