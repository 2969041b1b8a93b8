"""What the registry knows and decides, with no I/O: ``_RegistryCore``.

The cache's state (the current snapshot, when it expires, the last failure), the
decision a caller past the fast path acts on, installing a fetched list, write-through
and change notices. ``Registry`` and ``AsyncRegistry`` (``_registry``) add only the
waiting: a thread and a ``Future``, or a task.

Change notices are queued when a snapshot is installed and delivered by one caller at
a time, outside every lock and after the refresh that made them has ended: a listener
may call back into the registry (``refresh()`` included), and a change it causes is
announced after the current one, not in the middle of it.

After ``os.fork()`` the child resets every live registry: fresh locks, and
no refresh in flight (the thread that ran it exists only in the parent).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, Protocol, TypeVar

import attrs

from ._arguments import check_callable, check_seconds, shown
from ._errors import registry_unavailable
from ._fork import renew_after_fork
from ._models import PhoneNumber, Snapshot
from ._registry_amend import Amending
from ._registry_overrides import Overrides
from ._registry_overrides import apply as apply_overrides

__all__ = ["SnapshotListener"]

logger = logging.getLogger("linq_router")

SnapshotListener = Callable[[Snapshot], None]
"""Called with each snapshot whose ``version`` differs from the one before it."""

_EMPTY = Snapshot(())


class _SyncClient(Protocol):
    def list_phone_numbers(self) -> list[PhoneNumber]: ...
    def update_phone_number(
        self, phone_number_id: str, *, forwarding_number: str | None
    ) -> PhoneNumber: ...


class _AsyncClient(Protocol):
    def list_phone_numbers(self) -> Awaitable[list[PhoneNumber]]: ...
    def update_phone_number(
        self, phone_number_id: str, *, forwarding_number: str | None
    ) -> Awaitable[PhoneNumber]: ...


_C = TypeVar("_C", _SyncClient, _AsyncClient)

# Every registry alive in this process, for the fork hook below.


class _RegistryCore(Amending, Generic[_C]):
    """Cache state and the decisions about it. No I/O, no waiting."""

    def __init__(
        self,
        client: _C,
        *,
        ttl: float = 60.0,
        stale_if_error: float = 600.0,
        refresh_ahead: float | None = None,
        error_retry_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check_client(client)
        ttl = check_seconds("ttl", ttl)
        # math.inf: serve the last good snapshot for as long as refreshing keeps failing.
        stale_if_error = check_seconds(
            "stale_if_error", stale_if_error, positive=False, infinite=True
        )
        if refresh_ahead is not None:
            # The age that starts a background refresh: before the snapshot expires.
            refresh_ahead = check_seconds("refresh_ahead", refresh_ahead, below=("ttl", ttl))
        error_retry_interval = check_seconds("error_retry_interval", error_retry_interval)
        check_callable("clock", clock, "a function returning the time in seconds (a float)")
        self.client: _C = client
        self.ttl = ttl
        self.stale_if_error = stale_if_error
        self.refresh_ahead = refresh_ahead
        self.error_retry_interval = error_retry_interval
        self._clock = clock
        # The fast path reads only these two: `_served` is returned while the clock is
        # below `_fresh_until` (the refresh-ahead point, or the expiry without it).
        # `_served` is the `_EMPTY` sentinel until a list was fetched (see `_current`).
        self._served: Snapshot = _EMPTY
        self._fresh_until = -math.inf
        self._expires_at = -math.inf
        self._stale_until = -math.inf
        self._retry_at = -math.inf
        self._last_error: BaseException | None = None
        self._listeners: list[SnapshotListener] = []
        # Snapshots installed but not yet announced, oldest first, and whether some
        # caller is announcing them now (it delivers everything queued meanwhile).
        self._notices: collections.deque[Snapshot] = collections.deque()
        self._announcing = False
        # Changes made through the registry (writes, amendments, removals), which a list
        # fetched before them must not undo; and a refresh wanted after a change number.
        self._overrides = Overrides()
        self._refresh_wanted = -1
        self._state_lock = threading.Lock()
        self.refreshes = 0
        """How many list requests this registry has completed successfully."""
        self.failures = 0
        """How many refreshes failed (after the client's retries)."""
        renew_after_fork(self)

    def _check_client(self, client: object) -> None:
        """A ``TypeError`` unless ``client`` has the two methods a registry calls."""
        missing = [
            name
            for name in ("list_phone_numbers", "update_phone_number")
            if not callable(getattr(client, name, None))
        ]
        if missing:
            msg = (
                "client must be a LinqClient or AsyncLinqClient (or any object with "
                f"list_phone_numbers() and update_phone_number()), got {type(client).__name__} "
                f"{shown(client)}, which has no {' or '.join(missing)}()"
            )
            raise TypeError(msg)

    @property
    def _current(self) -> Snapshot | None:
        """The last good snapshot, or None before the first fetch."""
        served = self._served
        return None if served is _EMPTY else served

    def __repr__(self) -> str:
        current = self._current
        return (
            f"{type(self).__name__}(ttl={self.ttl}, stale_if_error={self.stale_if_error}, "
            f"refresh_ahead={self.refresh_ahead}, lines={len(current) if current else None}, "
            f"version={current.version if current else None!r})"
        )

    # -- subscribing --------------------------------------------------------------------

    def subscribe(self, listener: SnapshotListener) -> Callable[[], None]:
        """Call ``listener(snapshot)`` whenever the content changes; returns an unsubscribe.

        Each new ``version`` is announced once, in the order the snapshots were
        installed, after it is installed and after the refresh that fetched it has
        ended, outside every lock: a listener may call any registry method, ``refresh()``
        and ``snapshot()`` included. Listeners run in the thread (or task) that installed
        the snapshot; a change installed while they run (by a listener's own refresh,
        say) is announced right after them, by that same caller. One that raises is
        logged and does not stop the others. Only changes are announced: the snapshot
        current when subscribing is not.
        """
        with self._state_lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._state_lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def _queue_notice_locked(self, previous: Snapshot | None, snapshot: Snapshot) -> None:
        if previous is None or previous.version != snapshot.version:
            self._notices.append(snapshot)

    def _announce(self) -> None:
        """Deliver the queued change notices, unless a caller is already delivering them.

        Called with no lock held and no refresh of this caller's in flight. A caller
        that finds another one announcing (or is itself inside a listener) leaves its
        notice in the queue: the announcing one delivers it next, so listeners see
        every change once and in order.
        """
        with self._state_lock:
            if self._announcing or not self._notices:
                return
            self._announcing = True
        try:
            while True:
                with self._state_lock:
                    if not self._notices:
                        self._announcing = False
                        return
                    snapshot = self._notices.popleft()
                    listeners = tuple(self._listeners)
                for listener in listeners:
                    try:
                        listener(snapshot)
                    except Exception:
                        logger.exception("snapshot listener %r raised; ignoring it", listener)
        except BaseException:
            # KeyboardInterrupt and the like: whoever announces next delivers the rest.
            with self._state_lock:
                self._announcing = False
            raise

    # -- state changes ------------------------------------------------------------------

    def _fetch_started(self) -> int:
        """Mark the start of a list request: the changes it cannot have seen come after."""
        with self._state_lock:
            return self._overrides.seq

    def _install(self, numbers: Iterable[PhoneNumber], started: int) -> Snapshot:
        """Make a fetched list the current snapshot, queueing its notice if it changed.

        The caller announces (``_announce``) once its refresh is over.
        """
        now = self._clock()
        fetched = list(numbers)
        while True:
            with self._state_lock:
                # Changes made while the list was in flight are newer than what it says;
                # changes made before it started are in it and need no more remembering.
                newer = self._overrides.after(started)
                seq = self._overrides.seq
                previous = self._current
            lines = apply_overrides(fetched, newer)
            # Derived from the previous snapshot, unchanged lines keep their objects
            # (and what is cached on them), and the snapshot knows which ids changed.
            snapshot = (
                Snapshot(lines, now) if previous is None else previous.derive(lines, fetched_at=now)
            )
            with self._state_lock:
                if self._overrides.seq != seq:
                    continue  # a change landed while deriving: apply it too
                self._expires_at = now + self.ttl
                self._stale_until = self._expires_at + self.stale_if_error
                self._retry_at = -math.inf
                self._last_error = None
                self.refreshes += 1
                self._served = snapshot
                self._fresh_until = (
                    now + self.refresh_ahead if self.refresh_ahead is not None else self._expires_at
                )
                if self._refresh_wanted > started:
                    # A refresh was asked for after this list left: the next caller
                    # starts one in the background.
                    self._fresh_until = -math.inf
                self._queue_notice_locked(previous, snapshot)
                break
        # The snapshot will live for a TTL or more, and so will most of what the
        # process built before it. Moving all of that to the permanent generation
        # keeps the collector from walking it again on every full collection (a full
        # collection is what follows building thousands of new objects, and it holds
        # the GIL, stalling every picking thread, for as long as the walk takes). It
        # also keeps those pages unwritten, so forked workers share them. The cost:
        # cyclic garbage alive right now is never collected; the lines themselves are
        # acyclic and are freed by reference counting.
        gc.freeze()
        return snapshot

    def _record_failure(self, exc: BaseException) -> None:
        now = self._clock()
        with self._state_lock:
            self.failures += 1
            self._last_error = exc
            # Never wait longer than a TTL to try again: with ttl=0.2 the data is
            # retried within 0.2 s, whatever error_retry_interval says.
            self._retry_at = now + min(self.error_retry_interval, self.ttl)
            has_stale = self._current is not None and now < self._stale_until
            if has_stale:
                # Until the next retry is due, the fast path may serve the last good
                # snapshot (fresh or stale) without taking the lock.
                self._fresh_until = min(self._retry_at, self._stale_until)
        if has_stale:
            logger.warning(
                "refreshing the phone-number list failed (%s); serving the last good "
                "snapshot for up to %.0fs more",
                exc,
                self._stale_until - now,
            )
        else:
            logger.error("refreshing the phone-number list failed: %s", exc)

    def _write_through(self, updated: PhoneNumber) -> PhoneNumber:
        """Apply a PUT's answer to the cached snapshot; return the full line."""
        with self._state_lock:
            self._overrides.record(updated.id, {"forwarding_number": updated.forwarding_number})
            current = self._current
            cached = current.get(updated.id) if current is not None else None
            if current is None or cached is None:
                # A line we do not know: the next snapshot() fetches the list again.
                self._expires_at = self._fresh_until = -math.inf
                return updated
            merged = attrs.evolve(cached, forwarding_number=updated.forwarding_number)
            snapshot = current.replace_number(merged)
            self._served = snapshot
            self._queue_notice_locked(current, snapshot)
        self._announce()
        return merged

    def invalidate(self) -> None:
        """Mark the snapshot expired: the next ``snapshot()`` fetches the list again.

        The old snapshot still counts as the last good one: within ``stale_if_error``
        it is served while that refresh runs in the background. Call ``refresh()`` to
        wait for the new list.
        """
        with self._state_lock:
            self._fresh_until = -math.inf
            self._expires_at = min(self._expires_at, self._clock())
            self._retry_at = -math.inf

    # -- decisions ----------------------------------------------------------------------

    def _decide(self) -> tuple[str, Snapshot | None, int]:
        """What a caller past the fast path should do, and the refresh count it saw.

        ``("serve", s)``: return ``s``; ``("serve+background", s)``: return ``s`` and start
        a background refresh; ``("wait", None)``: wait for a refresh. Anything younger
        than ``ttl + stale_if_error`` is served at once (stale-while-revalidate); only a
        caller with nothing it may serve waits, and it always tries: a failure is
        reported, never assumed.
        """
        now = self._clock()
        with self._state_lock:
            current = self._current
            servable = current is not None and now < self._stale_until
            # Past the refresh-ahead point (or the expiry), and no retry pending after
            # a failure. (A caller that missed the fast path only because a refresh just
            # landed is before both, and must not start another.)
            refresh_due = now >= self._fresh_until and now >= self._retry_at
            epoch = self.refreshes + self.failures
        if servable:
            return ("serve+background" if refresh_due else "serve", current, epoch)
        return ("wait", None, epoch)

    def _began_refresh_locked(self) -> None:
        """A refresh is now in flight: serve what may be served without the lock.

        Until it ends (``_install``, ``_record_failure`` or ``_abandoned`` set the fast
        path's bound again) there is nothing to decide: every caller may take the
        current snapshot while it is within ``ttl + stale_if_error``.
        """
        if self._current is not None:
            self._fresh_until = max(self._fresh_until, self._stale_until)

    def _abandoned(self) -> None:
        """A refresh ended without an outcome (cancelled, or lost in a fork)."""
        with self._state_lock:
            self._fresh_until = -math.inf  # the next caller decides afresh

    def _settled_since(self, epoch: int) -> Snapshot | BaseException | None:
        """The outcome of a refresh that ended after the caller decided (at ``epoch``).

        Under the state lock. A caller that decided to wait, but whose refresh ended
        before it could join, takes that outcome instead of sending another request.
        """
        if self.refreshes + self.failures == epoch:
            return None
        if self._last_error is not None:
            return self._last_error
        return self._current

    def _unavailable(self, cause: BaseException | None) -> Exception:
        with self._state_lock:
            had = self._current is not None
        what = "no usable phone-number snapshot"
        if had:
            limit = self.ttl + self.stale_if_error
            what += f" (the last good one is older than ttl + stale_if_error = {limit:g}s)"
        return registry_unavailable(what, cause)

    def _after_failed_wait(self, exc: BaseException) -> Snapshot:
        """A caller waited for a refresh that failed: serve stale, or raise."""
        now = self._clock()
        with self._state_lock:
            current = self._current
            stale_ok = current is not None and now < self._stale_until
        if stale_ok and current is not None:
            return current
        raise self._unavailable(exc) from exc

    # -- fork ---------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """Reset what a fork left behind: locks another thread may hold, and notices.

        The snapshot, its timings and the listeners are kept: a forked child serves
        what the parent had. Subclasses also drop the refresh in flight.
        """
        self._state_lock = threading.Lock()
        self._announcing = False
