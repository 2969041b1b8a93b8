"""The state behind ejection and slow start, for one router: ``Tracker``. No I/O.

It is told verdicts (``record``), new snapshots (``observe``) and the time
(``advance``), and answers with the ``Adjustments`` a compile applies (ejected lines
left out, ramping lines' weight factors), the time its answer next changes (``due``),
and the ``LineEvent``s to announce. Every method is O(what changed): the lines
reported, the lines a snapshot changed, the lines whose time came.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable

from linq_router._models import PhoneNumber, Reputation, Snapshot
from linq_router.policies import NO_ADJUSTMENTS, Adjustments

from ._classify import Verdict
from ._config import Ejected, Ejection, LineEvent, SlowStart

__all__ = ["Tracker", "eligible"]

logger = logging.getLogger("linq_router")

_UNPICKABLE = (Reputation.CRITICAL, Reputation.UNKNOWN)
# Times closer than this (seconds) are one time: clocks of a fleet, converted, differ so.
_SAME = 0.005


def eligible(line: PhoneNumber | None) -> bool:
    """Whether ``line`` may be picked at all: present, not CRITICAL or unknown, not FLAGGED."""
    return line is not None and line.reputation not in _UNPICKABLE and not line.is_flagged


def _line(snapshot: Snapshot | None, line_id: str) -> PhoneNumber | None:
    if snapshot is None:
        return None
    line = snapshot.get(line_id)
    return line if line is not None and line.id == line_id else None


class Tracker:
    """Failure streaks, ejections and slow-start entries of one router's lines."""

    def __init__(
        self,
        ejection: Ejection | None,
        slow_start: SlowStart | None,
        clock: Callable[[], float],
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.ejection = ejection
        self.slow_start = slow_start
        self.clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._streaks: dict[str, int] = {}
        self._trial: set[str] = set()
        self._ejected: dict[str, Ejected] = {}
        # line id -> (ejections counted, when it last returned), per kind of ejection.
        self._failures: dict[str, tuple[int, float]] = {}
        self._ineligible: dict[str, tuple[int, float]] = {}
        self._entered: dict[str, float] = {}  # slow start: when each ramping line entered
        self._factors: dict[str, float] = {}
        self._seen: Snapshot | None = None
        self._eligible: tuple[str, int] | None = None  # (snapshot version, eligible lines)
        self.adjustments: Adjustments = NO_ADJUSTMENTS
        self.due = math.inf
        # Whether a success has anything to reset: read without the lock on the hot path.
        self.watching = False
        # Told (under the lock) of each line that starts ramping up, and when: how a
        # fleet agrees on entry times (the router posts them, off the pick path).
        self.on_enter: Callable[[str, float], object] | None = None

    # -- what the router asks ------------------------------------------------------

    def ejected(self) -> tuple[Ejected, ...]:
        """The lines ejected now, soonest return first."""
        with self._lock:
            return tuple(sorted(self._ejected.values(), key=lambda e: (e.until, e.line)))

    def success(self, line_id: str) -> None:
        """A send from ``line_id`` succeeded: its failure count and trial end."""
        with self._lock:
            self._streaks.pop(line_id, None)
            self._trial.discard(line_id)
            self.watching = bool(self._streaks or self._trial)

    def record(
        self, line: PhoneNumber, verdict: Verdict, detail: str, streak: int | None = None
    ) -> tuple[bool, list[LineEvent]]:
        """Apply a verdict on ``line``; (whether the adjustments changed, events).

        ``streak`` is the line's failure count including this one when a fleet keeps
        it (a shared counter); by default this router counts on its own.
        """
        if verdict is Verdict.SUCCESS:
            self.success(line.id)
            return False, []
        ejection = self.ejection
        if ejection is None or verdict not in (Verdict.LINE_INELIGIBLE, Verdict.LINE_FAILURE):
            return False, []
        now = self.clock()
        with self._lock:
            current = self._ejected.get(line.id)
            if verdict is Verdict.LINE_INELIGIBLE:
                if current is not None and current.verdict is Verdict.LINE_INELIGIBLE:
                    return False, []  # a send that left before the ejection
                event: LineEvent | None = self._eject_ineligible(line, ejection, detail, now)
            else:
                if current is not None:
                    return False, []
                event = self._failure(line, ejection, detail, now, streak)
            self.watching = bool(self._streaks or self._trial)
            if event is None:
                return False, []
            self._rebuild_locked(now)
        return True, [event]

    def observe(self, snapshot: Snapshot) -> tuple[bool, list[LineEvent]]:
        """A new snapshot: lines that (re)entered ramp up; a 2027 line shown ACTIVE returns."""
        with self._lock:
            seen = self._seen
            if seen is None or seen.version == snapshot.version:
                self._seen = snapshot
                return False, []
            self._seen = snapshot
            self._eligible = None
            now = self.clock()
            events: list[LineEvent] = []
            changed = False
            for line_id in snapshot.changes_since(seen):
                old, new = _line(seen, line_id), _line(snapshot, line_id)
                ejected = self._ejected.get(line_id)
                if (
                    ejected is not None
                    and ejected.verdict is Verdict.LINE_INELIGIBLE
                    and new is not None
                    and new.status == "ACTIVE"
                    and old is not None
                    and old.status != "ACTIVE"
                ):
                    events.append(self._return_locked(ejected, now, "its status is ACTIVE again"))
                    changed = True
                elif self.slow_start is not None and ejected is None:
                    if eligible(new) and not eligible(old):
                        self._enter_locked(line_id, now)
                        changed = True
                    elif not eligible(new) and self._entered.pop(line_id, None) is not None:
                        changed = True
            if changed:
                self._rebuild_locked(now)
            return changed, events

    def advance(self) -> tuple[bool, list[LineEvent]]:
        """Return the lines whose time is up and step slow start; (anything changed, events)."""
        now = self.clock()
        with self._lock:
            if now < self.due:
                return False, []
            events = [
                self._return_locked(e, now, "its ejection ended")
                for e in list(self._ejected.values())
                if e.until <= now
            ]
            self._rebuild_locked(now)
            return True, events

    # -- what other routers of a fleet did -------------------------------------------

    def adopt(self, ejected: Ejected) -> bool:
        """Obey an ejection another router made (times on this clock); True if new here.

        An ejection this router holds already, ending as late or later, is kept; one
        whose time is up is ignored. Adopting is silent: the router that ejected the
        line is the one that announces it.
        """
        now = self.clock()
        if self.ejection is None or not ejected.until > now:
            return False
        line_id = ejected.line_id
        with self._lock:
            current = self._ejected.get(line_id)
            if current is not None and current.until >= ejected.until - _SAME:
                return False
            self._streaks.pop(line_id, None)
            self._trial.discard(line_id)
            self._entered.pop(line_id, None)
            self._ejected[line_id] = ejected
            self.watching = bool(self._streaks or self._trial)
            self._rebuild_locked(now)
        logger.debug(
            "obeying %s's ejection until %.1f: %s", ejected.line, ejected.until, ejected.reason
        )
        return True

    def note_streak(self, line_id: str, count: int) -> None:
        """The fleet's failure count of ``line_id`` is ``count`` (0: a success reset it)."""
        with self._lock:
            if count > 0:
                self._streaks[line_id] = count
            else:
                self._streaks.pop(line_id, None)
            self.watching = bool(self._streaks or self._trial)

    def streaking(self, line_id: str) -> bool:
        """Whether ``line_id`` has failures counted (here or, when told, in the fleet)."""
        return line_id in self._streaks

    def entered(self, line_id: str, at: float) -> bool:
        """A ramping line entered at ``at`` (this clock), as the fleet agreed; True if moved."""
        with self._lock:
            held = self._entered.get(line_id)
            if held is None or abs(held - at) <= _SAME:
                return False
            self._entered[line_id] = at
            self._rebuild_locked(self.clock())
            return True

    def ejection_of(self, line_id: str) -> Ejected | None:
        """The ejection ``line_id`` is under now, if any."""
        return self._ejected.get(line_id)

    def _enter_locked(self, line_id: str, now: float) -> None:
        self._entered[line_id] = now
        hook = self.on_enter
        if hook is not None:
            hook(line_id, now)

    # -- ejecting and returning ------------------------------------------------------

    def _eject_ineligible(
        self, line: PhoneNumber, ejection: Ejection, detail: str, now: float
    ) -> LineEvent:
        before, returned = self._ineligible.get(line.id, (0, now))
        times = _decayed(before, now - returned, ejection.ineligible_time) + 1
        self._ineligible[line.id] = (times, now)
        until = now + ejection.ineligible_duration(times)
        reason = f"ineligible to send ({detail})"
        return self._eject_locked(line, Verdict.LINE_INELIGIBLE, reason, now, until, times)

    def _failure(
        self, line: PhoneNumber, ejection: Ejection, detail: str, now: float, shared: int | None
    ) -> LineEvent | None:
        streak = self._streaks.get(line.id, 0) + 1 if shared is None else max(1, shared)
        self._streaks[line.id] = streak
        on_trial = line.id in self._trial
        if not on_trial and streak < ejection.consecutive_failures:
            return None
        refused = self._cap_refuses(line, ejection)
        if refused is not None:
            logger.debug(
                "not ejecting %s after %d failures: %s", line.phone_number, streak, refused
            )
            return None
        before, returned = self._failures.get(line.id, (0, now))
        times = _decayed(before, now - returned, ejection.base_time) + 1
        self._failures[line.id] = (times, now)
        jitter = self._rng() * ejection.jitter if ejection.jitter else 0.0
        until = now + ejection.failure_time(times) + jitter
        why = "failed again on trial" if on_trial else f"{streak} failures in a row"
        reason = f"{why} (last: {detail})"
        return self._eject_locked(line, Verdict.LINE_FAILURE, reason, now, until, times)

    def _cap_refuses(self, line: PhoneNumber, ejection: Ejection) -> str | None:
        snapshot = self._seen
        pool = self._eligible_count()
        cap = max(1, math.floor(ejection.max_percent / 100.0 * pool))
        failing = sum(1 for e in self._ejected.values() if e.verdict is Verdict.LINE_FAILURE)
        if failing >= cap:
            return f"{failing} of {pool} eligible lines are out for failures already (cap {cap})"
        # The lines a pick could still fall back on: the eligible ones, or, in a pool with
        # none (a policy may pick FLAGGED or CRITICAL lines), every line. O(ejected lines).
        counts = eligible if pool else (lambda n: n is not None)
        total = pool if pool else (len(snapshot.numbers) if snapshot is not None else 0)
        out = sum(1 for i in self._ejected if counts(_line(snapshot, i)))
        rest = total - out - (1 if counts(_line(snapshot, line.id)) else 0)
        if rest < 1:
            return "it is the last eligible line"
        return None

    def _eligible_count(self) -> int:
        snapshot = self._seen
        if snapshot is None:
            return 0
        cached = self._eligible
        if cached is None or cached[0] != snapshot.version:
            cached = (snapshot.version, sum(1 for line in snapshot.numbers if eligible(line)))
            self._eligible = cached
        return cached[1]

    def _eject_locked(
        self,
        line: PhoneNumber,
        verdict: Verdict,
        reason: str,
        now: float,
        until: float,
        times: int,
    ) -> LineEvent:
        self._streaks.pop(line.id, None)
        self._trial.discard(line.id)
        self._entered.pop(line.id, None)
        self._ejected[line.id] = Ejected(
            line.phone_number, verdict, reason, now, until, times, line_id=line.id
        )
        logger.info(
            "ejected %s until %.1f (%s), ejection %d", line.phone_number, until, reason, times
        )
        return LineEvent("ejected", line.phone_number, reason, now)

    def _return_locked(self, ejected: Ejected, now: float, why: str) -> LineEvent:
        line_id = ejected.line_id
        del self._ejected[line_id]
        self._trial.add(line_id)
        history = self._ineligible if ejected.verdict is Verdict.LINE_INELIGIBLE else self._failures
        history[line_id] = (ejected.times, now)
        if self.slow_start is not None:
            self._enter_locked(line_id, now)
        self.watching = True
        reason = f"{why}; on trial until its next success"
        logger.info("%s returned: %s", ejected.line, reason)
        return LineEvent("returned", ejected.line, reason, now)

    def _rebuild_locked(self, now: float) -> None:
        """The adjustments and the next due time, from the state."""
        due = min((e.until for e in self._ejected.values()), default=math.inf)
        factors: dict[str, float] = {}
        slow = self.slow_start
        if slow is not None:
            for line_id, entered in list(self._entered.items()):
                factor, wait = slow.stepped(now - entered)
                if factor >= 1.0:
                    del self._entered[line_id]
                    continue
                factors[line_id] = factor
                # Never "now": a due time that has come must move on, or every pick ticks.
                due = min(due, max(now + wait, math.nextafter(now, math.inf)))
        excluded = {i: _note(e) for i, e in self._ejected.items()}
        if excluded != self.adjustments.excluded or factors != self.adjustments.factors:
            self.adjustments = Adjustments(excluded, factors)
        self.due = due


def _decayed(times: int, healthy: float, interval: float) -> int:
    """``times`` less one for each ``interval`` of the ``healthy`` seconds."""
    if times <= 0 or interval <= 0:
        return max(0, times)
    return max(0, times - math.floor(max(0.0, healthy) / interval))


def _note(ejected: Ejected) -> str:
    return f"{ejected.line} until {ejected.until:.1f}"
