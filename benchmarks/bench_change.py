"""What one changed line costs: compile time, memory, and picks while a line flips.

Run from the repository root::

    python benchmarks/bench_change.py                     # writes its section of docs/benchmarks.md
    python benchmarks/bench_change.py --quick --no-write  # CI: 1,000 and 10,000 lines, 1 s windows

``python benchmarks/run.py`` runs this with the other benchmarks.

For each policy spec and pool size (1,000, 10,000 and 50,000 lines; ``--quick``: the
first two and fewer specs) it measures:

1. **Full compile**: ``compile_policy(policy, snapshot)`` with no previous compile
   (median of up to 5 runs after an untimed first one; just the first when it is slow).
2. **Incremental compile**: ``compile_policy(policy, next_snapshot, previous=compiled)``
   where ``next_snapshot = snapshot.replace_number(...)`` changed one line, once for a
   reputation change (HEALTHY <-> AT_RISK) and once for a status change (ACTIVE <->
   FLAGGED), each chained on the last compile as a router would; the worse is reported.
3. **Picks while one line flips**: a ``Router`` over a registry double; one thread
   picks in a tight loop over 4,000 distinct recipients, timing every pick, first with
   nothing changing (the baseline, same router, same duration), then while another
   thread publishes a snapshot every 200 ms in which one line alternates CRITICAL and
   HEALTHY (the snapshots are built beforehand, so only the router's work is on the
   clock). A pick is *stale* when it returned that line although it started after a
   snapshot with the line CRITICAL was published and ended before the next one was.
4. **Memory**: bytes ``tracemalloc`` sees retained by one compiled policy (the snapshot
   is built beforehand and excluded; ``--quick``: ``sticky`` only), and for ``sticky``
   what its ``MemoryState`` holds after 100,000 distinct conversations.

A spec whose full compile takes more than 5 s at a size skips the flip test and the
memory measurement there (and compiles incrementally once per kind), so the full run
finishes in minutes even when compiles are slow; the output says what was skipped.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import heapq
import math
import statistics
import sys
import threading
import time
import tracemalloc
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import machine, write_section
from bench_pick import AREA_CODES, StaticRegistry, make_pool

from linq_router import PhoneNumber, Reputation, Router, Snapshot
from linq_router.policies import compile_policy, parse_policy

SIZES = (1_000, 10_000, 50_000)
QUICK_SIZES = (1_000, 10_000)
PERIOD = 0.2  # seconds between flips
WINDOW, QUICK_WINDOW = 5.0, 1.0  # seconds of picking, with flips and without
SLOW = 5.0  # a full compile slower than this (s) skips the flip test and memory at that size
RECIPIENTS = [f"+1{AREA_CODES[i % len(AREA_CODES)]}555{i:04d}" for i in range(4_000)]
CONVERSATIONS = 100_000
STATE_SIZE = 10_000  # pool size the sticky MemoryState is measured at

TARGET_PICK_MS = 50.0  # at 10,000 lines, no pick slower than this while a line flips
TARGET_FULL_S = {10_000: 0.150, 50_000: 1.0}
TARGET_STICKY_MB = 15.0  # sticky's compiled policy at 10,000 lines
QUICK_SPECS = (  # --quick measures these; memory only for sticky (the one with a target)
    "skip-critical | reputation-weighted",
    "round-robin",
    "sticky",
    "skip-critical | round-robin",
    "geomatch | round-robin",
    "geomatch | sticky",
)


def steady_lines(pool: Snapshot) -> list[PhoneNumber]:
    """HEALTHY, ACTIVE, iMessage +1 lines from the middle of the pool on."""
    return [
        n
        for n in pool.numbers[len(pool) // 2 :]
        if n.reputation is Reputation.HEALTHY
        and n.status == "ACTIVE"
        and n.line_type == "iMessage"
        and n.phone_number.startswith("+1")
    ]


def specs(pool: Snapshot, *, quick: bool) -> dict[str, str]:
    """Row label -> spec. ``only`` lists five steady lines, the changed one first."""
    listed = ", ".join(n.phone_number for n in steady_lines(pool)[:5])
    excluded = pool[len(pool) // 3].phone_number
    every = {
        "skip-critical | reputation-weighted (default)": "skip-critical | reputation-weighted",
        "round-robin": "round-robin",
        "reputation-weighted": "reputation-weighted",
        "sticky": "sticky",
        "skip-critical | sticky": "skip-critical | sticky",
        "skip-critical | round-robin": "skip-critical | round-robin",
        "geomatch | round-robin": "geomatch | round-robin",
        "line-type(iMessage) | round-robin": "line-type(iMessage) | round-robin",
        "prefer-imessage | round-robin": "prefer-imessage | round-robin",
        "exclude(1 number) | round-robin": f"exclude({excluded}) | round-robin",
        "only(5 numbers) | round-robin": f"only({listed}) | round-robin",
        "geomatch | sticky": "geomatch | sticky",
    }
    if quick:
        return {label: spec for label, spec in every.items() if spec in QUICK_SPECS}
    return every


def drops_critical(spec: str) -> bool:
    """Whether the policy must never pick a CRITICAL line (else stale picks do not apply)."""
    selector = spec.rsplit("|", 1)[-1].strip()
    return "skip-critical" in spec or selector.startswith(("reputation-weighted", "sticky"))


# -- compile time -------------------------------------------------------------------------


def repeat_timed(fn: Callable[[], object], runs: int, budget: float) -> list[float]:
    """Seconds per call of ``fn``: up to ``runs`` calls, no new one once ``budget`` is spent."""
    times: list[float] = []
    while len(times) < runs and (not times or sum(times) + times[-1] <= budget):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


@dataclass
class Compiles:
    """Compile figures for one spec at one size (seconds)."""

    full: float
    full_runs: int  # timed runs after the first; 0: the first run is the figure
    incremental: dict[str, float]  # change kind -> median seconds

    @property
    def worse(self) -> tuple[str, float]:
        kind = max(self.incremental, key=self.incremental.__getitem__)
        return kind, self.incremental[kind]


CHANGES: dict[str, tuple[str, object, object]] = {
    "reputation": ("reputation", Reputation.AT_RISK, Reputation.HEALTHY),
    "status": ("status", "FLAGGED", "ACTIVE"),
}


def measure_compiles(spec: str, pool: Snapshot, changed_id: str, *, quick: bool) -> Compiles:
    policy = parse_policy(spec)
    runs, budget = (3, 1.5) if quick else (5, 4.0)
    last: dict[str, Any] = {}

    def full_compile() -> None:
        last["compiled"] = compile_policy(policy, pool)

    # One more run than kept: the first pays for process-wide caches (geomatch's number
    # parses) and is dropped, unless it is the only one the budget allows.
    timed = repeat_timed(full_compile, runs + 1, budget)
    full = timed[1:] or timed
    # Chained on the last full compile, as a router does: each previous is used once.
    snap, compiled = pool, last.pop("compiled")
    line = pool.get(changed_id)
    assert line is not None
    steps = runs if full[-1] < SLOW else 1
    incremental: dict[str, float] = {}
    for kind, (attr, changed, restored) in CHANGES.items():
        times: list[float] = []
        for step in range(steps):
            line = attrs.evolve(line, **{attr: changed if step % 2 == 0 else restored})
            nxt = snap.replace_number(line)
            start = time.perf_counter()
            compiled = compile_policy(policy, nxt, previous=compiled)
            times.append(time.perf_counter() - start)
            snap = nxt
            if sum(times) > budget:
                break
        incremental[kind] = statistics.median(times)
    return Compiles(statistics.median(full), len(timed) - 1, incremental)


def reference_times(pool: Snapshot, changed_id: str) -> dict[str, float]:
    """Seconds for plain work over the same pool: what a compile is compared with."""
    lines = pool.numbers
    healthy = Reputation.HEALTHY
    line = pool.get(changed_id)
    assert line is not None
    other = attrs.evolve(line, reputation=Reputation.AT_RISK)
    return {
        "pass": statistics.median(
            repeat_timed(lambda: [n for n in lines if n.reputation is healthy], 7, 1.0)
        ),
        "replace": statistics.median(repeat_timed(lambda: pool.replace_number(other), 7, 1.0)),
    }


# -- picks while a line flips ---------------------------------------------------------------


class FlippingSource:
    """A registry double: holds the current snapshot and announces each new one."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._lock = threading.Lock()
        self.listener_errors: list[str] = []

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def subscribe(self, listener: Callable[[Snapshot], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, snapshot: Snapshot) -> tuple[float, float]:
        """Install ``snapshot``, then tell the listeners; perf_counter just before and after."""
        before = time.perf_counter()
        self._snapshot = snapshot
        after = time.perf_counter()
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(snapshot)
            except Exception as exc:  # a registry logs and carries on; so do we
                self.listener_errors.append(repr(exc))
        return before, after


@dataclass
class Picks:
    """What one picking thread saw."""

    durations: array[float] = field(default_factory=lambda: array("d"))
    hits: list[tuple[float, float]] = field(default_factory=list)  # (start, end), flipped line
    errors: int = 0
    first_error: str = ""

    def max_ms(self) -> float:
        return max(self.durations, default=0.0) * 1e3

    def p99_us(self) -> float:
        if not self.durations:
            return 0.0
        # The 99th percentile is the smallest of the top 1%: cheaper than sorting them all.
        top = len(self.durations) - math.ceil(0.99 * len(self.durations)) + 1
        return heapq.nlargest(top, self.durations)[-1] * 1e6


def pick_loop(
    pick: Callable[[str], Any], flipped_id: str, stop: threading.Event, out: Picks
) -> None:
    clock = time.perf_counter
    durations, hits = out.durations, out.hits
    recipients, n, i = RECIPIENTS, len(RECIPIENTS), 0
    while not stop.is_set():
        to = recipients[i]
        i = (i + 1) % n
        start = clock()
        try:
            chosen = pick(to)
        except Exception as exc:
            end = clock()
            out.errors += 1
            out.first_error = out.first_error or repr(exc)
        else:
            end = clock()
            if chosen.number.id == flipped_id:
                hits.append((start, end))
        durations.append(end - start)


def flip_loop(
    source: FlippingSource,
    snapshots: list[tuple[Snapshot, bool]],
    stop: threading.Event,
    log: list[tuple[float, float, bool]],
) -> None:
    due = time.perf_counter() + PERIOD
    for snapshot, critical in snapshots:
        if stop.wait(max(0.0, due - time.perf_counter())):
            return
        before, after = source.publish(snapshot)
        log.append((before, after, critical))
        due = max(due + PERIOD, time.perf_counter())


def run_window(
    router: Router,
    flipped_id: str,
    seconds: float,
    join_timeout: float,
    flips: tuple[FlippingSource, list[tuple[Snapshot, bool]]] | None = None,
) -> tuple[Picks, list[tuple[float, float, bool]], list[str]]:
    """Pick for ``seconds`` (flipping if ``flips``); the picks, publications, stuck threads."""
    stop = threading.Event()
    out = Picks()
    log: list[tuple[float, float, bool]] = []
    threads = [
        threading.Thread(
            target=pick_loop, args=(router.pick, flipped_id, stop, out), name="picker", daemon=True
        )
    ]
    if flips is not None:
        threads.append(
            threading.Thread(
                target=flip_loop, args=(*flips, stop, log), name="flipper", daemon=True
            )
        )
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    deadline = time.monotonic() + join_timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return out, log, [t.name for t in threads if t.is_alive()]


def stale_picks(hits: list[tuple[float, float]], log: list[tuple[float, float, bool]]) -> int:
    """Picks of the flipped line made wholly while the published snapshot had it CRITICAL."""
    published = [after for _, after, _ in log]
    stale = 0
    for start, end in hits:
        i = bisect.bisect_left(published, start) - 1  # the last publication before the pick
        if i < 0 or not log[i][2]:
            continue
        if i + 1 < len(log) and end >= log[i + 1][0]:
            continue  # the next snapshot (line HEALTHY again) may be the one it read
        stale += 1
    return stale


@dataclass
class Flip:
    """The flip test for one spec at one size."""

    picks: int
    max_ms: float
    p99_us: float
    base_picks: int
    base_max_ms: float
    base_p99_us: float
    flips: int
    hits: int
    stale: int | None  # None: the policy may pick CRITICAL lines
    errors: str = ""


def busiest_steady_line(router: Router, pool: Snapshot) -> str:
    """Warm the router (every recipient once); the HEALTHY ACTIVE line it chose most."""
    counts = Counter(router.pick(to).number.id for to in RECIPIENTS)
    for line_id, _ in counts.most_common():
        line = pool.get(line_id)
        if line is not None and line.reputation is Reputation.HEALTHY and line.status == "ACTIVE":
            return line_id
    return steady_lines(pool)[0].id


def flip_test(spec: str, pool: Snapshot, window: float, join_timeout: float) -> Flip:
    source = FlippingSource(pool)
    router = Router(source, spec)
    try:
        flipped_id = busiest_steady_line(router, pool)
        line = pool.get(flipped_id)
        assert line is not None
        snapshots: list[tuple[Snapshot, bool]] = []
        current = pool
        for k in range(int(window / PERIOD) + 1):
            critical = k % 2 == 0
            rep = Reputation.CRITICAL if critical else Reputation.HEALTHY
            current = current.replace_number(attrs.evolve(line, reputation=rep))
            snapshots.append((current, critical))
        gc.collect()
        base, _, stuck = run_window(router, flipped_id, window, join_timeout)
        gc.collect()
        if not stuck:
            flipping, log, stuck = run_window(
                router, flipped_id, window, join_timeout, (source, snapshots)
            )
        else:
            flipping, log = Picks(), []
    finally:
        router.close()
    problems = []
    if base.errors + flipping.errors:
        first = base.first_error or flipping.first_error
        problems.append(f"{base.errors + flipping.errors} picks raised ({first})")
    if stuck:
        problems.append(f"threads still running {join_timeout:.0f} s after: {', '.join(stuck)}")
    if source.listener_errors:
        problems.append(f"the router's listener raised {source.listener_errors[0]}")
    return Flip(
        picks=len(flipping.durations),
        max_ms=flipping.max_ms(),
        p99_us=flipping.p99_us(),
        base_picks=len(base.durations),
        base_max_ms=base.max_ms(),
        base_p99_us=base.p99_us(),
        flips=len(log),
        hits=len(flipping.hits),
        stale=stale_picks(flipping.hits, log) if drops_critical(spec) else None,
        errors="; ".join(problems),
    )


# -- memory -----------------------------------------------------------------------------------


def retained(fn: Callable[[], object]) -> tuple[object, int]:
    """``fn()``, and the bytes allocated while it ran that are still alive after it."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        obj = fn()
        gc.collect()
        return obj, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@dataclass
class StateMemory:
    """Sticky's conversation state after ``CONVERSATIONS`` distinct conversations."""

    picks_bytes: int  # everything the picks left allocated (includes bounded pick caches)
    state_bytes: int | None  # what clearing the MemoryState freed
    entries: int | None
    max_size: int | None


def state_memory(pool: Snapshot) -> StateMemory:
    router = Router(StaticRegistry(pool), "sticky")
    try:
        router.pick("+19995550000")  # compile outside the measurement
        state = getattr(router.policy.selector, "state", None)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(CONVERSATIONS):  # the recipients are made here: the state keeps them
                router.pick(f"+1{AREA_CODES[i % len(AREA_CODES)]}{2_000_000 + i:07d}")
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
            if state is None or not callable(getattr(state, "clear", None)):
                return StateMemory(after - before, None, None, None)
            entries = len(state)
            state.clear()
            gc.collect()
            freed = after - tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        return StateMemory(after - before, freed, entries, getattr(state, "max_size", None))
    finally:
        router.close()


# -- the run --------------------------------------------------------------------------------


@dataclass
class Cell:
    """Everything measured for one spec at one size."""

    compiles: Compiles
    flip: Flip | None = None
    memory: int | None = None
    skipped: list[str] = field(default_factory=list)


@dataclass
class Results:
    sizes: tuple[int, ...]
    window: float
    quick: bool
    cells: dict[str, dict[int, Cell]] = field(default_factory=dict)
    reference: dict[int, dict[str, float]] = field(default_factory=dict)
    snapshot_bytes: dict[int, int] = field(default_factory=dict)
    state: StateMemory | None = None


def measure_cell(spec: str, pool: Snapshot, changed_id: str, *, quick: bool, window: float) -> Cell:
    compiles = measure_compiles(spec, pool, changed_id, quick=quick)
    cell = Cell(compiles)
    if compiles.full > SLOW:
        cell.skipped.append(
            f"full compile took {compiles.full:.1f} s (> {SLOW:.0f} s): "
            "flip test and memory skipped"
        )
        return cell
    if not quick or spec == "sticky":
        policy = parse_policy(spec)
        _, cell.memory = retained(lambda: compile_policy(policy, pool))
    cell.flip = flip_test(spec, pool, window, join_timeout=10 + 3 * compiles.full)
    return cell


def run(*, quick: bool) -> Results:
    results = Results(QUICK_SIZES if quick else SIZES, QUICK_WINDOW if quick else WINDOW, quick)
    began = time.monotonic()
    for size in results.sizes:
        pool, results.snapshot_bytes[size] = retained(lambda size=size: make_pool(size))
        assert isinstance(pool, Snapshot)
        changed_id = steady_lines(pool)[0].id
        results.reference[size] = reference_times(pool, changed_id)
        for label, spec in specs(pool, quick=quick).items():
            cell = measure_cell(spec, pool, changed_id, quick=quick, window=results.window)
            results.cells.setdefault(label, {})[size] = cell
            print(
                f"size {size:,} {label}: full {cell.compiles.full * 1e3:.0f} ms "
                f"({time.monotonic() - began:.0f} s elapsed)",
                file=sys.stderr,
            )
        if size == STATE_SIZE:
            results.state = state_memory(pool)
    return results


# -- the report -------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    value = seconds * 1e3
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def mb(size: int | None) -> str:
    if size is None:
        return "n/a"
    return f"{size / 1e6:.2f}" if size >= 100_000 else f"{size / 1e6:.3f}"


def cell_label(label: str) -> str:
    """``label`` as a table cell: its pipes escaped."""
    return label.replace("|", "\\|")


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def header(results: Results, cols: list[str]) -> list[str]:
    return ["| policy | " + " | ".join(cols) + " |", "|---" + " | ---:" * len(cols) + " |"]


def size_cols(results: Results) -> list[str]:
    return [f"{s:,} lines" for s in results.sizes]


def compile_tables(results: Results) -> list[str]:
    sizes, first, last = results.sizes, results.sizes[0], results.sizes[-1]
    targets = [s for s in sizes if s in TARGET_FULL_S]
    lines = [
        "### Full compile (no previous), ms",
        "",
        f"Median of up to {3 if results.quick else 5} runs after an untimed first one (which",
        "fills process-wide caches such as geomatch's number parses); when the first run",
        "alone used the time budget, it is the figure, marked *(1 run)*.",
        "",
        *header(
            results,
            size_cols(results)
            + [f"{s:,}: target ≤ {TARGET_FULL_S[s] * 1e3:,.0f} ms" for s in targets],
        ),
    ]
    for key, what in (
        ("pass", "*reference: one list comprehension over the lines*"),
        ("replace", "*reference: `snapshot.replace_number` (the snapshot's side of a change)*"),
    ):
        lines.append(
            f"| {what} | "
            + " | ".join(ms(results.reference[s][key]) for s in sizes)
            + " |" * (len(targets) + 1)
        )
    for label, by_size in results.cells.items():
        cells = [
            ms(by_size[s].compiles.full)
            + (" (1 run)" if by_size[s].compiles.full_runs == 0 else "")
            for s in sizes
        ]
        verdicts = [met(by_size[s].compiles.full <= TARGET_FULL_S[s]) for s in targets]
        lines.append(f"| {cell_label(label)} | " + " | ".join(cells + verdicts) + " |")
    lines += [
        "",
        "### Incremental compile (one line changed, `previous` given), ms",
        "",
        "The worse of a reputation change (HEALTHY ↔ AT_RISK) and a status change",
        "(ACTIVE ↔ FLAGGED), each the median of its steps. There is no numeric ceiling:",
        f"the target is *roughly flat*, i.e. {last:,} / {first:,} near 1 (it would be",
        f"{last // first} if the work grew with the pool) and incremental / full well below 1.",
        "",
        *header(
            results,
            [
                *size_cols(results),
                f"{last // 1000}k / {first // 1000}k",
                f"incremental / full at {last // 1000}k",
                "worse change",
            ],
        ),
    ]
    for label, by_size in results.cells.items():
        worse = {s: by_size[s].compiles.worse for s in sizes}
        lines.append(
            f"| {cell_label(label)} | "
            + " | ".join(ms(worse[s][1]) for s in sizes)
            + f" | {worse[last][1] / worse[first][1]:.1f}"
            + f" | {worse[last][1] / by_size[last].compiles.full:.2f}"
            + f" | {worse[last][0]} |"
        )
    return lines


def flip_tables(results: Results) -> list[str]:
    lines = [
        f"### Picks while one line flips (every {PERIOD * 1e3:.0f} ms for {results.window:g} s)",
        "",
        "*no-flip* is the same router and loop for the same time with nothing changing,",
        "just before. *stale* picks returned the flipped line although they started after",
        "a snapshot with it CRITICAL was published and ended before the next one (target",
        "0; n/a for policies that may pick CRITICAL lines). *flipped-line picks* shows",
        "how often the check had something to check. *flips* counts the snapshots",
        f"published in the window ({int(results.window / PERIOD)} due; fewer when announcing one",
        "to the router blocks the publisher).",
    ]
    cols = [
        "picks",
        "max ms",
        "p99 µs",
        "no-flip max ms",
        "no-flip p99 µs",
        "max / no-flip max",
        "flips",
        "flipped-line picks",
        "stale",
    ]
    for size in results.sizes:
        target = f" (target: max ≤ {TARGET_PICK_MS:.0f} ms)" if size == 10_000 else ""
        lines += ["", f"**{size:,} lines**{target}", "", *header(results, cols)]
        for label, by_size in results.cells.items():
            flip = by_size[size].flip
            if flip is None:
                lines.append(f"| {cell_label(label)} | skipped" + " |" * len(cols))
                continue
            verdict = f" {met(flip.max_ms <= TARGET_PICK_MS)}" if size == 10_000 else ""
            stale = "n/a" if flip.stale is None else f"{flip.stale}"
            stale += " **missed**" if flip.stale else ""
            lines.append(
                f"| {cell_label(label)} | {flip.picks:,} | {flip.max_ms:,.1f}{verdict} "
                f"| {flip.p99_us:.1f} | {flip.base_max_ms:.1f} | {flip.base_p99_us:.1f} "
                f"| {flip.max_ms / max(flip.base_max_ms, 1e-9):,.1f} "
                f"| {flip.flips} | {flip.hits:,} | {stale} |"
            )
    return lines


def memory_tables(results: Results) -> list[str]:
    sizes = results.sizes
    lines = [
        "### Memory retained by one compiled policy, MB",
        "",
        "`tracemalloc`, a fresh compile with no previous, after the timed ones (so",
        "process-wide caches such as geomatch's number parses are warm and not counted).",
        *(["`--quick` measures `sticky` only."] if results.quick else []),
        "",
        *header(results, [*size_cols(results), "10,000: compiled / snapshot"]),
        "| *reference: the snapshot itself* | "
        + " | ".join(mb(results.snapshot_bytes[s]) for s in sizes)
        + " | 1.00 |",
    ]
    for label, by_size in results.cells.items():
        at_10k = by_size.get(10_000)
        ratio = (
            f"{at_10k.memory / results.snapshot_bytes[10_000]:.2f}"
            if at_10k is not None and at_10k.memory is not None
            else ""
        )
        target = ""
        if label == "sticky" and at_10k is not None and at_10k.memory is not None:
            target = f" ({met(at_10k.memory / 1e6 <= TARGET_STICKY_MB)}: ≤ {TARGET_STICKY_MB:g} MB)"
        cells = [mb(by_size[s].memory) + (target if s == 10_000 else "") for s in sizes]
        lines.append(f"| {cell_label(label)} | " + " | ".join(cells) + f" | {ratio} |")
    state = results.state
    if state is not None:
        held = (
            f"; clearing its `MemoryState` (holding {state.entries:,} conversations, "
            f"max_size {state.max_size:,}) freed **{mb(state.state_bytes)} MB**"
            if state.entries is not None and state.max_size is not None
            else "; its state could not be read"
        )
        lines += [
            "",
            f"`sticky` at {STATE_SIZE:,} lines after {CONVERSATIONS:,} distinct conversations: "
            f"the picks left {mb(state.picks_bytes)} MB allocated{held}.",
        ]
    return lines


def listing(lead: str, items: dict[str, object]) -> str:
    """``lead`` then "`key` value, ..." and a full stop; just the full stop if empty."""
    if not items:
        return "."
    return lead + ", ".join(f"{k} {v}" for k, v in items.items()) + "."


def target_lines(results: Results) -> list[str]:
    out: list[str] = []
    if 10_000 in results.sizes:
        slow = {
            f"`{label}`": f"{flip.max_ms:,.0f} ms (no-flip max {flip.base_max_ms:,.1f} ms)"
            for label, by in results.cells.items()
            if (flip := by[10_000].flip) is not None and flip.max_ms > TARGET_PICK_MS
        }
        tested = sum(by[10_000].flip is not None for by in results.cells.values())
        out.append(
            f"- No pick over {TARGET_PICK_MS:.0f} ms at 10,000 lines while a line flips: "
            f"{tested - len(slow)} of {tested} policies: {met(not slow and tested > 0)}"
            + listing("; over it: ", slow)
        )
    stale = {
        f"`{label}` at {size:,} lines": cell.flip.stale
        for label, by in results.cells.items()
        for size, cell in by.items()
        if cell.flip is not None and cell.flip.stale
    }
    out.append(f"- No stale pick: {met(not stale)}" + listing(": ", stale))
    for size, ceiling in TARGET_FULL_S.items():
        if size not in results.sizes:
            continue
        over = {
            f"`{label}`": by[size].compiles.full
            for label, by in results.cells.items()
            if by[size].compiles.full > ceiling
        }
        out.append(
            f"- Full compile ≤ {ceiling * 1e3:,.0f} ms at {size:,} lines: "
            f"{len(results.cells) - len(over)} of {len(results.cells)} policies: {met(not over)}"
            + listing("; over it: ", {k: f"{ms(v)} ms" for k, v in over.items()})
        )
    sticky = results.cells.get("sticky", {}).get(10_000)
    if sticky is not None and sticky.memory is not None:
        out.append(
            f"- `sticky` compiled at 10,000 lines ≤ {TARGET_STICKY_MB:g} MB: "
            f"{mb(sticky.memory)} MB: {met(sticky.memory / 1e6 <= TARGET_STICKY_MB)}."
        )
    first, last = results.sizes[0], results.sizes[-1]
    cells = results.cells.values()
    growth = [by[last].compiles.worse[1] / by[first].compiles.worse[1] for by in cells]
    share = [by[last].compiles.worse[1] / by[last].compiles.full for by in cells]
    out.append(
        f"- Incremental compile roughly flat: {last:,} / {first:,} lines ranges "
        f"{min(growth):.1f} to {max(growth):.1f} (pool {last // first}x); incremental / full at "
        f"{last:,} ranges {min(share):.2f} to {max(share):.2f}."
    )
    skipped = [
        f"`{label}` at {size:,} lines: {note}"
        for label, by in results.cells.items()
        for size, cell in by.items()
        for note in cell.skipped + ([cell.flip.errors] if cell.flip and cell.flip.errors else [])
    ]
    if skipped:
        out += ["", "Skipped or failed:", "", *(f"- {s}" for s in skipped)]
    return out


def report(results: Results, *, quick: bool) -> str:
    sizes = ", ".join(f"{s:,}" for s in results.sizes)
    lines = [
        "## Pool changes: compile, memory, picks while a line flips",
        "",
        f"Machine: {machine()}.  ",
        f"Run: `python benchmarks/run.py{' --quick' if quick else ''}` on "
        f"{time.strftime('%Y-%m-%d')}; pools of {sizes} lines (`make_pool`, as for picks).",
        "",
        "What one changed line costs the router. *Full* compiles a policy against a",
        "snapshot from scratch; *incremental* compiles it against the next snapshot",
        "(`replace_number`, one line changed) with the previous compile given, which is",
        "what a router does on every change. The flip test runs a `Router` over a",
        "registry double: one thread picks in a tight loop over",
        f"{len(RECIPIENTS):,} recipients timing every pick, and another publishes a",
        f"snapshot every {PERIOD * 1e3:.0f} ms in which the line the policy picked most",
        "alternates CRITICAL and HEALTHY (it leaves and rejoins the eligible set). The",
        "*no-flip* column is the same loop just before, with nothing changing: a pick",
        "on a shared machine occasionally stalls for a few ms whatever the router does.",
        f"A spec whose full compile exceeds {SLOW:.0f} s at a size skips the flip test and",
        "memory there (listed below).",
        *(
            [f"`--quick`: {len(QUICK_SPECS)} of the 12 specs, {QUICK_WINDOW:g} s windows."]
            if quick
            else []
        ),
        "",
        *compile_tables(results),
        "",
        *flip_tables(results),
        "",
        *memory_tables(results),
        "",
        "### Against the targets",
        "",
        *target_lines(results),
        "",
    ]
    return "\n".join(lines)


def section(*, quick: bool) -> str:
    """The markdown section."""
    return report(run(quick=quick), quick=quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 lines, 1 s windows")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    text = section(quick=args.quick)
    print(text)
    if not args.no_write:
        write_section("change", text)


if __name__ == "__main__":
    main()
