"""``reputation-weighted``: smooth, deterministic weighted rotation by reputation."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from linq_router._models import PhoneNumber, Reputation
from linq_router._pick import Cell, Pick, PickContext

from ._base import BaseSelector, CompiledSelector, Group, _Empty
from ._rotation import Rotation
from ._shared import SharesTurns, shared

__all__ = [
    "DEFAULT_WEIGHTS",
    "ReputationWeighted",
    "WeightedSchedule",
    "changed_weights",
    "reputation_weighted",
    "weights_for",
]

DEFAULT_WEIGHTS: Mapping[Reputation, float] = {
    Reputation.HEALTHY: 1.0,
    Reputation.AT_RISK: 0.25,
    Reputation.CRITICAL: 0.0,
    Reputation.UNKNOWN: 0.0,
}
"""Weight per reputation unless configured: AT_RISK lines get a quarter of the traffic."""


def weights_for(overrides: Mapping[str | Reputation, float] | None) -> dict[Reputation, float]:
    """``DEFAULT_WEIGHTS`` updated with ``overrides`` (keys are reputations or their names)."""
    weights = dict(DEFAULT_WEIGHTS)
    for key, value in (overrides or {}).items():
        try:
            rep = key if isinstance(key, Reputation) else Reputation[str(key).upper()]
        except KeyError:
            known = ", ".join(r.value for r in Reputation)
            msg = f"unknown reputation {key!r} in weights; expected one of {known}"
            raise ValueError(msg) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            msg = f"weight for {rep.value} must be a number, got {value!r}"
            raise ValueError(msg)
        weight = float(value)
        if not 0.0 <= weight < float("inf"):
            msg = f"weight for {rep.value} must be finite and >= 0, got {value!r}"
            raise ValueError(msg)
        weights[rep] = weight
    return weights


def changed_weights(weights: Mapping[Reputation, float]) -> list[str]:
    """``["AT_RISK=0.5", ...]`` for the weights that differ from ``DEFAULT_WEIGHTS``."""
    return [
        f"{rep.value}={weights[rep]:g}"
        for rep in Reputation
        if weights[rep] != DEFAULT_WEIGHTS[rep]
    ]


def _format_weights(weights: Mapping[Reputation, float]) -> str:
    return ", ".join(f"{rep.value} {weights[rep]}" for rep in Reputation)


def _why(weight: float, factor: float) -> str:
    if factor < 1.0:
        return f"weight {weight / factor:g} x slow start {factor:.2f}"
    return f"weight {weight}"


def _choice(name: str, line: PhoneNumber, why: str, weight: float, total: Cell) -> str:
    share = weight / total.value  # type: ignore[operator]
    return f"{name}: chose {line.phone_number} ({line.reputation.value}, {why}, share {share:.1%})"


class WeightedSchedule:
    """A weighted rotation over a group's lines with positive weight, kept up to date.

    Shared by ``reputation-weighted`` and ``sticky`` (for picks without a recipient).
    ``build`` updates the previous schedule for the group's changed lines when it can
    (``Group.changed``), and builds afresh otherwise. When every weight is 0 and the
    group was told to ignore health, lines count equally.
    """

    __slots__ = ("equal", "group", "pick", "rotation", "total")

    rotation: Rotation | None
    pick: Callable[[PickContext], Pick]

    def __init__(
        self, group: Group, rotation: Rotation | _Empty, total: Cell, *, equal: bool
    ) -> None:
        self.group = group
        self.rotation = rotation if isinstance(rotation, Rotation) else None
        self.pick = rotation.pick
        self.total = total
        self.equal = equal

    @classmethod
    def build(
        cls,
        name: str,
        group: Group,
        weights: Mapping[Reputation, float],
        previous: WeightedSchedule | None,
    ) -> WeightedSchedule:
        """The schedule for ``group``, from ``previous`` (same path) where possible."""
        if (
            previous is not None
            and previous.rotation is not None
            and group.changed is not None
            and not previous.equal
        ):
            updated = cls._updated(name, group, weights, previous)
            if updated is not None:
                return updated
        prior = previous.rotation if previous is not None else None
        factor = group.factor
        chosen = [(line, weights[line.reputation] * factor(line.id)) for line in group.lines]
        chosen = [(line, w) for line, w in chosen if w > 0]
        equal = not chosen and group.ignore_health
        if equal:
            chosen = [(line, 1.0) for line in group.lines]
        total = Cell(sum(w for _, w in chosen))
        if not chosen:
            reason = f"{name}: every line has weight 0 ({_format_weights(weights)})"
            return cls(group, _Empty(group, reason), total, equal=False)
        picks = [
            group.make_pick(
                line,
                functools.partial(
                    _choice,
                    name,
                    line,
                    "health ignored, equal weights" if equal else _why(w, factor(line.id)),
                    w,
                    total,
                ),
            )
            for line, w in chosen
        ]
        keys = [line.id for line, _ in chosen]
        rotation = Rotation(picks, keys, [w for _, w in chosen], prior)
        return cls(group, rotation, total, equal=equal)

    @classmethod
    def _updated(
        cls,
        name: str,
        group: Group,
        weights: Mapping[Reputation, float],
        previous: WeightedSchedule,
    ) -> WeightedSchedule | None:
        assert previous.rotation is not None  # checked by build
        assert group.changed is not None
        total = previous.total
        amount: float = total.value  # type: ignore[assignment]
        added: list[tuple[str, Pick, float]] = []
        for line_id in sorted(group.changed):
            old = previous.group.get(line_id)
            if old is not None:
                amount -= weights[old.reputation] * previous.group.factor(line_id)
            line = group.get(line_id)
            factor = group.factor(line_id)
            weight = weights[line.reputation] * factor if line is not None else 0.0
            if line is not None and weight > 0:
                amount += weight
                why = _why(weight, factor)
                choice = functools.partial(_choice, name, line, why, weight, total)
                added.append((line_id, group.make_pick(line, choice), weight))
        rotation = previous.rotation.updated(group.changed, added)
        if rotation is None:
            return None
        # The cell is shared with the previous schedule's picks: they read the new total.
        total.value = amount
        return cls(group, rotation, total, equal=False)


class _CompiledWeighted:
    __slots__ = ("pick", "rotation", "schedule")

    pick: Callable[[PickContext], Pick]
    schedule: WeightedSchedule

    def __init__(
        self, group: Group, weights: Mapping[Reputation, float], previous: CompiledSelector | None
    ) -> None:
        prior = previous.schedule if isinstance(previous, _CompiledWeighted) else None
        self.schedule = WeightedSchedule.build("reputation-weighted", group, weights, prior)
        self.rotation = self.schedule.rotation
        self.pick = self.schedule.pick


class ReputationWeighted(SharesTurns, BaseSelector):
    """Smooth weighted rotation with a weight per reputation; see ``reputation_weighted``.

    .. versionadded:: 0.1
    """

    name = "reputation-weighted"

    def __init__(self, weights: Mapping[str | Reputation, float] | None = None) -> None:
        self.weights: Mapping[Reputation, float] = weights_for(weights)

    @property
    def spec(self) -> str:
        """The text form, with the weights that differ from the defaults."""
        changed = changed_weights(self.weights)
        return f"{self.name}({', '.join(changed)})" if changed else self.name

    def compile(self, group: Group, previous: CompiledSelector | None) -> CompiledSelector:
        """Build the weighted schedule for ``group``, carrying positions over."""
        state = self._state
        if state is None:
            return _CompiledWeighted(group, self.weights, previous)
        local = _CompiledWeighted(group, self.weights, None)  # alike in every process
        lines = [
            (line.id, self.weights[line.reputation] * group.factor(line.id)) for line in group.lines
        ]
        return shared(self.name, group.path, lines, local.rotation, state) or local


def reputation_weighted(
    weights: Mapping[str | Reputation, float] | None = None, **by_name: float
) -> ReputationWeighted:
    """The ``reputation-weighted`` selector.

    Weights default to ``DEFAULT_WEIGHTS`` (HEALTHY 1.0, AT_RISK 0.25, CRITICAL and
    UNKNOWN 0.0); override some with a mapping or keywords:
    ``reputation_weighted(AT_RISK=0.5)``. Picks follow a precomputed smooth schedule:
    deterministic, exact shares over whole cycles, one line's picks spread out; a line
    of weight 0 is never picked; when every line weighs 0, ``NoEligibleNumberError``.

    .. versionadded:: 0.1
    """
    merged: dict[str | Reputation, float] = dict(weights or {})
    merged.update(by_name)
    return ReputationWeighted(merged)
