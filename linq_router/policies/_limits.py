"""How large a policy may be: refused before it could take minutes to compile."""

from __future__ import annotations

from linq_router._errors import PolicySpecError

from ._base import Policy, _spec_of

__all__ = ["MAX_GROUPS", "MAX_ROUTING", "MAX_STAGES", "check_size"]

MAX_STAGES = 64
"""The most stages (filters and the selector) a policy may have."""
MAX_ROUTING = 3
"""The most routing filters (``geomatch``, or any filter with ``routes = True``) in one
policy: each one splits every group the stages before it made, so groups multiply."""
MAX_GROUPS = 20_000
"""The most groups one compile may make; past it, compiling stops with an error."""


def check_size(policy: Policy) -> None:
    """Refuse, with ``PolicySpecError``, a policy too large to compile quickly.

    More than ``MAX_STAGES`` stages, or more than ``MAX_ROUTING`` routing filters.

    .. versionadded:: 0.2
    """
    stages = len(policy.filters) + (policy.selector is not None)
    if stages > MAX_STAGES:
        msg = (
            f"policy has {stages} stages; at most {MAX_STAGES} are allowed (every stage "
            f"runs for each group the ones before it made)"
        )
        raise PolicySpecError(msg)
    routing = [_spec_of(f) for f in policy.filters if getattr(f, "routes", False)]
    if len(routing) > MAX_ROUTING:
        msg = (
            f"policy has {len(routing)} routing filters ({', '.join(routing)}); at most "
            f"{MAX_ROUTING} are allowed: each splits every group the ones before it made, "
            f"so the groups to compile multiply"
        )
        raise PolicySpecError(msg)
