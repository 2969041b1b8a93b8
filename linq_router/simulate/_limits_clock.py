"""Drive the ``limits`` library's clock from a simulation's ``FakeClock``. Simulation only.

``limits`` has no clock injection: its strategies and its memory storage (including
the storage's background expiry thread) call ``time.time()`` on the ``time`` module
they imported. A simulated day has to pass in a few seconds, so for the length of a
run ``limits_clock`` swaps that module attribute for a shim whose ``time()`` is the
simulation's clock plus a fixed epoch offset (every other attribute is the real
``time`` module's), and puts the real module back on exit, even when the run raised.

The pacer's own conversion of a ``limits`` reset time to the router's clock reads
``time.time()`` too (``linq_router.pacing._pacer``), so it is shimmed with them: the
router's clock, the fake's and the budgets' then move together.

Nothing in the library uses this at run time; only ``linq-router simulate`` (and its
tests) do, and only around a run on the embedded fake. It is not thread-safe against
another run in the same process: the swap is process-wide.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

__all__ = ["SHIMMED_MODULES", "limits_clock"]

SHIMMED_MODULES = (
    "limits.strategies",
    "limits.storage.memory",
    "limits.aio.strategies",
    "limits.aio.storage.memory",
    "linq_router.pacing._pacer",
)
"""The modules whose ``time`` attribute ``limits_clock`` replaces for a run."""


class _Time:
    """Stands in for the ``time`` module: ``time()`` reads the simulation's clock."""

    def __init__(self, clock: Callable[[], float], offset: float) -> None:
        self._clock = clock
        self._offset = offset

    def time(self) -> float:
        """The simulated clock's reading on the wall clock's epoch."""
        return self._clock() + self._offset

    def __getattr__(self, name: str) -> Any:
        # monotonic, sleep, perf_counter, ...: the real ones.
        return getattr(time, name)

    def __repr__(self) -> str:
        return f"<simulated time() at {self.time():.3f}>"


@contextlib.contextmanager
def limits_clock(clock: Callable[[], float]) -> Iterator[Callable[[], float]]:
    """For the block, ``limits`` (and the pacer) read ``time.time()`` off ``clock``.

    The shim's epoch offset is fixed on entry (the wall clock then, less ``clock()``),
    so the simulated time starts at the real "now" and moves only when ``clock`` does.
    Yields the shim's ``time`` function; restores every module on exit.
    """
    modules: list[ModuleType] = [importlib.import_module(name) for name in SHIMMED_MODULES]
    shim = _Time(clock, time.time() - clock())
    saved = [(module, module.time) for module in modules]
    try:
        for module in modules:
            module.time = shim  # type: ignore[attr-defined]
        yield shim.time
    finally:
        for module, original in saved:
            module.time = original  # type: ignore[attr-defined]
