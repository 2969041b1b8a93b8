"""What pacing costs a pick and a report.

Run from the repository root::

    python benchmarks/bench_pacing.py          # writes its section of docs/benchmarks.md
    python benchmarks/bench_pacing.py --quick --no-write

Interleaved in one process against the pick benchmark's registry double:

* a pick with pacing on (the default, ``Pacing()``) and no line near its limits,
  against a pick with ``pacing=None`` (target: at most 1.5x, at 10 and 10,000 lines);
* a pick while one line is out of its daily budget (it is left out of the compile,
  and each pick checks the chosen line's mark);
* ``report(pick, to=...)`` with pacing on (each report counts the send in ``limits``'
  memory storage: ``hit`` and a window read per rate) against one without, the reports
  spread over the pool's lines and 1,000 recipients.
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
from bench_feedback import _interleaved
from bench_pick import StaticRegistry, make_pool

from linq_router import BudgetExhaustedError, Pacing, Router

SIZES = (10, 10_000)
SPECS = {"round-robin": "round-robin", "default spec": "skip-critical | reputation-weighted"}


def _measure(number: int, repeat: int) -> dict[tuple[str, int], dict[str, float]]:
    results = {}
    for size in SIZES:
        pool = make_pool(size)
        for name, spec in SPECS.items():
            off = Router(StaticRegistry(pool), spec, pacing=None)
            on = Router(StaticRegistry(pool), spec)
            one_out = Router(StaticRegistry(pool), spec, pacing=Pacing(per_line="1/day"))
            for router in (off, on, one_out):
                router.pick()
            one_out.report(one_out.pick())  # that line is out for a day
            one_out.settle()
            variants: dict[str, Callable[[], object]] = {
                "pacing=None": off.pick,
                "pacing on": on.pick,
                "one line out of budget": one_out.pick,
            }
            results[(name, size)] = _interleaved(variants, number, repeat)
            results[(name, size)].update(_report_cost(pool, spec, repeat))
            for router in (off, on, one_out):
                router.close()
        print(f"pacing, size {size}: done", file=sys.stderr)
    return results


_REPORTS = 2_000
_RECIPIENTS = [f"+1415{i:07d}" for i in range(_REPORTS)]


def _report_cost(pool: object, spec: str, repeat: int) -> dict[str, float]:
    """Seconds per ``report(pick, to=...)``, pacing off and on: fresh routers each run.

    Each run reports 2,000 sends spread over the pool's lines and 2,000 recipients, so
    no budget fills (a workload inside its limits, which is where the cost matters).
    """
    runs: dict[str, list[float]] = {"report, pacing=None": [], "report, pacing on": []}
    for _ in range(repeat):
        for name, pacing in (("report, pacing=None", None), ("report, pacing on", Pacing())):
            router = Router(StaticRegistry(pool), spec, pacing=pacing)  # type: ignore[arg-type]
            picks = [router.pick() for _ in range(min(len(pool), _REPORTS))]  # type: ignore[arg-type]
            report = router.report
            started = time.perf_counter()
            for i, to in enumerate(_RECIPIENTS):
                report(picks[i % len(picks)], to=to)
            runs[name].append((time.perf_counter() - started) / _REPORTS)
            router.close()
    return {name: statistics.median(values) for name, values in runs.items()}


def _overshoot(runs: int, budget: int = 50) -> list[int]:
    """Sends over budget on the busiest line, 8 threads picking and reporting flat out."""
    over = []
    for _ in range(runs):
        router = Router(
            StaticRegistry(make_pool(4)),
            "round-robin",
            pacing=Pacing(per_line=f"{budget}/hour", per_pair=None),
        )

        def work(router: Router = router) -> None:
            for _ in range(400):
                try:
                    router.report(router.pick())
                except BudgetExhaustedError:
                    return

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        over.append(max(b.used for b in router.budgets()) - budget)
        router.close()
    return over


def report(
    results: dict[tuple[str, int], dict[str, float]],
    number: int,
    repeat: int,
    over: list[int],
) -> str:
    lines = [
        "## Pacing: what budgets cost a pick and a report",
        "",
        f"Machine: {machine()}.  ",
        f"Run: `python benchmarks/run.py` on {time.strftime('%Y-%m-%d')}; "
        f"{number:,} calls per run, median of {repeat} interleaved runs.",
        "",
        "A warm pick (ns) with pacing off and on (the default `Pacing()`, nothing near its",
        "limits), a pick while one line is out of its daily budget, and a report with a",
        "recipient (`report(pick, to=...)`: 2,000 on fresh routers, over the pool's lines",
        "and 2,000 recipients, no budget filling) with pacing off and on. With pacing on a report",
        "counts the send in `limits`' memory storage: a `hit` for the line and one for the",
        "pair (a window is read only when the room known left runs out). A profile of",
        "one report shows about 130 Python calls: `limits`' key building and",
        "`acquire_entry` (two `hit`s), a window read for a full pair, and the plan that",
        "drives them. The same cost with 1, 10 or 1,000 recipients: it is per report, not",
        "per key.",
        "",
        "| policy | lines | pacing=None | pacing on | ratio (target ≤ 1.5) | one line out | "
        "report, off | report, on | report on / off |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for (name, size), r in results.items():
        ratio = r["pacing on"] / r["pacing=None"]
        rep = r["report, pacing on"] / r["report, pacing=None"]
        lines.append(
            f"| {name} | {size:,} | {r['pacing=None'] * 1e9:.0f} | {r['pacing on'] * 1e9:.0f} | "
            f"{ratio:.2f} {'' if ratio <= 1.5 else '**missed**'} | "
            f"{r['one line out of budget'] * 1e9:.0f} | "
            f"{r['report, pacing=None'] * 1e9:.0f} | {r['report, pacing on'] * 1e9:.0f} | "
            f"{rep:.1f}x |"
        )
        verdicts.append(
            f"- {size:,} lines, {name}: a pick with pacing on costs **{ratio:.2f}x** one "
            f"without (target ≤ 1.5x): {verdict(ratio, 1.5)}; a report with pacing costs "
            f"{rep:.1f}x one without (no target: it is where budgets are counted)."
        )
    lines += [
        "",
        "While nothing is marked a pick with pacing on reads one flag. A line out of its",
        "daily budget is left out of the compiled policy, and while any line is marked",
        "each pick also checks the chosen line's mark (a dict lookup) and the clock.",
        "",
        "### Against the targets",
        "",
        *verdicts,
        "- The quiet targets (round-robin ≤ 5x, default spec ≤ 15x the minimal round robin,",
        "  10k / 10 ≤ 1.5x) are measured with pacing and ejection on by default: see",
        "  *Pick latency*.",
        "",
        "### The race between a pick's check and a report's count",
        "",
        "8 threads pick and report as fast as they can on 4 lines with a budget of 50 an",
        f"hour each, {len(over)} runs: the busiest line ended **{max(over)}** over its budget",
        f"at worst (each run: {', '.join(str(o) for o in over)}). The bound is the sends in",
        "flight when a line runs out: at most one per thread (8 here).",
        "",
    ]
    return "\n".join(lines)


def section(*, quick: bool) -> str:
    """The markdown section."""
    number, repeat = (5_000, 3) if quick else (50_000, 9)
    return report(_measure(number, repeat), number, repeat, _overshoot(5 if quick else 20))


if __name__ == "__main__":
    section_main("pacing", __doc__, section)
