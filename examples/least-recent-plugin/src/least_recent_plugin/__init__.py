"""``least-recent``: pick the line that has gone longest without being picked.

An example plugin for linq_router. The entry point (see ``pyproject.toml``) names
``least_recent``, a factory that receives a spec's arguments as strings.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from linq_router import Pick, PickContext
from linq_router.policies import BaseSelector, CompiledSelector, Group

__all__ = ["LeastRecent", "least_recent"]


class _Compiled:
    """Lines ordered from least to most recently used; a pick moves the first to the end."""

    def __init__(self, group: Group, previous: CompiledSelector | None) -> None:
        picks = {
            line.id: group.make_pick(line, f"least-recent: chose {line.phone_number}")
            for line in group.lines
        }
        # Carry the usage order over: lines never used yet come first, then the
        # remaining ones in the order they were last used.
        old = list(previous.order) if isinstance(previous, _Compiled) else []
        ordered = [key for key in picks if key not in old] + [key for key in old if key in picks]
        self.order: OrderedDict[str, Pick] = OrderedDict((key, picks[key]) for key in ordered)
        self._lock = threading.Lock()

    def pick(self, ctx: PickContext) -> Pick:
        with self._lock:
            key, pick = self.order.popitem(last=False)
            self.order[key] = pick
            return pick


class LeastRecent(BaseSelector):
    """The ``least-recent`` selector (deterministic)."""

    name = "least-recent"

    def compile(self, group: Group, previous: CompiledSelector | None) -> CompiledSelector:
        """Order the group's lines by last use, carried over from ``previous``."""
        return _Compiled(group, previous)


def least_recent(*args: str, **kwargs: str) -> LeastRecent:
    """Entry-point factory: ``least-recent`` takes no arguments."""
    if args or kwargs:
        msg = "least-recent takes no arguments"
        raise ValueError(msg)
    return LeastRecent()
