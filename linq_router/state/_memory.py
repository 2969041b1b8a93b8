"""``MemoryState``: the default, bounded, in-process ``StateBackend``."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from linq_router._fork import renew_after_fork

from ._checks import checked_ttl

__all__ = ["MemoryState"]


class MemoryState:
    """Assignments in a least-recently-used cache of at most ``max_size`` conversations.

    ``max_size`` defaults to 100,000 (about 15 MB with the keys). Evicting an old
    conversation is safe: its line comes back from consistent hashing, unchanged unless
    the pool changed in between (``docs/policies/sticky.md`` says what moves it and how
    to size the bound). One lock guards the cache because
    an LRU lookup reorders it. Built on ``OrderedDict`` (C-level ``move_to_end``)
    rather than ``cachetools.LRUCache``, whose pure-Python bookkeeping doubled the
    cost of a sticky pick.

    ``assignment_ttl`` (seconds; default ``None``, no expiry) forgets a conversation
    not used for that long, as ``RedisState`` does: every get, set or ``assign`` of it
    starts the time again. ``clock`` (default ``time.monotonic``) tells the time.

    The memory is per process. A child made by ``os.fork()`` starts with a copy of
    the parent's assignments and goes on on its own.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 the default bound is 100,000 (was 10,000).
    .. versionchanged:: 0.4 ``assign``, ``assignment_ttl`` and ``clock``.
    """

    def __init__(
        self,
        max_size: int = 100_000,
        *,
        assignment_ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            msg = f"max_size must be a positive integer, got {max_size!r}"
            raise ValueError(msg)
        self.max_size = max_size
        self.assignment_ttl = checked_ttl(assignment_ttl)
        self.clock = clock
        self._cache: OrderedDict[str, str] = OrderedDict()
        # Only with a TTL: when each key expires. Kept apart from the cache so that the
        # default (no TTL) path stays one dict lookup and one move_to_end.
        self._expires: dict[str, float] = {}
        self._lock = threading.Lock()
        renew_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # A parent thread in the middle of a pick may have held the lock at the fork.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        ttl = "" if self.assignment_ttl is None else f", assignment_ttl={self.assignment_ttl}"
        return f"MemoryState(max_size={self.max_size}{ttl}, size={len(self)})"

    def __len__(self) -> int:
        """Conversations held (with a TTL, expired ones not yet looked at count too)."""
        return len(self._cache)

    def _live(self, key: str) -> str | None:
        """The line for ``key`` if it has not expired, renewing it (under the lock)."""
        line_id = self._cache.get(key)
        if line_id is None:
            return None
        if self.assignment_ttl is not None:
            now = self.clock()
            if self._expires.get(key, now) <= now:
                del self._cache[key]
                self._expires.pop(key, None)
                return None
            self._expires[key] = now + self.assignment_ttl
        self._cache.move_to_end(key)
        return line_id

    def _store(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for ``key`` (under the lock), evicting the oldest."""
        self._cache[key] = line_id
        self._cache.move_to_end(key)
        if self.assignment_ttl is not None:
            self._expires[key] = self.clock() + self.assignment_ttl
        # (A loop, not one pop: a fork can leave a copy caught between the two.)
        while len(self._cache) > self.max_size:
            evicted, _ = self._cache.popitem(last=False)
            self._expires.pop(evicted, None)

    def get_assignment(self, key: str) -> str | None:
        """The line id remembered for ``key``, or ``None``."""
        with self._lock:
            if self.assignment_ttl is not None:
                return self._live(key)
            # The default, inlined: this is on every sticky pick.
            line_id = self._cache.get(key)
            if line_id is not None:
                self._cache.move_to_end(key)
            return line_id

    def set_assignment(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for ``key``."""
        with self._lock:
            self._store(key, line_id)

    def assign(self, key: str, candidate: str) -> str:
        """The line remembered for ``key``; if none, ``candidate``, now remembered.

        .. versionadded:: 0.4
        """
        with self._lock:
            line_id = self._live(key)
            if line_id is None:
                self._store(key, candidate)
                return candidate
            return line_id

    def delete_assignment(self, key: str) -> bool:
        """Forget ``key``; True if something was remembered."""
        with self._lock:
            live = self._live(key) is not None
            self._cache.pop(key, None)
            self._expires.pop(key, None)
            return live

    def clear(self) -> None:
        """Forget every assignment."""
        with self._lock:
            self._cache.clear()
            self._expires.clear()
