"""The engine behind ``linq-router simulate``: a seeded workload, a run, its results.

A run is split into ``TICKS`` ticks of ``TICK_SECONDS`` simulated seconds. In each
tick the pool events due are applied to the (fake) API, then that tick's share of the
sends is picked by the worker threads, then the registry's clock moves on. The
registry reads a ``FakeClock`` with a short TTL, so it refreshes from the API every
few ticks and sees the pool change, while the run itself takes only as long as the
picks do. Because events and refreshes happen between ticks, every spec run on the
same workload sees the same snapshots at the same sends: the runs compare like for
like, and ``--seed`` makes the figures reproducible.

Building the workload and summarizing a run are pure; only ``run_workload`` does I/O.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import attrs
import httpx

from linq_router._client import LinqClient
from linq_router._errors import NoEligibleNumberError
from linq_router._models import PhoneNumber, Reputation, Snapshot
from linq_router._pick import Pick
from linq_router._registry import Registry
from linq_router.testing import FakeClock, FakeLinqServer, sample_pool

from ._workload import (
    ERROR_RETRY,
    TICK_SECONDS,
    TICKS,
    TTL,
    PoolEvent,
    Workload,
    demo_events,
    make_workload,
)

if TYPE_CHECKING:
    from linq_router._router import Router

__all__ = [
    "TICKS",
    "TICK_SECONDS",
    "TTL",
    "LineHistory",
    "PoolEvent",
    "RunResult",
    "Workload",
    "demo_events",
    "make_workload",
    "percent",
    "run_specs",
    "run_workload",
    "summarize",
]

Picker = Callable[[str], Pick]
"""Picks a line for one recipient (``Router(registry, spec).pick``).

A picker with a ``settle(timeout)`` method, as the default one has, is settled after
each tick's snapshot is installed, before the tick's picks.
"""
_SETTLE_TIMEOUT = 30.0
"""Seconds a tick waits at most for the router to compile the tick's snapshot."""
PickerFactory = Callable[[Registry, str], Picker]
ProgressFn = Callable[[int], None]


def percent(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole`` to one decimal, or "-" when there is none."""
    return f"{100 * part / whole:.1f}%" if whole else "-"


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
class RunResult:
    """What one spec did with one workload. ``summarize`` builds it."""

    spec: str
    sends: int
    workers: int
    seed: int
    elapsed: float
    lines: tuple[LineHistory, ...]
    picks: dict[str, int]
    """Picks per line id."""
    by_reputation: dict[str, int]
    """Picks per reputation the line had in the snapshot picked from."""
    to_critical: int
    to_flagged: int
    no_eligible: int
    returning: int
    """Sends to a recipient who had already been given a line."""
    stayed: int
    """Of those, sends that got the same line as that recipient's previous one."""
    api_calls: int
    retries: int
    refreshes: int
    failures: int
    events: tuple[PoolEvent, ...]
    critical_examples: tuple[tuple[int, str, str], ...]
    """Up to five (send index, recipient, line) picks that went to a CRITICAL line."""

    @property
    def picked(self) -> int:
        """Sends that got a line."""
        return self.sends - self.no_eligible

    @property
    def picks_per_second(self) -> float:
        """Sends handled per wall-clock second, all workers together."""
        return self.sends / self.elapsed if self.elapsed > 0 else float("inf")

    @property
    def naive_api_calls(self) -> int:
        """List requests a sender that lists the lines before every send would make."""
        return self.sends

    @property
    def stay_rate(self) -> float | None:
        """The share of returning sends that stayed on their previous line."""
        return self.stayed / self.returning if self.returning else None

    def share(self, line_id: str) -> float:
        """The share of all sends that went to ``line_id``."""
        return self.picks.get(line_id, 0) / self.sends if self.sends else 0.0


@attrs.define
class _Trace:
    """Raw per-send outcomes a run records; ``summarize`` turns them into a result."""

    line: list[str | None]
    reputation: list[Reputation | None]
    flagged: list[bool]
    snapshots: list[Snapshot] = attrs.Factory(list)


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


def summarize(
    spec: str,
    workload: Workload,
    trace: _Trace,
    *,
    workers: int,
    elapsed: float,
    counters: tuple[int, int, int, int],
) -> RunResult:
    """Aggregate a run's per-send trace into a ``RunResult``.

    ``counters`` is (API calls, client retries, registry refreshes, failed refreshes).
    """
    lines = _histories(trace.snapshots)
    numbers = {h.id: h.phone_number for h in lines}
    picks = Counter(line for line in trace.line if line is not None)
    by_rep = Counter(rep.value for rep in trace.reputation if rep is not None)
    previous: dict[str, str] = {}
    returning = stayed = 0
    examples: list[tuple[int, str, str]] = []
    # In send order, so "previous line" means the same thing whatever the threads did.
    for i, (to, line, rep) in enumerate(
        zip(workload.recipients, trace.line, trace.reputation, strict=True)
    ):
        if line is None:
            continue
        before = previous.get(to)
        if before is not None:
            returning += 1
            stayed += before == line
        previous[to] = line
        if rep is Reputation.CRITICAL and len(examples) < 5:
            examples.append((i, to, numbers.get(line, line)))
    api_calls, retries, refreshes, failures = counters
    return RunResult(
        spec=spec,
        sends=len(workload.recipients),
        workers=workers,
        seed=workload.seed,
        elapsed=elapsed,
        lines=lines,
        picks=dict(picks),
        by_reputation=dict(by_rep),
        to_critical=by_rep.get(Reputation.CRITICAL.value, 0),
        to_flagged=sum(trace.flagged),
        no_eligible=sum(line is None for line in trace.line),
        returning=returning,
        stayed=stayed,
        api_calls=api_calls,
        retries=retries,
        refreshes=refreshes,
        failures=failures,
        events=workload.events,
        critical_examples=tuple(examples),
    )


def _chunks(lo: int, hi: int, parts: int) -> Iterator[tuple[int, int]]:
    size = hi - lo
    for k in range(parts):
        a, b = lo + k * size // parts, lo + (k + 1) * size // parts
        if b > a:
            yield a, b


@attrs.frozen
class _RouterPicker:
    """``Router.pick``, and the router's ``settle`` for the run to call between ticks."""

    router: Router

    def __call__(self, to: str) -> Pick:
        return self.router.pick(to)

    def settle(self, timeout: float) -> bool:
        """Wait until the router picks from its newest snapshot's compile."""
        return self.router.settle(timeout)


def router_picker(registry: Registry, spec: str) -> Picker:
    """The default picker: ``Router(registry, policy=spec).pick``."""
    from linq_router._router import Router  # noqa: PLC0415 - keeps this module importable on its own

    return _RouterPicker(Router(registry, policy=spec))


def run_workload(
    spec: str,
    workload: Workload,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    server: FakeLinqServer | None = None,
    workers: int = 4,
    make_picker: PickerFactory = router_picker,
    progress: ProgressFn | None = None,
) -> RunResult:
    """Run ``workload`` through ``spec`` against the API at ``base_url``.

    With ``server`` (the fake API behind ``base_url``), the workload's pool events are
    applied to it as the run goes; without, they are skipped (a real pool is not ours
    to change). API calls are counted at the HTTP layer, retries included.
    """
    n = len(workload.recipients)
    trace = _Trace([None] * n, [None] * n, [False] * n)
    calls = 0
    calls_lock = threading.Lock()

    def count_request(_request: httpx.Request) -> None:
        nonlocal calls
        with calls_lock:
            calls += 1

    clock = FakeClock(0.0)
    events: dict[int, list[PoolEvent]] = {}
    for event in workload.events:
        events.setdefault(event.tick, []).append(event)
    with (
        httpx.Client(timeout=10.0, event_hooks={"request": [count_request]}) as http,
        # Backoff would stall every worker in wall-clock time; the simulated clock is
        # what the run is about, so retries go straight out (and are still counted).
        LinqClient(api_key, base_url=base_url, http_client=http, sleep=lambda _s: None) as client,
        concurrent.futures.ThreadPoolExecutor(workers, "simulate") as pool,
    ):
        registry = Registry(client, ttl=TTL, error_retry_interval=ERROR_RETRY, clock=clock)
        registry.snapshot()  # a cold start that fails is an API failure, before any pick
        pick = make_picker(registry, spec)

        def work(lo: int, hi: int) -> None:
            recipients = workload.recipients
            for i in range(lo, hi):
                try:
                    number = pick(recipients[i]).number
                except NoEligibleNumberError:
                    continue
                trace.line[i] = number.id
                trace.reputation[i] = number.reputation
                trace.flagged[i] = number.is_flagged

        started = time.perf_counter()
        for tick in range(workload.ticks):
            if server is not None:
                for event in events.get(tick, ()):
                    event.apply(server)
            # Settle the tick's snapshot before any worker picks: a refresh that is due
            # (or a retry the registry would start in the background) finishes first,
            # so every pick of the tick sees the same snapshot, whatever the threads do.
            registry.snapshot()
            registry.close()
            trace.snapshots.append(registry.snapshot())
            # The router compiles a new snapshot in the background and picks from the
            # previous compile meanwhile; waiting here keeps the run reproducible.
            settle = getattr(pick, "settle", None)
            if settle is not None:
                settle(_SETTLE_TIMEOUT)
            lo, hi = workload.bounds(tick)
            futures = [pool.submit(work, a, b) for a, b in _chunks(lo, hi, workers)]
            for future in futures:
                future.result()
            if progress is not None:
                progress(hi - lo)
            clock.advance(TICK_SECONDS)
        elapsed = time.perf_counter() - started
        retries = client.retries
    return summarize(
        spec,
        workload,
        trace,
        workers=workers,
        elapsed=elapsed,
        counters=(calls, retries, registry.refreshes, registry.failures),
    )


def run_specs(
    specs: Sequence[str],
    workload: Workload,
    *,
    demo: bool,
    workers: int = 4,
    make_picker: PickerFactory = router_picker,
    progress: ProgressFn | None = None,
) -> list[RunResult]:
    """Run each spec on ``workload``: with ``demo``, each on a fresh demo pool.

    A fresh ``FakeLinqServer(sample_pool())`` per spec means every spec starts from
    the same pool and meets the same events at the same sends. Without ``demo`` the
    client reads ``LINQ_API_V3_API_KEY`` / ``LINQ_API_V3_BASE_URL`` and the pool is
    left alone.
    """
    results = []
    for spec in specs:
        if demo:
            with FakeLinqServer(sample_pool()) as server:
                result = run_workload(
                    spec,
                    workload,
                    base_url=server.base_url,
                    api_key=server.api_key,
                    server=server,
                    workers=workers,
                    make_picker=make_picker,
                    progress=progress,
                )
        else:
            result = run_workload(
                spec, workload, workers=workers, make_picker=make_picker, progress=progress
            )
        results.append(result)
    return results
