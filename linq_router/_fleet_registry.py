"""Registry changes a webhook brought, followed by every router of a fleet: ``follow``.

Behind a load balancer, a webhook about a line reaches one process. Its
``WebhookReceiver``, on a shared state (``state="redis://..."``), applies the change
to its own registry and announces it on the board under ``registry``
(``RegistryChange.record``). Every router on a shared state follows its registry
(``follow``): on each notice it makes the same call there, ``amend``, ``remove``, or
``refresh_soon`` for an assignment. A change carries its event's ``changed_at``, so a
repeat, or a change that arrives after a newer one, changes nothing.

Notices are heard on the board's listening thread, and the registry calls do no I/O
(``refresh_soon`` starts a list in the background). A registry is followed once per
board however many routers share it, and the registry that announced a change does
not apply it a second time (the record names its origin). Notices sent while the
board was unreachable are not replayed: a registry catches up at its next refresh.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._fork import renew_after_fork
from .state._board import Board, Notice

__all__ = ["TOPIC", "RegistryChange", "follow", "following", "origin_of"]

logger = logging.getLogger("linq_router")

TOPIC = "registry"
"""The board topic registry changes are announced under."""
AMEND, REMOVE, ASSIGNED = "amend", "remove", "assigned"
_KINDS = frozenset({AMEND, REMOVE, ASSIGNED})
_FIELDS = frozenset({"reputation", "status", "forwarding_number"})
_METHODS = ("amend", "remove", "refresh_soon")


def origin_of(registry: object) -> str:
    """Names ``registry`` among every process's: its own announcements are skipped."""
    return f"{os.getpid()}:{id(registry):x}"


def _fields(value: object) -> dict[str, str | None] | None:
    if not isinstance(value, Mapping) or not set(value) <= _FIELDS:
        return None
    if not all(v is None or isinstance(v, str) for v in value.values()):
        return None
    return dict(value)


@attrs.frozen
class RegistryChange:
    """One change a webhook made to a registry, as the fleet hears of it.

    ``kind`` is ``"amend"`` (``fields``: any of ``reputation``, ``status``,
    ``forwarding_number``; a field left out is kept), ``"remove"`` (released) or
    ``"assigned"`` (the list is fetched again).
    """

    kind: str
    phone_number: str
    fields: Mapping[str, str | None] = attrs.field(factory=dict)
    changed_at: datetime.datetime | None = None

    def record(self, origin: str) -> dict[str, Any]:
        """The notice's record: JSON-ready, ``changed_at`` as ISO 8601 text."""
        when = self.changed_at
        return {
            "kind": self.kind,
            "phone_number": self.phone_number,
            "fields": dict(self.fields),
            "changed_at": None if when is None else when.isoformat(),
            "origin": origin,
        }

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> RegistryChange | None:
        """The change a record describes; ``None`` if it is not one."""
        kind, number = record.get("kind"), record.get("phone_number")
        when = record.get("changed_at")
        fields = _fields(record.get("fields", {}))
        if kind not in _KINDS or not isinstance(number, str) or fields is None:
            return None
        changed_at = None
        if when is not None:
            try:
                changed_at = datetime.datetime.fromisoformat(str(when))
            except ValueError:
                return None
            if changed_at.tzinfo is None:
                return None
        return cls(str(kind), number, fields, changed_at)

    def apply(self, registry: Any) -> object:
        """Make this change in ``registry`` (a ``Registry`` or ``AsyncRegistry``)."""
        if self.kind == AMEND:
            return registry.amend(self.phone_number, **self.fields, changed_at=self.changed_at)
        if self.kind == REMOVE:
            return registry.remove(self.phone_number, changed_at=self.changed_at)
        assigned = getattr(registry, "_assigned", None)  # orders a late release after it
        if callable(assigned) and not assigned(self.phone_number, self.changed_at):
            return None
        registry.refresh_soon()
        return None


class _Follower:
    """One registry's subscription to one board; ``users``: the routers sharing it."""

    def __init__(self, registry: object, board: Board) -> None:
        try:  # the routers hold the registry; a subscription must not keep it alive
            self.registry: Callable[[], object | None] = weakref.ref(registry)
        except TypeError:  # an object that takes no weak reference
            self.registry = lambda: registry
        self.users = 0
        self._unsubscribe = board.subscribe(self._heard)

    def _heard(self, notice: Notice) -> None:
        record = notice.record
        if notice.topic != TOPIC or record is None:
            return
        registry = self.registry()
        if registry is None or record.get("origin") == origin_of(registry):
            return  # gone, or its own change: applied already
        change = RegistryChange.of(record)
        if change is None:
            logger.debug("ignored a registry notice that is not a change: %r", record)
            return
        try:
            change.apply(registry)
        except Exception as error:  # a bad field: this registry goes on as it was
            logger.debug("could not apply a registry change from the fleet: %r", error)

    def close(self) -> None:
        self._unsubscribe()


class _Followers:
    """The followers of this process, by registry and board."""

    def __init__(self) -> None:
        self.held: dict[tuple[int, int], _Follower] = {}
        self.lock = threading.Lock()
        renew_after_fork(self)

    def _after_fork_in_child(self) -> None:
        self.lock = threading.Lock()


_FOLLOWERS = _Followers()


def follow(registry: object, board: Board) -> Callable[[], None] | None:
    """Apply the fleet's registry changes to ``registry``; the function that stops it.

    One subscription per registry and board: a second router on them shares it, and
    it ends with the last one's stop. ``None`` (logged at DEBUG) for a registry that
    cannot be amended (any object with ``snapshot()`` but no ``amend``).
    """
    missing = [m for m in _METHODS if not callable(getattr(registry, m, None))]
    if missing:
        logger.debug(
            "registry changes from the fleet are not followed: %s has no %s()",
            type(registry).__name__,
            "(), ".join(missing),
        )
        return None
    key = (id(registry), id(board))
    with _FOLLOWERS.lock:
        follower = _FOLLOWERS.held.get(key)
        if follower is None or follower.registry() is not registry:
            follower = _FOLLOWERS.held[key] = _Follower(registry, board)
        follower.users += 1
    stopped = False

    def stop() -> None:
        nonlocal stopped
        with _FOLLOWERS.lock:
            if stopped:
                return
            stopped = True
            follower.users -= 1
            if follower.users > 0:
                return
            if _FOLLOWERS.held.get(key) is follower:
                del _FOLLOWERS.held[key]
        follower.close()

    return stop


def following(
    router: object, registry: object, state: object
) -> weakref.finalize[[], object] | None:
    """``follow`` for a router on a shared ``state``: stopped by calling the answer.

    ``None`` when ``state`` shares no notices (memory, or none) or the registry cannot
    be amended. Otherwise it stops by itself once ``router`` is collected, if nobody
    closed it; calling it again does nothing.
    """
    if not isinstance(state, Board) or getattr(state, "shares_notices", False) is not True:
        return None
    stop = follow(registry, state)
    return None if stop is None else weakref.finalize(router, stop)
