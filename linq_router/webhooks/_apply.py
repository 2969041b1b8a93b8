"""What each event does: ``apply_event``.

Line changes go to the registry, which works alike for ``Registry`` and
``AsyncRegistry`` (``amend``, ``remove`` and ``refresh_soon`` do no I/O); each is
also returned as ``change``, for a receiver on a shared state to announce to the
fleet's registries. What goes to the router (a report, an inbound count) is returned
as ``pending``: called by ``handle``, awaited by ``ahandle`` when the router is an
``AsyncRouter``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from linq_router._fleet_registry import AMEND, ASSIGNED, REMOVE, RegistryChange
from linq_router._registry_overrides import KEEP, Keep
from linq_router.feedback import Outcome

from ._events import Forwarding, Inbound, LineChange, MessageFailed, StatusUpdated

__all__ = ["Applied", "apply_event"]

logger = logging.getLogger("linq_router")

_STATUSES = frozenset({"ACTIVE", "FLAGGED"})
_warned_statuses: set[str] = set()


@attrs.frozen
class Applied:
    """What applying an event did; ``pending`` is the router's part, still to run.

    ``change`` is the registry call made, whatever it did to this registry (each
    registry of the fleet orders it against its own changes).
    """

    applied: bool
    reason: str
    pending: Callable[[], object] | None = None
    change: RegistryChange | None = None


class _Receiver(Protocol):
    registry: Any
    router: Any
    sender: Any


def apply_event(receiver: _Receiver, event: object) -> Applied:
    """Apply one parsed event (any but ``Ignored``)."""
    if isinstance(event, StatusUpdated):
        return _status(receiver.registry, event)
    if isinstance(event, LineChange):
        return _membership(receiver.registry, event)
    if isinstance(event, Forwarding):
        fields = {"forwarding_number": event.forwarding_number}
        change = RegistryChange(AMEND, event.phone_number, fields, event.changed_at)
        line = receiver.registry.amend(
            event.phone_number,
            forwarding_number=event.forwarding_number,
            changed_at=event.changed_at,
        )
        if line is None:
            return Applied(
                False, _not_amended(receiver.registry, event.phone_number), change=change
            )
        to = event.forwarding_number or "none"
        return Applied(True, f"{event.phone_number} now forwards to {to}", change=change)
    if isinstance(event, MessageFailed):
        return _failed(receiver, event)
    if isinstance(event, Inbound):
        return _inbound(receiver, event)
    msg = f"no action for {type(event).__name__}"  # pragma: no cover - Ignored is answered earlier
    raise TypeError(msg)


def _status(registry: Any, event: StatusUpdated) -> Applied:
    status: str | Keep = KEEP if event.status is None else event.status  # absent: unchanged
    if isinstance(status, str) and status not in _STATUSES:
        # Pause the line rather than clear a FLAGGED one: what Linq may add is most
        # likely another way of saying "do not send from it".
        if status not in _warned_statuses:
            _warned_statuses.add(status)
            logger.warning(
                "webhook: a line status this library does not know, %r; read as FLAGGED", status
            )
        status = "FLAGGED"
    fields: dict[str, str | None] = {"reputation": event.reputation}
    if isinstance(status, str):
        fields["status"] = status
    change = RegistryChange(AMEND, event.phone_number, fields, event.changed_at)
    line = registry.amend(
        event.phone_number,
        reputation=event.reputation,
        status=status,
        changed_at=event.changed_at,
    )
    if line is None:
        return Applied(False, _not_amended(registry, event.phone_number), change=change)
    return Applied(
        True,
        f"{event.phone_number} is now {line.reputation.value}, {line.status or 'no status'}",
        change=change,
    )


def _not_amended(registry: Any, phone_number: str) -> str:
    current = registry._current
    if current is not None and current.get(phone_number) is not None:
        return f"older than the change already applied to {phone_number}"
    return f"{phone_number} is not a line of the snapshot (refreshing the list)"


def _membership(registry: Any, event: LineChange) -> Applied:
    number = event.phone_number
    if event.released:
        change = RegistryChange(REMOVE, number, changed_at=event.changed_at)
        line = registry.remove(number, changed_at=event.changed_at)
        if line is None:
            why = f"{number} was not in the snapshot, or was assigned since"
            return Applied(False, why, change=change)
        return Applied(True, f"{number} released: removed from the snapshot", change=change)
    change = RegistryChange(ASSIGNED, number, changed_at=event.changed_at)
    if not registry._assigned(number, event.changed_at):
        return Applied(False, f"{number} was released after this assignment", change=change)
    registry.refresh_soon()
    return Applied(True, f"{number} assigned: refreshing the list in the background", change=change)


def _failed(receiver: _Receiver, event: MessageFailed) -> Applied:
    sender, router = receiver.sender, receiver.router
    if sender is None or router is None:
        return Applied(False, "no sender to map the message to its line")
    line = None
    if event.message_id is not None:
        line = sender.line_for_message(event.message_id)
    if line is None and event.chat_id is not None:
        line = sender.line_for_chat(event.chat_id)
    if line is None:
        return Applied(False, "the failed message was not sent by this sender (or is forgotten)")
    outcome = Outcome(code=event.code)

    def report() -> object:
        return router.report(line, outcome)

    return Applied(True, f"reported code {event.code} for {line}", report)


def _inbound(receiver: _Receiver, event: Inbound) -> Applied:
    router = receiver.router
    if router is None:
        return Applied(False, "no router to count the inbound message")
    line = event.line
    if line is None and receiver.sender is not None and event.chat_id is not None:
        line = receiver.sender.line_for_chat(event.chat_id)
    if line is None:
        return Applied(False, "the message names no line this receiver knows")

    def record() -> object:
        return router.record_inbound(line)

    return Applied(True, f"inbound on {line} counted", record)
