"""Where budgets are kept when a router's state is shared: ``pacing_storage``. No I/O."""

from __future__ import annotations

import urllib.parse

__all__ = ["pacing_storage"]

_SHARED_SCHEMES = ("redis", "rediss", "redis+sentinel", "redis+cluster")
_NAMESPACE = "linq_router"  # from_uri's default namespace


def pacing_storage(state_uri: str) -> str | None:
    """The ``limits`` storage URI for budgets kept where a shared ``state_uri`` keeps state.

    The same server, without linq_router's own options, and a key prefix of the
    state's namespace; ``None`` for a state that is not shared (``memory://``).
    """
    parts = urllib.parse.urlsplit(state_uri)
    if parts.scheme not in _SHARED_SCHEMES:
        return None
    query = urllib.parse.parse_qs(parts.query)
    namespace = query.get("namespace", [_NAMESPACE])[-1]
    prefix = urllib.parse.quote(f"{namespace}:pacing", safe="")
    return f"{parts.scheme}://{parts.netloc}{parts.path}?key_prefix={prefix}"
