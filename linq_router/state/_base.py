"""The ``StateBackend`` protocol: where ``sticky`` remembers each conversation's line.

Keys are conversation keys (``PickContext.key``: the sorted recipient handles);
values are line ids. A backend must be safe to call from many threads, and keep
working in a child made by ``os.fork()`` (one that holds a lock renews it there, as
``MemoryState`` does with ``os.register_at_fork``, since a parent thread may have held
it at the fork); it may forget entries on its own (a bounded cache evicts, a shared
store may expire them): the policy then re-derives the line by consistent hashing,
which every process agrees on, so forgetting costs stability only where the pool
changed in between.

Rotation cursors are deliberately not here: a cursor means something only together
with the schedule it indexes, which is compiled per process and per snapshot. A shared
store that held one cursor for several schedules would skew them (two routers taking
turns on one counter would each see only every other slot).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["StateBackend"]


@runtime_checkable
class StateBackend(Protocol):
    """Remembered line per conversation, for ``sticky``.

    .. versionadded:: 0.1
    """

    def get_assignment(self, key: str) -> str | None:
        """The line id remembered for ``key``, or ``None``."""
        ...

    def set_assignment(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for ``key`` (replacing any previous one)."""
        ...

    def delete_assignment(self, key: str) -> bool:
        """Forget ``key``; True if something was remembered."""
        ...

    def clear(self) -> None:
        """Forget every assignment."""
        ...
