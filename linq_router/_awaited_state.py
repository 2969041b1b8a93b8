"""``AwaitedState``: how ``AsyncRouter`` awaits a state whose methods are coroutines.

Policies are plain code: a compiled shared rotation calls ``state.rotate(key)``, a
sticky selector ``state.assign(key, line)``, and each uses the answer at once. On an
awaited state (``AsyncResilientState`` over ``AsyncRedisState``) that answer needs an
``await``, which a plain call cannot make. So ``AsyncRouter`` hands the policies an
``AwaitedState`` and runs each pick by *replay*:

1. the pick runs; the first state call it makes raises ``_NeedsState(call)``;
2. the router awaits that call on the real state and records the answer;
3. the pick runs again from the top: this time the call is answered from the record
   (each recorded answer once per run), and the pick goes on to its end, or to the
   next call nobody has awaited yet (back to 2).

A compiled pick is a few microseconds and makes no I/O of its own, so running it
twice costs next to nothing against the round trip: a warm pick is one round trip,
as with ``Router``. The record lives in a ``ContextVar``, one per pick, so concurrent
picks on one loop never see each other's answers.

Writes made outside a pick (``AsyncRouter.forget`` is a plain method) cannot be
awaited: they are queued, sent in order by a task on the running loop, and every
awaited call of this state (a pick's, a pin's, ``settle``) waits for them first.

``_NeedsState`` is a ``BaseException``: nothing on the way (an interim's ``except
Exception``, a budget check's) may take it for a failure.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from .state import MemoryState, from_uri, from_uri_async
from .state._board import Board, Listener, Record
from .state._resilient_async import _assign

__all__ = ["AsyncStateBackend", "AwaitedState", "awaited_state"]

logger = logging.getLogger("linq_router")

_T = TypeVar("_T")
# State calls one pick may make. A masked shared rotation asks for up to 16 more
# turns per line it passes over (``_interim.pick_avoiding``): far below this.
_MAX_CALLS = 256

_Call = tuple[str, ...]  # (method, *arguments)


@runtime_checkable
class AsyncStateBackend(Protocol):
    """A ``StateBackend`` whose methods are coroutines (``AsyncRedisState``)."""

    async def get_assignment(self, key: str) -> str | None:
        """The line id remembered for ``key``, or ``None``."""
        ...

    async def set_assignment(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for ``key``."""
        ...

    async def delete_assignment(self, key: str) -> bool:
        """Forget ``key``; True if something was remembered."""
        ...

    async def clear(self) -> None:
        """Forget every assignment."""
        ...


class _NeedsState(BaseException):  # a signal, not an error anyone sees
    """The pick made a state call whose answer has not been awaited yet."""

    __slots__ = ("call",)

    def __init__(self, call: _Call) -> None:
        super().__init__(call)
        self.call = call


class _Replay:
    """One pick's awaited answers: per call, in order; each used once per run."""

    __slots__ = ("answers", "used")

    def __init__(self) -> None:
        self.answers: dict[_Call, list[object]] = {}
        self.used: dict[_Call, int] = {}

    def answer(self, call: _Call) -> object:
        answers = self.answers.get(call)
        if answers is not None:
            used = self.used.get(call, 0)
            if used < len(answers):
                self.used[call] = used + 1
                return answers[used]
        raise _NeedsState(call)


_REPLAY: contextvars.ContextVar[_Replay | None] = contextvars.ContextVar(
    "linq_router_replay", default=None
)


def _awaits(state: object) -> bool:
    """Whether ``state``'s methods are coroutines (it must be awaited)."""
    return inspect.iscoroutinefunction(getattr(state, "get_assignment", None))


class AwaitedState:
    """An awaited state, as the plain ``StateBackend`` that policies call.

    What ``AsyncRouter(state="redis://...")`` keeps as ``router.state``: ``backend``
    is the awaited state (``AsyncResilientState`` over ``AsyncRedisState``), ``board``
    the notice board the fleet feedback and webhooks share (a sync ``ResilientState``
    over ``RedisState`` on the same URI), or ``None``. Within ``AsyncRouter.pick`` the
    state calls are answered by replay (see the module); ``set_assignment``,
    ``delete_assignment`` and ``clear`` made outside a pick are queued and sent in
    order, ``delete_assignment`` then answering True (a line may have been
    remembered). Reading outside a pick is a ``RuntimeError``: await ``backend``.
    """

    def __init__(self, backend: AsyncStateBackend, board: Board | None = None) -> None:
        self.backend = backend
        self.board = board
        self._writes: deque[_Call] = deque()
        self._writing = asyncio.Lock()  # bound to a loop on first contention only
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"AwaitedState({self.backend!r})"

    @property
    def degraded(self) -> bool:
        """The backend's ``degraded`` (False if it has none)."""
        return getattr(self.backend, "degraded", False) is True

    @property
    def outages(self) -> int:
        """The backend's ``outages`` (0 if it has none)."""
        return int(getattr(self.backend, "outages", 0))

    @property
    def assignment_ttl(self) -> float | None:
        """The backend's ``assignment_ttl`` (``None`` if it has none)."""
        ttl = getattr(self.backend, "assignment_ttl", None)
        return ttl if isinstance(ttl, int | float) else None

    # -- what the policies call -------------------------------------------------------

    def get_assignment(self, key: str) -> str | None:
        """The line remembered for ``key``: answered within a pick only."""
        return cast("str | None", self._answer(("get_assignment", key)))

    def assign(self, key: str, candidate: str) -> str:
        """The line remembered for ``key``, else ``candidate``: within a pick only."""
        return cast(str, self._answer(("assign", key, candidate)))

    def set_assignment(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for ``key`` (queued, outside a pick)."""
        self._write(("set_assignment", key, line_id), None)

    def delete_assignment(self, key: str) -> bool:
        """Forget ``key`` (queued, and True, outside a pick)."""
        return cast(bool, self._write(("delete_assignment", key), True))

    def clear(self) -> None:
        """Forget every assignment (queued, outside a pick)."""
        self._write(("clear",), None)

    def _answer(self, call: _Call) -> object:
        replay = _REPLAY.get()
        if replay is None:
            msg = (
                f"{self!r}: {call[0]} must be awaited; within AsyncRouter.pick the router "
                f"does so, elsewhere await router.state.backend.{call[0]}(...)"
            )
            raise RuntimeError(msg)
        return replay.answer(call)

    def _write(self, call: _Call, otherwise: object) -> object:
        replay = _REPLAY.get()
        if replay is not None:
            return replay.answer(call)
        self._writes.append(call)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: sent before this state's next awaited call
            return otherwise
        task = loop.create_task(self.flush())
        self._tasks.add(task)  # a task nobody holds may be collected before it runs
        task.add_done_callback(self._tasks.discard)
        return otherwise

    # -- what the router awaits -------------------------------------------------------

    async def replay(self, run: Callable[..., Awaitable[_T]], *args: object) -> _T:
        """``await run(*args)``, awaiting each state call it makes and running it again."""
        replay = _Replay()
        token = _REPLAY.set(replay)
        try:
            for _ in range(_MAX_CALLS):
                replay.used.clear()
                try:
                    return await run(*args)
                except _NeedsState as need:
                    call = need.call
                if self._writes:
                    await self.flush()
                replay.answers.setdefault(call, []).append(await self._call(call))
        finally:
            _REPLAY.reset(token)
        msg = f"a pick made more than {_MAX_CALLS} calls of its state {self!r}"
        raise RuntimeError(msg)

    async def _call(self, call: _Call) -> object:
        method, *args = call
        backend: Any = self.backend
        if method == "assign":
            return await _assign(backend, args[0], args[1])
        answer: object = await getattr(backend, method)(*args)
        return answer

    async def flush(self) -> None:
        """Send the writes made outside a pick (``forget``), in order, once each.

        One that fails is logged (a WARNING) and dropped: a fallback backend never
        fails for an outage, a bare one would fail the next pick too.
        """
        if not self._writes:
            return
        async with self._writing:
            writes = self._writes
            while writes:
                call = writes[0]  # left in the queue while in flight: others wait for it
                try:
                    await self._call(call)
                except Exception as error:
                    logger.warning(
                        "shared state: %s made outside a pick failed (%s: %s)",
                        call[0],
                        type(error).__name__,
                        error,
                    )
                finally:
                    writes.popleft()

    # -- the notice board (the fleet feedback's, the webhooks'), on ``board`` --------

    @property
    def shares_notices(self) -> bool:
        """Whether ``board`` reaches the fleet (it does on Redis)."""
        return getattr(self.board, "shares_notices", False) is True

    def _board(self) -> Board:
        board = self.board
        if board is None:
            msg = f"{self!r} has no notice board (give AsyncRouter a state URI for one)"
            raise TypeError(msg)
        return board

    def post(
        self, topic: str, name: str, record: Record, ttl: float | None, *, first: bool = False
    ) -> Record:
        """``Board.post`` on ``board``."""
        return self._board().post(topic, name, record, ttl, first=first)

    def remove(self, topic: str, name: str) -> bool:
        """``Board.remove`` on ``board``."""
        return self._board().remove(topic, name)

    def notes(self, topic: str) -> dict[str, tuple[Record, float | None]]:
        """``Board.notes`` on ``board``."""
        return self._board().notes(topic)

    def count(self, topic: str, name: str, ttl: float) -> int:
        """``Board.count`` on ``board``."""
        return self._board().count(topic, name, ttl)

    def announce(self, topic: str, record: Record) -> None:
        """``Board.announce`` on ``board``."""
        self._board().announce(topic, record)

    def claim(self, topic: str, name: str, ttl: float) -> bool:
        """``Board.claim`` on ``board``."""
        return self._board().claim(topic, name, ttl)

    def release(self, topic: str, name: str) -> None:
        """``Board.release`` on ``board``."""
        self._board().release(topic, name)

    def subscribe(
        self, listener: Listener, joined: Callable[[], object] | None = None
    ) -> Callable[[], None]:
        """``Board.subscribe`` on ``board``."""
        return self._board().subscribe(listener, joined)

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Close ``board``, and the backend (in a task on the running loop, if any).

        ``await aclose()`` waits for the backend's connections to close.
        """
        board_close = getattr(self.board, "close", None)
        if callable(board_close):
            board_close()
        close = getattr(self.backend, "close", None)
        answer = close() if callable(close) else None
        if not inspect.iscoroutine(answer):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            answer.close()  # no loop to close it on: its connections go with it
            return
        task = loop.create_task(answer)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Send the queued writes, then close the backend and ``board``."""
        await self.flush()
        close = getattr(self.backend, "close", None)
        if callable(close):
            answer = close()
            if inspect.isawaitable(answer):
                await answer
        board_close = getattr(self.board, "close", None)
        if callable(board_close):
            await asyncio.to_thread(board_close)  # joins its listening thread


class _AwaitedRotating(AwaitedState):
    """An ``AwaitedState`` whose backend can ``rotate``: rotations are shared too."""

    def rotate(self, schedule: str) -> int:
        """One turn of the shared rotation ``schedule``: within a pick only."""
        return cast(int, self._answer(("rotate", schedule)))


def _awaited(backend: AsyncStateBackend, board: Board | None) -> AwaitedState:
    if inspect.iscoroutinefunction(getattr(backend, "rotate", None)):
        return _AwaitedRotating(backend, board)
    return AwaitedState(backend, board)


def awaited_state(state: object) -> object:
    """``AsyncRouter(state=...)``: what its policies call.

    A URI is resolved by ``from_uri_async``: ``memory://`` is the plain
    ``MemoryState``; a Redis one an ``AwaitedState`` over it, with a notice board on
    the same URI (``from_uri``) for the fleet feedback. An awaited backend given is
    wrapped (no board); anything else is returned for ``_RouterCore`` to take (a
    ``StateBackend``, None) or refuse.
    """
    if isinstance(state, str):
        backend = from_uri_async(state)
        if isinstance(backend, MemoryState):
            return backend
        board = from_uri(state)
        return _awaited(backend, board if isinstance(board, Board) else None)
    if state is not None and not isinstance(state, AwaitedState) and _awaits(state):
        return _awaited(cast(AsyncStateBackend, state), None)
    return state
