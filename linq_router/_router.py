"""``Router`` and ``AsyncRouter``: registry -> compiled policy -> ``Pick``.

Everything but reading the snapshot is shared (``_RouterCore``): the two routers
differ only in whether ``registry.snapshot()`` is awaited. A new snapshot (announced
by the registry, or noticed by a pick through its ``version``) is compiled off the
pick path, incrementally, while picks are served from the previous compile with the
newly ineligible lines masked (``_serving``); only a purpose's first compile makes a
caller wait. A warm pick takes no lock of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Protocol

from ._arguments import check_seconds
from ._awaited_state import AsyncStateBackend, AwaitedState
from ._errors import BudgetExhaustedError, NoEligibleNumberError
from ._models import PhoneNumber, Snapshot
from ._pick import _NO_RECIPIENT, Pick, PickContext, make_context
from ._router_core import (
    _DEFAULT_EJECTION,
    _DEFAULT_PACING,
    _MIN_NAP,
    EventListener,
    PolicyLike,
    T,
    _debug_enabled,
    _Default,
    _RouterCore,
    logger,
    voice_memo_policy,
)
from ._serving import Served, _MustWait
from .feedback import Ejection, OutcomeLike, SlowStart, Verdict
from .pacing import AsyncPacer, Budget, Pacer, Pacing
from .pacing._pacer import Plan
from .state import StateBackend

__all__ = ["AsyncRouter", "AsyncSnapshotSource", "Router", "SnapshotSource", "voice_memo_policy"]


class SnapshotSource(Protocol):
    """What ``Router`` needs from a registry (``Registry`` is one).

    ``subscribe`` is optional: without it, a pick notices new snapshots by version.

    .. versionadded:: 0.1
    """

    def snapshot(self) -> Snapshot:
        """The current snapshot (cheap when warm)."""
        ...


class AsyncSnapshotSource(Protocol):
    """What ``AsyncRouter`` needs from a registry (``AsyncRegistry`` is one).

    .. versionadded:: 0.1
    """

    def snapshot(self) -> Awaitable[Snapshot]:
        """The current snapshot (cheap when warm)."""
        ...


class Router(_RouterCore):
    """Chooses the ``from`` line for outbound Linq messages.

    ``policy`` is a ``Policy``, a spec string or a selector (default
    ``"skip-critical | reputation-weighted"``); ``policies`` gives a purpose its own
    one (``{"voice_memo": ...}``). Without one, voice memos use the chat policy plus
    ``prefer-imessage``: an RCS line only when no iMessage-capable line is eligible.
    A spec that is wrong raises ``PolicySpecError`` (a ``ValueError``) here.

    Build one at start-up, next to its registry, and pick before each send::

        router = Router(registry)
        pick = router.pick("+12025550123")
        pick.phone_number   # the "from" of POST /v3/chats, e.g. "+12025551234"
        pick.explanation    # what each stage kept, and why this line

    Sticky conversations can be changed: ``forget(to)`` drops the remembered line,
    ``pin(to, line)`` sets it. ``state`` (a ``StateBackend``, or a URI for
    ``linq_router.state.from_uri`` such as ``"redis://host:6379/0"``) is where the
    sticky selectors of the policies keep their assignments, unless one was given a
    state of its own; by default each keeps its own ``MemoryState``. On a shared
    state (Redis) the rotations take their turns there too, budgets are counted
    there, and the router shares its ejections, failure streaks and slow-start entries
    with every router on it and applies the registry changes their webhooks brought
    (``docs/fleet.md``). ``close()`` stops listening to the registry and the fleet.

    A pick never waits for a compile once the purpose has been compiled once: a new
    snapshot is compiled in a background thread, only for the lines that changed, and
    swapped in whole; meanwhile picks come from the previous compile, never from a line
    the new snapshot made ineligible (gone, CRITICAL or FLAGGED). ``settle()`` waits
    for the swap, for tests.

    .. versionadded:: 0.1
    """

    _pacer: Pacer | None

    def __init__(
        self,
        registry: SnapshotSource,
        policy: PolicyLike | None = None,
        policies: Mapping[str, PolicyLike] | None = None,
        *,
        ejection: Ejection | _Default | None = _DEFAULT_EJECTION,
        slow_start: SlowStart | None = None,
        on_event: EventListener | None = None,
        clock: Callable[[], float] = time.monotonic,
        pacing: Pacing | _Default | None = _DEFAULT_PACING,
        state: StateBackend | str | None = None,
    ) -> None:
        super().__init__(
            registry,
            policy,
            policies,
            ejection,
            slow_start,
            on_event,
            clock,
            pacing,
            Pacer,
            state,
        )
        self.registry = registry

    def pick(
        self,
        to: str | Iterable[str] | None = None,
        *,
        purpose: str = "chat",
        wait: float | None = None,
    ) -> Pick:
        """Choose a line for a message to ``to`` (a handle, several, or None).

        ``purpose`` is ``"chat"`` or ``"voice_memo"``. Raises ``ValueError`` for a bad
        recipient or purpose and ``NoEligibleNumberError`` when no line may be used:
        ``BudgetExhaustedError`` when every line is out of budget, unless ``wait``
        (seconds) allows waiting for room.
        """
        if wait:
            return self._pick_waiting(to, purpose, wait)
        # The whole hot path, inlined: one registry call, one dict lookup, one
        # comparison, the compiled pick, a flag, and a DEBUG check.
        ctx = _NO_RECIPIENT.get(purpose) if to is None else None
        if ctx is None:
            ctx = make_context(to, purpose)
        snapshot = self.registry.snapshot()
        compiled = self._compiled.get(purpose)
        if compiled is None or compiled.version != snapshot.version:
            compiled = self._served_for(snapshot, purpose)
        try:
            try:
                pick = compiled.pick(ctx)
            except _MustWait:  # a new snapshot left the interim nothing: wait for its compile
                pick, compiled = self._pick_after_wait(snapshot, ctx)
            pacer = self._pacer
            if pacer is not None and pacer.active and not pacer.clear(pick.number.id, ctx):
                pick = self._run(self._paced(pick, ctx, compiled), pick)
        except NoEligibleNumberError as error:
            due = self._budget_due()
            if due is not None and self._run(due.recheck(), False):
                self._refeed()  # lines out of budget had room again: ask once more
                return self.pick(to, purpose=purpose)
            better = self._no_line(error)
            if better is None:
                raise
            raise better from error
        if _debug_enabled(logging.DEBUG):
            logger.debug("pick for %s: %s", purpose, pick.explanation)
        return pick

    def _pick_waiting(self, to: str | Iterable[str] | None, purpose: str, wait: float) -> Pick:
        deadline = time.monotonic() + check_seconds("wait", wait)
        while True:
            try:
                return self.pick(to, purpose=purpose)
            except BudgetExhaustedError as error:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                time.sleep(min(left, max(_MIN_NAP, error.retry_at - self.clock())))

    def _run(self, plan: Plan[T], otherwise: T) -> T:
        """Run a budgets plan; if the storage fails, log it and go on with ``otherwise``."""
        pacer = self._pacer
        assert pacer is not None
        try:
            return pacer.run(plan)
        except NoEligibleNumberError:
            raise
        except Exception as error:  # a storage that fails must not fail the send
            pacer.failed("a budget check", error)
            return otherwise

    def report(
        self,
        pick: Pick | str,
        outcome: OutcomeLike = None,
        *,
        to: str | Iterable[str] | None = None,
    ) -> Verdict:
        r"""Record what happened to a send from ``pick``'s line; its ``Verdict``.

        ``pick`` is the ``Pick`` the send used, or its ``from`` number. ``outcome`` is
        ``None`` for success, the exception the send raised (the official SDK's, ours,
        httpx's), an HTTP status, or an ``Outcome``; ``classify`` says what it means.
        ``to`` is the send's recipient or recipients. A ``LINE_INELIGIBLE`` verdict
        ejects the line at once, enough ``LINE_FAILURE``\ s in a row eject it for a
        while (``Ejection``); the next pick avoids it. A number that is not a line of
        the snapshot is classified and otherwise ignored.

        .. versionadded:: 0.3
        """
        if outcome is None and type(pick) is Pick and to is None and self._pacer is None:
            # The hot path without pacing: a success, with nothing to reset in most cases.
            tracker = self._tracker
            if tracker is not None and tracker.watching:
                self._succeeded(tracker, pick.number.id)
            return Verdict.SUCCESS
        if self._latest is None and isinstance(pick, str):  # nothing picked yet: read lines
            self._served_for(self.registry.snapshot(), "chat")
        verdict, plan = self._report(pick, outcome, to)
        if plan is not None:
            self._after_plan("report", self._run(plan, False))
        return verdict

    def record_inbound(self, phone_number: str | PhoneNumber) -> None:
        """An inbound message arrived on ``phone_number``: it counts in its daily budget.

        .. versionadded:: 0.3
        """
        line = self._inbound_line(phone_number)
        if line is not None and self._pacer is not None:
            self._after_plan("inbound", self._run(self._pacer.inbound(line), False))

    def budgets(self) -> tuple[Budget, ...]:
        """Each line's use of each of its budgets (``Budget``), for dashboards.

        .. versionadded:: 0.3
        """
        pacer = self._pacer
        if pacer is None:
            return ()
        snapshot = self._latest or self.registry.snapshot()
        return pacer.run(pacer.budgets(snapshot.numbers))

    def pair_retry_after(
        self, line: str | Pick | PhoneNumber, to: str | Iterable[str]
    ) -> float | None:
        """Seconds until ``line`` may send to ``to`` again (the pair limit), or ``None``.

        ``linq_router.sdk.Sender`` asks this before each send.

        .. versionadded:: 0.3
        """
        pacer = self._pacer
        number = self._pair_line(line)
        if pacer is None or number is None:
            return None
        return self._run(pacer.pair_wait(number, make_context(to).recipients), None)

    def pin(self, to: str | Iterable[str], line: str | PhoneNumber) -> str:
        """Make ``line`` (id, number or ``PhoneNumber``) the conversation's line; its id.

        It stays that line for as long as it is eligible, like any sticky assignment.
        """
        return self._pin(self.registry.snapshot(), to, line)

    def __enter__(self) -> Router:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRouter(_RouterCore):
    """The asyncio twin of ``Router``: ``await router.pick(...)``; same arguments.

    Reading the snapshot is awaited, and so is a shared state: with
    ``state="redis://..."`` (resolved by ``from_uri_async``: an
    ``AsyncResilientState`` over ``AsyncRedisState``, on ``redis.asyncio``) each
    shared pick awaits its one round trip, so the event loop serves other tasks
    meanwhile; ``router.state`` is then the ``AwaitedState`` the policies call. A
    state given as an object is called as it is: awaited if its methods are
    coroutines, plainly if it is a ``StateBackend`` (``MemoryState``, ``RedisState``).
    Compiling and picking are shared with ``Router``, and many concurrent tasks share
    one registry refresh. ``pick``, ``pin`` and ``settle`` are awaited; ``forget``
    and ``close`` are plain methods.

    On a Redis URI the fleet feedback (ejections shared through the state's notice
    board) and registry changes from webhooks go through a sync board on the same
    URI, with its own listening thread: a report that posts to it makes one sync
    round trip, as ``Router``'s does.

    .. versionadded:: 0.1
    .. versionchanged:: 0.4 a Redis state is awaited.
    """

    _pacer: AsyncPacer | None
    _awaited: AwaitedState | None

    def __init__(
        self,
        registry: AsyncSnapshotSource,
        policy: PolicyLike | None = None,
        policies: Mapping[str, PolicyLike] | None = None,
        *,
        ejection: Ejection | _Default | None = _DEFAULT_EJECTION,
        slow_start: SlowStart | None = None,
        on_event: EventListener | None = None,
        clock: Callable[[], float] = time.monotonic,
        pacing: Pacing | _Default | None = _DEFAULT_PACING,
        state: StateBackend | AsyncStateBackend | str | None = None,
    ) -> None:
        super().__init__(
            registry,
            policy,
            policies,
            ejection,
            slow_start,
            on_event,
            clock,
            pacing,
            AsyncPacer,
            state,
            awaited=True,  # a URI by from_uri_async; a Redis state is awaited
        )
        shared = self.state
        self._awaited = shared if isinstance(shared, AwaitedState) else None
        self.registry = registry

    async def pick(
        self,
        to: str | Iterable[str] | None = None,
        *,
        purpose: str = "chat",
        wait: float | None = None,
    ) -> Pick:
        """Choose a line for a message to ``to``; see ``Router.pick``."""
        if wait:
            return await self._pick_waiting(to, purpose, wait)
        ctx = _NO_RECIPIENT.get(purpose) if to is None else None
        if ctx is None:
            ctx = make_context(to, purpose)
        snapshot = await self.registry.snapshot()
        compiled = self._compiled.get(purpose)
        if compiled is None or compiled.version != snapshot.version:
            compiled = await self._aserved_for(snapshot, purpose)
        try:
            awaited = self._awaited
            if awaited is not None:  # the state's calls are awaited: see _awaited_state
                pick = await awaited.replay(self._pick_served, ctx, snapshot, compiled)
            else:
                pick = await self._pick_served(ctx, snapshot, compiled)
        except NoEligibleNumberError as error:
            due = self._budget_due()
            if due is not None and await self._run(due.recheck(), False):
                self._refeed()
                return await self.pick(to, purpose=purpose)
            better = self._no_line(error)
            if better is None:
                raise
            raise better from error
        if _debug_enabled(logging.DEBUG):
            logger.debug("pick for %s: %s", purpose, pick.explanation)
        return pick

    async def _pick_served(self, ctx: PickContext, snapshot: Snapshot, compiled: Served) -> Pick:
        """``pick`` past reading the snapshot, as replayed on an awaited state."""
        try:
            pick = compiled.pick(ctx)
        except _MustWait:
            pick, compiled = await asyncio.to_thread(self._pick_after_wait, snapshot, ctx)
        pacer = self._pacer
        if pacer is not None and pacer.active and not pacer.clear(pick.number.id, ctx):
            pick = await self._run(self._paced(pick, ctx, compiled), pick)
        return pick

    async def report(
        self,
        pick: Pick | str,
        outcome: OutcomeLike = None,
        *,
        to: str | Iterable[str] | None = None,
    ) -> Verdict:
        """Record what happened to a send from ``pick``'s line; see ``Router.report``."""
        if outcome is None and type(pick) is Pick and to is None and self._pacer is None:
            tracker = self._tracker
            if tracker is not None and tracker.watching:
                self._succeeded(tracker, pick.number.id)
            return Verdict.SUCCESS
        if self._latest is None and isinstance(pick, str):
            await self._aserved_for(await self.registry.snapshot(), "chat")
        verdict, plan = self._report(pick, outcome, to)
        if plan is not None:
            self._after_plan("report", await self._run(plan, False))
        return verdict

    async def _pick_waiting(
        self, to: str | Iterable[str] | None, purpose: str, wait: float
    ) -> Pick:
        deadline = time.monotonic() + check_seconds("wait", wait)
        while True:
            try:
                return await self.pick(to, purpose=purpose)
            except BudgetExhaustedError as error:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                await asyncio.sleep(min(left, max(_MIN_NAP, error.retry_at - self.clock())))

    async def _run(self, plan: Plan[T], otherwise: T) -> T:
        """Run a budgets plan; see ``Router._run``."""
        pacer = self._pacer
        assert pacer is not None
        try:
            return await pacer.run(plan)
        except NoEligibleNumberError:
            raise
        except Exception as error:
            pacer.failed("a budget check", error)
            return otherwise

    async def record_inbound(self, phone_number: str | PhoneNumber) -> None:
        """An inbound message arrived on ``phone_number``; see ``Router.record_inbound``."""
        line = self._inbound_line(phone_number)
        if line is not None and self._pacer is not None:
            self._after_plan("inbound", await self._run(self._pacer.inbound(line), False))

    async def budgets(self) -> tuple[Budget, ...]:
        """Each line's use of each of its budgets; see ``Router.budgets``."""
        pacer = self._pacer
        if pacer is None:
            return ()
        snapshot = self._latest or await self.registry.snapshot()
        return await pacer.run(pacer.budgets(snapshot.numbers))

    async def pair_retry_after(
        self, line: str | Pick | PhoneNumber, to: str | Iterable[str]
    ) -> float | None:
        """Seconds until ``line`` may send to ``to`` again; see ``Router.pair_retry_after``."""
        pacer = self._pacer
        number = self._pair_line(line)
        if pacer is None or number is None:
            return None
        return await self._run(pacer.pair_wait(number, make_context(to).recipients), None)

    async def _aserved_for(self, snapshot: Snapshot, purpose: str) -> Served:
        # Masking is cheap and runs here; a first compile runs in a thread, so that the
        # event loop keeps serving other tasks meanwhile.
        if purpose in self._bases:
            return self._served_for(snapshot, purpose)
        return await asyncio.to_thread(self._served_for, snapshot, purpose)

    async def settle(self, timeout: float | None = 10.0) -> bool:  # type: ignore[override]
        """Wait until every announced snapshot is compiled and swapped in; see ``Router``.

        On an awaited state, also until the writes ``forget`` queued are sent.
        """
        if self._awaited is not None:
            await self._awaited.flush()
        return await asyncio.to_thread(_RouterCore.settle, self, timeout)

    async def pin(self, to: str | Iterable[str], line: str | PhoneNumber) -> str:
        """Make ``line`` the conversation's line; see ``Router.pin``."""
        snapshot = await self.registry.snapshot()
        await self._aserved_for(snapshot, "chat")
        awaited = self._awaited
        if awaited is None:
            return self._pin(snapshot, to, line)

        async def pinning() -> str:
            return self._pin(snapshot, to, line)

        return await awaited.replay(pinning)

    def forget(self, to: str | Iterable[str]) -> bool:
        """Forget the line remembered for the conversation with ``to``; see ``Router.forget``.

        A plain method. On an awaited state (a Redis URI) it cannot wait for Redis: the
        delete is sent by a task on the running loop, this router's next pick, pin or
        ``settle`` waits for it to be done, and the answer is True (a line may have
        been remembered).
        """
        return _RouterCore.forget(self, to)

    async def __aenter__(self) -> AsyncRouter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
