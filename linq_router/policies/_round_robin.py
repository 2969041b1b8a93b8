"""``round-robin``: strict rotation through the group's lines."""

from __future__ import annotations

import functools
from collections.abc import Callable

from linq_router._models import PhoneNumber
from linq_router._pick import Cell, Pick, PickContext

from ._base import BaseSelector, CompiledSelector, Group
from ._rotation import Rotation
from ._shared import SharesTurns, shared

__all__ = ["RoundRobin", "round_robin"]


def _choice(number: str, count: Cell, factor: float = 1.0) -> str:
    ramp = f", slow start: {factor:.2f} of its turns" if factor < 1.0 else ""
    return f"round-robin: chose {number} (one of {count.value} lines in rotation{ramp})"


def _pick_for(group: Group, line: PhoneNumber, count: Cell) -> tuple[Pick, float]:
    factor = group.factor(line.id)
    choice = functools.partial(_choice, line.phone_number, count, factor)
    return group.make_pick(line, choice), factor


class _CompiledRoundRobin:
    __slots__ = ("_count", "pick", "rotation")

    rotation: Rotation
    pick: Callable[[PickContext], Pick]
    _count: Cell

    def __init__(self, group: Group, previous: CompiledSelector | None) -> None:
        prior = previous if isinstance(previous, _CompiledRoundRobin) else None
        rotation = None
        if prior is not None and group.changed is not None:
            # Shared with the previous compile's picks, which then count the lines anew.
            self._count = prior._count
            added = []
            for line_id in sorted(group.changed):
                line = group.get(line_id)
                if line is not None:
                    pick, factor = _pick_for(group, line, self._count)
                    added.append((line_id, pick, factor))
            rotation = prior.rotation.updated(group.changed, added)
        else:
            self._count = Cell(len(group.lines))
        if rotation is None:
            made = [_pick_for(group, line, self._count) for line in group.lines]
            keys = [line.id for line in group.lines]
            previous_rotation = prior.rotation if prior is not None else None
            rotation = Rotation([p for p, _ in made], keys, [f for _, f in made], previous_rotation)
        self._count.value = len(group.lines)
        self.rotation = rotation
        # The rotation's pick is the whole of this selector's pick: bind it directly.
        self.pick = rotation.pick


class RoundRobin(SharesTurns, BaseSelector):
    """Strict rotation: every line in turn, in snapshot order, fair under threads.

    The cursor survives refreshes: a snapshot with the same lines continues where the
    last one stood, and a changed pool continues from each remaining line's place
    (new lines join mid-rotation), never from the first line.

    .. versionadded:: 0.1
    """

    name = "round-robin"

    def compile(self, group: Group, previous: CompiledSelector | None) -> CompiledSelector:
        """Build the rotation for ``group``, carrying the cursor over from ``previous``."""
        state = self._state
        if state is None:
            return _CompiledRoundRobin(group, previous)
        local = _CompiledRoundRobin(group, None)  # the same schedule in every process
        lines = [(line.id, group.factor(line.id)) for line in group.lines]
        return shared(self.name, group.path, lines, local.rotation, state) or local


def round_robin() -> RoundRobin:
    """The ``round-robin`` selector: strict, thread-safe rotation.

    .. versionadded:: 0.1
    """
    return RoundRobin()
