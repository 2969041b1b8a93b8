"""How much each line may send: ``Pacing``; what it has used: ``Budget``.

Rates are in the ``limits`` library's notation (``"7000/day"``, ``"30/minute"``,
``"500/day;50/hour"``), parsed by ``limits.parse_many``; its strategies and storages
do the counting (see ``_pacer``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import limits
from limits import RateLimitItem

from linq_router._arguments import shown
from linq_router._models import Reputation

__all__ = ["STRATEGIES", "Budget", "Pacing", "parse_rates"]

STRATEGIES = ("moving-window", "sliding-window-counter", "fixed-window")
"""The ``limits`` strategies ``Pacing(strategy=...)`` accepts."""


def parse_rates(name: str, value: object) -> tuple[RateLimitItem, ...]:
    """``value`` parsed as one or more rates (``"500/day;50/hour"``), or a clear error."""
    if not isinstance(value, str):
        msg = f"{name} must be a rate string such as '7000/day' or None, got {shown(value)}"
        raise TypeError(msg)
    try:
        items = tuple(limits.parse_many(value))
    except ValueError:
        msg = (
            f"{name}={shown(value)} is not a rate; expected the limits library's notation, "
            "such as '7000/day', '30/minute' or '500/day;50/hour'"
        )
        raise ValueError(msg) from None
    if not items or any(item.amount < 1 for item in items):
        msg = f"{name}={shown(value)} must allow at least 1 per window"
        raise ValueError(msg)
    return items


def _optional_rates(name: str):  # type: ignore[no-untyped-def]
    def check(instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
        if value is not None:
            parse_rates(name, value)

    return check


def _new_conversations(
    instance: object, attribute: attrs.Attribute[Mapping[str, str] | None], value: Any
) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        msg = (
            "new_conversations must map reputations to rates, such as "
            f"{{'HEALTHY': '300/day', 'AT_RISK': '75/day'}}, got {shown(value)}"
        )
        raise TypeError(msg)
    names = [r.value for r in Reputation]
    for key, rate in value.items():
        name = key.value if isinstance(key, Reputation) else key
        if name not in names:
            msg = f"new_conversations has {shown(key)}; expected one of {', '.join(names)}"
            raise ValueError(msg)
        parse_rates(f"new_conversations[{name!r}]", rate)


def _storage(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or "://" not in value:
        msg = (
            f"storage must be a limits storage URI such as 'memory://' or "
            f"'redis://localhost:6379', got {shown(value)}"
        )
        raise ValueError(msg)


def _strategy(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in STRATEGIES:
        msg = f"strategy={shown(value)} is not a limits strategy; expected one of " + ", ".join(
            STRATEGIES
        )
        raise ValueError(msg)


@attrs.frozen
class Pacing:
    """Budgets that keep each line inside Linq's limits; ``Router(pacing=...)``.

    * ``per_line``: what one line may send (and receive: ``Router.record_inbound``)
      per window; Linq recommends at most about 7,000 a day. Every reported send
      counts, ``SUCCESS`` and ``PAIR_LIMITED`` alike (Linq counted both).
    * ``per_pair``: messages per window for one line and one recipient; Linq's hard
      limit is 30 per 60 s (past it, 429 with code 1007).
    * ``new_conversations``: per reputation, how many recipients a line may start a
      conversation with (one it has not sent to within the last day) per window, e.g.
      ``{"HEALTHY": "300/day", "AT_RISK": "75/day"}``; no default, Linq publishes
      no number. A reputation missing from the mapping has no such budget.
    * ``storage``: where the counts live, a ``limits`` storage URI (``memory://``:
      this process; ``redis://...`` for a fleet). A ``redis+sentinel://`` one takes
      ``/service_name/db`` as state URIs do, and reads budgets from the master
      (``?use_replicas=true`` for limits' replicas). ``Router(state=...)`` with a
      shared state URI sets it to that server, keys prefixed ``<namespace>:pacing``.
    * ``strategy``: the ``limits`` strategy: ``moving-window`` (exact),
      ``sliding-window-counter`` or ``fixed-window`` (cheaper, approximate).

    A budget set to ``None`` is off. ``Router(pacing=None)`` turns pacing off.

    .. versionadded:: 0.3
    """

    per_line: str | None = attrs.field(default="7000/day", validator=_optional_rates("per_line"))
    per_pair: str | None = attrs.field(default="30/minute", validator=_optional_rates("per_pair"))
    new_conversations: Mapping[str, str] | None = attrs.field(
        default=None, validator=_new_conversations
    )
    storage: str = attrs.field(default="memory://", validator=_storage)
    strategy: str = attrs.field(default="moving-window", validator=_strategy)


@attrs.frozen
class Budget:
    """One line's use of one rate, for dashboards: ``Router.budgets()``.

    ``kind`` is ``"per_line"`` or ``"new_conversations"``; ``limit`` the rate
    (``"7000 per 1 day"``); ``used`` how many the window holds (it may pass the
    limit by the sends that were in flight when the line ran out); ``remaining``
    what it may still send; ``resets_at`` when the window next frees room, on the
    router's clock.

    .. versionadded:: 0.3
    """

    line: str
    kind: str
    limit: str
    used: int
    remaining: int
    resets_at: float
