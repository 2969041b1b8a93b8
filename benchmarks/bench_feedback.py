"""What the feedback loop costs a pick, and what a report costs.

Run from the repository root::

    python benchmarks/bench_feedback.py          # writes its section of docs/benchmarks.md
    python benchmarks/bench_feedback.py --quick --no-write

Measured in one process, interleaved (each repeat times every variant once, so a
neighbour's load hits them alike), against the same registry double as the pick
benchmark:

* a pick with ``ejection=Ejection()`` and ``slow_start=SlowStart()`` configured and
  nothing ejected, against a pick with ``ejection=None`` (target: at most 1.2x);
* ``router.report(pick)`` for a success, against the default spec's pick (target:
  at most 2x);
* for information: a pick while one line is ejected (the served policy then checks
  the clock for the ejection's end), and the worst pick latency while another thread
  ejects and returns lines as fast as it can.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import machine, section_main, verdict
from bench_pick import StaticRegistry, make_pool

from linq_router import Ejection, Outcome, Router, SlowStart

SIZES = (10, 10_000)
SPECS = {"round-robin": "round-robin", "default spec": "skip-critical | reputation-weighted"}


def _interleaved(
    variants: dict[str, Callable[[], object]], number: int, repeat: int
) -> dict[str, float]:
    """Seconds per call for each variant: the median over repeats, variants interleaved."""
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, fn in variants.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            runs[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(values) for name, values in runs.items()}


def _quiet(number: int, repeat: int) -> dict[tuple[str, int], dict[str, float]]:
    results = {}
    for size in SIZES:
        pool = make_pool(size)
        for name, spec in SPECS.items():
            # Pacing off throughout: this measures the feedback loop (bench_pacing.py
            # measures pacing, which also makes each report count a send).
            plain = Router(StaticRegistry(pool), spec, ejection=None, pacing=None)
            on = Router(StaticRegistry(pool), spec, pacing=None)
            configured = Router(
                StaticRegistry(pool),
                spec,
                ejection=Ejection(),
                slow_start=SlowStart(),
                pacing=None,
            )
            one_out = Router(StaticRegistry(pool), spec, pacing=None)
            for router in (plain, on, configured, one_out):
                router.pick()
            # A real ejection: the served policy then watches the clock for its end.
            one_out.report(pool.numbers[-1].phone_number, Outcome(403, 2027))
            one_out.settle()
            pick = configured.pick()
            report = configured.report
            variants: dict[str, Callable[[], object]] = {
                "ejection=None": plain.pick,
                "default (ejection on)": on.pick,
                "ejection + slow start configured": configured.pick,
                "report(pick), success": lambda report=report, pick=pick: report(pick),
                "one line ejected": one_out.pick,
            }
            results[(name, size)] = _interleaved(variants, number, repeat)
            for router in (plain, on, configured, one_out):
                router.close()
        print(f"feedback, size {size}: done", file=sys.stderr)
    return results


def _churn(size: int, seconds: float) -> dict[str, float]:
    """Pick latencies (s) while another thread ejects a line and lets it return, nonstop."""
    pool = make_pool(size)
    now = [0.0]
    router = Router(
        StaticRegistry(pool),
        "skip-critical | reputation-weighted",
        ejection=Ejection(ineligible_time=1.0),
        clock=lambda: now[0],
        pacing=None,
    )
    router.pick()
    stop = threading.Event()
    changes = [0]

    def churn() -> None:
        i = 0
        while not stop.is_set():
            line = pool.numbers[(i * 7919) % len(pool.numbers)]
            router.report(line.phone_number, Outcome(403, 2027))
            now[0] += 0.5  # each ejection ends two reports later
            changes[0] += 1
            i += 1
            router.settle(timeout=5.0)

    thread = threading.Thread(target=churn)
    thread.start()
    latencies = []
    deadline = time.perf_counter() + seconds
    pick = router.pick
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        pick()
        latencies.append(time.perf_counter() - start)
    stop.set()
    thread.join(timeout=30)
    router.close()
    latencies.sort()
    return {
        "picks": len(latencies),
        "changes": changes[0],
        "median": latencies[len(latencies) // 2],
        "p99.9": latencies[int(len(latencies) * 0.999)],
        "worst": latencies[-1],
    }


def report(
    quiet: dict[tuple[str, int], dict[str, float]],
    churn: dict[int, dict[str, float]],
    number: int,
    repeat: int,
    seconds: float,
) -> str:
    lines = [
        "## Feedback: what ejection, slow start and report cost",
        "",
        f"Machine: {machine()}.  ",
        f"Run: `python benchmarks/run.py` on {time.strftime('%Y-%m-%d')}; "
        f"{number:,} calls per run, median of {repeat} interleaved runs.",
        "",
        "A warm pick (ns) with the feedback loop off, on by default, and with ejection and",
        "slow start configured but nothing ejected or ramping; a success report; and a",
        "pick while one line is ejected. Ratios are against `ejection=None` in the same",
        "row. Pacing is off in these routers (`pacing=None`): see *Pacing* for its cost.",
        "",
        "| policy | lines | ejection=None | default (on) | ejection + slow start | "
        "ratio (target ≤ 1.2) | report(pick) | report / default pick (target ≤ 2) | "
        "one line ejected |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for (name, size), r in quiet.items():
        base = r["ejection=None"]
        configured = r["ejection + slow start configured"] / base
        rep = r["report(pick), success"] / r["default (ejection on)"]
        lines.append(
            f"| {name} | {size:,} | {base * 1e9:.0f} | {r['default (ejection on)'] * 1e9:.0f} | "
            f"{r['ejection + slow start configured'] * 1e9:.0f} | "
            f"{configured:.2f} {'' if configured <= 1.2 else '**missed**'} | "
            f"{r['report(pick), success'] * 1e9:.0f} | "
            f"{rep:.2f} {'' if rep <= 2 else '**missed**'} | "
            f"{r['one line ejected'] * 1e9:.0f} |"
        )
        if name == "default spec":
            verdicts.append(
                f"- {size:,} lines, default spec: a pick with ejection and slow start "
                f"configured costs **{configured:.2f}x** a pick without (target ≤ 1.2x): "
                f"{verdict(configured, 1.2)}; `report(pick)` for a success costs "
                f"**{rep:.2f}x** the default pick (target ≤ 2x): {verdict(rep, 2.0)}."
            )
    lines += [
        "",
        "With nothing ejected and nothing ramping the router serves the compiled policy",
        "itself: the feedback loop adds no call to the pick path. While a line is ejected",
        "(last column) each pick also reads the clock, to notice the ejection's end.",
        "",
        "### Against the targets",
        "",
        *verdicts,
        "- The quiet targets (round-robin ≤ 5x, default spec ≤ 15x the minimal round robin,",
        "  10k / 10 ≤ 1.5x) are measured with ejection on by default: see *Pick latency*.",
        "",
        f"### Picks while lines are ejected and return ({seconds:g} s)",
        "",
        "One thread reports a 2027 for a different line after each compile settles, and",
        "each ejection ends two reports later (an injected clock), so the eligible set",
        "changes twice per cycle; the main thread picks without pause (default spec).",
        "",
        "| lines | picks | ejections | median µs | p99.9 µs | worst µs |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, c in churn.items():
        lines.append(
            f"| {size:,} | {c['picks']:,.0f} | {c['changes']:,.0f} | {c['median'] * 1e6:.1f} | "
            f"{c['p99.9'] * 1e6:.1f} | {c['worst'] * 1e6:.0f} |"
        )
    lines += [
        "",
        "The worst pick is one that waited for the GIL while the compile thread worked",
        "(an incremental compile holds it for about a millisecond at 10,000 lines); no",
        "pick waits for a compile itself.",
        "",
    ]
    return "\n".join(lines)


def section(*, quick: bool) -> str:
    """The markdown section."""
    number, repeat = (5_000, 3) if quick else (50_000, 9)
    seconds = 1.0 if quick else 5.0
    quiet = _quiet(number, repeat)
    churn = {size: _churn(size, seconds) for size in SIZES}
    return report(quiet, churn, number, repeat, seconds)


if __name__ == "__main__":
    section_main("feedback", __doc__, section)
