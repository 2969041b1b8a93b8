"""What ``ResilientState`` and ``AsyncResilientState`` keep alike: the outage's books.

Settings, the counters, the LRU of answers that seeds the next outage, the last turn
of each rotation, and the local changes to write back. No I/O and no locking: the
sync twin holds its lock around these, the asyncio one runs them on its loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ._base import StateBackend
from ._memory import MemoryState
from ._redis_wire import outage_errors

__all__ = ["Changes", "OutageBook"]

_TURNS_KEPT = 1024  # schedules whose last turn is kept, to go on from during an outage
Changes = tuple[bool, set[str], dict[str, str]]  # cleared?, deleted keys, assignments


class OutageBook:
    """The books of a state that falls back to local memory while its primary is away."""

    primary: Any

    def _open_book(
        self,
        fallback: StateBackend | None,
        recheck: float,
        clock: Callable[[], float],
        remember: int,
        errors: tuple[type[BaseException], ...] | None,
    ) -> None:
        if fallback is not None and not isinstance(fallback, StateBackend):
            msg = f"fallback must implement StateBackend, got {type(fallback).__name__}"
            raise TypeError(msg)
        if isinstance(recheck, bool) or not isinstance(recheck, int | float) or recheck < 0:
            msg = f"recheck must be a number of seconds >= 0, got {recheck!r}"
            raise ValueError(msg)
        if isinstance(remember, bool) or not isinstance(remember, int) or remember < 0:
            msg = f"remember must be an integer >= 0, got {remember!r}"
            raise ValueError(msg)
        self.fallback: StateBackend = MemoryState() if fallback is None else fallback
        self.recheck = float(recheck)
        self.clock = clock
        self.remember = remember
        self.errors = outage_errors() if errors is None else errors
        self.outages = 0
        """How many times the primary became unreachable."""
        self._degraded = False
        self._since = 0.0
        self._next_probe = 0.0
        self._probing = False
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._turns: OrderedDict[str, int] = OrderedDict()  # schedule -> last turn
        # What changed locally during the outage, to write back on rejoining.
        self._pending: dict[str, str] = {}
        self._forgotten: set[str] = set()
        self._cleared = False

    @property
    def degraded(self) -> bool:
        """True while calls are answered by the fallback."""
        return self._degraded

    @property
    def assignment_ttl(self) -> float | None:
        """The primary's ``assignment_ttl`` (``None`` if it has none)."""
        ttl = getattr(self.primary, "assignment_ttl", None)
        return ttl if isinstance(ttl, int | float) else None

    def _remembered(self, key: str, line_id: str | None) -> None:
        """Keep what the primary answered in the LRU that seeds the next outage."""
        recent = self._recent
        if line_id is None:
            recent.pop(key, None)
            return
        recent[key] = line_id
        recent.move_to_end(key)
        while len(recent) > self.remember:
            recent.popitem(last=False)

    def _turned(self, schedule: str, turn: int) -> None:
        """The last turn of ``schedule`` (a thousand schedules kept)."""
        turns = self._turns
        turns[schedule] = turn
        turns.move_to_end(schedule)
        while len(turns) > _TURNS_KEPT:
            turns.popitem(last=False)

    def _begin_outage(self) -> None:
        """Go local, seeded with what the primary said last."""
        self._degraded = True
        self.outages += 1
        self._since = self.clock()
        self._next_probe = self._since + self.recheck
        self._pending, self._forgotten, self._cleared = {}, set(), False
        self.fallback.clear()
        for key, line_id in self._recent.items():
            self.fallback.set_assignment(key, line_id)

    def _take(self) -> Changes:
        taken = (self._cleared, self._forgotten, self._pending)
        self._cleared, self._forgotten, self._pending = False, set(), {}
        return taken

    def _restore(self, taken: Changes) -> None:
        """Put back changes not written, under any made since."""
        cleared, forgotten, pending = taken
        if self._cleared:  # cleared again since: the older changes are moot
            return
        self._cleared = cleared
        self._forgotten = forgotten | self._forgotten
        self._pending = {
            **{k: v for k, v in pending.items() if k not in self._forgotten},
            **self._pending,
        }
