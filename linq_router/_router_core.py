"""What ``Router`` and ``AsyncRouter`` share: ``_RouterCore``. No I/O of its own.

Policies per purpose and their compiled forms (``_serving``), the feedback loop
(reports, ejection, slow start) and pacing (budgets), written once: the routers in
``_router`` only add the I/O edges (reading the snapshot, running budget plans
against ``limits`` or ``limits.aio``, sleeping).
"""

from __future__ import annotations

import itertools
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import attrs

from ._arguments import check_callable, shown
from ._awaited_state import AsyncStateBackend, awaited_state
from ._errors import BudgetExhaustedError, NoEligibleNumberError
from ._fleet_feedback import FleetFeedback
from ._fleet_registry import following
from ._models import PhoneNumber, Snapshot
from ._pick import PURPOSES, Pick, PickContext, make_context
from ._serving import Served, _Interim, _Serving, pick_avoiding
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
from .pacing import PacerCore, Pacing
from .pacing._pacer import Plan
from .pacing._shared_storage import pacing_storage
from .policies import DEFAULT_POLICY, Pinnable, Policy, as_policy
from .policies._static import PreferIMessage
from .state import StateBackend, state_from_uri
from .state._board import Board

__all__ = ["EventListener", "PolicyLike", "voice_memo_policy"]


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


_EJECTING = (Verdict.LINE_INELIGIBLE, Verdict.LINE_FAILURE)


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


def _resolve_policies(
    policy: PolicyLike | None,
    policies: Mapping[str, PolicyLike] | None,
    state: StateBackend | None,
) -> dict[str, Policy]:
    """The policy per purpose, with sticky and rotations sharing ``state`` if given."""
    chat = as_policy(DEFAULT_POLICY if policy is None else policy)
    resolved: dict[str, Policy] = {"chat": chat, "voice_memo": voice_memo_policy(chat)}
    for purpose, value in (policies or {}).items():
        if purpose not in PURPOSES:
            known = ", ".join(PURPOSES)
            msg = f"unknown purpose {purpose!r} in policies; expected one of {known}"
            raise ValueError(msg)
        resolved[purpose] = as_policy(value)
    if state is not None:
        resolved = {p: _sharing(pol, state) for p, pol in resolved.items()}
    return resolved


def _resolve_pacing(pacing: Pacing | _Default | None, state: object) -> Pacing | None:
    """``Router(pacing=...)``: budgets kept where a shared ``state`` URI keeps state."""
    if isinstance(pacing, _Default):
        pacing = Pacing()
    if pacing is not None and not isinstance(pacing, Pacing):
        msg = f"pacing must be a Pacing or None, got {shown(pacing)}"
        raise TypeError(msg)
    if pacing is not None and pacing.storage == "memory://" and isinstance(state, str):
        shared = pacing_storage(state)
        if shared is not None:
            pacing = attrs.evolve(pacing, storage=shared)
    return pacing


def _resolve_state(
    state: StateBackend | AsyncStateBackend | str | None, *, awaited: bool = False
) -> StateBackend | None:
    """``Router(state=...)``: a backend, a URI for ``linq_router.state.from_uri``, or None.

    ``awaited`` (``AsyncRouter``): a URI is resolved by ``from_uri_async`` instead, and
    a Redis state, or any whose methods are coroutines, is wrapped in the
    ``AwaitedState`` that the router awaits for its policies.
    """
    if awaited:
        state = awaited_state(state)  # type: ignore[assignment]  # checked below
    if state is None or isinstance(state, StateBackend):
        return state
    if isinstance(state, str):
        return state_from_uri(state)
    msg = (
        "state must be a StateBackend or a state URI such as 'memory://' or "
        f"'redis://host:6379/0', got {type(state).__name__}"
    )
    raise TypeError(msg)


def _shares_notices(state: object) -> bool:
    """Whether ``state``'s notices reach other processes (Redis, maybe behind a fallback)."""
    return getattr(state, "shares_notices", False) is True


def _sharing(policy: Policy, state: StateBackend) -> Policy:
    """``policy`` with its sticky selector remembering in ``state`` (if it has one)."""
    with_state = getattr(policy.selector, "with_state", None)
    if not callable(with_state):
        return policy
    return Policy(policy.filters, with_state(state))


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
        state: StateBackend | AsyncStateBackend | str | None = None,
        *,
        awaited: bool = False,
    ) -> None:
        if not callable(getattr(registry, "snapshot", None)):
            msg = (
                f"a router reads lines from a registry (Registry, AsyncRegistry, or any "
                f"object with snapshot()); got {type(registry).__name__}"
            )
            raise TypeError(msg)
        self.state: StateBackend | None = _resolve_state(state, awaited=awaited)
        resolved = _resolve_policies(policy, policies, self.state)
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
        pacing = _resolve_pacing(pacing, state)
        self.pacing = pacing
        super().__init__(tracker, None if pacing is None else pacer(pacing, clock))
        if self._pacer is not None and isinstance(state, str):
            self._pacer.follows_state = self._pacer.pacing.storage == pacing_storage(state)
        self._finalizer: weakref.finalize[[], object] | None = None
        self._fleet: FleetFeedback | None = None
        shared = self.state
        if tracker is not None and isinstance(shared, Board) and _shares_notices(shared):
            ref = weakref.ref(self)

            def on_change() -> None:
                router = ref()
                if router is not None:
                    router._refeed()

            # An injected clock is the fleet's clock too (tests, simulations share one);
            # the default monotonic clock differs per host: times travel as wall time.
            wall = time.time if clock is time.monotonic else clock
            self._fleet = FleetFeedback(shared, tracker, on_change, wall=wall)
        # Registry changes a webhook brought to another process of the fleet.
        self._unfollow = following(self, registry, shared)
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

    def _succeeded(self, tracker: Tracker, line_id: str) -> None:
        """A send from ``line_id`` succeeded: end its streak or trial, in the fleet too."""
        fleet = self._fleet
        streaking = fleet is not None and tracker.streaking(line_id)
        tracker.success(line_id)
        if streaking and fleet is not None:
            fleet.succeeded(line_id)

    def _record(self, pick: Pick | str, outcome: OutcomeLike, verdict: Verdict) -> None:
        """Apply ``verdict`` to the reported line, doing nothing where nothing can change."""
        tracker = self._tracker
        if tracker is None:
            return
        if verdict is Verdict.SUCCESS:
            if tracker.watching:  # a streak or a trial to end; else nothing to do, no lock
                line = self._line_of(pick)
                if line is not None:
                    self._succeeded(tracker, line.id)
            return
        if tracker.ejection is None or verdict not in _EJECTING:
            return
        line = self._line_of(pick)
        if line is None:
            if _debug_enabled(logging.DEBUG):
                logger.debug("report for %s: not a line of the snapshot; ignored", shown(pick))
            return
        fleet = self._fleet
        streak = None
        if fleet is not None and verdict is Verdict.LINE_FAILURE:
            if tracker.ejection_of(line.id) is not None:
                return  # a send that left before the ejection: not one more failure
            streak = fleet.failures(line.id)
        changed, events = tracker.record(line, verdict, _detail(outcome, verdict), streak)
        if changed:
            self._refeed()
            if fleet is not None and any(e.kind == "ejected" for e in events):
                fleet.ejected(line.id)
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

    def settle(self, timeout: float | None = 10.0) -> bool:
        """Wait until every announced snapshot is compiled and swapped in.

        On a shared state, also until the fleet's notices reach this router (its
        subscription is confirmed and what was posted before it is read). True when
        done within ``timeout`` seconds. Picks never need this; tests and benchmarks
        use it to know that what they see is the newest.

        .. versionadded:: 0.2
        .. versionchanged:: 0.4 waits for the fleet's notices too.
        """
        done = _Serving.settle(self, timeout)
        fleet = self._fleet
        if fleet is not None:
            done = fleet.joined.wait(timeout) and done
        return done

    def close(self) -> None:
        """Stop listening to the registry (the registry itself stays open)."""
        if self._fleet is not None:
            self._fleet.close()
        if self._unfollow is not None:
            self._unfollow()  # at most once, however often close() is called
        if self._finalizer is not None:
            self._finalizer()  # runs the unsubscribe at most once, even if called again
        self._stop_worker()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} policy={self.policy.name!r}>"
