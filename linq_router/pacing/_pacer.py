r"""Budgets counted by ``limits``, checked at pick time from local marks: ``Pacer``.

The counting is the ``limits`` library's (its strategies and storages). What this
module adds is where the router looks: a reported send ``hit``\\ s the line's rates
(and its pair's, and its new-conversation rate), then reads the window; a line whose
window is full is *marked* out until the window frees room. Picks read only the
marks (a dict lookup, and nothing at all while nothing is marked); a mark that ran
out is checked against the storage once, since the window may still be full.

A budget must be able to record more than its limit: sends that were in flight when
a line ran out did happen, and Linq counted them. So each rate is counted on a
*shadow* item of the same window and a larger amount; ``used`` is what the shadow's
window holds, and a line is out when ``used`` reaches the real amount.

The logic is written once, as plans: generators that yield the ``limits`` calls they
need (``Call``) and receive the answers. ``Pacer`` runs them against the sync
strategies, ``AsyncPacer`` awaits them against ``limits.aio``.

A shared storage (Redis) may fail. A call that fails with an outage error (refused,
reset, timed out: ``outage_errors``) starts an *outage*: the budgets go on in a
``limits`` memory storage of this process, seeded with what the shared windows held
when last read, and every count made there is remembered. At most once a second (on
the router's clock) a run probes the shared storage (``check``); when it answers, the
counts still in their local windows are written back (``hit`` with their cost: they
land now, so a window holds them a little longer than it would have), and the runs
go back to the shared storage.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar

import limits
import limits.aio.strategies
import limits.strategies
from limits import RateLimitItem
from limits.storage import storage_from_string

from linq_router._fork import renew_after_fork
from linq_router._models import PhoneNumber, Reputation
from linq_router._pick import PickContext
from linq_router.state._redis_wire import outage_errors

from ._config import Budget, Pacing, parse_rates
from ._outage import ROOM_ENTRIES, Call, Key, Outage, OutageBooks
from ._storage import storage as _storage

__all__ = ["AsyncPacer", "Call", "Pacer", "PacerCore"]

logger = logging.getLogger("linq_router")

T = TypeVar("T")
Plan = Generator["Call", Any, T]

_NAMESPACE = "linq_router"
# The shadow of a rate of amount n counts up to n + 1024 in the same window: room for
# the sends in flight when the line ran out (at most one per worker), and no more, since
# a moving window keeps one entry per send.
_SHADOW_EXTRA = 1024
_PRUNE_EVERY = 60.0  # seconds between two sweeps of dead keys from memory storage
_OPS = {"hit": "hit", "stats": "get_window_stats", "test": "test", "clear": "clear"}


class _Rate:
    """A budget's rate and the shadow item its use is counted on."""

    __slots__ = ("item", "shadow", "text")

    def __init__(self, item: RateLimitItem) -> None:
        self.item = item
        self.text = str(item)
        amount = item.amount + _SHADOW_EXTRA
        self.shadow = type(item)(amount, item.multiples, namespace=_NAMESPACE)

    def used(self, stats: Any) -> int:
        """How many sends the window holds, from the shadow's window stats."""
        return int(self.shadow.amount - stats.remaining)


def _rates(name: str, value: str | None) -> tuple[_Rate, ...]:
    return () if value is None else tuple(_Rate(i) for i in parse_rates(name, value))


class PacerCore(OutageBooks):
    """The marks and the plans; no I/O of its own (see the module notes)."""

    def __init__(self, pacing: Pacing, clock: Callable[[], float]) -> None:
        self.pacing = pacing
        self.clock = clock
        self.line_rates = _rates("per_line", pacing.per_line)
        self.pair_rates = _rates("per_pair", pacing.per_pair)
        self.new_rates: dict[Reputation, tuple[_Rate, ...]] = {
            Reputation.parse(k): _rates(f"new_conversations[{k!r}]", v)
            for k, v in (pacing.new_conversations or {}).items()
        }
        self.seen = limits.RateLimitItemPerDay(1, namespace=_NAMESPACE)
        self._lock = threading.Lock()
        # line id -> {rate text: (until, number)}: lines out of their per_line budget.
        self._line_out: dict[str, dict[str, tuple[float, str]]] = {}
        self._pair_out: dict[tuple[str, str], float] = {}  # (line id, handle) -> until
        self._new_out: dict[str, float] = {}  # line id -> until (new recipients only)
        self.excluded: dict[str, str] = {}  # line id -> note, for the compile (replaced)
        self.active = False  # anything marked: the router then checks what it picks
        # Kept where the router's shared state is: that state's outage is logged once
        # (WARNING, then INFO), so the budgets' own part of it is told at DEBUG.
        self.follows_state = False
        self.due = math.inf  # the earliest end of a line mark
        self._warned: set[str] = set()
        # Room known left per (rate, ids), for process-local storage only (see _count).
        self._local = pacing.storage.split("://", 1)[0] in ("memory", "async+memory")
        self._room: dict[tuple[str, ...], int] = {}
        self._next_prune = time.monotonic() + _PRUNE_EVERY
        # A shared storage that fails goes on locally (see the module notes).
        self._outage_errors = outage_errors()
        self.outage: Outage | None = None
        self._known: dict[Key, int] = {}  # each shared window's use when last read

    def has_pair_marks(self) -> bool:
        """Whether some sender-recipient pair is marked at its limit."""
        return bool(self._pair_out)

    def has_new_marks(self) -> bool:
        """Whether some line is marked out of its new-conversation budget."""
        return bool(self._new_out)

    def pair_window(self) -> float:
        """Seconds of the first ``per_pair`` window (60 s when there is none)."""
        return float(self.pair_rates[0].item.get_expiry()) if self.pair_rates else 60.0

    # -- time --------------------------------------------------------------------------

    def _until(self, reset_time: float) -> float:
        """A ``limits`` reset time (wall clock) on the router's clock."""
        return self.clock() + max(0.0, float(reset_time) - time.time())

    # -- marks -------------------------------------------------------------------------

    def _rebuild_locked(self) -> bool:
        """Exclusions, ``due`` and ``active`` from the marks; whether exclusions changed."""
        excluded = {}
        due = math.inf
        for line_id, marks in self._line_out.items():
            until, number = max(marks.values())
            excluded[line_id] = f"{number} until {until:.1f}"
            due = min(due, *(u for u, _ in marks.values()))
        changed = excluded != self.excluded
        if changed:
            self.excluded = excluded
        self.due = due
        self.active = bool(self._line_out or self._pair_out or self._new_out)
        return changed

    def _line_stats(
        self, line_id: str, number: str, rate: _Rate, stats: Any, *, unmark: bool = False
    ) -> bool:
        """Mark a line full for one ``per_line`` rate; True if the exclusions changed.

        Only a recheck (``unmark``) takes a mark away: a report's reading may be older
        than another thread's that found the window full, and must not undo it.
        """
        full = rate.used(stats) >= rate.item.amount
        if not full and not unmark:
            return False
        with self._lock:
            marks = self._line_out.get(line_id)
            if full:
                marks = self._line_out.setdefault(line_id, {})
                until = self._until(stats.reset_time)
                before = marks.get(rate.text)
                marks[rate.text] = (max(until, before[0]) if before else until, number)
            elif marks is not None:
                marks.pop(rate.text, None)
                if not marks:
                    del self._line_out[line_id]
            return self._rebuild_locked()

    def _pair_stats(self, line_id: str, handle: str, rate: _Rate, stats: Any) -> None:
        if rate.used(stats) >= rate.item.amount:
            with self._lock:
                until = self._until(stats.reset_time)
                key = (line_id, handle)
                self._pair_out[key] = max(until, self._pair_out.get(key, 0.0))
                self.active = True

    def _new_stats(self, line_id: str, rate: _Rate, stats: Any) -> None:
        with self._lock:
            if rate.used(stats) >= rate.item.amount:
                until = self._until(stats.reset_time)
                self._new_out[line_id] = max(until, self._new_out.get(line_id, 0.0))
            self.active = bool(self._line_out or self._pair_out or self._new_out)

    # -- plans -------------------------------------------------------------------------

    def consume(
        self,
        line: PhoneNumber,
        counted: bool,
        handles: tuple[str, ...],
        key: str | None,
        pair_paused: float | None,
    ) -> Plan[bool]:
        """A reported send: count it where it counts; whether the exclusions changed.

        ``counted``: Linq counted it (a success or a 429 over the pair); ``handles``
        the recipients and ``key`` the conversation (``None`` when not given);
        ``pair_paused`` the seconds Linq paused the pair for (a 429), if any.
        """
        changed = False
        if counted:
            for rate in self.line_rates:
                stats = yield from self._count(rate, ("line", line.id))
                if stats is not None:
                    changed |= self._line_stats(line.id, line.phone_number, rate, stats)
        if pair_paused is not None:
            until = self.clock() + pair_paused
            with self._lock:
                for handle in handles:
                    key_ = (line.id, handle)
                    self._pair_out[key_] = max(until, self._pair_out.get(key_, 0.0))
                self.active = self.active or bool(handles)
            return changed
        if not counted:
            return changed
        for handle in handles:
            for rate in self.pair_rates:
                stats = yield from self._count(rate, ("pair", line.id, handle))
                if stats is not None:
                    self._pair_stats(line.id, handle, rate, stats)
        if key is not None and self.new_rates:
            yield from self._conversation(line, key)
        return changed

    def _conversation(self, line: PhoneNumber, key: str) -> Plan[None]:
        """A send to conversation ``key``: a new one (none within a day) costs budget."""
        seen = ("seen", line.id, key)
        new = yield Call("test", self.seen, seen)  # room: no send within the last day
        yield Call("clear", self.seen, seen)
        yield Call("hit", self.seen, seen)
        if new:
            for rate in self.new_rates.get(line.reputation, ()):
                stats = yield from self._count(rate, ("new", line.id))
                if stats is not None:
                    self._new_stats(line.id, rate, stats)

    def _count(self, rate: _Rate, ids: tuple[str, ...]) -> Plan[Any | None]:
        """Count one send on ``rate``; its window stats, or ``None`` when surely not full.

        With the process's own storage (``memory://``) every use is this process's,
        so the room last read, less the sends counted since, is a lower bound of the
        room left (windows only free room as time passes): while it is above zero the
        window need not be read. Other storages are shared, and read every time.
        """
        yield Call("hit", rate.shadow, ids)
        key = (rate.text, *ids)
        if self._local:
            room = self._room.get(key, 0) - 1
            if room > 0:
                self._room[key] = room
                return None
        stats = yield Call("stats", rate.shadow, ids)
        if self._local:
            if len(self._room) >= ROOM_ENTRIES:
                self._room.clear()  # a bound, not a cache policy: it only costs reads
            self._room[key] = rate.item.amount - rate.used(stats)
        return stats

    def inbound(self, line: PhoneNumber) -> Plan[bool]:
        """An inbound message on ``line``: it counts against ``per_line`` too."""
        changed = False
        for rate in self.line_rates:
            stats = yield from self._count(rate, ("line", line.id))
            if stats is not None:
                changed |= self._line_stats(line.id, line.phone_number, rate, stats)
        return changed

    def recheck(self) -> Plan[bool]:
        """Line marks whose time came: read their windows again (they may still be full)."""
        now = self.clock()
        with self._lock:
            due = [
                (line_id, text, number)
                for line_id, marks in self._line_out.items()
                for text, (until, number) in marks.items()
                if until <= now
            ]
        changed = False
        by_text = {rate.text: rate for rate in self.line_rates}
        for line_id, text, number in due:
            rate = by_text.get(text)
            if rate is None:
                continue
            stats = yield Call("stats", rate.shadow, ("line", line_id))
            self._room[(rate.text, "line", line_id)] = rate.item.amount - rate.used(stats)
            changed |= self._line_stats(line_id, number, rate, stats, unmark=True)
        with self._lock:
            changed |= self._rebuild_locked()
        return changed

    def clear(self, line_id: str, ctx: PickContext) -> bool:
        """Whether a pick of ``line_id`` for ``ctx`` needs no further look (no I/O).

        True unless the line is marked out, a pair or new-conversation mark may apply,
        or a line mark's time came. While anything is marked, every pick asks this.
        """
        if line_id in self._line_out or self._pair_out:
            return False
        if self._new_out and ctx.key is not None:
            return False
        return self.clock() < self.due

    def blocked(self, line: PhoneNumber, ctx: PickContext) -> Plan[float | None]:
        """Until when ``line`` may not take this pick (``None``: it may).

        Its own budget, its pair's, or (for a new recipient) its new-conversation one.
        """
        now = self.clock()
        found = [self._line_until(line.id, now), self._pair_until(line.id, ctx, now)]
        until = self._new_out.get(line.id)
        if until is not None and ctx.key is not None:
            if until <= now:  # the mark's time came: read the window again
                with self._lock:
                    self._new_out.pop(line.id, None)
                for rate in self.new_rates.get(line.reputation, ()):
                    stats = yield Call("stats", rate.shadow, ("new", line.id))
                    self._new_stats(line.id, rate, stats)
                until = self._new_out.get(line.id)
            if until is not None and until > now:
                new = yield Call("test", self.seen, ("seen", line.id, ctx.key))
                found.append(until if new else None)
        times = [t for t in found if t is not None]
        return max(times) if times else None

    def _line_until(self, line_id: str, now: float) -> float | None:
        marks = self._line_out.get(line_id)
        if not marks:
            return None
        until = max(u for u, _ in marks.values())
        return until if until > now else None

    def _pair_until(self, line_id: str, ctx: PickContext, now: float) -> float | None:
        worst: float | None = None
        for handle in ctx.recipients:
            until = self._pair_out.get((line_id, handle))
            if until is None:
                continue
            if until > now:
                worst = until if worst is None else max(worst, until)
                continue
            with self._lock:  # its time came: the pair has room again
                if self._pair_out.get((line_id, handle)) == until:
                    del self._pair_out[(line_id, handle)]
                self.active = bool(self._line_out or self._pair_out or self._new_out)
        return worst

    def pair_wait(self, line: PhoneNumber, handles: tuple[str, ...]) -> Plan[float | None]:
        """Seconds until every pair of ``line`` with ``handles`` has room (``None``: now)."""
        worst: float | None = None
        now = self.clock()
        for handle in handles:
            for rate in self.pair_rates:
                stats = yield Call("stats", rate.shadow, ("pair", line.id, handle))
                if rate.used(stats) >= rate.item.amount:
                    wait = self._until(stats.reset_time) - now
                    worst = wait if worst is None else max(worst, wait)
            until = self._pair_out.get((line.id, handle))
            if until is not None and until > now:
                worst = until - now if worst is None else max(worst, until - now)
        return worst

    def budgets(self, lines: tuple[PhoneNumber, ...]) -> Plan[tuple[Budget, ...]]:
        """Each line's use of each of its rates."""
        found: list[Budget] = []
        for line in lines:
            kinds = [("per_line", "line", rate) for rate in self.line_rates]
            kinds += [
                ("new_conversations", "new", r) for r in self.new_rates.get(line.reputation, ())
            ]
            for kind, prefix, rate in kinds:
                stats = yield Call("stats", rate.shadow, (prefix, line.id))
                used = rate.used(stats)
                found.append(
                    Budget(
                        line.phone_number,
                        kind,
                        rate.text,
                        used,
                        max(0, rate.item.amount - used),
                        self._until(stats.reset_time),
                    )
                )
        return tuple(found)

    def marked_lines(self) -> dict[str, float]:
        """Each line out of its ``per_line`` budget (E.164) and when it has room again."""
        with self._lock:
            return {
                number: until
                for marks in self._line_out.values()
                for until, number in [max(marks.values())]
            }

    def _stale_keys(self, storage: Any) -> list[str]:
        """Keys of ``limits``' memory storage whose windows hold nothing live any more.

        Its moving windows keep a key (and its expiry thread keeps visiting it every
        10 ms) for every pair ever seen, live or not: one per recipient. Clearing the
        dead ones (``storage.clear``) keeps that work proportional to the live pairs.
        Runs at most once a minute.
        """
        self._next_prune = time.monotonic() + _PRUNE_EVERY
        events = getattr(storage, "events", None)
        if not isinstance(events, dict):
            return []
        now = time.time()
        return [
            key
            for key, entries in list(events.items())
            if not entries or getattr(entries[0], "expiry", now + 1) <= now
        ]

    def failed(self, what: str, error: BaseException) -> None:
        """A storage call failed: log once per kind of error, and carry on unpaced."""
        kind = f"{what}:{type(error).__name__}"
        if kind in self._warned:
            logger.debug("pacing: %s failed: %r", what, error)
            return
        self._warned.add(kind)
        logger.warning(
            "pacing: %s failed (%r); budgets are not counted while the storage fails",
            what,
            error,
        )


class Pacer(PacerCore):
    """``PacerCore`` on the ``limits`` sync strategies."""

    def __init__(self, pacing: Pacing, clock: Callable[[], float]) -> None:
        super().__init__(pacing, clock)
        self.storage = _storage(pacing.storage)
        strategy: Any = limits.strategies.STRATEGIES[pacing.strategy]
        self.limiter = strategy(self.storage)
        renew_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # A parent thread (limits' expiry timer, a report) may have held a lock at the
        # fork. The counts stay (a fork inherits them, as a process's own store should);
        # the locks and the timer are made anew, the way limits unpickles its storage.
        self._lock = threading.Lock()
        stores = [self.storage] if self._local else []
        outage = self.outage
        if outage is not None:
            outage.probing = False  # a parent thread's probe does not go on here
            stores.append(outage.storage)
        for store in stores:
            getstate = getattr(store, "__getstate__", None)
            setstate = getattr(store, "__setstate__", None)
            if callable(getstate) and callable(setstate):
                setstate(getstate())

    def _outage(self, error: BaseException) -> Outage:
        """Count on in this process: a memory storage holding the last known use."""
        outage = self.outage
        if outage is not None:
            return outage
        storage = storage_from_string("memory://")
        strategy: Any = limits.strategies.STRATEGIES[self.pacing.strategy]
        limiter = strategy(storage)
        for (item, ids), used in self._seed():
            if used > 0:
                limiter.hit(item, *ids, cost=used)
        return self._fall_back(Outage(storage, limiter, self.clock(), []), error)

    def _rejoin(self, outage: Outage) -> Outage | None:
        """Probe the shared storage if due; ``None`` once it took the counts back."""
        if not self._probe_due(outage):
            return outage
        try:
            if self.storage.check() and self._write_back(outage):
                return None
        finally:
            outage.probing = False
        return outage

    def _write_back(self, outage: Outage) -> bool:
        """Write ``outage``'s counts to the shared storage; whether it ended."""
        shared, local = self.limiter, outage.limiter
        while True:
            entries = self._take(outage)
            if not entries:
                if self._end(outage) or outage.ended:
                    return True
                continue
            for n, ((item, ids), (cleared, cost)) in enumerate(entries):
                try:
                    hits = self._to_write(cost, local.get_window_stats(item, *ids), item)
                    if hits:
                        if cleared:
                            shared.clear(item, *ids)
                        shared.hit(item, *ids, cost=hits)  # refused: the window is full
                except self._outage_errors as error:
                    self._give_back(outage, entries[n:])
                    logger.debug("pacing: writing budgets back failed: %r", error)
                    return False
                self._written(outage, hits)

    def run(self, plan: Plan[T]) -> T:
        """Run ``plan`` to its end, making its calls."""
        outage = self.outage
        if outage is not None:
            outage = self._rejoin(outage)
        limiter = self.limiter if outage is None else outage.limiter
        try:
            call = next(plan)
            while True:
                try:
                    answer = getattr(limiter, _OPS[call.op])(call.item, *call.ids)
                except self._outage_errors as error:
                    if self._local or outage is not None:
                        raise
                    outage = self._outage(error)
                    limiter = outage.limiter
                    answer = getattr(limiter, _OPS[call.op])(call.item, *call.ids)
                if outage is not None:
                    self._noted(outage, call, answer)
                elif not self._local and call.op == "stats":
                    self._read(call, answer)
                call = plan.send(answer)
        except StopIteration as done:
            if outage is not None and outage.ended:  # counted as the outage ended
                self._write_back(outage)
            store = self.storage if self._local else getattr(outage, "storage", None)
            if store is not None and time.monotonic() >= self._next_prune:
                for key in self._stale_keys(store):
                    store.clear(key)
            return done.value  # type: ignore[no-any-return]


class AsyncPacer(PacerCore):
    """``PacerCore`` on the ``limits.aio`` strategies."""

    def __init__(self, pacing: Pacing, clock: Callable[[], float]) -> None:
        super().__init__(pacing, clock)
        uri = pacing.storage
        storage = _storage(uri if uri.startswith("async+") else f"async+{uri}")
        self.storage: Any = storage
        strategy: Any = limits.aio.strategies.STRATEGIES[pacing.strategy]
        self.limiter = strategy(storage)

    def _outage(self, error: BaseException) -> Outage:
        """Count on in this process: a memory storage, to seed with the last known use."""
        outage = self.outage
        if outage is not None:
            return outage
        storage = storage_from_string("async+memory://")
        strategy: Any = limits.aio.strategies.STRATEGIES[self.pacing.strategy]
        limiter = strategy(storage)
        return self._fall_back(Outage(storage, limiter, self.clock(), self._seed()), error)

    async def _seeded(self, outage: Outage) -> None:
        seed, outage.seed = outage.seed, []
        for (item, ids), used in seed:
            if used > 0:
                await outage.limiter.hit(item, *ids, cost=used)

    async def _rejoin(self, outage: Outage) -> Outage | None:
        """Probe the shared storage if due; ``None`` once it took the counts back."""
        if not self._probe_due(outage):
            return outage
        try:
            if await self.storage.check() and await self._write_back(outage):
                return None
        finally:
            outage.probing = False
        return outage

    async def _write_back(self, outage: Outage) -> bool:
        """Write ``outage``'s counts to the shared storage; whether it ended."""
        shared, local = self.limiter, outage.limiter
        while True:
            entries = self._take(outage)
            if not entries:
                if self._end(outage) or outage.ended:
                    return True
                continue
            for n, ((item, ids), (cleared, cost)) in enumerate(entries):
                try:
                    stats = await local.get_window_stats(item, *ids)
                    hits = self._to_write(cost, stats, item)
                    if hits:
                        if cleared:
                            await shared.clear(item, *ids)
                        await shared.hit(item, *ids, cost=hits)  # refused: the window is full
                except self._outage_errors as error:
                    self._give_back(outage, entries[n:])
                    logger.debug("pacing: writing budgets back failed: %r", error)
                    return False
                self._written(outage, hits)

    async def run(self, plan: Plan[T]) -> T:
        """Run ``plan`` to its end, awaiting its calls."""
        outage = self.outage
        if outage is not None:
            outage = await self._rejoin(outage)
        limiter = self.limiter if outage is None else outage.limiter
        try:
            call = next(plan)
            while True:
                try:
                    answer = await getattr(limiter, _OPS[call.op])(call.item, *call.ids)
                except self._outage_errors as error:
                    if self._local or outage is not None:
                        raise
                    outage = self._outage(error)
                    limiter = outage.limiter
                    if outage.seed:
                        await self._seeded(outage)
                    answer = await getattr(limiter, _OPS[call.op])(call.item, *call.ids)
                if outage is not None:
                    self._noted(outage, call, answer)
                elif not self._local and call.op == "stats":
                    self._read(call, answer)
                call = plan.send(answer)
        except StopIteration as done:
            if outage is not None and outage.ended:  # counted as the outage ended
                await self._write_back(outage)
            store = self.storage if self._local else getattr(outage, "storage", None)
            if store is not None and time.monotonic() >= self._next_prune:
                for key in self._stale_keys(store):
                    await store.clear(key)
            return done.value  # type: ignore[no-any-return]
