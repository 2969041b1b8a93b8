"""Smooth weighted rotation with O(1) picks: the engine behind round-robin and weighting.

Each line with integer weight ``w`` has ``w`` events per cycle, evenly spaced by its
stride ``span / w`` over a cycle of length ``span`` (a multiple of the weights' lcm),
and lines of equal weight start staggered across their stride. One
cycle's events, sorted by time, is the schedule; a pick is ``schedule[i % W]`` for a
shared atomic counter ``i``. Over every whole cycle each line gets exactly ``w`` of
``W = sum(w)`` picks, and a line's picks are spread a stride apart, never bunched (the
same interleaving nginx's smooth weighted round robin produces).

Across snapshots the schedule is rebuilt from where the old one stood: for each line
that remains, the distance to its next event carries over (rescaled if its weight
changed); new lines are staggered across their stride. So a refresh, even one after every
pick, neither restarts the rotation at the heaviest or first line nor starves anyone
(Envoy's EDF scheduler once restarted on every host update and starved light hosts).
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction

from linq_router._pick import Pick, PickContext

_NO_CONTEXT = PickContext()

__all__ = ["Rotation", "integer_weights"]

# Cap on one cycle's length, so a compile stays fast whatever weights are configured.
_MAX_CYCLE_PER_LINE = 64
_MIN_CYCLE_CAP = 4096


def integer_weights(weights: Sequence[float]) -> list[int]:
    """The smallest positive integers in (close to) the ratio of ``weights`` (all > 0).

    Ratios are exact to 1/1000 while one cycle stays within 64 entries per line;
    beyond that the resolution drops until it fits.
    """
    cap = max(_MAX_CYCLE_PER_LINE * len(weights), _MIN_CYCLE_CAP)
    distinct = sorted(set(weights))
    ints: dict[float, int] = {}
    for resolution in (1000, 100, 10, 1):
        top = distinct[-1]
        fracs = {w: Fraction(w / top).limit_denominator(resolution) for w in distinct}
        fracs = {w: f if f > 0 else Fraction(1, resolution) for w, f in fracs.items()}
        lcm = math.lcm(*(f.denominator for f in fracs.values()))
        ints = {w: int(f * lcm) for w, f in fracs.items()}
        gcd = math.gcd(*ints.values())
        ints = {w: i // gcd for w, i in ints.items()}
        if sum(ints[w] for w in weights) <= cap:
            break
    return [ints[w] for w in weights]


def _cycler(schedule: tuple[Pick, ...]) -> Callable[[PickContext], Pick]:
    """``f(ctx)`` returning the schedule's entries in turn, forever, thread-safely."""
    entries = itertools.cycle(schedule)
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if is_gil_enabled is None or is_gil_enabled():
        # next(cycle, ctx) is one C call: atomic under the GIL, no lock, no Python frame
        # (ctx lands in next()'s unused "default" slot: the cycle never ends).
        return functools.partial(next, entries)
    lock = threading.Lock()

    def locked_next(ctx: PickContext) -> Pick:
        with lock:
            return next(entries)

    return locked_next


class Rotation:
    """A compiled smooth weighted rotation over ``picks`` (one per line).

    ``weights`` are positive; ``keys`` identify lines across snapshots (line ids).
    ``previous`` (a ``Rotation`` of the same path, older snapshot) hands over its
    counter and each remaining line's phase.
    """

    __slots__ = ("_cycle", "_departed", "_ids", "_slots", "_span", "_strides", "_times", "pick")

    pick: Callable[[PickContext], Pick]
    """The next line of the rotation (a C-level callable; ``ctx`` is ignored)."""
    _departed: dict[str, tuple[int, int, int]]

    def __init__(
        self,
        picks: Sequence[Pick],
        keys: Sequence[str],
        weights: Sequence[float],
        previous: Rotation | None = None,
    ) -> None:
        ints = integer_weights(weights)
        # The factor len(keys) leaves room to stagger lines of equal weight (below).
        span = 2 * math.lcm(*ints) * len(keys)
        strides = [span // w for w in ints]
        carried = previous._phases_now() if previous is not None else {}
        # Lines that left keep their phase, frozen, for when they come back: a line that
        # flaps in and out of the pool then still reaches its turn while it is present,
        # instead of re-entering half a stride away every time and never being picked.
        present = set(keys)
        departed = dict(previous._departed) if previous is not None else {}
        departed.update((k, v) for k, v in carried.items() if k not in present)
        for key in present.intersection(departed):
            del departed[key]
        while len(departed) > 4 * len(keys) + 64:  # bounded: forget the oldest first
            del departed[next(iter(departed))]
        self._departed = departed
        # Sort key: time, then (for ties) the order the old schedule had, then position,
        # so a reordered snapshot of the same lines continues exactly as before.
        events: list[tuple[int, int, int]] = []
        unseen = len(carried)
        # New lines of equal weight are staggered evenly across their stride; starting
        # them all at one phase would bunch them (20 light lines in a row, then the
        # heavy line twice in a row).
        departed_before = dict(previous._departed) if previous is not None else {}
        fresh = Counter(
            w
            for key, w in zip(keys, ints, strict=True)
            if key not in carried and key not in departed_before
        )
        nth: Counter[int] = Counter()
        for position, (key, weight, stride) in enumerate(zip(keys, ints, strides, strict=True)):
            phase = carried.get(key)
            if phase is None and key in departed_before:
                # A returning line wins ties: it has waited longer than the line it
                # ties with, and losing every tie would keep a flapping line out.
                back = departed_before[key]
                phase = (back[0], back[1], -1)
            if phase is None:
                offset = (2 * nth[weight] + 1) * stride // (2 * fresh[weight])
                nth[weight] += 1
                rank = unseen + position
            elif phase[1] == stride:
                offset, rank = phase[0], phase[2]
            else:
                offset, rank = phase[0] * stride // phase[1], phase[2]
            events.extend((offset + m * stride, rank, position) for m in range(weight))
        events.sort()
        self._times = [t for t, _, _ in events]
        self._ids = [keys[p] for _, _, p in events]
        self._strides = dict(zip(keys, strides, strict=True))
        # One distinct (equal) Pick per slot, so that the entry a cycle hands out
        # tells its position: that is how the next compile learns where this stood.
        seen: set[int] = set()
        schedule: list[Pick] = []
        for _, _, p in events:
            pick = picks[p]
            if p in seen:
                pick = Pick(
                    pick.phone_number, pick.number, pick.policy, pick.explanation, pick.purpose
                )
            seen.add(p)
            schedule.append(pick)
        self._slots = {id(entry): j for j, entry in enumerate(schedule)}
        self._cycle = len(schedule)
        self._span = span
        self.pick = _cycler(tuple(schedule))

    def _phases_now(self) -> dict[str, tuple[int, int, int]]:
        """Each line's (distance to its next event, stride, order) at the current position."""
        # Taking one entry reveals the position; that entry is never handed out, and the
        # next schedule starts with it still due, so no pick is lost.
        position = self._slots[id(self.pick(_NO_CONTEXT))]
        now = self._times[position]
        phases: dict[str, tuple[int, int, int]] = {}
        for j in range(position, self._cycle):
            key = self._ids[j]
            if key not in phases:
                phases[key] = (self._times[j] - now, self._strides[key], len(phases))
        for j in range(position):
            key = self._ids[j]
            if key not in phases:
                phases[key] = (self._times[j] + self._span - now, self._strides[key], len(phases))
        return phases

    @property
    def cycle(self) -> int:
        """Picks in one whole cycle (each line's share is exact over it)."""
        return self._cycle
