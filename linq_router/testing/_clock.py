"""A fake clock whose ``sleep`` advances it, so tests drive TTLs and backoff instantly."""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A settable clock for ``Registry(clock=...)`` and ``LinqClient(clock=..., sleep=...)``.

    Calling the instance reads the time; ``advance(seconds)`` moves it on; ``sleep`` and
    ``async_sleep`` record the requested wait in ``sleeps`` and advance the clock by it
    instead of waiting.

    >>> clock = FakeClock()
    >>> clock.sleep(2.5)
    >>> clock(), clock.sleeps
    (1002.5, [2.5])

    .. versionadded:: 0.1
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []
        """Every wait passed to ``sleep``/``async_sleep``, in order."""

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        if seconds < 0:
            msg = f"a clock only moves forward; got {seconds!r}"
            raise ValueError(msg)
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Record ``seconds`` and advance the clock by it, without waiting."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    async def async_sleep(self, seconds: float) -> None:
        """The ``async`` form of ``sleep``, for ``AsyncLinqClient(sleep=...)``."""
        self.sleep(seconds)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now}, sleeps={len(self.sleeps)})"
