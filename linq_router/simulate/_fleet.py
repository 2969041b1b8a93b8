"""``simulate --workers-processes N --state URI``: a fleet's picks against one process's.

Each of N worker processes builds its own client, registry and router
(``Router(..., state=URI)``) and picks its slice of the workload's recipients from
``threads`` threads; then one process alone makes every pick on ``memory://``. On a
shared Redis the fleet takes its rotation's turns from one counter, so its per-line
counts are the single process's, to the pick; on ``memory://`` each process rotates
on its own and they are not. Each run gets a namespace of its own, so no fleet's
counters are touched and a rerun starts afresh.

Processes are forked on Linux (the embedded fake API serves from a thread of the
parent, as in ``tests/state/test_fleet.py``) and spawned elsewhere. Every process and
thread is joined within a timeout; on any failure the children are terminated. Picks
only: nothing is sent, no outcome is reported, pacing is off.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import queue
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import attrs
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from linq_router._client import LinqClient
from linq_router._errors import NoEligibleNumberError
from linq_router._registry import Registry
from linq_router._router import Router
from linq_router.state import ResilientState, from_uri
from linq_router.state._uri import masked_uri
from linq_router.testing import FakeLinqServer, sample_pool

from ._results import percent
from ._workload import make_workload

__all__ = [
    "FleetError",
    "FleetResult",
    "WorkerReport",
    "check_state_uri",
    "render_fleet",
    "run_fleet",
]

FLEET_TIMEOUT = 120.0
"""Seconds a fleet's processes (and each one's threads) have to finish their picks."""
_NO_LINE = "(no eligible line)"


class FleetError(RuntimeError):
    """A worker process failed, died or did not finish in time (the others are ended)."""


def check_state_uri(uri: str) -> str:
    """``uri`` as a message may show it (password masked); raises what ``from_uri`` does.

    Parses only: nothing connects (a Redis that is down shows in the run's outages).
    """
    _close(from_uri(uri))
    return masked_uri(uri)


def _close(state: object) -> None:
    """Close ``state``'s connections if it has any (a ``MemoryState`` has none)."""
    close = getattr(state, "close", None)
    if callable(close):
        close()


def _with_namespace(uri: str, run: str) -> tuple[str, str]:
    """``uri`` with a namespace of this run's own (after the URI's own, if it names one)."""
    base, _, query = uri.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    namespace = f"{options.get('namespace', 'linq_router')}-simulate-{run}"
    options["namespace"] = namespace
    return f"{base}?{urlencode(options)}", namespace


@attrs.frozen
class WorkerReport:
    """What one worker process picked, and what its state went through."""

    counts: dict[str, int]
    """Picks per line (phone number); ``"(no eligible line)"`` for picks that found none."""
    seconds: float
    """Wall-clock seconds from the start signal until its threads were joined."""
    rotates: bool
    """Whether the state can take turns of a shared rotation (``rotate``)."""
    outages: int = 0
    """``ResilientState.outages``: times the process fell back to its own memory."""
    degraded: bool = False
    """``ResilientState.degraded`` when its picks were done."""


@attrs.frozen
class _Job:
    index: int
    base_url: str | None
    api_key: str | None
    spec: str
    state: str
    recipients: tuple[str, ...]
    threads: int
    timeout: float


def _pick_all(job: _Job, start: Any) -> WorkerReport:
    """Pick for every recipient of ``job`` from its threads, once ``start`` lets all go."""
    logging.getLogger("linq_router").setLevel(logging.ERROR)  # an outage warns once a process
    counts: collections.Counter[str] = collections.Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    with LinqClient(job.api_key, base_url=job.base_url) as client:
        registry = Registry(client, ttl=3600.0)  # one snapshot for the whole run
        router = Router(registry, policy=job.spec, state=job.state, ejection=None, pacing=None)

        def pick(recipients: Sequence[str]) -> None:
            mine: collections.Counter[str] = collections.Counter()
            try:
                for to in recipients:
                    try:
                        mine[router.pick(to).phone_number] += 1
                    except NoEligibleNumberError:
                        mine[_NO_LINE] += 1
            except BaseException as exc:  # handed to the process, which reports it
                with lock:
                    errors.append(exc)
            with lock:
                counts.update(mine)

        first, rest = job.recipients[:1], job.recipients[1:]
        pick(first)  # the first pick compiles the policy, before the clock starts
        start.wait(job.timeout)
        began = time.perf_counter()
        threads = [
            threading.Thread(target=pick, args=(rest[k :: job.threads],), daemon=True)
            for k in range(job.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(job.timeout)
        seconds = time.perf_counter() - began
        if any(thread.is_alive() for thread in threads):
            msg = f"its threads did not finish within {job.timeout:.0f} s"
            raise FleetError(msg)
        if errors:
            raise errors[0]
        state = router.state
        router.close()
    report = WorkerReport(
        dict(counts),
        seconds,
        rotates=callable(getattr(state, "rotate", None)),
        outages=state.outages if isinstance(state, ResilientState) else 0,
        degraded=state.degraded if isinstance(state, ResilientState) else False,
    )
    _close(state)
    return report


def _worker(job: _Job, start: Any, out: Any) -> None:
    """A worker process's body: its report (or its error, as text) onto ``out``."""
    try:
        report: WorkerReport | str = _pick_all(job, start)
    except BaseException as exc:  # the parent fails the run with it
        report = f"{type(exc).__name__}: {exc}"
    out.put((job.index, report))


def _context() -> Any:
    # fork where it is safe (Linux): the children reach the fake API served by a
    # thread of this process, and start in milliseconds; spawn elsewhere.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


def _run_processes(jobs: Sequence[_Job], timeout: float) -> list[WorkerReport]:
    """Run one process per job, released together; their reports in job order."""
    ctx = _context()
    start, out = ctx.Barrier(len(jobs)), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(job, start, out), name=f"linq-router-fleet-{job.index}")
        for job in jobs
    ]
    reports: dict[int, WorkerReport] = {}
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.start()
        while len(reports) < len(procs):
            try:
                index, report = out.get(timeout=0.2)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    msg = f"worker process {dead[0].name} exited with code {dead[0].exitcode}"
                    raise FleetError(msg) from None
                if time.monotonic() > deadline:
                    msg = f"the worker processes did not finish within {timeout:.0f} s"
                    raise FleetError(msg) from None
                continue
            if isinstance(report, str):
                msg = f"worker process {index + 1} of {len(procs)} failed: {report}"
                raise FleetError(msg)
            reports[index] = report
        for proc in procs:
            proc.join(max(deadline - time.monotonic(), 1.0))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(5.0)
        out.close()
    return [reports[job.index] for job in jobs]


def _slices(items: Sequence[str], parts: int) -> list[tuple[str, ...]]:
    """``items`` cut into ``parts`` runs in order, their lengths within one of each other."""
    size, extra = divmod(len(items), parts)
    bounds = [k * size + min(k, extra) for k in range(parts + 1)]
    return [tuple(items[bounds[k] : bounds[k + 1]]) for k in range(parts)]


Verdict = Literal["exact", "cycle", "differ"]
"""How the fleet's counts compare with one process's: equal, within one cycle, or not."""


@attrs.frozen
class FleetResult:
    """One spec's picks by a fleet and by one process alone. ``run_fleet`` builds it."""

    spec: str
    seed: int
    threads: int
    state: str
    """The state URI as shown (password masked, no query)."""
    namespace: str | None
    """The run's own namespace on Redis; None for ``memory://``."""
    fleet: tuple[WorkerReport, ...]
    single: WorkerReport

    @property
    def picks(self) -> int:
        """Picks the fleet made (one process made as many)."""
        return sum(sum(w.counts.values()) for w in self.fleet)

    @property
    def fleet_counts(self) -> dict[str, int]:
        """The fleet's picks per line, every process's added up."""
        total: collections.Counter[str] = collections.Counter()
        for worker in self.fleet:
            total.update(worker.counts)
        return dict(total)

    @property
    def lines(self) -> list[str]:
        """Every line picked by the fleet or the single process, sorted."""
        return sorted(set(self.fleet_counts) | set(self.single.counts))

    def difference(self, line: str) -> int:
        """The fleet's picks of ``line`` minus the single process's."""
        return self.fleet_counts.get(line, 0) - self.single.counts.get(line, 0)

    def cycle_turns(self, line: str) -> int:
        """``line``'s turns in one cycle, estimated from the single process's shares.

        The lightest line is taken to have one turn a cycle, and each other line as
        many as its picks are a multiple of the lightest's (at least one).
        """
        counts = [n for key, n in self.single.counts.items() if key != _NO_LINE and n]
        if not counts:
            return 1
        return max(1, round(self.single.counts.get(line, 0) / min(counts)))

    @property
    def verdict(self) -> Verdict:
        """``"exact"``, ``"cycle"`` (each line within its turns of one cycle) or ``"differ"``."""
        diffs = {line: self.difference(line) for line in self.lines}
        if not any(diffs.values()):
            return "exact"
        if all(abs(d) <= self.cycle_turns(line) for line, d in diffs.items()):
            return "cycle"
        return "differ"

    @property
    def shared(self) -> bool:
        """True if every process took its turns from the shared state, with no outage."""
        return all(w.rotates and not w.outages for w in self.fleet)


def run_fleet(
    specs: Sequence[str],
    *,
    processes: int,
    threads: int,
    sends: int,
    seed: int,
    state: str,
    demo: bool,
    timeout: float = FLEET_TIMEOUT,
) -> list[FleetResult]:
    """For each spec, ``sends`` picks by ``processes`` processes on ``state``, then by one.

    With ``demo``, every process reads the embedded fake API (``sample_pool()``, served
    by a thread of this process); without, the API the environment names. Raises
    ``FleetError`` when a process fails, dies or overruns ``timeout``.
    """
    recipients = make_workload(sends, seed, events=False).recipients
    shown = masked_uri(state)
    memory = state.partition("://")[0].lower() == "memory"
    run = uuid.uuid4().hex[:8]
    results = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(FakeLinqServer(sample_pool())) if demo else None
        where = (server.base_url, server.api_key) if server is not None else (None, None)

        def jobs(spec: str, uri: str, parts: int) -> list[_Job]:
            return [
                _Job(i, where[0], where[1], spec, uri, chunk, threads, timeout)
                for i, chunk in enumerate(_slices(recipients, parts))
            ]

        for k, spec in enumerate(specs, start=1):
            uri, namespace = (state, None) if memory else _with_namespace(state, f"{run}-{k}")
            fleet = _run_processes(jobs(spec, uri, processes), timeout)
            (single,) = _run_processes(jobs(spec, "memory://", 1), timeout)
            results.append(FleetResult(spec, seed, threads, shown, namespace, tuple(fleet), single))
    return results


def _table(result: FleetResult) -> Table:
    n = len(result.fleet)
    table = Table()
    for name in ("line", f"fleet ({n})", "share", "one process", "share", "difference"):
        table.add_column(name, justify="left" if name == "line" else "right", no_wrap=True)
    fleet, single = result.fleet_counts, result.single.counts
    for line in result.lines:
        diff = result.difference(line)
        table.add_row(
            line,
            f"{fleet.get(line, 0):,}",
            percent(fleet.get(line, 0), result.picks),
            f"{single.get(line, 0):,}",
            percent(single.get(line, 0), sum(single.values())),
            Text(f"{diff:+,}" if diff else "0", style="yellow" if diff else ""),
        )
    return table


def _notes(result: FleetResult) -> list[Text]:
    """Where the run picked, any outage, and the verdict."""
    n, threads = len(result.fleet), f"{result.threads} thread{'s' * (result.threads != 1)}"
    where = result.state + (f" (namespace {result.namespace})" if result.namespace else "")
    seconds = max(w.seconds for w in result.fleet)
    notes = [
        Text(
            f"fleet: {n} process{'es' * (n != 1)} x {threads} on {where}, {seconds:.2f} s; "
            f"one process: {threads} on memory://, {result.single.seconds:.2f} s",
            style="dim",
        )
    ]
    hit = [w for w in result.fleet if w.outages]
    if hit:
        outages, still = sum(w.outages for w in hit), sum(w.degraded for w in hit)
        notes.append(
            Text(
                f"Redis unreachable: {len(hit)} of {n} processes fell back to their own "
                f"memory (ResilientState: {outages} outage{'s' * (outages != 1)}, {still} "
                "still degraded at the end), so their state was NOT shared",
                style="bold red",
            )
        )
    if result.verdict == "differ":
        worst = max(result.lines, key=lambda line: abs(result.difference(line)))
        verdict = Text("shares do NOT match one process", style="bold red")
        turns = result.cycle_turns(worst)
        verdict.append(
            f": {worst} is off by {result.difference(worst):+,} picks, more than its "
            f"{turns} turn{'s' * (turns != 1)} a cycle"
        )
    else:
        how = "exactly" if result.verdict == "exact" else "within one cycle"
        verdict = Text(f"shares match one process {how}", style="bold green")
    if hit:
        verdict.append("; the processes did not share their turns while Redis was unreachable")
    elif not result.shared and n > 1:
        verdict.append(
            f"; each of the {n} processes kept its own state ({result.state}): "
            "give --state redis://HOST:PORT/DB to share it"
        )
    elif n > 1:
        verdict.append(f": the {n} processes shared one state")
    return [*notes, verdict]


def render_fleet(results: Sequence[FleetResult], *, demo: bool = True) -> RenderableType:
    """A table per spec (line, fleet's picks and share, one process's, difference)."""
    parts: list[RenderableType] = []
    for result in results:
        if parts:
            parts.append("")
        title = f"{result.spec!r}: {result.picks:,} picks by {len(result.fleet)} processes"
        title += " and by one" + (" (demo pool)" if demo else "")
        parts += [Text(title, style="bold"), _table(result), *_notes(result)]
    return Group(*parts)
