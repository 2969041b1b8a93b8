"""The cached registry of the partner's lines: ``Registry`` and ``AsyncRegistry``.

A warm ``snapshot()`` is one clock read and one comparison. Everything else (what to
do when the snapshot is old, failed, or missing) is decided by ``_RegistryCore``,
which does no I/O; the two registries differ only in how they wait for the network
(a thread and a ``Future``, or a task).

Timeline of one snapshot, ``t`` being when it was fetched::

    t ........ t+refresh_ahead ........ t+ttl ............ t+ttl+stale_if_error
    fresh      fresh, refreshed in      expired: callers   past this, with every
               the background           wait for one       refresh failing, raise
                                        refresh            RegistryUnavailableError

When a refresh fails, the last good snapshot is served (logged) until
``t+ttl+stale_if_error``, and the list is tried again at most every
``error_retry_interval`` seconds, in the background. With nothing it may serve, a
caller always tries again (one request at a time, shared).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Generic, Protocol, TypeVar

import attrs

from ._errors import registry_unavailable
from ._models import PhoneNumber, Snapshot

__all__ = ["AsyncRegistry", "Registry", "SnapshotListener"]

logger = logging.getLogger("linq_router")

SnapshotListener = Callable[[Snapshot], None]
"""Called with each snapshot whose ``version`` differs from the one before it."""

_EMPTY = Snapshot(())
# A refresh is bounded by the client's own attempts and deadline; this only keeps a
# waiting caller from hanging forever if a leader thread were to die mid-request.
_FOLLOWER_TIMEOUT = 600.0


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


class _RegistryCore(Generic[_C]):
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
        if not ttl > 0 or math.isinf(ttl):
            msg = f"ttl must be a positive number of seconds, got {ttl!r}"
            raise ValueError(msg)
        if not stale_if_error >= 0:
            msg = f"stale_if_error must be a non-negative number of seconds, got {stale_if_error!r}"
            raise ValueError(msg)
        if refresh_ahead is not None and not 0 < refresh_ahead < ttl:
            msg = (
                f"refresh_ahead is the snapshot age that starts a background refresh; it "
                f"must be between 0 and ttl ({ttl!r}) exclusive, got {refresh_ahead!r}"
            )
            raise ValueError(msg)
        if not error_retry_interval > 0:
            msg = f"error_retry_interval must be positive, got {error_retry_interval!r}"
            raise ValueError(msg)
        self.client: _C = client
        self.ttl = ttl
        self.stale_if_error = stale_if_error
        self.refresh_ahead = refresh_ahead
        self.error_retry_interval = error_retry_interval
        self._clock = clock
        # The fast path reads only these two: `_served` is returned while the clock is
        # below `_fresh_until` (the refresh-ahead point, or the expiry without it).
        self._served: Snapshot = _EMPTY
        self._fresh_until = -math.inf
        self._current: Snapshot | None = None
        self._expires_at = -math.inf
        self._stale_until = -math.inf
        self._retry_at = -math.inf
        self._last_error: BaseException | None = None
        self._listeners: list[SnapshotListener] = []
        # Forwarding numbers written through the registry, by line id, with the write's
        # sequence number: a list fetched before a write must not undo it.
        self._writes: dict[str, tuple[int, str | None]] = {}
        self._write_seq = 0
        self._state_lock = threading.Lock()
        self.refreshes = 0
        """How many list requests this registry has completed successfully."""
        self.failures = 0
        """How many refreshes failed (after the client's retries)."""

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

        Listeners run in the thread (or task) that installed the snapshot, after it is
        installed; one that raises is logged and does not stop the others. Only changes
        are announced: the snapshot current when subscribing is not.
        """
        with self._state_lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._state_lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def _notify_one(self, listener: SnapshotListener, snapshot: Snapshot) -> None:
        try:
            listener(snapshot)
        except Exception:
            logger.exception("snapshot listener %r raised; ignoring it", listener)

    def _notify(self, snapshot: Snapshot) -> None:
        with self._state_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            self._notify_one(listener, snapshot)

    # -- state changes ------------------------------------------------------------------

    def _fetch_started(self) -> int:
        """Mark the start of a list request: the writes it cannot have seen come after."""
        with self._state_lock:
            return self._write_seq

    def _install(self, numbers: Iterable[PhoneNumber], started: int) -> Snapshot:
        now = self._clock()
        with self._state_lock:
            # Writes made while the list was in flight are newer than what it says;
            # writes made before it started are in it and need no more remembering.
            self._writes = {k: v for k, v in self._writes.items() if v[0] > started}
            newer = {k: v[1] for k, v in self._writes.items()}
        if newer:
            numbers = [
                attrs.evolve(n, forwarding_number=newer[n.id]) if n.id in newer else n
                for n in numbers
            ]
        snapshot = Snapshot(tuple(numbers), now)
        with self._state_lock:
            previous = self._current
            self._current = snapshot
            self._expires_at = now + self.ttl
            self._stale_until = self._expires_at + self.stale_if_error
            self._retry_at = -math.inf
            self._last_error = None
            self.refreshes += 1
            self._served = snapshot
            self._fresh_until = (
                now + self.refresh_ahead if self.refresh_ahead is not None else self._expires_at
            )
        if previous is None or previous.version != snapshot.version:
            self._notify(snapshot)
        return snapshot

    def _record_failure(self, exc: BaseException) -> None:
        now = self._clock()
        with self._state_lock:
            self.failures += 1
            self._last_error = exc
            self._retry_at = now + self.error_retry_interval
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
            self._write_seq += 1
            self._writes[updated.id] = (self._write_seq, updated.forwarding_number)
            current = self._current
            cached = current.get(updated.id) if current is not None else None
            if current is None or cached is None:
                # A line we do not know: the next snapshot() fetches the list again.
                self._expires_at = self._fresh_until = -math.inf
                return updated
            merged = attrs.evolve(cached, forwarding_number=updated.forwarding_number)
            snapshot = current.replace_number(merged)
            self._current = self._served = snapshot
        if snapshot.version != current.version:
            self._notify(snapshot)
        return merged

    def invalidate(self) -> None:
        """Mark the snapshot expired: the next ``snapshot()`` fetches the list again.

        The old snapshot still counts as the last good one for ``stale_if_error``.
        """
        with self._state_lock:
            self._fresh_until = -math.inf
            self._expires_at = min(self._expires_at, self._clock())
            self._retry_at = -math.inf

    # -- decisions ----------------------------------------------------------------------

    def _decide(self) -> tuple[str, Snapshot | None, int]:
        """What a caller past the fast path should do, and the refresh count it saw.

        ``("serve", s)``: return ``s``; ``("serve+background", s)``: return ``s`` and start
        a background refresh; ``("wait", None)``: wait for a refresh (when there is
        nothing it may serve, a caller always tries: a failure is reported, never
        assumed).
        """
        now = self._clock()
        with self._state_lock:
            current = self._current
            failing = self._last_error is not None
            servable = current is not None and (
                now < self._expires_at or (failing and now < self._stale_until)
            )
            # Past the refresh-ahead point, or a retry is due while serving stale. (A
            # caller that missed the fast path only because a refresh just landed is
            # before both, and must not start another.)
            refresh_due = now >= self._fresh_until and now >= self._retry_at
            epoch = self.refreshes + self.failures
        if servable:
            return ("serve+background" if refresh_due else "serve", current, epoch)
        return ("wait", None, epoch)

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


class Registry(_RegistryCore[_SyncClient]):
    """A cached, self-refreshing view of the partner's lines, for threads.

    ``snapshot()`` serves the cached ``Snapshot`` until it is ``ttl`` seconds old, then
    fetches the list again; any number of threads arriving at an expired or empty
    registry share one request. With ``refresh_ahead`` (an age in seconds, below
    ``ttl``) the refresh starts in a background thread once the snapshot is that old,
    so warm callers never wait for the network. When refreshing fails after the
    client's retries, the last good snapshot is served for up to ``stale_if_error``
    seconds past its expiry, then ``RegistryUnavailableError`` is raised. A malformed
    answer never replaces a good snapshot.

    ``clock`` (default ``time.monotonic``) is what TTLs are measured on; pass a fake
    one in tests.

    >>> registry = Registry(LinqClient(), ttl=60, refresh_ahead=45)  # doctest: +SKIP
    >>> registry.snapshot().numbers  # doctest: +SKIP

    .. versionadded:: 0.1
    """

    # The refresh under way (joined by every caller that needs one) and the thread of
    # the last background refresh; both guarded by the state lock.
    _inflight: concurrent.futures.Future[Snapshot] | None = None
    _background: threading.Thread | None = None

    def snapshot(self) -> Snapshot:
        """The current snapshot; refreshes it first if it expired or was never fetched."""
        if self._clock() < self._fresh_until:
            return self._served
        return self._slow_snapshot()

    def _slow_snapshot(self) -> Snapshot:
        action, current, epoch = self._decide()
        if action == "serve+background":
            self._start(background=True, epoch=epoch)
        if current is not None:
            return current
        future = self._start(background=False, epoch=epoch)
        try:
            return future.result(timeout=_FOLLOWER_TIMEOUT)
        except Exception as exc:  # served stale, or raised as RegistryUnavailableError
            return self._after_failed_wait(exc)

    def refresh(self) -> Snapshot:
        """Fetch the list now (sharing a refresh already under way) and return it.

        Raises the client's error if that fails; the cached snapshot is left as it was.
        """
        return self._start(background=False).result(timeout=_FOLLOWER_TIMEOUT)

    def update_phone_number(
        self, phone_number_id: str, *, forwarding_number: str | None
    ) -> PhoneNumber:
        """Set or clear (``None`` or ``""``) a line's forwarding number, through the cache.

        The cached snapshot reflects the change at once, without another list request.
        """
        updated = self.client.update_phone_number(
            phone_number_id, forwarding_number=forwarding_number
        )
        return self._write_through(updated)

    def _start(
        self, *, background: bool, epoch: int | None = None
    ) -> concurrent.futures.Future[Snapshot]:
        """Join the refresh under way, or lead a new one (here, or in a thread).

        With ``epoch``, a refresh that ended since the caller decided is its answer.
        """
        with self._state_lock:
            future = self._inflight
            if future is not None:
                return future
            future = concurrent.futures.Future()
            settled = self._settled_since(epoch) if epoch is not None else None
            if isinstance(settled, Snapshot):
                future.set_result(settled)
                return future
            if settled is not None:
                future.set_exception(settled)
                return future
            self._inflight = future
        if background:
            thread = threading.Thread(
                target=self._lead, args=(future,), name="linq-router-refresh", daemon=True
            )
            self._background = thread
            thread.start()
        else:
            self._lead(future)
        return future

    def _lead(self, future: concurrent.futures.Future[Snapshot]) -> None:
        try:
            started = self._fetch_started()
            snapshot = self._install(self.client.list_phone_numbers(), started)
        except BaseException as exc:
            self._record_failure(exc)
            with self._state_lock:
                self._inflight = None
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            with self._state_lock:
                self._inflight = None
            future.set_result(snapshot)

    def close(self, timeout: float = 30.0) -> None:
        """Wait (up to ``timeout`` seconds) for a background refresh to finish.

        The client is not closed: it belongs to whoever made it.
        """
        thread = self._background
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRegistry(_RegistryCore[_AsyncClient]):
    """The asyncio twin of ``Registry``: ``await registry.snapshot()``.

    The same arguments and behaviour; concurrent tasks arriving at an expired or empty
    registry share one request, and refresh-ahead runs as a background task. Use one
    ``AsyncRegistry`` per event loop. ``subscribe`` and ``invalidate`` are plain
    methods.

    .. versionadded:: 0.1
    """

    # The refresh task under way, shared by every task that needs one.
    _inflight: asyncio.Task[Snapshot] | None = None

    async def snapshot(self) -> Snapshot:
        """The current snapshot; refreshes it first if it expired or was never fetched."""
        if self._clock() < self._fresh_until:
            return self._served
        return await self._slow_snapshot()

    async def _slow_snapshot(self) -> Snapshot:
        action, current, _ = self._decide()
        if action == "serve+background":
            self._start()
        if current is not None:
            return current
        try:
            return await asyncio.shield(self._start())
        except Exception as exc:  # served stale, or raised as RegistryUnavailableError
            return self._after_failed_wait(exc)

    async def refresh(self) -> Snapshot:
        """Fetch the list now (sharing a refresh under way) and return it; raises on failure."""
        return await asyncio.shield(self._start())

    async def update_phone_number(
        self, phone_number_id: str, *, forwarding_number: str | None
    ) -> PhoneNumber:
        """Set or clear (``None`` or ``""``) a line's forwarding number, through the cache."""
        updated = await self.client.update_phone_number(
            phone_number_id, forwarding_number=forwarding_number
        )
        return self._write_through(updated)

    def _start(self) -> asyncio.Task[Snapshot]:
        task = self._inflight
        if task is None or task.done():
            task = self._inflight = asyncio.ensure_future(self._lead())
            task.add_done_callback(_consume_exception)
        return task

    async def _lead(self) -> Snapshot:
        try:
            started = self._fetch_started()
            return self._install(await self.client.list_phone_numbers(), started)
        except Exception as exc:
            self._record_failure(exc)
            raise
        finally:
            self._inflight = None

    async def aclose(self) -> None:
        """Wait for a background refresh to finish (its failure is already logged)."""
        task = self._inflight
        if task is not None:
            await asyncio.wait([task], timeout=30.0)

    async def __aenter__(self) -> AsyncRegistry:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _consume_exception(task: asyncio.Task[Snapshot]) -> None:
    # A background refresh nobody awaits must not warn "exception was never retrieved":
    # its failure was already recorded and logged.
    if not task.cancelled():
        task.exception()
