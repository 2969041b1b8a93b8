"""What every Redis module of the state needs: the Lua scripts, replies as text, patterns."""

from __future__ import annotations

import importlib.resources

__all__ = ["glob_escaped", "lua", "outage_errors", "text"]


def lua(name: str) -> str:
    """The text of the script ``lua/<name>``."""
    return importlib.resources.files(__package__).joinpath("lua").joinpath(name).read_text("utf-8")


def text(value: object) -> str | None:
    """A reply as text: clients made without ``decode_responses`` answer bytes."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    msg = f"unexpected reply from Redis: {type(value).__name__}"
    raise TypeError(msg)


def glob_escaped(pattern: str) -> str:
    """``pattern`` as a literal inside a ``SCAN MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in pattern)


def outage_errors() -> tuple[type[BaseException], ...]:
    """What counts as "unreachable": ``OSError`` and, with redis-py, its errors."""
    try:
        from redis.exceptions import RedisClusterException, RedisError  # noqa: PLC0415
    except ImportError:
        return (OSError,)
    # RedisClusterException is no RedisError: a cluster none of whose nodes answers.
    return (OSError, RedisError, RedisClusterException)
