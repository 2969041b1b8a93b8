"""``skip-critical``: drop lines Linq says to pause outbound on."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from linq_router._models import PhoneNumber, Reputation
from linq_router._pick import Stage

from ._base import BaseFilter, Kept

__all__ = ["ON_EMPTY", "SkipCritical", "skip_critical"]

OnEmpty = Literal["raise", "ignore-health"]
ON_EMPTY: tuple[str, ...] = ("raise", "ignore-health")
"""Accepted values of ``skip_critical(on_empty=...)``."""

_DROPPED = (Reputation.CRITICAL, Reputation.UNKNOWN)


def _reason(line: PhoneNumber) -> str | None:
    if line.reputation in _DROPPED:
        return line.reputation.value
    if line.is_flagged:
        return "FLAGGED"
    return None


class SkipCritical(BaseFilter):
    """Drops CRITICAL and UNKNOWN lines, and FLAGGED lines whatever their reputation.

    ``on_empty`` says what happens when that would drop every line: ``"raise"``
    (``NoEligibleNumberError``: Linq's guidance is to pause outbound on a CRITICAL
    line) or ``"ignore-health"`` (keep them all and send anyway, with a warning logged
    on every such pick).

    .. versionadded:: 0.1
    """

    name = "skip-critical"

    def __init__(self, on_empty: OnEmpty | str = "raise") -> None:
        if on_empty not in ON_EMPTY:
            msg = f"skip-critical: on_empty must be one of {', '.join(ON_EMPTY)}, got {on_empty!r}"
            raise ValueError(msg)
        self.on_empty = on_empty

    @property
    def spec(self) -> str:
        """The text form, e.g. ``skip-critical(on_empty=ignore-health)``."""
        return self.name if self.on_empty == "raise" else f"{self.name}(on_empty={self.on_empty})"

    def compile(self, lines: tuple[PhoneNumber, ...]) -> Kept:
        """Keep the lines that are neither CRITICAL/UNKNOWN nor FLAGGED."""
        reasons = [_reason(line) for line in lines]
        kept = tuple(line for line, reason in zip(lines, reasons, strict=True) if reason is None)
        counts = Counter(reason for reason in reasons if reason is not None)
        dropped = tuple(
            (reason, counts[reason])
            for reason in ("CRITICAL", "UNKNOWN", "FLAGGED")
            if counts[reason]
        )
        if kept or not lines or self.on_empty == "raise":
            return Kept(kept, Stage(self.name, len(kept), len(lines), dropped))
        note = "none healthy; sending anyway (on_empty=ignore-health)"
        summary = ", ".join(f"{count} {reason}" for reason, count in dropped)
        return Kept(
            lines,
            Stage(self.name, len(lines), len(lines), (), note),
            warning=f"skip-critical: every line is unhealthy ({summary}); sending anyway "
            "because on_empty=ignore-health",
            ignore_health=True,
        )


def skip_critical(on_empty: OnEmpty | str = "raise") -> SkipCritical:
    """The ``skip-critical`` filter; see ``SkipCritical``.

    .. versionadded:: 0.1
    """
    return SkipCritical(on_empty)
