"""Run every benchmark, print the tables, write docs/benchmarks.md and its plot.

Run: ``python benchmarks/run.py [--quick] [--no-write]``. ``--quick`` (CI) uses fewer
repetitions, and for the pool-change benchmark smaller pools, fewer specs and 1 s
windows; ``--no-write`` prints without touching docs/.
"""

from __future__ import annotations

import argparse

import bench_change
import bench_feedback
import bench_pacing
import bench_pick
import bench_registry
from _plot import latency_chart
from _report import DOC, write_section

PLOT = DOC.parent / "benchmarks-pick.svg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (CI)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    pick_text, series = bench_pick.section(quick=args.quick)
    print(pick_text)
    registry_text = bench_registry.run(quick=args.quick)
    print(registry_text)
    change_text = bench_change.section(quick=args.quick)
    print(change_text)
    feedback_text = bench_feedback.section(quick=args.quick)
    print(feedback_text)
    pacing_text = bench_pacing.section(quick=args.quick)
    print(pacing_text)
    chart = latency_chart(series, title="Warm Router.pick: ns per pick by pool size")
    if not args.no_write:
        write_section("pick", pick_text)
        write_section("registry", registry_text)
        write_section("change", change_text)
        write_section("feedback", feedback_text)
        write_section("pacing", pacing_text)
        PLOT.write_text(chart, encoding="utf-8")
        print(f"wrote {DOC} and {PLOT}")


if __name__ == "__main__":
    main()
