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
import struct
from array import array
from collections.abc import Callable, Mapping

from linq_router._models import PhoneNumber, Reputation
from linq_router._pick import Pick, PickContext
from linq_router.state import MemoryState, StateBackend

from ._base import BaseSelector, CompiledSelector, Group
from ._rotation import Rotation
from ._weighted import changed_weights, weighted_rotation, weights_for

__all__ = ["Sticky", "conversation_hash", "sticky"]

VNODES = 100
"""Virtual nodes for a line of the highest configured weight (fewer for lighter ones).

A line's share of new conversations varies around its weight's share by about
1/sqrt(VNODES) (10%); more nodes would cost compile time and memory at 10,000 lines.
"""

_OWNER_BITS = 20  # low bits of a ring entry hold the owner's index (up to 1M lines)
_OWNER_MASK = (1 << _OWNER_BITS) - 1
_POSITION_MASK = ((1 << 64) - 1) ^ _OWNER_MASK


def conversation_hash(key: str) -> int:
    """The ring position of a conversation key: 64 stable bits of BLAKE2b."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _line_positions(line_id: str, count: int) -> tuple[int, ...]:
    # One SHAKE call yields all of a line's positions; a lighter weight uses a prefix
    # of the same stream, so a weight change moves only the nodes it adds or removes.
    return struct.unpack(f">{count}Q", hashlib.shake_128(line_id.encode()).digest(8 * count))


class _CompiledSticky:
    __slots__ = ("_by_id", "_fallback", "_hashed", "_ids", "_ring", "_state", "rotation")

    rotation: Rotation | None
    _fallback: Callable[[PickContext], Pick]
    _ring: array[int]

    def __init__(
        self,
        group: Group,
        weights: Mapping[Reputation, float],
        state: StateBackend,
        previous: CompiledSelector | None,
    ) -> None:
        self._state = state
        prior = previous.rotation if isinstance(previous, _CompiledSticky) else None
        fallback = weighted_rotation("sticky (no recipient)", group, weights, prior)
        self.rotation = fallback if isinstance(fallback, Rotation) else None
        self._fallback = fallback.pick
        eligible: list[tuple[PhoneNumber, float]] = [
            (line, weights[line.reputation]) for line in group.lines if weights[line.reputation] > 0
        ]
        if not eligible and group.ignore_health:
            eligible = [(line, 1.0) for line in group.lines]
        top = max((w for w in weights.values() if w > 0), default=1.0)
        # Sorting by id makes the owner index, and so ties, the same in every process.
        eligible.sort(key=lambda item: item[0].id)
        ring: list[int] = []
        self._ids: list[str] = []
        self._hashed: list[Pick] = []
        self._by_id: dict[str, Pick] = {}
        for index, (line, weight) in enumerate(eligible):
            count = max(1, round(VNODES * weight / top))
            ring.extend(
                (position & _POSITION_MASK) | index for position in _line_positions(line.id, count)
            )
            label = f"{line.reputation.value}, weight {weight}"
            self._ids.append(line.id)
            self._hashed.append(
                group.make_pick(
                    line, f"sticky: assigned {line.phone_number} by consistent hashing ({label})"
                )
            )
            self._by_id[line.id] = group.make_pick(
                line, f"sticky: kept {line.phone_number} for this conversation (remembered)"
            )
        ring.sort()
        # 8 bytes an entry instead of a Python int object's 36: 1M entries at 10,000 lines.
        self._ring = array("Q", ring)

    def pick(self, ctx: PickContext) -> Pick:
        key = ctx.key
        if key is None or not self._ring:
            return self._fallback(ctx)
        remembered = self._state.get_assignment(key)
        if remembered is not None:
            pick = self._by_id.get(remembered)
            if pick is not None:
                return pick
        index = self.owner(key)
        self._state.set_assignment(key, self._ids[index])
        return self._hashed[index]

    def owner(self, key: str) -> int:
        """Index (in id order) of the line the ring assigns to ``key``."""
        at = bisect.bisect_left(self._ring, conversation_hash(key) & _POSITION_MASK)
        return self._ring[at % len(self._ring)] & _OWNER_MASK


class Sticky(BaseSelector):
    """Same conversation, same line; see ``sticky``.

    .. versionadded:: 0.1
    """

    name = "sticky"

    def __init__(
        self,
        *,
        max_size: int = 10_000,
        weights: Mapping[str | Reputation, float] | None = None,
        state: StateBackend | None = None,
    ) -> None:
        self.weights: Mapping[Reputation, float] = weights_for(weights)
        self.max_size = max_size
        self.state: StateBackend = MemoryState(max_size) if state is None else state
        if not isinstance(self.state, StateBackend):
            msg = f"sticky: state must implement StateBackend, got {type(state).__name__}"
            raise TypeError(msg)

    @property
    def spec(self) -> str:
        """The text form, e.g. ``sticky(max_size=50000)``."""
        args = [] if self.max_size == 10_000 else [f"max_size={self.max_size}"]
        args += changed_weights(self.weights)
        return f"{self.name}({', '.join(args)})" if args else self.name

    def compile(self, group: Group, previous: CompiledSelector | None) -> CompiledSelector:
        """Build the hash ring (and the no-recipient rotation) for ``group``."""
        return _CompiledSticky(group, self.weights, self.state, previous)

    def forget(self, key: str) -> bool:
        """Forget conversation ``key``'s line; its next pick hashes afresh."""
        return self.state.delete_assignment(key)

    def pin(self, key: str, line_id: str) -> None:
        """Assign conversation ``key`` to ``line_id`` (used while that line is eligible)."""
        self.state.set_assignment(key, line_id)


def sticky(
    *,
    max_size: int = 10_000,
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
