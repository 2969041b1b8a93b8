"""Rotations shared by a fleet: one counter per schedule in the state backend.

A ``round-robin`` or ``reputation-weighted`` selector given a state that can
``rotate`` (``Router(state=...)`` on Redis) takes each turn from that state: one
atomic step per pick, so 8 processes together give the exact shares one would.

Every process must then hold the same schedule for the same group. A local rotation
carries its position over from the previous compile, which differs from process to
process; a shared one is built afresh from the group alone (its lines, in order, and
their weights), which every process agrees on, and its counter is keyed by that
content and the group's path. A new snapshot with the same lines keeps the key and
so the counter; a changed group starts a new counter at the top of its new
schedule (lines of equal weight are staggered, so nobody is favoured).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from linq_router._pick import Pick, PickContext

__all__ = ["Rotating", "SharedRotation", "SharesTurns", "schedule_key", "shared"]

_S = TypeVar("_S", bound="SharesTurns")


@runtime_checkable
class Rotating(Protocol):
    """A state backend that can step a shared counter atomically."""

    def rotate(self, schedule: str) -> int:
        """Add one to ``schedule``'s counter and return it (1 for the first turn)."""
        ...


class SharesTurns:
    """``with_state`` for a rotating selector (``round-robin``, ``reputation-weighted``)."""

    _state: Rotating | None = None

    def with_state(self: _S, state: object) -> _S:
        """A copy taking its turns from ``state`` (shared by a fleet), if it can rotate.

        What ``Router(state=...)`` does; itself when ``state`` has no ``rotate``.

        .. versionadded:: 0.4
        """
        if not isinstance(state, Rotating):
            return self
        made = copy.copy(self)
        made._state = state
        return made


def schedule_key(name: str, path: str, lines: Sequence[tuple[str, float]]) -> str:
    """A name for one schedule every process computes alike: path and content digest."""
    digest = hashlib.blake2b(digest_size=12)
    for line_id, weight in lines:
        digest.update(f"{line_id}\x1f{weight!r}\x1e".encode())
    return f"{name}:{path}:{digest.hexdigest()}"


def shared(
    name: str, path: str, lines: Sequence[tuple[str, float]], rotation: object, state: Rotating
) -> SharedRotation | None:
    """``rotation``'s cycle with its turns from ``state``; None when it has no entries."""
    entries = getattr(rotation, "_entries", None)
    if not entries:
        return None
    return SharedRotation(entries, schedule_key(name, path, lines), state, rotation)


class SharedRotation:
    """A compiled selector whose turns come from ``state``; ``entries`` is one cycle."""

    __slots__ = ("entries", "key", "pick", "rotation", "state")

    def __init__(
        self, entries: Sequence[Pick], key: str, state: Rotating, rotation: object
    ) -> None:
        self.entries = tuple(entries)
        self.key = key
        self.state = state
        self.rotation = rotation  # the local rotation it was built from (for explain)
        self.pick: Callable[[PickContext], Pick] = self._pick

    def _pick(self, ctx: PickContext) -> Pick:
        entries = self.entries
        return entries[(self.state.rotate(self.key) - 1) % len(entries)]
