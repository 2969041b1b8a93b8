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
import itertools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Protocol, TypeVar

from ._arguments import check_callable, check_seconds, shown
from ._errors import BudgetExhaustedError, NoEligibleNumberError
from ._models import PhoneNumber, Snapshot
from ._pick import _NO_RECIPIENT, PURPOSES, Pick, PickContext, make_context
from ._serving import Served, _Interim, _MustWait, _Serving, pick_avoiding
from .feedback import (
    Ejected,
    Ejection,
    LineEvent,
    OutcomeLike,
    SlowStart,
    Tracker,
    Verdict,
    classify,
    outcome_of,
)
from .pacing import AsyncPacer, Budget, Pacer, PacerCore, Pacing
from .pacing._pacer import Plan
from .policies import DEFAULT_POLICY, Pinnable, Policy, as_policy
from .policies._static import PreferIMessage

__all__ = ["AsyncRouter", "AsyncSnapshotSource", "Router", "SnapshotSource", "voice_memo_policy"]

logger = logging.getLogger("linq_router")
# Bound once: the level check is the only logging cost of a pick when DEBUG is off.
_debug_enabled = logger.isEnabledFor

PolicyLike = Policy | str | object
"""A ``Policy``, a spec string, or a bare selector."""

T = TypeVar("T")
# The shortest nap of a pick that waits for a budget (its clock may not be the wall's).
_MIN_NAP = 0.01

EventListener = Callable[[LineEvent], object]
"""``Router(on_event=...)``: called with each ``LineEvent`` (ejections and returns)."""


class _Default:
    """A default that is on: ``Ejection()``, ``Pacing()``."""

    def __init__(self, shown: str) -> None:
        self.shown = shown

    def __repr__(self) -> str:
        return self.shown


_DEFAULT_EJECTION = _Default("Ejection()")
_DEFAULT_PACING = _Default("Pacing()")


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


def voice_memo_policy(policy: Policy) -> Policy:
    """The voice-memo twin of a chat policy: ``policy`` plus ``prefer-imessage``.

    The soft filter goes after the hard filters and before the first soft one (so
    ``geomatch`` chooses among iMessage-capable lines). A policy that already filters
    by line type is returned unchanged.

    .. versionadded:: 0.1
    """
    names = {getattr(f, "name", None) for f in policy.filters}
    if names & {"line-type", "prefer-imessage"}:
        return policy
    filters = list(policy.filters)
    at = next((i for i, f in enumerate(filters) if getattr(f, "soft", False)), len(filters))
    filters.insert(at, PreferIMessage())
    return Policy(tuple(filters), policy.selector)


class _Avoid:
    """Lines a paced pick must not take: those tried this pick, and the masked ones."""

    __slots__ = ("masked", "tried")

    def __init__(self, tried: dict[str, float], masked: frozenset[str]) -> None:
        self.tried = tried
        self.masked = masked

    def __contains__(self, line_id: object) -> bool:
        return line_id in self.tried or line_id in self.masked


def _exhausted(
    message: str,
    out: Mapping[str, float],
    now: float,
    ejected: tuple[Ejected, ...] = (),
    returns: Mapping[str, float] | None = None,
) -> BudgetExhaustedError:
    """The error for lines out of budget (``out``: number -> when it has room)."""
    retry_at = min([*out.values(), *(returns or {}).values()])
    named = ", ".join(f"{n} (room in {max(0.0, u - now):.1f} s)" for n, u in sorted(out.items()))
    return BudgetExhaustedError(
        f"{message}; out of budget: {named}", retry_at=retry_at, resets=dict(out), ejected=ejected
    )


def _detail(outcome: OutcomeLike, verdict: Verdict) -> str:
    """What the report said, for an ejection's reason: "HTTP 403, code 2027"."""
    parts = outcome_of(outcome)
    if parts is None:
        return verdict.value
    said = [f"HTTP {parts.status}" if parts.status is not None else "no answer"]
    if parts.code is not None:
        said.append(f"code {parts.code}")
    if isinstance(outcome, BaseException) and parts.status is None:
        said.append(type(outcome).__name__)
    return ", ".join(said)


def _key_of(to: str | Iterable[str]) -> str:
    key = make_context(to).key if to is not None else None
    if key is None:
        msg = "give the recipient (or recipients) of the conversation"
        raise ValueError(msg)
    return key


class _RouterCore(_Serving):
    """Policies per purpose, their compiled forms, and the pick itself. No I/O."""

    def __init__(
        self,
        registry: object,
        policy: PolicyLike | None,
        policies: Mapping[str, PolicyLike] | None,
        ejection: Ejection | _Default | None = _DEFAULT_EJECTION,
        slow_start: SlowStart | None = None,
        on_event: EventListener | None = None,
        clock: Callable[[], float] = time.monotonic,
        pacing: Pacing | _Default | None = _DEFAULT_PACING,
        pacer: type[PacerCore] = PacerCore,
    ) -> None:
        if not callable(getattr(registry, "snapshot", None)):
            msg = (
                f"a router reads lines from a registry (Registry, AsyncRegistry, or any "
                f"object with snapshot()); got {type(registry).__name__}"
            )
            raise TypeError(msg)
        chat = as_policy(DEFAULT_POLICY if policy is None else policy)
        resolved: dict[str, Policy] = {"chat": chat, "voice_memo": voice_memo_policy(chat)}
        for purpose, value in (policies or {}).items():
            if purpose not in PURPOSES:
                known = ", ".join(PURPOSES)
                msg = f"unknown purpose {purpose!r} in policies; expected one of {known}"
                raise ValueError(msg)
            resolved[purpose] = as_policy(value)
        self.policies: Mapping[str, Policy] = resolved
        if isinstance(ejection, _Default):
            ejection = Ejection()
        if ejection is not None and not isinstance(ejection, Ejection):
            msg = f"ejection must be an Ejection or None, got {shown(ejection)}"
            raise TypeError(msg)
        if slow_start is not None and not isinstance(slow_start, SlowStart):
            msg = f"slow_start must be a SlowStart or None, got {shown(slow_start)}"
            raise TypeError(msg)
        if on_event is not None:
            check_callable("on_event", on_event, "a function taking a LineEvent")
        check_callable("clock", clock, "a function returning seconds (time.monotonic)")
        self.ejection = ejection
        self.slow_start = slow_start
        self.clock = clock
        self._on_event = on_event
        tracker = None
        if ejection is not None or slow_start is not None:
            tracker = Tracker(ejection, slow_start, clock)
        if isinstance(pacing, _Default):
            pacing = Pacing()
        if pacing is not None and not isinstance(pacing, Pacing):
            msg = f"pacing must be a Pacing or None, got {shown(pacing)}"
            raise TypeError(msg)
        self.pacing = pacing
        super().__init__(tracker, None if pacing is None else pacer(pacing, clock))
        self._finalizer: weakref.finalize[[], object] | None = None
        subscribe = getattr(registry, "subscribe", None)
        if callable(subscribe):
            ref = weakref.ref(self)

            def on_snapshot(snapshot: Snapshot) -> None:
                router = ref()
                if router is not None:
                    router._on_snapshot(snapshot)

            # A weak reference, so a router nobody closed does not live (and compile)
            # for as long as the registry does.
            self._finalizer = weakref.finalize(self, subscribe(on_snapshot))

    @property
    def policy(self) -> Policy:
        """The chat policy."""
        return self.policies["chat"]

    # -- feedback ------------------------------------------------------------------------

    def _line_of(self, pick: Pick | str) -> PhoneNumber | None:
        """The reported line in the newest snapshot served, ``None`` when it is not there."""
        if isinstance(pick, Pick):
            wanted = pick.number.id
        elif isinstance(pick, str):
            wanted = pick.strip()
        else:
            msg = f"pick must be a Pick or the from number as a str, got {shown(pick)}"
            raise TypeError(msg)
        snapshot = self._latest
        line = snapshot.get(wanted) if snapshot is not None else None
        if line is None and isinstance(pick, Pick):
            return pick.number  # a line gone since: still known by what the pick carried
        return line

    def _report(
        self, pick: Pick | str, outcome: OutcomeLike, to: str | Iterable[str] | None
    ) -> tuple[Verdict, Plan[bool] | None]:
        """``report`` past its I/O edge: classify, apply the verdict; the budgets' plan."""
        ctx = make_context(to) if to is not None else None
        verdict = classify(outcome)
        self._record(pick, outcome, verdict)
        pacer = self._pacer
        if pacer is None or verdict not in (Verdict.SUCCESS, Verdict.PAIR_LIMITED):
            return verdict, None
        line = pick.number if isinstance(pick, Pick) else self._line_of(pick)
        if line is None:
            return verdict, None
        paused = None
        if verdict is Verdict.PAIR_LIMITED:
            parts = outcome_of(outcome)
            given = parts.retry_after if parts is not None else None
            paused = float(given) if given is not None else pacer.pair_window()
        handles = ctx.recipients if ctx is not None else ()
        key = ctx.key if ctx is not None else None
        return verdict, pacer.consume(line, True, handles, key, paused)

    def _inbound_line(self, phone_number: str | PhoneNumber) -> PhoneNumber | None:
        if isinstance(phone_number, PhoneNumber):
            return phone_number
        if not isinstance(phone_number, str):
            msg = f"phone_number must be a line's E.164 number or id, got {shown(phone_number)}"
            raise TypeError(msg)
        line = self._line_of(phone_number)
        if line is None and _debug_enabled(logging.DEBUG):
            logger.debug("inbound on %s: not a line of the snapshot", shown(phone_number))
        return line

    def _pair_line(self, line: str | Pick | PhoneNumber) -> PhoneNumber | None:
        if isinstance(line, PhoneNumber):
            return line
        return self._line_of(line)

    def _budget_due(self) -> PacerCore | None:
        """The pacer, when a line out of budget may have room again (its mark's time came)."""
        pacer = self._pacer
        if pacer is not None and pacer.excluded and pacer.clock() >= pacer.due:
            return pacer
        return None

    def _after_plan(self, what: str, result: object) -> None:
        """What a budgets plan's answer means: exclusions changed, so serve anew."""
        if result is True:
            self._refeed()

    def _paced(self, pick: Pick, ctx: PickContext, served: Served) -> Plan[Pick]:
        """``pick`` if its line may take it, else the next candidate that may (a plan).

        Only runs while something is marked (``PacerCore.active``) that may concern this
        pick (``PacerCore.clear``): line marks whose time came are read again, then the
        marks are checked for what was chosen and, only when it is out, for the next
        candidates. A line out of its daily budget is left out of the compile too; the
        check here covers the moment between its mark and the new compile.
        """
        pacer = self._pacer
        assert pacer is not None  # only called with pacing on
        if pacer.clock() >= pacer.due and (yield from pacer.recheck()):
            self._refeed()
        tried: dict[str, float] = {}
        numbers: dict[str, str] = {}
        base = served.base if isinstance(served, _Interim) else served
        masked = served.masked if isinstance(served, _Interim) else frozenset()
        avoid = _Avoid(tried, masked)
        turn = itertools.count()
        while True:
            until = yield from pacer.blocked(pick.number, ctx)
            if until is None:
                return pick
            tried[pick.number.id] = until
            numbers[pick.number.id] = pick.phone_number
            found = pick_avoiding(base, ctx, avoid, turn, "while others are out of budget")
            if found is None:
                raise _exhausted(
                    f"every line for this recipient is out of budget (policy "
                    f"{self.policy.name!r}, purpose {ctx.purpose!r})",
                    {numbers[i]: u for i, u in tried.items()},
                    self.clock(),
                )
            pick = found

    def _record(self, pick: Pick | str, outcome: OutcomeLike, verdict: Verdict) -> None:
        """Apply ``verdict`` (not a plain success) to the reported line."""
        tracker = self._tracker
        if tracker is None:
            return
        line = self._line_of(pick)
        if line is None:
            if _debug_enabled(logging.DEBUG):
                logger.debug("report for %s: not a line of the snapshot; ignored", shown(pick))
            return
        changed, events = tracker.record(line, verdict, _detail(outcome, verdict))
        if changed:
            self._refeed()
        self._announce(events)

    def _announce(self, events: list[LineEvent]) -> None:
        listener = self._on_event
        if listener is None:
            return
        for event in events:
            try:
                listener(event)
            except Exception:  # a metrics hook must not break a send
                logger.exception("on_event listener failed for %s", event)

    def ejections(self) -> tuple[Ejected, ...]:
        """The lines ejected now (soonest return first); see ``Ejection``.

        .. versionadded:: 0.3
        """
        tracker = self._tracker
        if tracker is None:
            return ()
        if tracker.clock() >= tracker.due:
            self._tick()
        return tracker.ejected()

    def _no_line(self, error: NoEligibleNumberError) -> NoEligibleNumberError | None:
        """``error`` naming the ejected lines and budgets, or ``None`` when none are out."""
        if isinstance(error, BudgetExhaustedError):
            return None
        ejected = self.ejections()
        pacer = self._pacer
        out = pacer.marked_lines() if pacer is not None else {}
        if not ejected and not out:
            return None
        now = self.clock()
        message = str(error)
        if ejected:
            named = "; ".join(
                f"{e.line} ({e.verdict.value}: {e.reason}; returns in "
                f"{max(0.0, e.until - now):.1f} s)"
                for e in ejected
            )
            message += f"; ejected lines: {named}"
        if not out:
            better = NoEligibleNumberError(message)
            better.ejected = ejected
            return better
        returns = {e.line: e.until for e in ejected}
        return _exhausted(message, out, now, ejected, returns)

    def _pinnables(self) -> list[Pinnable]:
        found: dict[int, Pinnable] = {}
        for policy in self.policies.values():
            if isinstance(policy.selector, Pinnable):
                found[id(policy.selector)] = policy.selector
        return list(found.values())

    def forget(self, to: str | Iterable[str]) -> bool:
        """Forget the line remembered for the conversation with ``to``.

        Its next pick hashes afresh (usually to the same line, unless the pool
        changed). True if any sticky policy remembered a line for it.
        """
        key = _key_of(to)
        results = [selector.forget(key) for selector in self._pinnables()]
        return any(results)

    def _pin(self, snapshot: Snapshot, to: str | Iterable[str], line: str | PhoneNumber) -> str:
        key = _key_of(to)
        wanted = line.id if isinstance(line, PhoneNumber) else line
        number = snapshot.get(wanted)
        if number is None:
            msg = f"cannot pin to {wanted!r}: no such line id or number in the current snapshot"
            raise ValueError(msg)
        pinnables = self._pinnables()
        if not pinnables:
            msg = f"no sticky policy to pin with; policies: {self.policy.name!r}"
            raise ValueError(msg)
        # A pin the filters would drop would be ignored on the very next pick: say so now.
        allowed = self._served_for(snapshot, "chat").candidates(make_context(to))
        if number not in allowed:
            msg = (
                f"cannot pin to {number.phone_number}: policy {self.policy.name!r} does not "
                f"allow it for this conversation now ({number.reputation.value}, "
                f"status {number.status or 'unknown'})"
            )
            raise ValueError(msg)
        for selector in pinnables:
            selector.pin(key, number.id)
        return number.id

    def close(self) -> None:
        """Stop listening to the registry (the registry itself stays open)."""
        if self._finalizer is not None:
            self._finalizer()  # runs the unsubscribe at most once, even if called again

    def __repr__(self) -> str:
        return f"<{type(self).__name__} policy={self.policy.name!r}>"


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
    ``pin(to, line)`` sets it (see ``linq_router.state`` for where it is kept).
    ``close()`` stops listening to the registry.

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
    ) -> None:
        super().__init__(
            registry, policy, policies, ejection, slow_start, on_event, clock, pacing, Pacer
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
                compiled = self._after_must_wait(snapshot, purpose)
                pick = compiled.pick(ctx)
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
                tracker.success(pick.number.id)
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

    Only reading the snapshot is awaited; compiling and picking are shared with
    ``Router``, and many concurrent tasks share one registry refresh. ``pick``,
    ``pin`` and ``settle`` are awaited; ``forget`` and ``close`` are plain methods.

    .. versionadded:: 0.1
    """

    _pacer: AsyncPacer | None

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
    ) -> None:
        super().__init__(
            registry, policy, policies, ejection, slow_start, on_event, clock, pacing, AsyncPacer
        )
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
            try:
                pick = compiled.pick(ctx)
            except _MustWait:
                compiled = await asyncio.to_thread(self._after_must_wait, snapshot, purpose)
                pick = compiled.pick(ctx)
            pacer = self._pacer
            if pacer is not None and pacer.active and not pacer.clear(pick.number.id, ctx):
                pick = await self._run(self._paced(pick, ctx, compiled), pick)
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
                tracker.success(pick.number.id)
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
        """Wait until every announced snapshot is compiled and swapped in; see ``Router``."""
        return await asyncio.to_thread(_Serving.settle, self, timeout)

    async def pin(self, to: str | Iterable[str], line: str | PhoneNumber) -> str:
        """Make ``line`` the conversation's line; see ``Router.pin``."""
        snapshot = await self.registry.snapshot()
        await self._aserved_for(snapshot, "chat")
        return self._pin(snapshot, to, line)

    async def __aenter__(self) -> AsyncRouter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
