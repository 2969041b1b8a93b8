"""Checks of the settings every backend shares: a TTL, a namespace."""

from __future__ import annotations

__all__ = ["checked_namespace", "checked_ttl"]


def checked_ttl(value: object, *, allow_none: bool = True) -> float | None:
    """``value`` as a time to live in seconds: a positive number (or ``None``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        allowed = "a positive number of seconds" + (" or None" if allow_none else "")
        msg = f"assignment_ttl must be {allowed}, got {value!r}"
        raise ValueError(msg)
    return value


def checked_namespace(value: object) -> str:
    """``value`` as a namespace: non-empty text without braces.

    Braces are refused because the namespace is a Redis Cluster hash tag
    (``{namespace}:...``): a brace inside it would end the tag early and scatter one
    namespace's keys over several slots.
    """
    if not isinstance(value, str) or not value or "{" in value or "}" in value:
        msg = f"namespace must be non-empty text without '{{' or '}}', got {value!r}"
        raise ValueError(msg)
    return value
