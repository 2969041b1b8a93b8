"""Objects built before ``os.fork()`` keep working in the child: ``renew_after_fork``.

A thread of the parent may hold a lock at the moment of the fork; in the child nobody
would ever release it. A connection pool or a refresh in flight belongs to the parent.
Each object that holds such a thing registers itself here and renews it in
``_after_fork_in_child``; one hook, registered once, calls them all in the child.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["renew_after_fork"]


class _Renewable(Protocol):
    def _after_fork_in_child(self) -> None: ...


_LIVE: weakref.WeakSet[_Renewable] = weakref.WeakSet()


def renew_after_fork(obj: _Renewable) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while ``obj`` lives."""
    _LIVE.add(obj)


def _renew_all() -> None:
    for obj in list(_LIVE):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_renew_all)
