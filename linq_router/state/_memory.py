"""``MemoryState``: the default, bounded, in-process ``StateBackend``."""

from __future__ import annotations

import threading
from collections import OrderedDict

from linq_router._fork import renew_after_fork

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

    The memory is per process. A child made by ``os.fork()`` starts with a copy of
    the parent's assignments and goes on on its own.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 the default bound is 100,000 (was 10,000).
    """

    def __init__(self, max_size: int = 100_000) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            msg = f"max_size must be a positive integer, got {max_size!r}"
            raise ValueError(msg)
        self.max_size = max_size
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        renew_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # A parent thread in the middle of a pick may have held the lock at the fork.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryState(max_size={self.max_size}, size={len(self)})"

    def __len__(self) -> int:
        return len(self._cache)

    def get_assignment(self, key: str) -> str | None:
        """The line id remembered for ``key``, or ``None``."""
        with self._lock:
            line_id = self._cache.get(key)
            if line_id is not None:
                self._cache.move_to_end(key)
            return line_id

    def set_assignment(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for ``key``."""
        with self._lock:
            self._cache[key] = line_id
            self._cache.move_to_end(key)
            # (A loop, not one pop: a fork can leave a copy caught between the two.)
            while len(self._cache) > self.max_size:
                self._cache.popitem(last=False)

    def delete_assignment(self, key: str) -> bool:
        """Forget ``key``; True if something was remembered."""
        with self._lock:
            return self._cache.pop(key, None) is not None

    def clear(self) -> None:
        """Forget every assignment."""
        with self._lock:
            self._cache.clear()
