"""``AsyncResilientState``: ``ResilientState`` for asyncio, over an awaited primary.

The same behaviour as ``ResilientState`` (see there): every call goes to the primary
(``AsyncRedisState``) while it answers, the last answers are kept in a small LRU, the
first error switches to a local fallback seeded from it (one WARNING, one more in
``outages``), at most once every ``recheck`` seconds one call probes the primary with
``PING``, and on rejoining what was decided locally is written back (assignments with
``assign``: a line chosen elsewhere meanwhile wins) before one INFO.

Locking: there is none, one event loop being one thread. A step with no ``await``
in it is atomic, so the switch to local state and back needs no lock; only the
write-back awaits, and the changes made locally meanwhile are written in further
rounds. Should they keep coming, the last round holds new calls (a future they
await) until it is written, so that no local change can miss the write-back.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ._base import StateBackend
from ._outage_book import Changes, OutageBook

__all__ = ["AsyncResilientState"]

logger = logging.getLogger("linq_router")

_T = TypeVar("_T")
_ROUNDS = 4  # write-back rounds before new calls are held for the last one
_AWAITED = ("get_assignment", "set_assignment", "delete_assignment", "clear")


async def _assign(backend: Any, key: str, candidate: str) -> str:
    """``assign`` on an awaited backend; a get then a set on one without it."""
    assign = getattr(backend, "assign", None)
    if assign is not None:
        return str(await assign(key, candidate))
    found = await backend.get_assignment(key)
    if found is None:
        await backend.set_assignment(key, candidate)
        return candidate
    return str(found)


class AsyncResilientState(OutageBook):
    """``ResilientState`` for asyncio: ``primary``'s methods are coroutines, and so are these.

    ``primary`` is an ``AsyncRedisState`` (or any backend whose ``get_assignment``,
    ``set_assignment``, ``delete_assignment`` and ``clear`` are coroutine functions);
    ``fallback`` (default: a new ``MemoryState``) is a plain ``StateBackend``: local
    memory never waits. Any error in ``errors`` (default: ``OSError``, redis-py's
    ``RedisError`` and ``RedisClusterException``) switches to the fallback, emptied and
    seeded with the last ``remember`` assignments the primary answered; it logs one
    WARNING ("shared state unreachable (...); picks go on with local state"), adds one
    to ``outages`` and sets ``degraded``. No call raises because the primary is down.

    While degraded, at most once every ``recheck`` seconds (by ``clock``) one call
    awaits ``ping()`` on the primary (a ``get_assignment`` if it has none). When it
    answers, the changes made locally are written back (a ``clear``, deletions, then
    assignments with ``assign`` semantics: a line chosen elsewhere meanwhile wins),
    one INFO is logged ("rejoined the shared state after ... s") and calls go to the
    primary again. Rotations count on locally from the last turn seen.

    ``from_uri_async`` wraps every Redis state in one (``?fallback=off`` does not), and
    ``AsyncRouter(state="redis://...")`` awaits it on each shared pick. Use it on one
    event loop.

    .. versionadded:: 0.4
    """

    def __init__(
        self,
        primary: object,
        *,
        fallback: StateBackend | None = None,
        recheck: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        remember: int = 10_000,
        errors: tuple[type[BaseException], ...] | None = None,
    ) -> None:
        for name in _AWAITED:
            if not inspect.iscoroutinefunction(getattr(primary, name, None)):
                msg = (
                    f"primary must be a state whose {name} is a coroutine function "
                    f"(AsyncRedisState), got {type(primary).__name__}; "
                    "ResilientState takes a plain StateBackend"
                )
                raise TypeError(msg)
        self.primary: Any = primary
        self._open_book(fallback, recheck, clock, remember, errors)
        self._gate: asyncio.Future[None] | None = None  # set while the last write-back runs

    def __repr__(self) -> str:
        return (
            f"AsyncResilientState({self.primary!r}, degraded={self._degraded}, "
            f"outages={self.outages})"
        )

    # -- the four methods, assign and rotate: primary, else local ---------------------

    async def get_assignment(self, key: str) -> str | None:
        """The line id remembered for ``key``, or ``None``."""

        async def primary() -> str | None:
            found = await self.primary.get_assignment(key)
            line_id = None if found is None else str(found)
            self._note(key, line_id)
            return line_id

        return await self._call(primary, lambda: self.fallback.get_assignment(key))

    async def set_assignment(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for ``key`` (replacing any previous one)."""

        async def primary() -> None:
            await self.primary.set_assignment(key, line_id)
            self._note(key, line_id)

        def local() -> None:
            self.fallback.set_assignment(key, line_id)
            self._pending[key] = line_id

        await self._call(primary, local)

    async def assign(self, key: str, candidate: str) -> str:
        """The line remembered for ``key``; if none, ``candidate``, now remembered."""

        async def primary() -> str:
            line_id = await _assign(self.primary, key, candidate)
            self._note(key, line_id)
            return line_id

        def local() -> str:
            found = self.fallback.get_assignment(key)  # no await: atomic with the set
            if found is not None:
                return found
            self.fallback.set_assignment(key, candidate)
            self._pending[key] = candidate
            return candidate

        return await self._call(primary, local)

    async def delete_assignment(self, key: str) -> bool:
        """Forget ``key``; True if something was remembered (locally, while degraded)."""

        async def primary() -> bool:
            deleted = bool(await self.primary.delete_assignment(key))
            self._note(key, None)
            return deleted

        def local() -> bool:
            self._pending.pop(key, None)
            self._forgotten.add(key)
            self._recent.pop(key, None)
            return self.fallback.delete_assignment(key)

        return await self._call(primary, local)

    async def clear(self) -> None:
        """Forget every assignment (of the primary's namespace)."""

        async def primary() -> None:
            await self.primary.clear()
            self._recent.clear()

        def local() -> None:
            self.fallback.clear()
            self._recent.clear()
            self._pending.clear()
            self._forgotten.clear()
            self._cleared = True

        await self._call(primary, local)

    async def rotate(self, schedule: str) -> int:
        """One turn of a shared rotation; counted locally, from the last turn seen, when down."""
        rotate = getattr(self.primary, "rotate", None)

        def local() -> int:
            turn = self._turns.get(schedule, 0) + 1
            self._turned(schedule, turn)
            return turn

        async def primary() -> int:
            if rotate is None:
                return local()
            turn = int(await rotate(schedule))
            self._turned(schedule, turn)
            return turn

        return await self._call(primary, local)

    async def close(self) -> None:
        """Close the primary, if it can be closed."""
        close = getattr(self.primary, "close", None)
        if callable(close):
            answer = close()
            if inspect.isawaitable(answer):
                await answer

    # -- the switch -------------------------------------------------------------------

    async def _call(self, primary: Callable[[], Awaitable[_T]], local: Callable[[], _T]) -> _T:
        gate = self._gate
        if gate is not None:  # a rejoin writes back its last local changes: after it
            await asyncio.shield(gate)
        if self._degraded:
            await self._maybe_probe()
            if self._degraded:
                return local()
        try:
            return await primary()
        except self.errors as error:
            began = not self._degraded
            if began:
                self._begin_outage()
            answer = local()  # no await since the switch: nothing is missed
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
            self._remembered(key, line_id)

    async def _maybe_probe(self) -> None:
        now = self.clock()
        if not self._degraded or self._probing or now < self._next_probe:
            return
        self._probing = True
        self._next_probe = now + self.recheck
        try:
            await self._ping()
            await self._rejoin()
        except self.errors as error:
            logger.debug("shared state still unreachable: %r", error)
        finally:
            self._probing = False

    async def _ping(self) -> None:
        ping = getattr(self.primary, "ping", None)
        if ping is None:
            await self.primary.get_assignment("")
        elif not await ping():
            msg = "the shared state did not answer PING"
            raise ConnectionError(msg)

    async def _rejoin(self) -> None:
        # Local calls go on while the write-back awaits; what they change is written in
        # the next round. The switch back follows the last round with no await between.
        written = 0
        for _ in range(_ROUNDS):
            taken = self._take()
            if not (taken[0] or taken[1] or taken[2]):
                break
            written += await self._replay(taken)
        else:
            gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._gate = gate
            try:
                written += await self._replay(self._take())
            finally:
                self._gate = None
                gate.set_result(None)
        self._degraded = False
        logger.info(
            "rejoined the shared state after %.1f s; wrote back %d local assignment(s)",
            self.clock() - self._since,
            written,
        )

    async def _replay(self, taken: Changes) -> int:
        """Write ``taken`` (local changes) to the primary; how many assignments."""
        cleared, forgotten, pending = taken
        try:
            if cleared:
                await self.primary.clear()
            for key in forgotten:
                await self.primary.delete_assignment(key)
            assign_many = getattr(self.primary, "assign_many", None)
            answers: Mapping[str, str]
            if assign_many is not None and pending:
                answers = await assign_many(pending)
            else:
                answers = {
                    key: await _assign(self.primary, key, line) for key, line in pending.items()
                }
        except BaseException:
            self._restore(taken)  # kept for the next probe
            raise
        for key, line_id in answers.items():
            self._note(key, str(line_id))
        return len(pending)
