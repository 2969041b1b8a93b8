"""Run every benchmark, print the tables, write docs/benchmarks.md and its plot.

Run: ``python benchmarks/run.py [--quick] [--no-write] [--only NAME ...]``. ``--quick``
(CI) uses fewer repetitions, and for the pool-change benchmark smaller pools, fewer
specs and 1 s windows; ``--no-write`` prints without touching docs/; ``--only`` runs
(and writes) just the named sections, e.g. ``--only webhooks`` (the plot is redrawn
only when ``pick`` runs).
"""

from __future__ import annotations

import argparse

import bench_change
import bench_feedback
import bench_fleet
import bench_pacing
import bench_pick
import bench_registry
import bench_webhooks
from _plot import latency_chart
from _report import DOC, write_section

PLOT = DOC.parent / "benchmarks-pick.svg"
SECTIONS = ("pick", "registry", "change", "feedback", "pacing", "webhooks", "fleet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (CI)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=SECTIONS,
        metavar="NAME",
        help=f"run only these sections ({', '.join(SECTIONS)}); default all",
    )
    args = parser.parse_args()

    texts: dict[str, str] = {}
    chart = None
    if "pick" in args.only:
        texts["pick"], series = bench_pick.section(quick=args.quick)
        print(texts["pick"])
        chart = latency_chart(series, title="Warm Router.pick: ns per pick by pool size")
    runners = {
        "registry": bench_registry.run,
        "change": bench_change.section,
        "feedback": bench_feedback.section,
        "pacing": bench_pacing.section,
        "webhooks": bench_webhooks.section,
        "fleet": bench_fleet.section,
    }
    for name, run in runners.items():
        if name in args.only:
            texts[name] = run(quick=args.quick)
            print(texts[name])
    if not args.no_write:
        for name, text in texts.items():
            write_section(name, text)
        written = [str(DOC)]
        if chart is not None:
            PLOT.write_text(chart, encoding="utf-8")
            written.append(str(PLOT))
        print(f"wrote {' and '.join(written)}")


if __name__ == "__main__":
    main()
