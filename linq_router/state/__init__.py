"""Where policies keep state that must outlive one snapshot: ``StateBackend``.

``MemoryState`` (bounded LRU, per process) is the default; a shared store (Redis, say)
implements the same four methods and slots into ``sticky(state=...)`` unchanged.
``state_from_uri("memory://?max_size=50000")`` builds one from configuration text.

.. versionadded:: 0.1
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from ._base import StateBackend
from ._memory import MemoryState

__all__ = ["MemoryState", "StateBackend", "state_from_uri"]


def state_from_uri(uri: str) -> StateBackend:
    """A backend from a URI; only ``memory://`` (optionally ``?max_size=N``) for now.

    .. versionadded:: 0.1
    """
    parts = urlsplit(uri)
    if parts.scheme != "memory":
        msg = f"unsupported state backend {uri!r}; supported: memory://"
        raise ValueError(msg)
    query = parse_qs(parts.query)
    unknown = set(query) - {"max_size"}
    if unknown:
        msg = f"unknown option(s) {', '.join(sorted(unknown))} in {uri!r}; supported: max_size"
        raise ValueError(msg)
    if "max_size" not in query:
        return MemoryState()
    raw = query["max_size"][-1]
    try:
        size = int(raw)
    except ValueError:
        msg = f"max_size must be an integer in {uri!r}, got {raw!r}"
        raise ValueError(msg) from None
    return MemoryState(size)
