"""Smooth weighted rotation with O(1) picks: the engine behind round-robin and weighting.

Each line with integer weight ``w`` has ``w`` events per cycle, evenly spaced by its
stride ``span / w`` over a cycle of length ``span`` (a multiple of the weights' lcm),
and lines of equal weight start staggered across their stride. One cycle's events,
sorted by time, is the schedule; a pick is the next entry of an endless cycle over it.
Over every whole cycle each line gets exactly ``w`` of ``W = sum(w)`` picks, and a
line's picks are spread a stride apart, never bunched (the same interleaving nginx's
smooth weighted round robin produces).

Across snapshots the schedule continues from where the old one stood: for each line
that remains, the distance to its next event carries over (rescaled if its weight
changed); new lines are staggered across their stride. So a refresh, even one after
every pick, neither restarts the rotation at the heaviest or first line nor starves
anyone (Envoy's EDF scheduler once restarted on every host update and starved light
hosts). Event times are absolute within the cycle, so a change of a few lines is an
update (``Rotation.updated``): their events are taken out and put in, and every other
event stays where it is.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction

from linq_router._pick import Pick, PickContext

_NO_CONTEXT = PickContext()

__all__ = ["Rotation", "integer_weights"]

# Cap on one cycle's length, so a compile stays fast whatever weights are configured.
_MAX_CYCLE_PER_LINE = 64
_MIN_CYCLE_CAP = 4096
# Time units per unit of the weights' lcm: room to stagger a million lines of one weight.
_RESOLUTION = 1 << 32
# Sort keys pack (time, order, position) into one int: ints sort several times faster
# than tuples, which matters for a schedule of 100,000 events.
_FIELD = 21
_FIELD_MASK = (1 << _FIELD) - 1


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


def _copy(pick: Pick) -> Pick:
    # One distinct (equal) Pick per slot, so that the entry a cycle hands out tells
    # its position: that is how the next compile learns where this one stood.
    return Pick(pick.phone_number, pick.number, pick.policy, pick.explanation, pick.purpose)


class Rotation:
    """A compiled smooth weighted rotation over ``picks`` (one per line).

    ``weights`` are positive; ``keys`` identify lines across snapshots (line ids).
    ``previous`` (a ``Rotation`` of the same path, older snapshot) hands over its
    position and each remaining line's phase.
    """

    __slots__ = (
        "_departed",
        "_entries",
        "_ints",
        "_keys",
        "_lines",
        "_span",
        "_times",
        "pick",
    )

    pick: Callable[[PickContext], Pick]
    """The next line of the rotation (a C-level callable; ``ctx`` is ignored)."""
    _departed: dict[str, tuple[int, int]]
    _lines: dict[str, tuple[int, int]]  # key -> (integer weight, first event time)

    def __init__(
        self,
        picks: Sequence[Pick],
        keys: Sequence[str],
        weights: Sequence[float],
        previous: Rotation | None = None,
    ) -> None:
        ints = integer_weights(weights)
        self._ints = dict(zip(weights, ints, strict=True))
        span = math.lcm(*ints) * _RESOLUTION
        self._span = span
        carried = previous._phases_now() if previous is not None else {}
        present = set(keys)
        # Lines that left keep their phase, frozen, for when they come back: a line that
        # flaps in and out of the pool then still reaches its turn while it is present,
        # instead of re-entering half a stride away every time and never being picked.
        departed_before = dict(previous._departed) if previous is not None else {}
        departed = dict(departed_before)
        departed.update((k, (d, s)) for k, (d, s, _) in carried.items() if k not in present)
        for key in present.intersection(departed):
            del departed[key]
        self._departed = _bounded(departed, len(keys))
        # New lines of equal weight are staggered evenly across their stride; starting
        # them all at one phase would bunch them (20 light lines in a row, then the
        # heavy line twice in a row).
        fresh = Counter(
            w
            for key, w in zip(keys, ints, strict=True)
            if key not in carried and key not in departed_before
        )
        nth: Counter[int] = Counter()
        unseen = len(carried)
        # Sort key: time, then (for ties) the order the old schedule had, then position,
        # so a reordered snapshot of the same lines continues exactly as before.
        events: list[int] = []
        lines: dict[str, tuple[int, int]] = {}
        for position, (key, weight) in enumerate(zip(keys, ints, strict=True)):
            stride = span // weight
            phase = carried.get(key)
            if phase is not None:
                offset, rank = phase[0] * stride // phase[1], phase[2] + 1
            elif key in departed_before:
                # A returning line wins ties: it has waited longer than the line it
                # ties with, and losing every tie would keep a flapping line out.
                back = departed_before[key]
                offset, rank = back[0] * stride // back[1], 0
            else:
                offset = (2 * nth[weight] + 1) * stride // (2 * fresh[weight])
                nth[weight] += 1
                rank = unseen + position + 1
            lines[key] = (weight, offset % stride)
            base = (rank << _FIELD) | position
            events.extend(
                ((offset + m * stride) % span << (2 * _FIELD)) | base for m in range(weight)
            )
        events.sort()
        self._lines = lines
        self._times = [event >> (2 * _FIELD) for event in events]
        self._keys = [keys[event & _FIELD_MASK] for event in events]
        seen: set[int] = set()
        entries: list[Pick] = []
        for event in events:
            p = event & _FIELD_MASK
            entries.append(_copy(picks[p]) if p in seen else picks[p])
            seen.add(p)
        self._entries = entries
        self.pick = _cycler(tuple(entries))

    def _position(self) -> int:
        """The index of the entry due next (taken from the cycle, never handed out)."""
        entry = self.pick(_NO_CONTEXT)
        entries, times = self._entries, self._times
        # The entry's line says which few times it can be at: no index of every entry
        # is kept (copying one for each update would cost as much as the schedule).
        info = self._lines.get(getattr(getattr(entry, "number", None), "id", ""))
        if info is not None:
            weight, first = info
            stride = self._span // weight
            for m in range(weight):
                t = first + m * stride
                at = bisect.bisect_left(times, t)
                while at < len(times) and times[at] == t:
                    if entries[at] is entry:
                        return at
                    at += 1
        # Keys that are not the picks' line ids: look for the entry itself.
        return next(at for at, candidate in enumerate(entries) if candidate is entry)

    def _phases_now(self) -> dict[str, tuple[int, int, int]]:
        """Each line's (distance to its next event, stride, order) at the current position."""
        # Taking one entry reveals the position; that entry is never handed out, and the
        # next schedule starts with it still due, so no pick is lost.
        position = self._position()
        now = self._times[position]
        span = self._span
        phases: dict[str, tuple[int, int, int]] = {}
        keys, times = self._keys, self._times
        for j in itertools.chain(range(position, len(times)), range(position)):
            key = keys[j]
            if key not in phases:
                stride = span // self._lines[key][0]
                phases[key] = ((times[j] - now) % span, stride, len(phases))
        return phases

    def updated(
        self, removed: Iterable[str], added: Sequence[tuple[str, Pick, float]]
    ) -> Rotation | None:
        """A copy with lines taken out and put in, continuing from where this one stands.

        ``removed`` are keys; ``added`` are ``(key, pick, weight)``; a key in both is a
        line whose pick or weight changed. Work is proportional to the events of the
        lines named (plus a C-level copy of the schedule). ``None`` when a weight needs
        a different cycle length, or nothing would be left: build afresh then.
        """
        ints = self._ints
        if any(weight not in ints for _, _, weight in added):
            return None
        edit = _Edit(self)
        for key in {*removed, *(key for key, _, _ in added)}:
            edit.take_out(key)
        fresh = Counter(
            ints[w] for key, _, w in added if key not in edit.leaving and key not in edit.departed
        )
        nth: Counter[int] = Counter()
        for key, pick, weight in added:
            w = ints[weight]
            stride = self._span // w
            wins_ties = False
            if key in edit.leaving:
                distance, old = edit.leaving.pop(key)
                distance = distance * stride // old
            elif key in edit.departed:
                distance, old = edit.departed.pop(key)
                distance, wins_ties = distance * stride // old, True
            else:
                distance = (2 * nth[w] + 1) * stride // (2 * fresh[w])
                nth[w] += 1
            edit.put_in(key, pick, w, distance, wins_ties=wins_ties)
        return edit.finish()

    @property
    def cycle(self) -> int:
        """Picks in one whole cycle (each line's share is exact over it)."""
        return len(self._entries)


class _Edit:
    """A rotation's schedule being changed: copies of its lists, edited in place."""

    def __init__(self, rotation: Rotation) -> None:
        self.rotation = rotation
        self.span = rotation._span
        self.now = rotation._times[rotation._position()]
        self.times, self.keys = list(rotation._times), list(rotation._keys)
        self.entries = list(rotation._entries)
        self.lines = dict(rotation._lines)
        self.departed = dict(rotation._departed)
        self.leaving: dict[str, tuple[int, int]] = {}

    def take_out(self, key: str) -> None:
        """Remove ``key``'s events, remembering the distance to its next one."""
        info = self.lines.pop(key, None)
        if info is None:
            return
        weight, first = info
        stride = self.span // weight
        self.leaving[key] = ((first - self.now) % stride, stride)
        times, keys, entries = self.times, self.keys, self.entries
        for m in range(weight):
            at = bisect.bisect_left(times, first + m * stride)
            while keys[at] != key:
                at += 1
            del times[at], keys[at], entries[at]

    def put_in(self, key: str, pick: Pick, weight: int, distance: int, *, wins_ties: bool) -> None:
        """Add ``weight`` events for ``key``, the first ``distance`` after now."""
        stride = self.span // weight
        first = (self.now + distance) % stride
        self.lines[key] = (weight, first)
        place = bisect.bisect_left if wins_ties else bisect.bisect_right
        for m in range(weight):
            t = first + m * stride
            at = place(self.times, t)
            entry = pick if m == 0 else _copy(pick)
            self.times.insert(at, t)
            self.keys.insert(at, key)
            self.entries.insert(at, entry)

    def finish(self) -> Rotation | None:
        """The edited rotation, its cycle starting at the entry due now."""
        if not self.entries:
            return None
        self.departed.update(self.leaving)
        rotation = Rotation.__new__(Rotation)
        rotation._ints, rotation._span = self.rotation._ints, self.span
        rotation._lines, rotation._times, rotation._keys = self.lines, self.times, self.keys
        rotation._entries = self.entries
        rotation._departed = _bounded(self.departed, len(self.lines))
        start = bisect.bisect_left(self.times, self.now)
        rotation.pick = _cycler(tuple(self.entries[start:] + self.entries[:start]))
        return rotation


def _bounded(departed: dict[str, tuple[int, int]], present: int) -> dict[str, tuple[int, int]]:
    while len(departed) > 4 * present + 64:  # forget the oldest first
        del departed[next(iter(departed))]
    return departed
