"""The engine behind ``linq-router simulate``: a seeded workload run through the fake API.

A run is split into ``TICKS`` ticks of ``TICK_SECONDS`` simulated seconds. In each
tick the pool events due are applied to the fake API, then that tick's sends go out,
then the clock moves on. The registry reads a ``FakeClock`` with a short TTL, so it
refreshes every few ticks and sees the pool change; the router's ejections run on
the same clock, so they end on simulated time; and the run itself takes only as long
as its picks and sends do.

Each send is picked, sent as a real ``POST /v3/chats`` to the fake (``_send``) and
its outcome reported with ``Router.report``. A 2027 is picked again and resent (up
to ``MAX_REPICKS`` times, avoiding the lines already tried, as the SDK's ``Sender``
does: nothing was created); a 5xx is not (the chat may exist). ``workers`` sends
are in flight at once: a batch is picked in send order, sent side by side by the
worker threads, and reported in send order. So everything the router decides
depends on the workload alone, never on how the threads interleaved, and the same
``--seed`` gives the same figures. Each spec runs twice on the same workload: with
the feedback loop (``LOOP_EJECTION``) and as the naive worker (``ejection=None``),
which keeps sending from a line Linq refuses until the list says otherwise.

Pacing is on as in any ``Router`` (``pacing=``, the library's ``Pacing()`` by
default; ``None`` runs without). A pick that finds every line out of budget
(``BudgetExhaustedError``) is counted like one that found no line, as
``"no_budget"``; the engine never passes ``wait``, so nothing waits, in simulated
time or real. The ``limits`` library counts budgets on ``time.time()``, so a run
drives it from the simulated clock (``_limits_clock``): the registry, the router, the
fake's pair limit and the budgets all read the same ``FakeClock``.

Against the real API nothing is sent: the pool is read and picked from only.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import httpx

from linq_router._client import LinqClient
from linq_router._errors import BudgetExhaustedError, NoEligibleNumberError
from linq_router._pick import Pick
from linq_router._registry import Registry
from linq_router._router import Router
from linq_router.feedback import Ejection, LineEvent, Verdict
from linq_router.pacing import Pacing
from linq_router.testing import FakeClock, FakeLinqServer, sample_pool

from ._budgets import budget_figures
from ._limits_clock import limits_clock
from ._results import Answer, Attempt, EjectedPeriod, RunResult, _Trace, summarize
from ._send import ChatSender, SendAnswer
from ._workload import ERROR_RETRY, LOOP_EJECTION, TTL, PoolEvent, Workload

__all__ = ["MAX_REPICKS", "ProgressFn", "run_specs", "run_workload", "runs_per_spec"]

MAX_REPICKS = 2
"""Resends of a send answered 2027, each on a new pick: as ``linq_router.sdk.Sender``."""
_EXTRA_PICKS = 3
"""More picks a resend makes to find a line its send has not tried (as the Sender)."""
_SETTLE_TIMEOUT = 30.0
"""Seconds a run waits at most for the router to compile a change."""
_PACING = Pacing()
"""The router's default pacing: the library's defaults."""

ProgressFn = Callable[[int], None]
"""Told how many sends were done, after each tick."""

_ANSWERS: dict[Verdict, Answer] = {
    Verdict.SUCCESS: "accepted",
    Verdict.LINE_INELIGIBLE: "ineligible",
    Verdict.LINE_FAILURE: "failing",
    Verdict.PAIR_LIMITED: "pair_limited",
    Verdict.NOT_THE_LINE: "refused",
}


class _Loop:
    """The router's ``LineEvent``s, turned into ejected periods on the run's ticks."""

    def __init__(self) -> None:
        self.tick = 0
        self.periods: list[EjectedPeriod] = []
        self._open: dict[str, EjectedPeriod] = {}
        self._lock = threading.Lock()
        self._pending: list[LineEvent] = []

    def __call__(self, event: LineEvent) -> None:
        # Router(on_event=...): called in the thread that reported (or picked).
        with self._lock:
            self._pending.append(event)

    def take(self, router: Router) -> bool:
        """File the events received since the last call; True when there were any."""
        with self._lock:
            events, self._pending = self._pending, []
        if not events:
            return False
        causes = {e.line: e.verdict for e in router.ejections()}
        for event in events:
            if event.kind == "ejected":
                ineligible = causes.get(event.line) is Verdict.LINE_INELIGIBLE
                self._open[event.line] = EjectedPeriod(
                    event.line, self.tick, None, "2027" if ineligible else "failures", event.reason
                )
            else:
                period = self._open.pop(event.line, None)
                if period is not None:
                    self.periods.append(attrs.evolve(period, end=self.tick))
        return True

    def finish(self) -> list[EjectedPeriod]:
        """Every period, those still open at the end included, in order of their start."""
        periods = self.periods + list(self._open.values())
        return sorted(periods, key=lambda p: (p.start, p.line))


class _Worker:
    """Picks, sends and reports one batch of sends at a time; records every attempt."""

    def __init__(
        self,
        router: Router,
        sender: ChatSender | None,
        pool: concurrent.futures.ThreadPoolExecutor,
        workload: Workload,
        trace: _Trace,
        loop: _Loop,
    ) -> None:
        self.router = router
        self.sender = sender
        self.pool = pool
        self.recipients = workload.recipients
        self.trace = trace
        self.loop = loop

    def _pick(self, to: str, tried: set[str]) -> Pick | Answer:
        """A pick for ``to``, or why there was none: ``"no_line"`` or ``"no_budget"``."""
        extra = 0
        while True:
            started = time.perf_counter()
            pick: Pick | Answer
            try:
                pick = self.router.pick(to)
            except BudgetExhaustedError:
                pick = "no_budget"  # before its base class: every line is out of budget
            except NoEligibleNumberError:
                pick = "no_line"
            finally:
                self.trace.pick_seconds += time.perf_counter() - started
                self.trace.pick_calls += 1
            if isinstance(pick, str) or pick.number.id not in tried or extra >= _EXTRA_PICKS:
                return pick
            extra += 1

    def _send_all(self, picks: Sequence[tuple[int, Pick]]) -> list[SendAnswer]:
        sender = self.sender
        if sender is None:
            return [(None, False)] * len(picks)
        recipients = self.recipients

        def send(item: tuple[int, Pick]) -> SendAnswer:
            return sender.create(item[1].phone_number, recipients[item[0]])

        if len(picks) == 1:
            return [send(picks[0])]
        return list(self.pool.map(send, picks))

    def batch(self, sends: range) -> None:
        """Send ``sends`` side by side, resending what Linq refused with a 2027."""
        tried: dict[int, set[str]] = {i: set() for i in sends}
        pending = list(sends)
        for round_ in range(MAX_REPICKS + 1):
            picks: list[tuple[int, Pick]] = []
            tick = self.loop.tick
            for i in pending:
                pick = self._pick(self.recipients[i], tried[i])
                if isinstance(pick, str):
                    self.trace.attempts.append(Attempt(i, None, None, False, pick, tick))
                else:
                    picks.append((i, pick))
            pending = []
            for (i, pick), answer in zip(picks, self._send_all(picks), strict=True):
                if self._report(i, pick, answer) and round_ < MAX_REPICKS:
                    pending.append(i)
                tried[i].add(pick.number.id)
            self.loop.take(self.router)
            # An ejection (or a line out of budget) changed what the router serves:
            # wait for its compile, so the next picks come from it whatever the compile
            # thread's timing. Nothing to wait for, most of the time.
            self.router.settle(_SETTLE_TIMEOUT)
            if not pending:
                return

    def _report(self, i: int, pick: Pick, answer: SendAnswer) -> bool:
        """Record one attempt and report it; True when it is safe and useful to resend."""
        outcome, left = answer
        number = pick.number
        tick = self.loop.tick
        if self.sender is None:
            self.trace.attempts.append(
                Attempt(i, number.id, number.reputation, number.is_flagged, "unsent", tick)
            )
            return False
        verdict = self.router.report(pick, outcome, to=self.recipients[i])
        self.trace.attempts.append(
            Attempt(i, number.id, number.reputation, number.is_flagged, _ANSWERS[verdict], tick)
        )
        return verdict is Verdict.LINE_INELIGIBLE or not left


def run_workload(
    spec: str,
    workload: Workload,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    server: FakeLinqServer | None = None,
    clock: FakeClock | None = None,
    workers: int = 4,
    ejection: Ejection | None = LOOP_EJECTION,
    pacing: Pacing | None = _PACING,
    budgets: Pacing | None = _PACING,
    progress: ProgressFn | None = None,
) -> RunResult:
    """Run ``workload`` through ``spec`` against the API at ``base_url``.

    With ``server`` (the fake API behind ``base_url``), the workload's pool events are
    applied to it as the run goes and every send is sent to it; without, the events
    are skipped and nothing is sent (a real pool is not ours to change or write to).
    ``clock`` is the simulated clock (the server's too, for its pair limit);
    ``ejection=None`` runs the naive worker; ``pacing`` is the router's (``None``:
    off) and ``budgets`` the ``Pacing`` the report measures the sends against (the
    run's own, or the one a run without pacing would have had). List requests are
    counted at the HTTP layer, retries included.
    """
    trace = _Trace(sent=server is not None)
    calls = 0
    calls_lock = threading.Lock()

    def count_request(_request: httpx.Request) -> None:
        nonlocal calls
        with calls_lock:
            calls += 1

    clock = FakeClock(0.0) if clock is None else clock
    events: dict[int, list[PoolEvent]] = {}
    for event in workload.events:
        events.setdefault(event.tick, []).append(event)
    loop = _Loop()
    with contextlib.ExitStack() as stack:
        stack.enter_context(limits_clock(clock))
        http = stack.enter_context(
            httpx.Client(timeout=10.0, event_hooks={"request": [count_request]})
        )
        # Backoff would stall the run in wall-clock time; the simulated clock is what
        # the run is about, so retries go straight out (and are still counted).
        client = stack.enter_context(
            LinqClient(api_key, base_url=base_url, http_client=http, sleep=lambda _s: None)
        )
        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(workers, "simulate"))
        sender = None
        if server is not None:
            sender = stack.enter_context(
                ChatSender(server.base_url, server.api_key, workers=workers)
            )
        registry = Registry(client, ttl=TTL, error_retry_interval=ERROR_RETRY, clock=clock)
        registry.snapshot()  # a cold start that fails is an API failure, before any pick
        router = stack.enter_context(
            Router(
                registry,
                policy=spec,
                ejection=ejection,
                on_event=loop,
                clock=clock,
                pacing=pacing,
            )
        )
        worker = _Worker(router, sender, pool, workload, trace, loop)
        started = time.perf_counter()
        for tick in range(workload.ticks):
            loop.tick = tick
            if server is not None:
                for event in events.get(tick, ()):
                    event.apply(server)
            # Settle the tick's snapshot before any pick: a refresh that is due (or a
            # retry the registry would start in the background) finishes first, so
            # every pick of the tick sees the same snapshot.
            registry.snapshot()
            registry.close()
            trace.snapshots.append(registry.snapshot())
            # Ejections whose time came end now, before the tick's first pick; then the
            # router's compile of it all is waited for, which keeps the run reproducible.
            router.ejections()
            loop.take(router)
            router.settle(_SETTLE_TIMEOUT)
            lo, hi = workload.bounds(tick)
            for first in range(lo, hi, workers):
                worker.batch(range(first, min(first + workers, hi)))
            if progress is not None:
                progress(hi - lo)
            clock.advance(workload.tick_seconds)
        elapsed = time.perf_counter() - started
        retries = client.retries
        # Read while limits still reads the simulated clock: the windows as they end.
        use = router.budgets()
        ended_at = clock()
    trace.ejections = loop.finish()
    return summarize(
        spec,
        workload,
        trace,
        workers=workers,
        elapsed=elapsed,
        counters=(calls, retries, registry.refreshes, registry.failures),
        ejection=ejection,
        budgets=budget_figures(
            trace.attempts,
            workload.recipients,
            workload.tick_seconds,
            budgets,
            paced=pacing is not None,
        ),
        budget_use=use,
        ended_at=ended_at,
    )


def run_on_fake(spec: str, workload: Workload, **options: Any) -> RunResult:
    """``run_workload`` on a fresh ``FakeLinqServer(sample_pool())`` and a clock at 0.

    ``options`` are ``run_workload``'s (``workers``, ``ejection``, ``pacing``...).
    """
    clock = FakeClock(0.0)
    with FakeLinqServer(sample_pool(), clock=clock) as server:
        return run_workload(
            spec,
            workload,
            base_url=server.base_url,
            api_key=server.api_key,
            server=server,
            clock=clock,
            **options,
        )


def run_specs(
    specs: Sequence[str],
    workload: Workload,
    *,
    demo: bool,
    workers: int = 4,
    naive: bool = True,
    progress: ProgressFn | None = None,
) -> list[RunResult]:
    """Run each spec on ``workload``: with ``demo``, with and without the loop, on the fake.

    With ``demo``, each spec runs on a fresh ``FakeLinqServer(sample_pool())`` with the
    feedback loop, then (unless ``naive`` is False) on another as the naive worker,
    whose result is the first's ``naive``: every run starts from the same pool and
    meets the same events at the same sends. Without ``demo`` the client reads
    ``LINQ_API_V3_API_KEY`` / ``LINQ_API_V3_BASE_URL``, the pool is left alone and
    nothing is sent.
    """
    results = []
    for spec in specs:
        if not demo:
            results.append(run_workload(spec, workload, workers=workers, progress=progress))
            continue
        runs = [
            run_on_fake(spec, workload, workers=workers, ejection=ejection, progress=progress)
            for ejection in ((LOOP_EJECTION, None) if naive else (LOOP_EJECTION,))
        ]
        loop, *without = runs
        results.append(attrs.evolve(loop, naive=without[0] if without else None))
    return results


def runs_per_spec(*, demo: bool) -> int:
    """How many runs ``run_specs`` makes of each spec (for a progress bar's total)."""
    return 2 if demo else 1
