"""``linq-router simulate --day``: a day of sends with budgets that bind, paced and not.

A day is ``DAY_TICKS`` ticks of ``DAY_TICK_SECONDS`` (86,400 simulated seconds) on the
fake's ``FakeClock``, which the registry, the router, the fake's pair limit and
``limits`` (``_limits_clock``) all read, so it passes in seconds of wall time. The
workload is the usual mix of new and returning recipients spread over the day, plus
``BURSTS`` bursts of ``BURST_SIZE`` messages to one recipient within one tick, more
than the pool's busiest lines may send one person in a minute.

Linq's 7,000 a day would never bind on a few thousand sends, so the day's
``per_line`` budget is scaled to its workload (``day_pacing``): an eighth of the day's
sends per line, which the busiest lines of the sample pool want more of. ``per_pair``
stays Linq's hard limit, 30 a minute. The same workload runs with that pacing and
with ``pacing=None``; both measure their sends against the scaled budgets.
"""

from __future__ import annotations

import attrs

from linq_router.pacing import Pacing

from ._engine import ProgressFn, run_on_fake
from ._results import RunResult
from ._workload import LOOP_EJECTION, Workload, make_workload

__all__ = [
    "BUDGETS_DEMO_SENDS",
    "BURSTS",
    "BURST_SIZE",
    "DAY_SENDS",
    "DAY_TICKS",
    "DAY_TICK_SECONDS",
    "DAY_WORKERS",
    "MIN_DAY_SENDS",
    "DayResult",
    "day_pacing",
    "make_day_workload",
    "run_budgets_demo",
    "run_day",
]

DAY_TICKS = 288
"""Ticks in a simulated day."""
DAY_TICK_SECONDS = 300.0
"""Simulated seconds per tick of a day: five minutes, 86,400 s in all."""
DAY_SENDS = 1_600
"""``--day``'s default number of sends."""
DAY_WORKERS = 1
"""``--day``'s default sends in flight: one, so that each send is reported before the
next pick and a line cannot pass its budget by the sends in flight."""
BURSTS = 3
"""Bursts to one recipient in a day, at a quarter, half and three quarters of it."""
BURST_SIZE = 260
"""Messages in a burst, all within one tick: the busiest lines' share passes 30."""
MIN_DAY_SENDS = BURSTS * BURST_SIZE + DAY_TICKS
"""The fewest sends a day takes: the bursts and one send a tick."""
_PER_LINE_SHARE = 8
"""The day's ``per_line`` budget is its sends divided by this."""


def day_pacing(sends: int) -> Pacing:
    """The budgets of a day of ``sends``: ``per_line`` scaled, ``per_pair`` Linq's."""
    return Pacing(per_line=f"{max(1, sends // _PER_LINE_SHARE)}/day")


def make_day_workload(sends: int, seed: int) -> Workload:
    """A day's reproducible sends: the usual mix, spread evenly, and ``BURSTS`` bursts."""
    if sends < MIN_DAY_SENDS:
        msg = f"a day needs at least {MIN_DAY_SENDS:,} sends, got {sends:,}"
        raise ValueError(msg)
    background = make_workload(sends - BURSTS * BURST_SIZE, seed, events=False).recipients
    burst_ticks = {DAY_TICKS * (k + 1) // (BURSTS + 1): k for k in range(BURSTS)}
    recipients: list[str] = []
    starts: list[int] = []
    for tick in range(DAY_TICKS):
        starts.append(len(recipients))
        lo = tick * len(background) // DAY_TICKS
        hi = (tick + 1) * len(background) // DAY_TICKS
        recipients += background[lo:hi]
        burst = burst_ticks.get(tick)
        if burst is not None:
            recipients += [f"+1202555{9000 + burst:04d}"] * BURST_SIZE
    starts.append(len(recipients))
    return Workload(
        seed,
        tuple(recipients),
        (),
        ticks=DAY_TICKS,
        tick_seconds=DAY_TICK_SECONDS,
        starts=tuple(starts),
    )


@attrs.frozen
class DayResult:
    """A day run with pacing (``paced``) and the same day without (``unpaced``)."""

    paced: RunResult
    unpaced: RunResult
    pacing: Pacing
    """The budgets both are measured against (the paced run's)."""


def run_day(
    spec: str,
    sends: int,
    seed: int,
    *,
    workers: int = DAY_WORKERS,
    progress: ProgressFn | None = None,
) -> DayResult:
    """Run a day of ``sends`` through ``spec`` on the demo pool, paced, then not."""
    workload = make_day_workload(sends, seed)
    pacing = day_pacing(sends)
    runs = [
        run_on_fake(
            spec,
            workload,
            workers=workers,
            ejection=LOOP_EJECTION,
            pacing=paced,
            budgets=pacing,
            progress=progress,
        )
        for paced in (pacing, None)
    ]
    return DayResult(runs[0], runs[1], pacing)


BUDGETS_DEMO_SENDS = 400
"""Sends of the short run ``linq-router budgets --demo`` shows the budgets after."""


def run_budgets_demo(spec: str, seed: int, sends: int = BUDGETS_DEMO_SENDS) -> RunResult:
    """A short seeded run on the demo pool with the library's default ``Pacing()``.

    Ten simulated minutes, no pool events; its ``budget_use`` is ``Router.budgets()``
    at the end, its ``ended_at`` the simulated time then.
    """
    return run_on_fake(
        spec, make_workload(sends, seed, events=False), pacing=Pacing(), budgets=Pacing()
    )
