"""Checking what callers pass, in one place: how a bad argument is reported.

Every public argument is checked once, where it enters (a constructor, or the method
that takes it), and a bad one raises ``TypeError`` (wrong kind of value) or
``ValueError`` (right kind, wrong value) whose message starts with the argument's name,
shows the value cut to a readable length (``shown``) and says what was expected.
Values that may be secrets are never shown.

This module sits at the bottom of the package with ``_errors``: it imports nothing
from it.
"""

from __future__ import annotations

import math
import numbers
from typing import cast

__all__ = ["SHOWN_MAX", "check_callable", "check_count", "check_seconds", "cut", "shown"]

SHOWN_MAX = 60
"""How many characters of an echoed value an error message shows."""


def shown(value: object, limit: int = SHOWN_MAX) -> str:
    """``repr(value)``, cut to ``limit`` characters plus ``…(N characters)`` when longer.

    N is the length of the string itself for a ``str`` (or ``bytes``), else of its repr,
    so a 10,000-character handle reads ``'xxxx…'…(10000 characters)``.
    """
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        return f"<{type(value).__name__} object>"
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, (str, bytes, bytearray)) else len(text)
    return f"{text[:limit]}…({size} characters)"


def cut(text: str) -> str:
    """``text`` (a path with a huge id, say) cut to ``2 * SHOWN_MAX`` characters for a log."""
    if len(text) <= 2 * SHOWN_MAX:
        return text
    return f"{text[: 2 * SHOWN_MAX]}…({len(text)} characters)"


def _kind(value: object) -> str:
    """``str '60'``: the type and the shown value, for "got ..." in a TypeError."""
    if value is None:
        return "None"
    return f"{type(value).__name__} {shown(value)}"


def check_seconds(
    name: str,
    value: object,
    *,
    positive: bool = True,
    infinite: bool = False,
    below: tuple[str, float] | None = None,
) -> float:
    """``value`` if it is a usable number of seconds, else a ``TypeError``/``ValueError``.

    A real number (``int``, ``float``, ``Fraction``, numpy scalars; never a ``bool``),
    not NaN, greater than zero (``positive``) or at least zero, finite unless
    ``infinite`` allows ``math.inf``, and below ``below = (name, limit)`` when given.
    Ints are returned as they are, other numbers as ``float``.
    """
    sign = "positive" if positive else "non-negative"
    need = f"a {sign}{'' if infinite else ', finite'} number of seconds"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name} must be {need} (an int or a float), got {_kind(value)}"
        raise TypeError(msg)
    try:
        seconds = float(value)
    except OverflowError:  # an int past a float's range: no clock can add it
        seconds = math.inf if cast("int", value) > 0 else -math.inf
    if math.isnan(seconds) or (math.isinf(seconds) and not (infinite and seconds > 0)):
        msg = f"{name} must be {need}, got {shown(value)}"
        raise ValueError(msg)
    if seconds < 0 or (positive and seconds == 0):
        msg = f"{name} must be {need}, got {shown(value)}"
        raise ValueError(msg)
    if below is not None and not seconds < below[1]:
        msg = f"{name} must be {need} below {below[0]} ({below[1]:g}), got {shown(value)}"
        raise ValueError(msg)
    if isinstance(value, int) and not math.isinf(seconds):
        return value
    return seconds


def check_count(name: str, value: object, *, minimum: int = 1) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{name} must be an int of at least {minimum}, got {_kind(value)}"
        raise TypeError(msg)
    if value < minimum:
        msg = f"{name} must be an int of at least {minimum}, got {shown(value)}"
        raise ValueError(msg)
    return int(value)


def check_callable(name: str, value: object, what: str) -> None:
    """A ``TypeError`` unless ``value`` can be called; ``what`` describes the callable."""
    if not callable(value):
        msg = f"{name} must be {what}, got {_kind(value)}"
        raise TypeError(msg)
