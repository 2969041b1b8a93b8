"""``LineFilter``: a static filter decided one line at a time, compiled incrementally."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from linq_router._models import PhoneNumber
from linq_router._pick import Stage

from ._base import BaseFilter, Kept

__all__ = ["LineFilter"]


class LineFilter(BaseFilter):
    """Base for a static filter decided one line at a time: override ``reason``.

    ``reason(line)`` is ``None`` to keep the line, or why it is dropped (the word an
    explanation counts: "2 CRITICAL skipped"). ``fallback(lines, dropped)`` says what
    to answer when every line would be dropped (default ``None``: keep nothing).
    ``order`` lists reasons in the order explanations give them; others follow in
    alphabetical order. Such a filter recompiles incrementally: when a few lines
    change, only those are asked again.

    .. versionadded:: 0.2
    """

    order: tuple[str, ...] = ()

    def reason(self, line: PhoneNumber) -> str | None:
        """Why ``line`` is dropped, or ``None`` to keep it."""
        raise NotImplementedError

    def fallback(
        self, lines: tuple[PhoneNumber, ...], dropped: tuple[tuple[str, int], ...]
    ) -> Kept | None:
        """The answer when no line is kept (``lines`` is not empty); ``None``: keep none."""
        return None

    def compile(self, lines: tuple[PhoneNumber, ...]) -> Kept:
        """Keep the lines whose ``reason`` is ``None``."""
        kept: list[PhoneNumber] = []
        counts: dict[str, int] = {}
        for line in lines:
            why = self.reason(line)
            if why is None:
                kept.append(line)
            else:
                counts[why] = counts.get(why, 0) + 1
        return self.answer(tuple(kept), lines, counts)

    def answer(
        self,
        kept: tuple[PhoneNumber, ...],
        lines: tuple[PhoneNumber, ...] | Callable[[], tuple[PhoneNumber, ...]],
        counts: Mapping[str, int],
    ) -> Kept:
        """The ``Kept`` for ``kept`` of ``lines`` with ``counts`` dropped per reason.

        ``lines`` may be a function returning them (only the fallback needs them).
        """
        total = len(kept) + sum(counts.values())
        dropped = self._dropped(counts)
        if not kept and total:
            fallback = self.fallback(lines if isinstance(lines, tuple) else lines(), dropped)
            if fallback is not None:
                return fallback
        return Kept(kept, Stage(self.name, len(kept), total, dropped))

    def _dropped(self, counts: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
        first = [(why, counts[why]) for why in self.order if counts.get(why)]
        rest = sorted((why, n) for why, n in counts.items() if n and why not in self.order)
        return (*first, *rest)
