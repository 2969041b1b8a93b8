"""The cached registry of the partner's lines: ``Registry`` and ``AsyncRegistry``.

A warm ``snapshot()`` is one clock read and one comparison. Everything else (what to
do when the snapshot is old, failed, or missing) is decided by ``_RegistryCore`` (in
``_registry_core``), which does no I/O; the two registries differ only in how they
wait for the network (a thread and a ``Future``, or a task).

Timeline of one snapshot, ``t`` being when it was fetched::

    t ........ t+refresh_ahead ........ t+ttl ................ t+ttl+stale_if_error
    fresh      fresh, refreshed in      stale: served at once   past this, callers
               the background           while a refresh runs    wait for a refresh;
                                        in the background       with every refresh
                                                                failing, they get
                                                                RegistryUnavailableError

Stale-while-revalidate (RFC 5861): while a snapshot is younger than
``t+ttl+stale_if_error``, nobody waits for the network, however slow or hung the API
is; the first caller past ``t+refresh_ahead`` (or ``t+ttl``) starts one background
refresh and every caller keeps the snapshot it has until that refresh lands. Callers
wait only when there is nothing they may serve: at a cold start, or past
``t+ttl+stale_if_error`` (so ``stale_if_error=0`` makes every caller past the TTL
wait). An explicit ``refresh()`` always waits for its answer.

When a refresh fails, the last good snapshot is served (logged) until
``t+ttl+stale_if_error``, and the list is tried again, in the background, after at most
``min(error_retry_interval, ttl)`` seconds. With nothing it may serve, a caller always
tries again (one request at a time, shared).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import math
import threading
from types import TracebackType

from ._arguments import check_seconds
from ._client import LinqClient
from ._models import PhoneNumber, Snapshot
from ._registry_core import SnapshotListener, _AsyncClient, _RegistryCore, _SyncClient

__all__ = ["AsyncRegistry", "Registry", "SnapshotListener"]

logger = logging.getLogger("linq_router")

# A refresh is bounded by the client's own attempts and deadline; this only keeps a
# waiting caller from hanging forever if a leader thread were to die mid-request.
_FOLLOWER_TIMEOUT = 600.0


class Registry(_RegistryCore[_SyncClient]):
    """A cached, self-refreshing view of the partner's lines, for threads.

    ``snapshot()`` serves the cached ``Snapshot``; once it is ``ttl`` seconds old (or,
    with ``refresh_ahead``, an age in seconds below ``ttl``, that old) the first caller
    starts a refresh in a background thread and every caller keeps getting the cached
    snapshot until the refresh lands: stale-while-revalidate, for up to
    ``stale_if_error`` seconds past the expiry. Nobody waits for a slow or hanging API
    while there is a snapshot within that window. Callers wait only when there is
    nothing they may serve (a cold start, or a snapshot older than
    ``ttl + stale_if_error``), and any number of them share one request. When
    refreshing fails after the client's retries, the last good snapshot is served, the
    list is retried after at most ``min(error_retry_interval, ttl)`` seconds, and past
    the window ``RegistryUnavailableError`` is raised. A malformed answer never
    replaces a good snapshot. ``refresh()`` fetches now and waits for the answer;
    ``invalidate()`` marks the snapshot expired without waiting; ``subscribe(listener)``
    is told of every change of content.

    ``clock`` (default ``time.monotonic``) is what TTLs are measured on; pass a fake
    one in tests.

    Arguments are checked here: ``ttl`` and ``error_retry_interval`` are finite numbers
    of seconds above 0, ``refresh_ahead`` lies between 0 and ``ttl``, ``stale_if_error``
    is 0 or more (``math.inf``: serve the last good snapshot for as long as refreshing
    fails); ``bool`` is no number. Anything else, or an async ``client``, is a
    ``TypeError`` or ``ValueError`` naming the argument and the value.

    Objects built before ``os.fork()`` keep working in the child: it serves the
    snapshot it inherited, and its first refresh opens its own connections.

    One per process, shared by its threads::

        registry = Registry(LinqClient(), ttl=60, refresh_ahead=45)
        for line in registry.snapshot():   # cached: one list request per TTL
            print(line.phone_number, line.reputation, line.status)
        registry.refresh()                 # fetch now, and wait for the answer

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Stale-while-revalidate past the TTL; a failed refresh is retried within the
       TTL; listeners may call back into the registry; safe across ``os.fork()``;
       arguments are checked (``ttl=True``, ``ttl="60"``, ``error_retry_interval=inf``
       are refused).
    """

    # The refresh under way (joined by every caller that needs one) and the thread of
    # the last background refresh; both guarded by the state lock.
    _inflight: concurrent.futures.Future[Snapshot] | None = None
    _background: threading.Thread | None = None

    def _check_client(self, client: object) -> None:
        super()._check_client(client)
        if inspect.iscoroutinefunction(getattr(client, "list_phone_numbers", None)):
            msg = (
                "client must be a synchronous client such as LinqClient, got "
                f"{type(client).__name__}, whose methods are async: use AsyncRegistry for it"
            )
            raise TypeError(msg)

    def snapshot(self) -> Snapshot:
        """The current snapshot; waits for a refresh only when there is none it may serve."""
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

    def refresh_soon(self) -> None:
        """Fetch the list in a background thread; returns at once.

        For an event that says the list changed (a line was assigned, say). A request
        already in flight may have left before that change: the first ``snapshot()``
        after it lands starts another, in the background too.

        .. versionadded:: 0.4
        """
        self._want_refresh()
        self._start(background=True)

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
            self._began_refresh_locked()
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
            self._ended(future)
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._ended(future)
            future.set_result(snapshot)
            # Only now, with no refresh in flight: a listener may refresh again.
            self._announce()

    def _ended(self, future: concurrent.futures.Future[Snapshot]) -> None:
        with self._state_lock:
            if self._inflight is future:
                self._inflight = None

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        # The thread running a refresh, if any, was not copied into the child: nobody
        # would ever settle its future. Forget it; the next caller decides afresh.
        lost = self._inflight is not None
        self._inflight = None
        self._background = None
        if lost:
            self._abandoned()

    def close(self, timeout: float = 30.0) -> None:
        """Wait (up to ``timeout`` seconds) for a background refresh to finish.

        The client is not closed: it belongs to whoever made it.
        """
        timeout = check_seconds("timeout", timeout, positive=False)
        thread = self._background
        # (A listener runs in that thread, and may call close() too.)
        if thread is not None and thread is not threading.current_thread():
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

    The same arguments and behaviour: stale-while-revalidate, with the refresh as a
    background task, and concurrent tasks arriving at an empty registry (or one older
    than ``ttl + stale_if_error``) share one request. Use one
    ``AsyncRegistry`` per event loop. ``subscribe`` and ``invalidate`` are plain
    methods. Arguments are checked as ``Registry``'s are; a ``LinqClient`` (whose calls
    would block the event loop) is a ``TypeError``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Stale-while-revalidate past the TTL, and arguments checked, as ``Registry``.
    """

    # The refresh task under way, shared by every task that needs one.
    _inflight: asyncio.Task[Snapshot] | None = None

    def _check_client(self, client: object) -> None:
        super()._check_client(client)
        if isinstance(client, LinqClient):
            msg = (
                "client must be an asynchronous client such as AsyncLinqClient, got "
                "LinqClient, whose calls would block the event loop: use Registry for it"
            )
            raise TypeError(msg)

    async def snapshot(self) -> Snapshot:
        """The current snapshot; waits for a refresh only when there is none it may serve."""
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

    def refresh_soon(self) -> None:
        """Fetch the list in a background task; returns at once (a plain method).

        As ``Registry.refresh_soon``. Called outside the registry's event loop (from a
        WSGI thread, say), it marks the snapshot due instead: the next ``snapshot()``
        starts the refresh, in the background.

        .. versionadded:: 0.4
        """
        self._want_refresh()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            with self._state_lock:
                self._fresh_until = -math.inf
            return
        self._start()

    def _start(self) -> asyncio.Task[Snapshot]:
        task = self._inflight
        if task is None or task.done():
            task = self._inflight = asyncio.ensure_future(self._lead())
            task.add_done_callback(_consume_exception)
            with self._state_lock:
                self._began_refresh_locked()
        return task

    async def _lead(self) -> Snapshot:
        try:
            started = self._fetch_started()
            snapshot = self._install(await self.client.list_phone_numbers(), started)
        except Exception as exc:
            self._record_failure(exc)
            raise
        except BaseException:  # cancelled: no outcome to record
            self._abandoned()
            raise
        finally:
            if self._inflight is asyncio.current_task():
                self._inflight = None
        # Only now, with no refresh in flight: a listener may start another.
        self._announce()
        return snapshot

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        # A task of the parent's event loop: it will not run in the child.
        lost = self._inflight is not None and not self._inflight.done()
        self._inflight = None
        if lost:
            self._abandoned()

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
