"""Changing one cached line at once, without a list request: ``Amending``.

``amend`` (a line's reputation, status or forwarding number changed) and ``remove``
(a line was released) replace the served snapshot with one that differs in that line
only, so routers recompile that line and nothing else: what a webhook needs. The
changes are remembered (``_registry_overrides``) so that a list request already in
flight does not undo them, and ordered per line by the events' ``changed_at``.
"""

from __future__ import annotations

import datetime
import logging
import threading

import attrs

from ._models import LineStatus, PhoneNumber, Reputation, Snapshot
from ._registry_overrides import (
    KEEP,
    MEMBERSHIP,
    Keep,
    Overrides,
    amendment,
    aspects_of,
    check_changed_at,
)

__all__ = ["Amending"]

logger = logging.getLogger("linq_router")


class Amending:
    """The registry's ``amend``, ``remove`` and ``refresh_soon``; state lives in the registry."""

    _state_lock: threading.Lock
    _overrides: Overrides
    _served: Snapshot
    _refresh_wanted: int

    @property
    def _current(self) -> Snapshot | None:
        raise NotImplementedError

    def _queue_notice_locked(self, previous: Snapshot | None, snapshot: Snapshot) -> None:
        raise NotImplementedError

    def _announce(self) -> None:
        raise NotImplementedError

    def amend(
        self,
        phone_number: str,
        *,
        reputation: Reputation | str | Keep = KEEP,
        status: LineStatus | Keep | None = KEEP,
        forwarding_number: str | Keep | None = KEEP,
        changed_at: datetime.datetime | None = None,
    ) -> PhoneNumber | None:
        """Change one cached line at once, without a list request; returns the new line.

        ``phone_number`` is the line's E.164 number (or its id). Only the fields given
        change: ``reputation`` (a ``Reputation`` or the API's string; one this library
        does not know reads ``UNKNOWN``), ``status`` (``"ACTIVE"``, ``"FLAGGED"`` or
        ``None``) and ``forwarding_number`` (E.164, or ``None`` to clear it). The new
        snapshot has a new ``version``, so routers recompile only that line, and a list
        request already in flight when this was called does not undo the change.

        ``changed_at`` (a timezone-aware ``datetime``: a webhook's ``changed_at``) orders
        the changes to each line: one older than the last applied for that line is
        ignored, and ``None`` is returned. ``None`` too for a line the snapshot does not
        have (or before the first list): a refresh then starts in the background, since
        the line is likely new. A plain method on ``AsyncRegistry`` as well: it does no
        I/O.

        .. versionadded:: 0.4
        """
        values = amendment(reputation, status, forwarding_number)
        aspects = aspects_of(values)
        when = check_changed_at(changed_at)
        with self._state_lock:
            current = self._current
            line = current.get(phone_number) if current is not None else None
            key = phone_number if line is None else line.phone_number
            overrides = self._overrides
            if overrides.is_stale(key, aspects, when):
                logger.debug("ignored a change of %s older than the one applied", key)
                return None
            if line is None and overrides.is_stale(key, MEMBERSHIP, when):
                return None  # about a line released since
            overrides.stamp(key, aspects, when)
            if current is None or line is None:
                unknown = True
            else:
                unknown = False
                if values.get("reputation", line.reputation) is not line.reputation:
                    values["doc_url"] = None  # the old guide link describes the old standing
                self._overrides.record(line.id, values)
                line = attrs.evolve(line, **values)  # type: ignore[arg-type]
                self._install_change_locked(current, current.replace_number(line))
        if unknown:
            self.refresh_soon()
            return None
        self._announce()
        return line

    def remove(
        self, phone_number: str, *, changed_at: datetime.datetime | None = None
    ) -> PhoneNumber | None:
        """Drop one line from the cached snapshot at once (it was released); returns it.

        A list request in flight when this was called does not bring it back; the next
        list that does not have it confirms it. ``changed_at`` orders it against the
        line's other changes as in ``amend``. ``None`` when the line is not in the
        snapshot or the removal is older than a change already applied.

        .. versionadded:: 0.4
        """
        when = check_changed_at(changed_at)
        with self._state_lock:
            current = self._current
            line = current.get(phone_number) if current is not None else None
            key = phone_number if line is None else line.phone_number
            if self._overrides.is_stale(key, MEMBERSHIP, when):
                return None
            self._overrides.stamp(key, MEMBERSHIP, when)
            if current is None or line is None:
                return None
            self._overrides.record_removal(line.id)
            self._install_change_locked(current, current.remove_number(line.id))
        self._announce()
        return line

    def _install_change_locked(self, current: Snapshot, snapshot: Snapshot) -> None:
        if snapshot.version != current.version:
            self._served = snapshot
            self._queue_notice_locked(current, snapshot)

    def _want_refresh(self) -> None:
        """Note that a refresh is wanted now: a list already in flight does not count."""
        with self._state_lock:
            self._refresh_wanted = self._overrides.mark()

    def refresh_soon(self) -> None:
        """Start a refresh in the background and return at once (see the subclasses)."""
        raise NotImplementedError

    def _assigned(self, phone_number: str, changed_at: datetime.datetime | None) -> bool:
        """A line was assigned at ``changed_at``: False if a newer membership change is known.

        Orders a release that arrives late after it (that release is then ignored); the
        caller refreshes the list, which brings the line.
        """
        when = check_changed_at(changed_at)
        with self._state_lock:
            if self._overrides.is_stale(phone_number, MEMBERSHIP, when):
                return False
            self._overrides.stamp(phone_number, MEMBERSHIP, when)
            return True
