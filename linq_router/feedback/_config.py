"""What a ``Router`` does with the verdicts it is told: ``Ejection``, ``SlowStart``.

And the values it hands back: ``Ejected`` (a line out of the pool for a while) and
``LineEvent`` (an ejection or a return, for metrics).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import attrs

from linq_router._arguments import check_count, check_seconds, shown

from ._classify import Verdict

__all__ = ["Ejected", "Ejection", "LineEvent", "SlowStart"]

# The doubling of an ineligible line's ejection stops at this multiple.
INELIGIBLE_CAP = 8
# Slow start raises a line's weight in this many steps per window.
SLOW_START_STEPS = 20


def _seconds(
    name: str, *, positive: bool = True
) -> Callable[[object, attrs.Attribute[float], float], None]:
    def check(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
        check_seconds(name, value, positive=positive)

    return check


def _percent(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        msg = f"max_percent must be a number from 0 to 100, got {shown(value)}"
        raise TypeError(msg) if not isinstance(value, (int, float)) else ValueError(msg)
    if not 0 <= value <= 100:
        msg = f"max_percent must be a number from 0 to 100, got {shown(value)}"
        raise ValueError(msg)


def _failures(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_count("consecutive_failures", value)


@attrs.frozen
class Ejection:
    """When a ``Router`` takes a line out of its picks, and for how long (Envoy's model).

    * ``LINE_INELIGIBLE`` (403, code 2027) ejects the line at once for
      ``ineligible_time`` seconds, doubling each time it repeats (at most 8x), whatever
      ``max_percent`` says: every send to it would be wasted.
    * ``consecutive_failures`` ``LINE_FAILURE`` reports in a row (a success resets the
      count) eject it for ``base_time`` x n seconds, n the times it was ejected so far
      (less one for each ``base_time`` it then stayed healthy), at most ``max_time``,
      plus a uniform random ``jitter`` of up to that many seconds.
    * Failure ejections are capped at ``max(1, floor(max_percent% of the eligible
      lines))`` at a time, and never take the last eligible line.
    * A returning line is on trial: one more failure before its next success ejects it
      again at once.

    ``Router(ejection=None)`` turns ejection off.

    .. versionadded:: 0.3
    """

    consecutive_failures: int = attrs.field(default=5, validator=_failures)
    base_time: float = attrs.field(default=30.0, validator=_seconds("base_time"))
    max_time: float = attrs.field(default=300.0, validator=_seconds("max_time"))
    jitter: float = attrs.field(default=0.0, validator=_seconds("jitter", positive=False))
    max_percent: float = attrs.field(default=10.0, validator=_percent)
    ineligible_time: float = attrs.field(default=300.0, validator=_seconds("ineligible_time"))

    def failure_time(self, times: int) -> float:
        """Seconds a failure ejection lasts when it is the line's ``times``-th (no jitter)."""
        return float(min(self.base_time * max(1, times), max(self.max_time, self.base_time)))

    def ineligible_duration(self, times: int) -> float:
        """Seconds an ineligible ejection lasts when it is the line's ``times``-th."""
        return float(self.ineligible_time * min(2 ** max(0, times - 1), INELIGIBLE_CAP))


def _min_weight(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"min_weight must be a number above 0 and at most 1, got {shown(value)}"
        raise TypeError(msg)
    if not 0 < value <= 1:
        msg = f"min_weight must be a number above 0 and at most 1, got {shown(value)}"
        raise ValueError(msg)


@attrs.frozen
class SlowStart:
    """Ramp up a line that (re)joins the pool, rather than give it full traffic at once.

    A line that enters the eligible set after the router's first snapshot (new in the
    pool, back from ejection, recovered from CRITICAL or FLAGGED) has its weight scaled
    by ``max(min_weight, (t / window) ** (1 / aggression))``, t being the seconds since
    it entered (Envoy's formula), in ``reputation-weighted``, in ``round-robin`` (that
    fraction of its turns) and in ``sticky``'s choice for new conversations. The
    factor is applied in 20 steps per window: between steps it is the formula's value
    at the start of the current step. Lines of the first snapshot start at full weight.
    ``window`` may be days long (a new line's warm-up).

    .. versionadded:: 0.3
    """

    window: float = attrs.field(default=600.0, validator=_seconds("window"))
    min_weight: float = attrs.field(default=0.1, validator=_min_weight)
    aggression: float = attrs.field(default=1.0, validator=_seconds("aggression"))

    def weight(self, elapsed: float) -> float:
        """The exact factor ``elapsed`` seconds after a line entered (1.0 once done)."""
        if elapsed >= self.window:
            return 1.0
        share = max(0.0, elapsed) / self.window
        return max(float(self.min_weight), float(share ** (1.0 / self.aggression)))

    def step(self) -> float:
        """Seconds between two updates of the factor."""
        return self.window / SLOW_START_STEPS

    def stepped(self, elapsed: float) -> tuple[float, float]:
        """The factor applied ``elapsed`` seconds in, and the seconds until it changes.

        The factor is the formula at the start of the current step; after the last
        step it is 1.0 and the wait is infinite.
        """
        step = self.step()
        index = math.floor(max(0.0, elapsed) / step)
        if index >= SLOW_START_STEPS:
            return 1.0, math.inf
        return self.weight(index * step), (index + 1) * step - elapsed


@attrs.frozen
class Ejected:
    """A line the router is not picking: since when, until when, and why.

    ``line`` is its E.164 number, ``verdict`` the kind of report that ejected it
    (``LINE_INELIGIBLE`` or ``LINE_FAILURE``), ``reason`` a sentence for people,
    ``since`` and ``until`` times on the router's clock, ``times`` how many ejections
    this one counts as (the multiplier of its duration).

    .. versionadded:: 0.3
    """

    line: str
    verdict: Verdict
    reason: str
    since: float
    until: float
    times: int
    line_id: str = attrs.field(default="", repr=False, eq=False)

    def __str__(self) -> str:
        return f"{self.line} ({self.reason}; returns at {self.until:.1f})"


@attrs.frozen
class LineEvent:
    """A line left the pool (``kind="ejected"``) or came back (``"returned"``).

    Passed to ``Router(on_event=...)``; ``at`` is on the router's clock.

    .. versionadded:: 0.3
    """

    kind: Literal["ejected", "returned"]
    line: str
    reason: str
    at: float
