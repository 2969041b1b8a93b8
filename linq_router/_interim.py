"""What a router serves while a change compiles: ``_Interim``, and ``pick_avoiding``.

An interim is a compiled policy with some lines masked (the ones a new snapshot or the
feedback made ineligible), and, while the feedback has a time to watch, a clock check
per pick; see ``_serving`` for when it is served.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Container, Iterator

from ._errors import NoEligibleNumberError
from ._models import PhoneNumber, Snapshot
from ._pick import Explanation, Pick, PickContext, Stage
from .policies import CompiledPolicy
from .policies._adjust import FIRST_STAGES

__all__ = ["Served", "_Interim", "_MustWait", "pick_avoiding"]

# How many more turns a rotation is asked for before the interim picks a line itself.
_RETRIES = 16


class _MustWait(Exception):  # a signal, not an error anyone sees
    """The interim has nothing it may pick: the caller waits for the compile."""


class _Interim:
    """A compiled policy for an older snapshot or feedback, with newly ineligible lines masked.

    Also what is served while the feedback has a time to watch (an ejection's end, a
    slow-start step): ``due`` is checked on each pick, and ``tick`` called when it
    comes. ``stage`` is the ejection stage that explanations of masked picks start with.
    """

    def __init__(
        self,
        base: CompiledPolicy,
        snapshot: Snapshot,
        masked: frozenset[str],
        *,
        stage: Stage | None = None,
        due: float = math.inf,
        clock: Callable[[], float] | None = None,
        tick: Callable[[str], Served | None] | None = None,
        pending: bool = False,
    ) -> None:
        self.base = base
        self.version = snapshot.version
        self.snapshot = snapshot
        self.masked = masked
        self._stage = stage
        self._turn = itertools.count()
        inner: Callable[[PickContext], Pick] = base.pick
        if masked:
            inner = self._masked_pick
        elif pending:
            # Lines came back (or joined) and the compile that adds them is under way: an
            # empty answer from the old compile is not the answer, so wait for the new one.
            inner = self._pending_pick
        self._inner = inner
        self.pick: Callable[[PickContext], Pick] = inner
        if due < math.inf and clock is not None and tick is not None:
            self._due, self._clock, self._tick = due, clock, tick
            self.pick = self._timed_pick

    def _pending_pick(self, ctx: PickContext) -> Pick:
        try:
            return self.base.pick(ctx)
        except NoEligibleNumberError:
            raise _MustWait from None

    def _timed_pick(self, ctx: PickContext) -> Pick:
        if self._clock() >= self._due:
            # The time came: what replaces this is installed and answers this pick too.
            served = self._tick(self.base.purpose)
            if isinstance(served, _Interim) and served is not self:
                return served._inner(ctx)  # not its own clock check: once per pick is enough
            if served is not None and served is not self:
                return served.pick(ctx)
        return self._inner(ctx)

    def _explained(self, pick: Pick) -> Pick:
        stage = self._stage
        if stage is None:
            return pick
        stages = pick.explanation.stages
        if stages and stages[0].name in FIRST_STAGES:
            stages = stages[1:]
        explanation = Explanation((stage, *stages), pick.explanation.choice)
        return Pick(pick.phone_number, pick.number, pick.policy, explanation, pick.purpose)

    def _masked_pick(self, ctx: PickContext) -> Pick:
        masked = self.masked
        try:
            pick = self.base.pick(ctx)
        except Exception:  # the old compile had nothing; the new snapshot may
            raise _MustWait from None
        if pick.number.id not in masked:
            return self._explained(pick)
        found = pick_avoiding(self.base, ctx, masked, self._turn, "while the change compiles")
        if found is None:
            raise _MustWait
        return self._explained(found)

    def candidates(self, ctx: PickContext) -> tuple[PhoneNumber, ...]:
        """The lines the filters kept for ``ctx``, less the masked ones."""
        return tuple(n for n in self.base.candidates(ctx) if n.id not in self.masked)


Served = CompiledPolicy | _Interim


def pick_avoiding(
    compiled: CompiledPolicy,
    ctx: PickContext,
    avoid: Container[str],
    turn: Iterator[int],
    why: str,
) -> Pick | None:
    """A pick of ``compiled`` for ``ctx`` that is not a line in ``avoid``, or ``None``.

    A sticky selector walks its ring past them (the answer it gives once they are
    gone); a rotation is asked for its next turns; as a last resort another line of
    the same group is taken in turn (``turn``), explained as chosen ``why``.
    """
    leaf = compiled.leaf_for(ctx)
    avoiding = getattr(leaf.selector, "pick_avoiding", None)
    if callable(avoiding):
        found = avoiding(ctx, avoid)
        if isinstance(found, Pick):
            return found
    try:
        for _ in range(min(_RETRIES, len(leaf.group.lines))):
            pick = compiled.pick(ctx)
            if pick.number.id not in avoid:
                return pick
    except NoEligibleNumberError:
        return None
    lines = [line for line in leaf.group.lines if line.id not in avoid]
    if not lines:
        return None
    line = lines[next(turn) % len(lines)]
    return leaf.group.make_pick(line, f"chose {line.phone_number} {why}")
