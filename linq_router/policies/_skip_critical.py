"""``skip-critical``: drop lines Linq says to pause outbound on."""

from __future__ import annotations

from typing import Literal

from linq_router._models import PhoneNumber, Reputation
from linq_router._pick import Stage

from ._base import Kept
from ._line_filter import LineFilter

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


class SkipCritical(LineFilter):
    """Drops CRITICAL and UNKNOWN lines, and FLAGGED lines whatever their reputation.

    ``on_empty`` says what happens when that would drop every line: ``"raise"``
    (``NoEligibleNumberError``: Linq's guidance is to pause outbound on a CRITICAL
    line) or ``"ignore-health"`` (keep them all and send anyway, with a warning logged
    on every such pick).

    .. versionadded:: 0.1
    """

    name = "skip-critical"
    order = ("CRITICAL", "UNKNOWN", "FLAGGED")

    def __init__(self, on_empty: OnEmpty | str = "raise") -> None:
        if on_empty not in ON_EMPTY:
            msg = f"skip-critical: on_empty must be one of {', '.join(ON_EMPTY)}, got {on_empty!r}"
            raise ValueError(msg)
        self.on_empty = on_empty

    @property
    def spec(self) -> str:
        """The text form, e.g. ``skip-critical(on_empty=ignore-health)``."""
        return self.name if self.on_empty == "raise" else f"{self.name}(on_empty={self.on_empty})"

    def reason(self, line: PhoneNumber) -> str | None:
        """``"CRITICAL"``, ``"UNKNOWN"`` or ``"FLAGGED"`` for a dropped line; else ``None``."""
        return _reason(line)

    def fallback(
        self, lines: tuple[PhoneNumber, ...], dropped: tuple[tuple[str, int], ...]
    ) -> Kept | None:
        """With ``on_empty="ignore-health"``, every line, with a warning; else none."""
        if self.on_empty == "raise":
            return None
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
