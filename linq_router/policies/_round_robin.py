"""``round-robin``: strict rotation through the group's lines."""

from __future__ import annotations

from collections.abc import Callable

from linq_router._pick import Pick, PickContext

from ._base import BaseSelector, CompiledSelector, Group
from ._rotation import Rotation

__all__ = ["RoundRobin", "round_robin"]


class _CompiledRoundRobin:
    __slots__ = ("pick", "rotation")

    rotation: Rotation
    pick: Callable[[PickContext], Pick]

    def __init__(self, group: Group, previous: CompiledSelector | None) -> None:
        n = len(group.lines)
        picks = [
            group.make_pick(line, f"round-robin: chose {line.phone_number} (line {i} of {n})")
            for i, line in enumerate(group.lines, 1)
        ]
        prior = previous.rotation if isinstance(previous, _CompiledRoundRobin) else None
        self.rotation = Rotation(picks, [line.id for line in group.lines], [1.0] * n, prior)
        # The rotation's pick is the whole of this selector's pick: bind it directly.
        self.pick = self.rotation.pick


class RoundRobin(BaseSelector):
    """Strict rotation: every line in turn, in snapshot order, fair under threads.

    The cursor survives refreshes: a snapshot with the same lines continues where the
    last one stood, and a changed pool continues from each remaining line's place
    (new lines join mid-rotation), never from the first line.

    .. versionadded:: 0.1
    """

    name = "round-robin"

    def compile(self, group: Group, previous: CompiledSelector | None) -> CompiledSelector:
        """Build the rotation for ``group``, carrying the cursor over from ``previous``."""
        return _CompiledRoundRobin(group, previous)


def round_robin() -> RoundRobin:
    """The ``round-robin`` selector: strict, thread-safe rotation.

    .. versionadded:: 0.1
    """
    return RoundRobin()
