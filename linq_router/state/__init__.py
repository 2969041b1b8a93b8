"""Where policies keep state that must outlive one snapshot: ``StateBackend``.

``MemoryState`` (bounded LRU, per process) is the default. A fleet of processes on
many hosts shares one ``RedisState`` (``AsyncRedisState`` for asyncio code) instead,
wrapped in a ``ResilientState`` (``AsyncResilientState``) so that picks go on in
memory while Redis is unreachable. A sync one slots into ``sticky(state=...)``
unchanged; ``AsyncRouter`` awaits an async one. ``from_uri`` (``from_uri_async``)
builds any of them from configuration text::

    from_uri("memory://?max_size=50000")
    from_uri("redis://:password@cache.internal:6379/0?namespace=eu-fleet")
    from_uri("redis+sentinel://s1:26379,s2:26379/mymaster/0")
    from_uri("redis+cluster://node1:6379,node2:6379")

redis-py is needed for the Redis backends only: ``pip install 'linq-router[redis]'``.

What a fleet shares but a pick must not wait on (ejections, failure streaks,
slow-start entries, webhook ids, registry changes) goes on a notice board
(``Board``): records with times to live whose changes are announced, so that every
process keeps its own copy. ``RedisState`` (and ``ResilientState`` over it) is one,
by Redis pub/sub; ``LocalBoard`` is the in-process one.

.. versionadded:: 0.1
.. versionchanged:: 0.4 the Redis backends, ``ResilientState``, ``from_uri`` and the
   notice board.
"""

from __future__ import annotations

from ._base import StateBackend
from ._board import Board, LocalBoard, Notice
from ._memory import MemoryState
from ._redis import AsyncRedisState, RedisState
from ._resilient import ResilientState
from ._resilient_async import AsyncResilientState
from ._uri import from_uri, from_uri_async

state_from_uri = from_uri
"""The name ``from_uri`` had before 0.4; the same function.

.. versionadded:: 0.1
"""

__all__ = [
    "AsyncRedisState",
    "AsyncResilientState",
    "Board",
    "LocalBoard",
    "MemoryState",
    "Notice",
    "RedisState",
    "ResilientState",
    "StateBackend",
    "from_uri",
    "from_uri_async",
    "state_from_uri",
]
