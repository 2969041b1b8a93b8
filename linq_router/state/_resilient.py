"""``ResilientState``: a shared backend that picks never wait on, nor fail with.

While the primary (Redis) answers, every call goes to it, and the answers it gave
last (up to ``remember``) are kept in a small LRU. The first error switches to a
local fallback seeded from that LRU, logs one WARNING and counts an outage; from
then on calls are answered locally, and at most once every ``recheck`` seconds one
of them probes the primary (a ``PING``). When it answers, what was decided locally
during the outage is written back (assignments with ``assign``: a line another
process chose meanwhile wins, so the fleet converges on one line per conversation),
one INFO is logged, and calls go to the primary again.

Locking: the fallback and the outage's log of local changes move together under one
lock, so no change made locally can miss the write-back; the primary is called
outside it (but for the last few changes of a rejoin), so a slow Redis never
serialises the picks of other threads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar, runtime_checkable

from linq_router._fork import renew_after_fork

from ._base import StateBackend
from ._outage_book import Changes, OutageBook
from ._redis_wire import outage_errors
from ._resilient_board import ResilientBoard

__all__ = ["ResilientState", "outage_errors"]

logger = logging.getLogger("linq_router")

_T = TypeVar("_T")


@runtime_checkable
class _AssignsMany(Protocol):
    def assign_many(self, candidates: Mapping[str, str]) -> dict[str, str]: ...


@runtime_checkable
class _Pings(Protocol):
    def ping(self) -> bool: ...


def _assign(backend: StateBackend, key: str, candidate: str) -> str:
    # getattr, not isinstance against a runtime-checkable Protocol: that check costs
    # microseconds, and this runs on every sticky pick.
    assign: Callable[[str, str], str] | None = getattr(backend, "assign", None)
    if assign is not None:
        return assign(key, candidate)
    found = backend.get_assignment(key)
    if found is None:
        backend.set_assignment(key, candidate)
        return candidate
    return found


class ResilientState(ResilientBoard, OutageBook):
    """``primary`` (a shared store) with a local ``fallback`` for when it is unreachable.

    Any error in ``errors`` (default: ``OSError``, redis-py's ``RedisError`` and
    ``RedisClusterException``: refused, reset, timed out, failed over...) switches to
    ``fallback`` (default: a new ``MemoryState``), emptied and seeded with the last
    ``remember`` assignments the primary answered; it logs one WARNING ("shared state
    unreachable (...); picks go on with local state"), adds one to ``outages`` and
    sets ``degraded``. No call raises because the primary is down.

    While degraded, at most once every ``recheck`` seconds (by ``clock``) one call
    probes the primary with ``ping()`` (a ``get_assignment`` if it has none). When
    the primary answers, the changes made locally are written back: a ``clear``,
    then deletions, then assignments with ``assign`` semantics (only those the
    primary does not have; a line chosen elsewhere meanwhile wins); then one INFO
    ("rejoined the shared state after ... s") and calls go to the primary again.
    While degraded, ``delete_assignment`` answers for what is known locally.

    ``from_uri`` wraps every Redis state in one (``?fallback=off`` does not).
    Thread-safe; a child made by ``os.fork()`` goes on with a fresh lock (and the
    primary's own connections).

    .. versionadded:: 0.4
    """

    def __init__(
        self,
        primary: StateBackend,
        *,
        fallback: StateBackend | None = None,
        recheck: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        remember: int = 10_000,
        errors: tuple[type[BaseException], ...] | None = None,
    ) -> None:
        if not isinstance(primary, StateBackend):
            msg = f"primary must implement StateBackend, got {type(primary).__name__}"
            raise TypeError(msg)
        self.primary = primary
        self._open_book(fallback, recheck, clock, remember, errors)
        self._lock = threading.Lock()
        self._board_init()
        renew_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # A parent thread may have held the lock, or been probing, at the fork.
        self._lock = threading.Lock()
        self._probing = False
        self._renew_local_board()

    def __repr__(self) -> str:
        return (
            f"ResilientState({self.primary!r}, degraded={self._degraded}, outages={self.outages})"
        )

    # -- the four methods and assign: primary, else local -----------------------------

    def get_assignment(self, key: str) -> str | None:
        """The line id remembered for ``key``, or ``None``."""

        def primary() -> str | None:
            line_id = self.primary.get_assignment(key)
            self._note(key, line_id)
            return line_id

        return self._call(primary, lambda: self.fallback.get_assignment(key))

    def set_assignment(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for ``key`` (replacing any previous one)."""

        def primary() -> None:
            self.primary.set_assignment(key, line_id)
            self._note(key, line_id)

        def local() -> None:
            self.fallback.set_assignment(key, line_id)
            self._pending[key] = line_id

        self._call(primary, local)

    def assign(self, key: str, candidate: str) -> str:
        """The line remembered for ``key``; if none, ``candidate``, now remembered."""

        def local() -> str:
            found = self.fallback.get_assignment(key)  # atomic with the set: under the lock
            if found is not None:
                return found
            self.fallback.set_assignment(key, candidate)
            self._pending[key] = candidate
            return candidate

        def primary() -> str:
            line_id = _assign(self.primary, key, candidate)
            self._note(key, line_id)
            return line_id

        return self._call(primary, local)

    def delete_assignment(self, key: str) -> bool:
        """Forget ``key``; True if something was remembered."""

        def primary() -> bool:
            deleted = self.primary.delete_assignment(key)
            self._note(key, None)
            return deleted

        def local() -> bool:
            self._pending.pop(key, None)
            self._forgotten.add(key)
            return self.fallback.delete_assignment(key)

        return self._call(primary, local)

    def clear(self) -> None:
        """Forget every assignment (of the primary's namespace)."""

        def primary() -> None:
            self.primary.clear()
            with self._lock:
                self._recent.clear()

        def local() -> None:
            self.fallback.clear()
            self._pending.clear()
            self._forgotten.clear()
            self._cleared = True

        self._call(primary, local)

    def rotate(self, schedule: str) -> int:
        """One turn of a shared rotation; counted locally, from the last turn seen, when down.

        .. versionadded:: 0.4
        """
        rotate = getattr(self.primary, "rotate", None)

        def primary() -> int:
            if not callable(rotate):
                with self._lock:
                    return local()
            turn = int(rotate(schedule))
            with self._lock:
                self._turned(schedule, turn)
            return turn

        def local() -> int:
            turn = self._turns.get(schedule, 0) + 1
            self._turned(schedule, turn)
            return turn

        return self._call(primary, local)

    def close(self) -> None:
        """Close the primary, if it can be closed."""
        close = getattr(self.primary, "close", None)
        if callable(close):
            close()

    # -- the switch -------------------------------------------------------------------

    def _call(self, primary: Callable[[], _T], local: Callable[[], _T]) -> _T:
        if self._degraded:
            self._maybe_probe()
            with self._lock:
                if self._degraded:
                    return local()
        try:
            return primary()
        except self.errors as error:
            with self._lock:
                began = not self._degraded
                if began:
                    self._begin_outage()
                answer = local()  # degraded now, under the same lock: nothing is missed
            if began:
                logger.warning(
                    "shared state unreachable (%s: %s); picks go on with local state",
                    type(error).__name__,
                    error,
                )
            else:
                logger.debug("shared state still unreachable: %r", error)
            return answer

    def _note(self, key: str, line_id: str | None) -> None:
        """Keep what the primary answered in the LRU that seeds the next outage."""
        if self.remember:
            with self._lock:
                self._remembered(key, line_id)

    def _maybe_probe(self) -> None:
        with self._lock:
            now = self.clock()
            if not self._degraded or self._probing or now < self._next_probe:
                return
            self._probing = True
            self._next_probe = now + self.recheck
        try:
            self._ping()
            self._rejoin()
        except self.errors as error:
            logger.debug("shared state still unreachable: %r", error)
        finally:
            with self._lock:
                self._probing = False

    def _ping(self) -> None:
        if isinstance(self.primary, _Pings):
            if not self.primary.ping():
                msg = "the shared state did not answer PING"
                raise ConnectionError(msg)
        else:
            self.primary.get_assignment("")

    def _rejoin(self) -> None:
        # Most of the write-back outside the lock, so picks go on meanwhile; then what
        # changed during it, under the lock, and the switch back in the same breath.
        with self._lock:
            taken = self._take()
        written = self._replay(taken, locked=False)
        notes = self._board_write_back()
        with self._lock:
            written += self._replay(self._take(), locked=True)
            self._degraded = False
            elapsed = self.clock() - self._since
        logger.info(
            "rejoined the shared state after %.1f s; wrote back %d local assignment(s)%s",
            elapsed,
            written,
            f" and {notes} local record(s)" if notes else "",
        )

    def _replay(self, taken: Changes, *, locked: bool) -> int:
        """Write ``taken`` (local changes) to the primary; how many assignments."""
        cleared, forgotten, pending = taken
        held = contextlib.nullcontext() if locked else self._lock
        try:
            if cleared:
                self.primary.clear()
            for key in forgotten:
                self.primary.delete_assignment(key)
            if isinstance(self.primary, _AssignsMany):
                answers = self.primary.assign_many(pending)
            else:
                answers = {key: _assign(self.primary, key, line) for key, line in pending.items()}
        except BaseException:
            with held:  # keep what was not written for the next probe
                self._restore(taken)
            raise
        if self.remember:
            with held:
                for key, line_id in answers.items():
                    self._remembered(key, line_id)
        return len(pending)
