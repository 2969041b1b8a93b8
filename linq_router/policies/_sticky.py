"""``sticky``: the same conversation keeps the same line while that line stays eligible.

A conversation's first line comes from a weighted consistent-hash ring built when the
policy compiles: each eligible line owns virtual nodes in proportion to its weight,
at positions derived from its id (SHAKE-128, never Python's salted ``hash()``), so
every process with the same pool agrees on the line without talking; when a line
leaves, only the conversations on its nodes move; when one of n+1 lines joins, it
takes about 1/(n+1) of them. A lookup is one hash and a binary search.

The line chosen is then remembered in a ``StateBackend`` (bounded in memory by
default) and re-validated against the current group on every pick, so a
conversation does not move when weights or the pool change around it.
"""

from __future__ import annotations

import bisect
import hashlib
import sys
from array import array
from collections.abc import Container, Mapping

from linq_router._models import PhoneNumber, Reputation
from linq_router._pick import Pick, PickContext
from linq_router.state import MemoryState, StateBackend

from ._base import BaseSelector, CompiledSelector, Group
from ._rotation import Rotation
from ._weighted import WeightedSchedule, changed_weights, weights_for

__all__ = ["Sticky", "conversation_hash", "sticky"]

VNODES = 16
"""Virtual nodes for a line of the highest configured weight (fewer for lighter ones).

A line's share of new conversations varies around its weight's share by about
1/sqrt(VNODES) (25%). The ring is rebuilt in Python, so its size is what a full
compile costs: 16 nodes a line keeps a 10,000-line ring near 160,000 entries.
"""

_OWNER_BITS = 20  # low bits of a ring entry hold the owner's slot (up to 1M lines)
_OWNER_MASK = (1 << _OWNER_BITS) - 1
_POSITION_MASK = ((1 << 64) - 1) ^ _OWNER_MASK


def conversation_hash(key: str) -> int:
    """The ring position of a conversation key: 64 stable bits of BLAKE2b."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _line_positions(line_id: str, count: int) -> array[int]:
    # One SHAKE call yields all of a line's positions; a lighter weight uses a prefix
    # of the same stream, so a weight change moves only the nodes it adds or removes.
    # Read big-endian whatever the machine, so every process agrees. An array, not a
    # tuple: it is not tracked by the garbage collector, which a full compile of
    # 100,000 groups' worth of lines would otherwise keep busy.
    positions = array("Q", hashlib.shake_128(line_id.encode()).digest(8 * count))
    if sys.byteorder == "little":
        positions.byteswap()
    return positions


def _entries(line_id: str, count: int, slot: int, start: int = 0) -> list[int]:
    return [(p & _POSITION_MASK) | slot for p in _line_positions(line_id, count)[start:]]


def _spliced(ring: array[int], removed: list[int], added: list[int]) -> array[int]:
    """``ring`` without the entries ``removed`` and with ``added``, still sorted.

    A few bisects and C-level slice copies: the Python work is proportional to the
    entries named, not to the ring.
    """
    cuts = sorted(
        [(bisect.bisect_left(ring, value), 1, value) for value in removed]
        + [(bisect.bisect_left(ring, value), 0, value) for value in added]
    )
    out: array[int] = array("Q")
    done = 0
    for at, removing, value in cuts:
        out.extend(ring[done:at])
        if removing:
            done = at + 1  # the entry at `at` is `value` (entries are unique: slot bits)
        else:
            out.append(value)
            done = at
    out.extend(ring[done:])
    return out


class _CompiledSticky:
    __slots__ = (
        "_assign",
        "_counts",
        "_free",
        "_group",
        "_hashed",
        "_kept",
        "_no_recipient",
        "_ring",
        "_slot_of",
        "_slots",
        "_state",
        "_top",
        "_weights",
        "equal",
    )

    _ring: array[int]
    _no_recipient: WeightedSchedule | None

    def __init__(
        self,
        group: Group,
        weights: Mapping[Reputation, float],
        state: StateBackend,
        previous: CompiledSelector | None,
    ) -> None:
        self._group = group
        self._state = state
        # A shared store answers get-or-set in one round trip (``assign``): a pick there
        # makes one call whether the conversation is new or known. The process's own
        # memory keeps its two dictionary operations, the cheaper path there.
        assign = getattr(state, "assign", None)
        self._assign = assign if callable(assign) and not isinstance(state, MemoryState) else None
        self._weights = weights
        prior = previous if isinstance(previous, _CompiledSticky) else None
        eligible = [line for line in group.lines if weights[line.reputation] > 0]
        self.equal = not eligible and group.ignore_health
        self._top = max((w for w in weights.values() if w > 0), default=1.0)
        if prior is not None and group.changed is not None and not self.equal and not prior.equal:
            self._update(prior, group.changed)
        else:
            self._build(eligible if not self.equal else list(group.lines))
        # Without a recipient: the weighted rotation, kept up to date only once used
        # (building it costs as much as the ring, and most sticky traffic has a `to`).
        self._no_recipient = None
        if prior is not None and prior._no_recipient is not None:
            self._no_recipient = WeightedSchedule.build(
                "sticky (no recipient)", group, weights, prior._no_recipient
            )

    def _count(self, line: PhoneNumber) -> int:
        if self.equal:
            return VNODES
        # Slow start: a ramping line owns fewer ring entries, so fewer new conversations.
        weight = self._weights[line.reputation] * self._group.factor(line.id)
        return max(1, round(VNODES * weight / self._top)) if weight > 0 else 0

    def _build(self, lines: list[PhoneNumber]) -> None:
        # Slots in id order make ties (equal positions) break alike in every process.
        lines.sort(key=lambda line: line.id)
        ring: list[int] = []
        self._slots: list[str | None] = []
        self._slot_of: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        for slot, line in enumerate(lines):
            count = self._count(line)
            ring.extend(_entries(line.id, count, slot))
            self._slots.append(line.id)
            self._slot_of[line.id] = slot
            self._counts[line.id] = count
        ring.sort()
        # 8 bytes an entry instead of a Python int object's 32.
        self._ring = array("Q", ring)
        self._free: list[int] = []
        self._hashed: dict[int, Pick] = {}
        self._kept: dict[str, Pick] = {}

    def _update(self, prior: _CompiledSticky, changed: frozenset[str]) -> None:
        slots, slot_of = list(prior._slots), dict(prior._slot_of)
        counts, free = dict(prior._counts), list(prior._free)
        hashed, kept = dict(prior._hashed), dict(prior._kept)
        removed: list[int] = []
        added: list[int] = []
        for line_id in sorted(changed):
            kept.pop(line_id, None)
            line = self._group.get(line_id)
            old = counts.get(line_id, 0)
            new = self._count(line) if line is not None else 0
            slot = slot_of.get(line_id)
            if slot is not None:
                hashed.pop(slot, None)
            if new == old:
                continue
            if slot is None:
                slot = free.pop() if free else len(slots)
                if slot == len(slots):
                    slots.append(line_id)
                else:
                    slots[slot] = line_id
                slot_of[line_id] = slot
            if new > old:
                added.extend(_entries(line_id, new, slot, old))
            else:
                removed.extend(_entries(line_id, old, slot, new))
            if new:
                counts[line_id] = new
            else:
                del counts[line_id], slot_of[line_id]
                slots[slot] = None
                free.append(slot)
        self._ring = _spliced(prior._ring, removed, added) if removed or added else prior._ring
        self._slots, self._slot_of, self._counts, self._free = slots, slot_of, counts, free
        self._hashed, self._kept = hashed, kept

    def pick(self, ctx: PickContext) -> Pick:
        key = ctx.key
        if key is None or not self._ring:
            return self._without_recipient(ctx)
        if self._assign is not None:
            return self._assigned(key)
        remembered = self._state.get_assignment(key)
        if remembered is not None:
            pick = self._kept.get(remembered)
            if pick is None and remembered in self._counts:
                pick = self._remembered(remembered)
            if pick is not None:
                return pick
        slot = self.owner(key)
        line_id = self._slots[slot]
        assert line_id is not None  # ring entries name live slots only
        self._state.set_assignment(key, line_id)
        return self._hashed.get(slot) or self._hashed_pick(slot, line_id)

    def _assigned(self, key: str) -> Pick:
        """``pick`` on a shared store: one ``assign`` of the line the ring owns for ``key``."""
        assert self._assign is not None
        slot = self.owner(key)
        line_id = self._slots[slot]
        assert line_id is not None  # ring entries name live slots only
        remembered = self._assign(key, line_id)
        if remembered != line_id:
            pick = self._kept.get(remembered)
            if pick is None and remembered in self._counts:
                pick = self._remembered(remembered)
            if pick is not None:
                return pick
            # Remembered elsewhere for a line not eligible here: the ring's line now.
            self._state.set_assignment(key, line_id)
        return self._hashed.get(slot) or self._hashed_pick(slot, line_id)

    def pick_avoiding(self, ctx: PickContext, avoid: Container[str]) -> Pick | None:
        """A pick that skips the lines in ``avoid``, walking the ring on past them.

        What the ring will answer once they are gone from it: a router uses this while
        a new snapshot that made them ineligible is being compiled.
        """
        key = ctx.key
        ring = self._ring
        if key is None or not ring:
            return None
        remembered = self._state.get_assignment(key)
        if remembered is not None and remembered not in avoid and remembered in self._counts:
            return self._kept.get(remembered) or self._remembered(remembered)
        at = bisect.bisect_left(ring, conversation_hash(key) & _POSITION_MASK)
        for step in range(len(ring)):
            slot = ring[(at + step) % len(ring)] & _OWNER_MASK
            line_id = self._slots[slot]
            if line_id is not None and line_id not in avoid:
                self._state.set_assignment(key, line_id)
                return self._hashed.get(slot) or self._hashed_pick(slot, line_id)
        return None

    def _remembered(self, line_id: str) -> Pick:
        line = self._group.get(line_id)
        assert line is not None  # counted lines are the group's
        pick = self._group.make_pick(
            line, f"sticky: kept {line.phone_number} for this conversation (remembered)"
        )
        self._kept[line_id] = pick  # a benign race: two threads build equal picks
        return pick

    def _hashed_pick(self, slot: int, line_id: str) -> Pick:
        line = self._group.get(line_id)
        assert line is not None
        weight = 1.0 if self.equal else self._weights[line.reputation]
        label = f"{line.reputation.value}, weight {weight}"
        factor = self._group.factor(line_id)
        if factor < 1.0:
            label += f" x slow start {factor:.2f}"
        pick = self._group.make_pick(
            line, f"sticky: assigned {line.phone_number} by consistent hashing ({label})"
        )
        self._hashed[slot] = pick
        return pick

    def _without_recipient(self, ctx: PickContext) -> Pick:
        schedule = self._no_recipient
        if schedule is None:
            schedule = WeightedSchedule.build(
                "sticky (no recipient)", self._group, self._weights, None
            )
            self._no_recipient = schedule
        return schedule.pick(ctx)

    @property
    def rotation(self) -> Rotation | None:
        """The rotation used without a recipient (built on first use)."""
        return self._no_recipient.rotation if self._no_recipient is not None else None

    def owner(self, key: str) -> int:
        """The slot of the line the ring assigns to ``key``."""
        ring = self._ring
        at = bisect.bisect_left(ring, conversation_hash(key) & _POSITION_MASK)
        return ring[at % len(ring)] & _OWNER_MASK


class Sticky(BaseSelector):
    """Same conversation, same line; see ``sticky``.

    .. versionadded:: 0.1
    """

    name = "sticky"

    def __init__(
        self,
        *,
        max_size: int = 100_000,
        weights: Mapping[str | Reputation, float] | None = None,
        state: StateBackend | None = None,
    ) -> None:
        self.weights: Mapping[Reputation, float] = weights_for(weights)
        self.max_size = max_size
        self._state_given = state is not None
        self.state: StateBackend = MemoryState(max_size) if state is None else state
        if not isinstance(self.state, StateBackend):
            msg = f"sticky: state must implement StateBackend, got {type(state).__name__}"
            raise TypeError(msg)

    @property
    def spec(self) -> str:
        """The text form, e.g. ``sticky(max_size=50000)``."""
        args = [] if self.max_size == 100_000 else [f"max_size={self.max_size}"]
        args += changed_weights(self.weights)
        return f"{self.name}({', '.join(args)})" if args else self.name

    def compile(self, group: Group, previous: CompiledSelector | None) -> CompiledSelector:
        """Build the hash ring (and the no-recipient rotation) for ``group``."""
        return _CompiledSticky(group, self.weights, self.state, previous)

    def with_state(self, state: StateBackend) -> Sticky:
        """A copy remembering in ``state``; itself when it was given a state of its own.

        What ``Router(state=...)`` does with the sticky selectors of its policies.

        .. versionadded:: 0.4
        """
        if self._state_given:
            return self
        weights: dict[str | Reputation, float] = dict(self.weights.items())
        return Sticky(max_size=self.max_size, weights=weights, state=state)

    def forget(self, key: str) -> bool:
        """Forget conversation ``key``'s line; its next pick hashes afresh."""
        return self.state.delete_assignment(key)

    def pin(self, key: str, line_id: str) -> None:
        """Assign conversation ``key`` to ``line_id`` (used while that line is eligible)."""
        self.state.set_assignment(key, line_id)


def sticky(
    *,
    max_size: int = 100_000,
    weights: Mapping[str | Reputation, float] | None = None,
    state: StateBackend | None = None,
) -> Sticky:
    """The ``sticky`` selector: a conversation keeps its line while the line is eligible.

    The first line comes from a consistent-hash ring weighted by reputation (same
    ``weights`` as ``reputation_weighted``), so processes agree without sharing state;
    assignments are remembered in ``state`` (default: ``MemoryState(max_size)``, an
    LRU). Without ``to``, a pick falls back to the weighted rotation. ``Router.forget``
    and ``Router.pin`` change one conversation's line.

    .. versionadded:: 0.1
    """
    return Sticky(max_size=max_size, weights=weights, state=state)
