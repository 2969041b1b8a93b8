"""Shared helpers for the benchmark scripts: timing, machine notes, docs/benchmarks.md sections."""

from __future__ import annotations

import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

HEADER = """# Benchmarks

Figures come from the scripts in `benchmarks/` (`python benchmarks/run.py`), each
section from its own script run. Every target is a ratio against a baseline measured in
the same process and run, so the figures travel between machines better than absolute
times do. A target missed is marked **missed**. These are benchmarks, not tests: nothing
in the test suite asserts on time.
"""


def machine() -> str:
    """One line naming the machine and interpreter the figures came from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]} ({platform.python_implementation()})"
    )


def per_call_ns(fn: Callable[[], object], *, number: int, repeat: int) -> list[float]:
    """Time ``number`` calls of ``fn``, ``repeat`` times; nanoseconds per call for each run."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter_ns() - start) / number)
    return runs


def median(values: list[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def verdict(ratio: float, target: float) -> str:
    """'met' or '**missed**' for a ratio against its ceiling."""
    return "met" if ratio <= target else "**missed**"


def section_main(name: str, doc: str, section: Callable[..., str]) -> None:
    """The command line of a script that writes one section: ``--quick``, ``--no-write``."""
    import argparse  # noqa: PLC0415 - only the scripts' own runs need it

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    text = section(quick=args.quick)
    print(text)
    if not args.no_write:
        write_section(name, text)


def write_section(name: str, body: str) -> None:
    """Replace (or add) the section ``name`` of docs/benchmarks.md with ``body``."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    DOC.write_text(text, encoding="utf-8")
