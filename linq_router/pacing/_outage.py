"""Budgets through an outage of their shared storage: ``Outage`` and ``OutageBooks``.

When a shared (Redis) storage fails, the pacer's runs count in a local ``limits``
memory storage, seeded with what each shared window held when last read; at most once
a second (the router's clock) one run probes the shared storage, and on success the
counts made locally are written back, one ``hit(cost=n)`` per window. The books of
that (what was read, what was counted, when to probe, what is left to write) are
kept here, without I/O: ``Pacer`` and ``AsyncPacer`` make the calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import attrs
from limits import RateLimitItem

__all__ = ["ROOM_ENTRIES", "Call", "Key", "Outage", "OutageBooks", "Pending", "used"]

logger = logging.getLogger("linq_router")

ROOM_ENTRIES = 100_000  # windows whose room (or last known use) is kept, at most
_RECHECK = 1.0  # seconds (router's clock) between two probes of a failed shared storage

Key = tuple[RateLimitItem, tuple[str, ...]]  # a window: the item and its identifiers
Pending = tuple[bool, int]  # what an outage did to a window: cleared it first, then hits


@attrs.frozen
class Call:
    """One ``limits`` call a plan needs: ``op`` on ``item`` for ``ids``."""

    op: str
    item: RateLimitItem
    ids: tuple[str, ...]


class Outage:
    """Budgets counted in this process while the shared storage fails (see the notes).

    ``pending`` is what was counted here, per window: whether the window was cleared
    (a conversation's "seen" mark is cleared, then hit) and how many hits followed.
    ``seed`` holds the shared windows' last known use, to count on from (``AsyncPacer``
    writes it in before the first call; ``Pacer`` before the outage is used).
    """

    __slots__ = (
        "ended",
        "limiter",
        "next_probe",
        "pending",
        "probing",
        "seed",
        "since",
        "storage",
        "windows",
        "written",
    )

    def __init__(self, storage: Any, limiter: Any, since: float, seed: list[tuple[Key, int]]):
        self.storage = storage
        self.limiter = limiter
        self.since = since
        self.seed = seed
        self.next_probe = since + _RECHECK
        self.probing = False
        self.ended = False
        self.pending: dict[Key, Pending] = {}
        self.written = 0  # hits written back
        self.windows = 0  # windows written back to


def used(item: RateLimitItem, stats: Any) -> int:
    return int(item.amount - stats.remaining)


class OutageBooks:
    """The pacer's books of an outage of its shared storage (a mixin of ``PacerCore``)."""

    clock: Callable[[], float]
    follows_state: bool
    outage: Outage | None
    _lock: threading.Lock
    _known: dict[Key, int]

    def _read(self, call: Call, stats: Any) -> None:
        """A shared window was read: what it held is where an outage would count on from."""
        held = used(call.item, stats)
        with self._lock:  # _seed copies it under the lock
            if len(self._known) >= ROOM_ENTRIES:
                self._known.clear()  # a bound: an outage then starts from fewer windows
            self._known[(call.item, call.ids)] = held

    def _fall_back(self, made: Outage, error: BaseException) -> Outage:
        """The outage the runs count in: ``made`` unless another run started one first."""
        with self._lock:
            outage = self.outage
            if outage is not None:
                return outage
            self.outage = made
        logger.log(
            logging.DEBUG if self.follows_state else logging.WARNING,
            "pacing: the budgets' storage failed (%s: %s); budgets go on counting in "
            "this process, and are written back when it answers again (checked at most "
            "once a second)",
            type(error).__name__,
            error,
        )
        return made

    def _seed(self) -> list[tuple[Key, int]]:
        with self._lock:
            return list(self._known.items())

    def _noted(self, outage: Outage, call: Call, answer: Any) -> None:
        """A call made in ``outage``'s storage: remember what it counted."""
        op = call.op
        if op == "clear" or (op == "hit" and answer):
            key = (call.item, call.ids)
            with self._lock:
                cleared, cost = outage.pending.get(key, (False, 0))
                outage.pending[key] = (True, 0) if op == "clear" else (cleared, cost + 1)

    def _probe_due(self, outage: Outage) -> bool:
        """Whether this run probes the shared storage (one run at a time, once a second)."""
        now = self.clock()
        with self._lock:
            if outage.probing or outage.ended or now < outage.next_probe:
                return False
            outage.probing = True
            outage.next_probe = now + _RECHECK
            return True

    def _take(self, outage: Outage) -> list[tuple[Key, Pending]]:
        with self._lock:
            entries = list(outage.pending.items())
            outage.pending.clear()
            return entries

    def _give_back(self, outage: Outage, entries: list[tuple[Key, Pending]]) -> None:
        """Entries a write-back could not write: pending again, before what came since."""
        with self._lock:
            for key, (cleared, cost) in entries:
                later = outage.pending.get(key)
                if later is None:
                    outage.pending[key] = (cleared, cost)
                elif not later[0]:  # a clear since then supersedes these hits
                    outage.pending[key] = (cleared, cost + later[1])

    def _to_write(self, cost: int, local: Any, item: RateLimitItem) -> int:
        """Of ``cost`` hits counted locally, how many the local window still holds."""
        return min(cost, used(item, local))

    def _written(self, outage: Outage, hits: int) -> None:
        if hits:
            outage.written += hits
            outage.windows += 1

    def _end(self, outage: Outage) -> bool:
        """The outage ends if nothing is left to write back; whether it ended now."""
        with self._lock:
            if outage.pending or outage.ended:
                return False
            outage.ended = True
            if self.outage is outage:
                self.outage = None
        logger.log(
            logging.DEBUG if self.follows_state else logging.INFO,
            "pacing: budgets rejoined the shared storage after %.1f s; wrote back %d "
            "counts to %d windows",
            self.clock() - outage.since,
            outage.written,
            outage.windows,
        )
        return True
