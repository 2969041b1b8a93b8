"""Which events were applied already: ``Seen``, a bounded set of event ids with times.

Linq retries a delivery it got no 2xx for, for up to about 30 minutes, with the same
``event_id``; the receiver applies each id once. An id is *claimed* while its event
is being applied (so a retry racing the first delivery is a repeat, not a second
application) and *kept* once applied; a failed application releases it, so Linq's
next retry applies it.

Ids are kept for ``horizon`` seconds (one hour by default, twice the retry horizon)
and at most ``size`` of them; past the size the oldest go first, and a WARNING says
once that repeats older than that may be applied again.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

from linq_router._fork import renew_after_fork

__all__ = ["RETRY_HORIZON", "Seen"]

logger = logging.getLogger("linq_router")

RETRY_HORIZON = 30 * 60.0
"""How long Linq retries one event, in seconds."""


class Seen:
    """Event ids claimed or applied, oldest first, bounded in number and age."""

    def __init__(self, size: int, horizon: float, clock: Callable[[], float]) -> None:
        self.size = size
        self.horizon = horizon
        self._clock = clock
        self._ids: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._claimed: set[str] = set()
        self._warned = False
        self._lock = threading.Lock()
        renew_after_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._claimed = set()

    def __len__(self) -> int:
        return len(self._ids)

    def claim(self, event_id: str) -> bool:
        """True if ``event_id`` is new (it is now claimed); False for a repeat."""
        now = self._clock()
        with self._lock:
            self._trim_locked(now, room=0)
            if event_id in self._ids:
                return False
            self._trim_locked(now, room=1)
            self._ids[event_id] = now
            self._claimed.add(event_id)
            return True

    def keep(self, event_id: str) -> None:
        """The claimed event was applied: remember it as done."""
        with self._lock:
            self._claimed.discard(event_id)

    def release(self, event_id: str) -> None:
        """The claimed event failed to apply: a later delivery may apply it."""
        with self._lock:
            if event_id in self._claimed:
                self._claimed.discard(event_id)
                self._ids.pop(event_id, None)

    def _trim_locked(self, now: float, room: int) -> None:
        """Forget ids past the horizon, and the oldest until ``room`` more fit."""
        ids = self._ids
        oldest = now - self.horizon
        # Entries are in claim order, and the clock only moves on: the old ones are first.
        while ids:
            event_id, when = next(iter(ids.items()))
            if when >= oldest and len(ids) + room <= self.size:
                return
            if when >= now - RETRY_HORIZON and not self._warned:
                self._warned = True
                logger.warning(
                    "webhook dedup holds %d event ids, fewer than arrive in Linq's %.0f-minute "
                    "retry window: a repeat older than that may be applied twice; raise "
                    "dedup_size",
                    self.size,
                    RETRY_HORIZON / 60,
                )
            ids.popitem(last=False)
            self._claimed.discard(event_id)
