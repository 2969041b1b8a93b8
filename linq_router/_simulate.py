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
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import attrs
import httpx

from ._client import LinqClient
from ._errors import NoEligibleNumberError
from ._models import PhoneNumber, Reputation, Snapshot
from ._pick import Pick
from ._registry import Registry
from .testing import FakeClock, FakeLinqServer, sample_pool

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
    "run_specs",
    "run_workload",
    "summarize",
]

TICKS = 120
"""Ticks in a run: the resolution of "reputation over time"."""
TICK_SECONDS = 5.0
"""Simulated seconds per tick: a run covers ten simulated minutes."""
TTL = 30.0
"""The registry's TTL in simulated seconds: a refresh every six ticks."""
ERROR_RETRY = 5.0
"""Simulated seconds between refreshes while they fail (one tick)."""

EventKind = Literal["reputation", "status", "3006"]
Picker = Callable[[str], Pick]
"""Picks a line for one recipient (``Router(registry, spec).pick``)."""
PickerFactory = Callable[[Registry, str], Picker]
ProgressFn = Callable[[int], None]


@attrs.frozen
class PoolEvent:
    """A change to the demo pool at the start of ``tick``, as real pools change.

    ``kind`` is ``"reputation"`` or ``"status"`` (``line`` gets ``value``), or
    ``"3006"``: the next ``times`` list requests answer Linq's internal error.
    """

    tick: int
    kind: EventKind
    label: str
    line: str | None = None
    value: str | None = None
    times: int = 0

    def apply(self, server: FakeLinqServer) -> None:
        """Make the change on the fake API."""
        if self.kind == "3006":
            server.fail_next("3006", times=self.times, route="list")
        elif self.kind == "reputation" and self.line and self.value:
            server.set_reputation(self.line, self.value)
        elif self.kind == "status" and self.line:
            server.set_status(self.line, self.value)


def demo_events(rng: random.Random, ticks: int = TICKS) -> tuple[PoolEvent, ...]:
    """The sample pool's script: a line drops, one recovers, the API fails, ...

    The lines are those of ``sample_pool()``; the seed moves each event by a few ticks.
    Three 3006s in a row outlast the client's three attempts, so one refresh fails and
    the registry serves its last good snapshot until the next try succeeds.
    """

    def at(fraction: float) -> int:
        return max(1, min(ticks - 1, round(fraction * ticks) + rng.randint(-2, 2)))

    return tuple(
        sorted(
            (
                PoolEvent(
                    at(0.15),
                    "reputation",
                    "+12025550101 drops to CRITICAL",
                    "+12025550101",
                    "CRITICAL",
                ),
                PoolEvent(at(0.30), "3006", "API answers 3006 twice (retried)", times=2),
                PoolEvent(
                    at(0.42),
                    "reputation",
                    "+13055550109 recovers to HEALTHY",
                    "+13055550109",
                    "HEALTHY",
                ),
                PoolEvent(
                    at(0.55),
                    "reputation",
                    "+13125550105 drops to CRITICAL",
                    "+13125550105",
                    "CRITICAL",
                ),
                PoolEvent(
                    at(0.65), "3006", "API answers 3006 three times (a refresh fails)", times=3
                ),
                PoolEvent(
                    at(0.78),
                    "reputation",
                    "+12025550101 recovers to AT_RISK",
                    "+12025550101",
                    "AT_RISK",
                ),
                PoolEvent(
                    at(0.88), "status", "+15125550110 is ACTIVE again", "+15125550110", "ACTIVE"
                ),
            ),
            key=lambda e: e.tick,
        )
    )


_AREA_CODES = (202, 212, 305, 312, 415, 512, 617, 713, 206, 310)


@attrs.frozen
class Workload:
    """What to send: one recipient per send, in order, and the pool's events.

    Sends of tick ``t`` are ``range(*bounds(t))``.
    """

    seed: int
    recipients: tuple[str, ...]
    events: tuple[PoolEvent, ...]
    ticks: int = TICKS

    def bounds(self, tick: int) -> tuple[int, int]:
        """The first and past-the-last send index of ``tick``."""
        n = len(self.recipients)
        return tick * n // self.ticks, (tick + 1) * n // self.ticks


def make_workload(
    sends: int,
    seed: int,
    *,
    ticks: int = TICKS,
    returning_share: float = 0.6,
    email_share: float = 0.1,
    events: bool = True,
) -> Workload:
    """A reproducible mix of new and returning recipients (E.164 numbers, some emails).

    About ``returning_share`` of the sends go to someone already written to, chosen
    uniformly among them; new recipients are US numbers or, ``email_share`` of the
    time, email addresses.
    """
    if sends < 1:
        msg = f"sends must be at least 1, got {sends}"
        raise ValueError(msg)
    rng = random.Random(seed)
    known: list[str] = []
    seen: set[str] = set()
    recipients: list[str] = []
    for _ in range(sends):
        if known and rng.random() < returning_share:
            to = rng.choice(known)
        else:
            if rng.random() < email_share:
                to = f"user{rng.randrange(10**8):08d}@example.com"
            else:
                to = f"+1{rng.choice(_AREA_CODES)}{rng.randrange(2_000_000, 10_000_000)}"
            if to not in seen:
                seen.add(to)
                known.append(to)
        recipients.append(to)
    script = demo_events(random.Random(seed + 1), ticks) if events else ()
    return Workload(seed, tuple(recipients), script, ticks)


@attrs.frozen
class LineHistory:
    """A line as the registry saw it: its reputation at the end of each tick.

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


def router_picker(registry: Registry, spec: str) -> Picker:
    """The default picker: ``Router(registry, policy=spec).pick``."""
    from ._router import Router  # noqa: PLC0415 - keeps this module importable on its own

    return Router(registry, policy=spec).pick


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
