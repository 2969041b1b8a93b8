"""The policy protocol: filters, selectors, and how a pipeline compiles against a snapshot.

A policy is zero or more filters, then one selector. It does its work when a new
snapshot arrives, not when a line is picked:

1. Each **filter** compiles against the lines the stages before it kept and returns
   either ``Kept`` (a static filter: the same lines whoever the recipient is) or
   ``Routed`` (a contextual filter: a few named groups, plus a ``route`` that maps a
   ``PickContext`` to one of them, e.g. by the recipient's area code). Static filters
   cost a pick nothing; a contextual one costs one call to ``route``.
2. The **selector** compiles once per resulting group into a ``CompiledSelector``
   whose ``pick(ctx)`` returns a ``Pick``. It is given the group's previous compiled
   selector (same path, previous snapshot), so it can carry state across refreshes.

State a selector may keep: anything inside its compiled object (cursors, schedules,
caches), carried forward through ``previous``; and, for state that must outlive the
process or be shared, a ``linq_router.state.StateBackend``. A selector must not
mutate the lines, the snapshot, or another selector's state. Selectors never see an
empty group: the pipeline answers those with ``NoEligibleNumberError`` itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Literal, Protocol, runtime_checkable

import attrs

from linq_router._errors import NoEligibleNumberError
from linq_router._models import PhoneNumber
from linq_router._pick import Cell, Explanation, Pick, PickContext, Stage

__all__ = [
    "BaseFilter",
    "BaseSelector",
    "CompiledSelector",
    "Filter",
    "Group",
    "Kept",
    "Pinnable",
    "Policy",
    "Routed",
    "Selector",
]

logger = logging.getLogger("linq_router")


@attrs.frozen
class Kept:
    """A filter's answer for one group: the lines it kept, and its explanation stage.

    ``warning``, when set, is logged at WARNING on every pick from this group (a soft
    filter that had to fall back, health that was ignored). ``ignore_health`` tells
    later selectors that health was deliberately set aside, so they must not refuse
    lines for it (a weighted selector then treats all-zero weights as equal).

    .. versionadded:: 0.1
    """

    lines: tuple[PhoneNumber, ...]
    stage: Stage
    warning: str | None = None
    ignore_health: bool = False


@attrs.frozen
class Routed:
    """A contextual filter's answer: named groups and a router between them.

    ``route(ctx)`` must return one of ``groups``' keys and should be cheap (a dict
    lookup or two): it runs on every pick.

    .. versionadded:: 0.1
    """

    groups: Mapping[str, Kept]
    route: Callable[[PickContext], str]


@attrs.frozen
class Group:
    """The lines a selector chooses among, with everything it needs to explain a choice.

    ``path`` names the group stably across snapshots (purpose and the route keys that
    led here), so state can be keyed by it. ``changed`` is what an incremental compile
    knows: the ids of the lines that differ from the group compiled at the same path
    for the previous snapshot (added, removed or changed), or ``None`` when that is
    unknown; a selector given its previous compiled form and a ``changed`` set may
    update that form for just those lines instead of rebuilding it.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 ``changed`` and ``get``.
    .. versionchanged:: 0.3 ``factor``.
    """

    lines: tuple[PhoneNumber, ...]
    stages: tuple[Stage, ...]
    path: str
    policy: str
    purpose: str = "chat"
    ignore_health: bool = False
    warnings: tuple[str, ...] = ()
    changed: frozenset[str] | None = None
    _by_id: Mapping[str, PhoneNumber] | None = attrs.field(
        default=None, eq=False, repr=False, alias="by_id"
    )
    _cell: Cell | None = attrs.field(default=None, eq=False, repr=False, alias="cell")
    _factors: Mapping[str, float] | None = attrs.field(
        default=None, eq=False, repr=False, alias="factors"
    )

    def factor(self, line_id: str) -> float:
        """The factor the router scales this line's weight by (slow start); 1.0 mostly.

        Selectors that weigh lines multiply their weight by it (the built-ins do), so
        a line that just joined the pool ramps up instead of taking full traffic.

        .. versionadded:: 0.3
        """
        factors = self._factors
        return 1.0 if not factors else factors.get(line_id, 1.0)

    def get(self, line_id: str) -> PhoneNumber | None:
        """The group's line with id ``line_id``, or ``None``."""
        by_id = self._by_id
        if by_id is None:
            by_id = {line.id: line for line in self.lines}
            object.__setattr__(self, "_by_id", by_id)
        return by_id.get(line_id)

    def make_pick(self, line: PhoneNumber, choice: str | Callable[[], str]) -> Pick:
        """A ``Pick`` of ``line`` whose explanation ends with ``choice``.

        Build these at compile time (or once, lazily) and return them from ``pick``:
        they are immutable. ``choice`` may be a function that renders the text when
        the explanation is read. The explanation's stages are the group's current
        ones, shared with every pick of the group.
        """
        if self._cell is not None:
            explanation = Explanation.live(self._cell, choice)
        else:
            text = choice if isinstance(choice, str) else choice()
            explanation = Explanation(self.stages, text)
        return Pick(line.phone_number, line, self.policy, explanation, self.purpose)

    def no_eligible(self, reason: str) -> NoEligibleNumberError:
        """The error to raise when the selector finds nothing it may pick, for ``reason``."""
        return NoEligibleNumberError(_describe_empty(self, reason))


class Filter(Protocol):
    """A pipeline stage that narrows the lines.

    ``kind`` is ``"filter"``; ``name`` is what explanations show; ``spec`` (optional)
    is the text form with arguments. ``compile`` gets the lines earlier stages kept
    (never mutate them) and returns ``Kept`` or ``Routed``.

    .. versionadded:: 0.1
    """

    @property
    def kind(self) -> Literal["filter"]:
        """Always ``"filter"``."""
        ...

    @property
    def name(self) -> str:
        """The stage's name in explanations and specs."""
        ...

    def compile(self, lines: tuple[PhoneNumber, ...]) -> Kept | Routed:
        """Narrow ``lines`` (once per snapshot)."""
        ...


class CompiledSelector(Protocol):
    """A selector compiled for one group: ``pick`` returns one of the group's lines.

    ``pick`` must be thread-safe and cheap; it raises only ``NoEligibleNumberError``.

    .. versionadded:: 0.1
    """

    def pick(self, ctx: PickContext) -> Pick:
        """Choose a line of the group for ``ctx``."""
        ...


class Selector(Protocol):
    """The last stage of a pipeline: chooses one line of a group.

    ``kind`` is ``"selector"``; ``deterministic`` says whether the same snapshot and
    the same sequence of picks always give the same lines (``check_policy`` holds
    deterministic selectors to that). ``compile`` runs once per group per snapshot,
    with the group's previous compiled selector (or ``None``).

    .. versionadded:: 0.1
    """

    @property
    def kind(self) -> Literal["selector"]:
        """Always ``"selector"``."""
        ...

    @property
    def name(self) -> str:
        """The stage's name in explanations and specs."""
        ...

    @property
    def deterministic(self) -> bool:
        """Whether picks depend only on the snapshots and the sequence of calls."""
        ...

    def compile(self, group: Group, previous: CompiledSelector | None) -> CompiledSelector:
        """Build the per-group picker (once per snapshot)."""
        ...


@runtime_checkable
class Pinnable(Protocol):
    """A selector that remembers a line per conversation and lets callers change it.

    ``Router.forget`` and ``Router.pin`` use it.

    .. versionadded:: 0.1
    """

    def forget(self, key: str) -> bool:
        """Drop the remembered line for conversation ``key``; True if there was one."""
        ...

    def pin(self, key: str, line_id: str) -> None:
        """Remember ``line_id`` for conversation ``key``."""
        ...


def _spec_of(stage: object) -> str:
    spec = getattr(stage, "spec", None)
    return spec if isinstance(spec, str) else str(getattr(stage, "name", stage))


def _kind(stage: object) -> str | None:
    kind = getattr(stage, "kind", None)
    return kind if kind in ("filter", "selector") else None


@attrs.frozen
class Policy:
    """A pipeline: ``filters`` in order, then ``selector``.

    Compose with ``|``: ``skip_critical() | reputation_weighted()``. A policy whose
    ``selector`` is ``None`` is still being built; a ``Router`` refuses it.

    .. versionadded:: 0.1
    """

    filters: tuple[Filter, ...] = ()
    selector: Selector | None = None

    @property
    def name(self) -> str:
        """The spec form, e.g. ``"skip-critical | reputation-weighted"``."""
        parts = [_spec_of(f) for f in self.filters]
        if self.selector is not None:
            parts.append(_spec_of(self.selector))
        return " | ".join(parts)

    def __str__(self) -> str:
        return self.name

    def __or__(self, other: object) -> Policy:
        if self.selector is not None:
            msg = f"{self.name!r} already ends with a selector; nothing can follow it"
            raise TypeError(msg)
        if isinstance(other, Policy):
            return Policy(self.filters + other.filters, other.selector)
        kind = _kind(other)
        if kind == "filter":
            return Policy((*self.filters, other), None)  # type: ignore[arg-type]
        if kind == "selector":
            return Policy(self.filters, other)  # type: ignore[arg-type]
        return NotImplemented

    def __ror__(self, other: object) -> Policy:
        kind = _kind(other)
        if kind == "filter":
            return Policy((other,), None) | self  # type: ignore[arg-type]
        if kind == "selector":
            msg = f"a selector ({_spec_of(other)}) ends a policy; nothing can follow it"
            raise TypeError(msg)
        return NotImplemented


class BaseFilter:
    """Convenience base for filters: ``kind``, a repr, and ``|`` composition.

    .. versionadded:: 0.1
    """

    kind: Literal["filter"] = "filter"
    name: str = "filter"

    @property
    def spec(self) -> str:
        """The text form of this stage; subclasses with arguments override it."""
        return self.name

    def __repr__(self) -> str:
        return f"<filter {self.spec}>"

    def __or__(self, other: object) -> Policy:
        return Policy((self,), None) | other  # type: ignore[arg-type]


class BaseSelector:
    """Convenience base for selectors: ``kind``, a repr, and ``|`` composition.

    .. versionadded:: 0.1
    """

    kind: Literal["selector"] = "selector"
    name: str = "selector"
    deterministic: bool = True

    @property
    def spec(self) -> str:
        """The text form of this stage; subclasses with arguments override it."""
        return self.name

    def __repr__(self) -> str:
        return f"<selector {self.spec}>"

    def __or__(self, other: object) -> Policy:
        msg = f"a selector ({self.spec}) ends a policy; nothing can follow it"
        raise TypeError(msg)

    def __ror__(self, other: object) -> Policy:
        if isinstance(other, Policy):
            return other | self
        if _kind(other) == "filter":
            return Policy((other,), self)  # type: ignore[arg-type]
        return NotImplemented


def _describe_empty(group: Group, reason: str | None = None) -> str:
    if group.stages and group.stages[0].total == 0:
        what = "the snapshot has no lines"
    else:
        what = "; ".join(str(stage) for stage in group.stages) or "no stage kept a line"
        if reason:
            what = f"{what}; {reason}"
    return f"no eligible line for {group.purpose!r} with policy {group.policy!r}: {what}"


class _Empty:
    """Stands in for a selector on a group with nothing to pick: raises, explaining why.

    Used for a group the filters emptied, and by selectors for a group they cannot
    pick from (``reason``: every weight 0, say).
    """

    def __init__(self, group: Group, reason: str | None = None) -> None:
        self._message = _describe_empty(group, reason)
        self.group = group

    def pick(self, ctx: PickContext) -> Pick:
        raise NoEligibleNumberError(self._message)
