"""Local changes to the cached lines that a list fetched before them must not undo.

A write through the registry (a PUT's answer) or an amendment (``Registry.amend``,
``Registry.remove``, usually from a webhook) changes the cached snapshot at once. A
list request already in flight was answered by Linq before that change, so installing
it as it is would undo the change for a TTL. ``_Overrides`` remembers each change with
a sequence number; a list re-applies the changes made after it started and forgets the
ones made before (those it already reflects).

It also remembers, per line, when the last event about it happened (its ``changed_at``):
an event older than that describes a state already replaced, and is ignored.

No I/O and no lock: the registry calls it under its state lock.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from ._arguments import shown
from ._models import PhoneNumber, Reputation
from ._parsing import is_e164

__all__ = [
    "KEEP",
    "MEMBERSHIP",
    "Keep",
    "Overrides",
    "amendment",
    "apply",
    "aspects_of",
    "check_changed_at",
]


class Keep(enum.Enum):
    """The type of ``KEEP``: "leave this field as it is"."""

    KEEP = "KEEP"

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = Keep.KEEP
_STATUSES = ("ACTIVE", "FLAGGED")
MEMBERSHIP = ("membership",)
"""The aspect a line's assignment and release are ordered by."""

# What an override may set: the fields of ``PhoneNumber`` a change can carry, or
# ``_REMOVED`` for a line that is gone.
_REMOVED = "removed"


class Overrides:
    """Changes per line id, each field with the sequence number of its change."""

    def __init__(self) -> None:
        self.seq = 0
        # line id -> field -> (sequence number, value)
        self._fields: dict[str, dict[str, tuple[int, object]]] = {}
        # (E.164 number, aspect) -> the newest ``changed_at`` applied for it
        self._changed_at: dict[tuple[str, str], datetime.datetime] = {}

    def __bool__(self) -> bool:
        return bool(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def mark(self) -> int:
        """A new sequence number with no change: what a list started later has seen."""
        self.seq += 1
        return self.seq

    def record(self, line_id: str, values: Mapping[str, object]) -> None:
        """Remember ``values`` (field -> value) set on ``line_id`` now."""
        self.seq += 1
        fields = self._fields.setdefault(line_id, {})
        fields.pop(_REMOVED, None)
        for name, value in values.items():
            fields[name] = (self.seq, value)

    def record_removal(self, line_id: str) -> None:
        """Remember that ``line_id`` is gone: lists fetched before now must not restore it."""
        self.seq += 1
        self._fields[line_id] = {_REMOVED: (self.seq, True)}

    def is_stale(
        self, phone_number: str, aspects: Iterable[str], changed_at: datetime.datetime | None
    ) -> bool:
        """Whether a change of ``aspects`` of a line at ``changed_at`` is older than one applied.

        Aspects are ordered apart (``"status"``, ``"forwarding"``, ``"membership"``): a
        forwarding change made before a reputation change still applies after it.
        """
        if changed_at is None:
            return False
        stamps = self._changed_at
        for aspect in aspects:
            newest = stamps.get((phone_number, aspect))
            if newest is not None and changed_at < newest:
                return True
        return False

    def stamp(
        self, phone_number: str, aspects: Iterable[str], changed_at: datetime.datetime | None
    ) -> None:
        """Remember that these aspects of ``phone_number`` now date from ``changed_at``."""
        if changed_at is None:
            return
        stamps = self._changed_at
        for aspect in aspects:
            key = (phone_number, aspect)
            newest = stamps.get(key)
            if newest is None or changed_at > newest:
                stamps[key] = changed_at

    def after(self, started: int) -> dict[str, dict[str, object]]:
        """Forget the changes made before ``started``; the ones after it, by line id."""
        kept: dict[str, dict[str, tuple[int, object]]] = {}
        newer: dict[str, dict[str, object]] = {}
        for line_id, fields in self._fields.items():
            live = {name: v for name, v in fields.items() if v[0] > started}
            if live:
                kept[line_id] = live
                newer[line_id] = {name: v[1] for name, v in live.items()}
        self._fields = kept
        return newer


def apply(
    fetched: Iterable[PhoneNumber], newer: Mapping[str, Mapping[str, object]]
) -> list[PhoneNumber]:
    """``fetched`` with the changes in ``newer`` applied (removed lines left out)."""
    if not newer:
        return list(fetched)
    lines: list[PhoneNumber] = []
    for n in fetched:
        values = newer.get(n.id)
        if values is None:
            lines.append(n)
        elif _REMOVED not in values:
            lines.append(attrs.evolve(n, **values))  # type: ignore[arg-type]
    return lines


def aspects_of(values: Mapping[str, object]) -> tuple[str, ...]:
    """Which aspects of a line the change ``values`` touches, for ordering."""
    touched = []
    if "reputation" in values or "status" in values:
        touched.append("status")
    if "forwarding_number" in values:
        touched.append("forwarding")
    return tuple(touched)


def amendment(
    reputation: Reputation | str | Keep,
    status: str | Keep | None,
    forwarding_number: str | Keep | None,
) -> dict[str, object]:
    """The fields an ``amend`` call sets, checked (a clear error names a bad one)."""
    values: dict[str, object] = {}
    if reputation is not KEEP:
        if isinstance(reputation, Reputation):
            values["reputation"] = reputation
            values["reputation_raw"] = reputation.value
        elif isinstance(reputation, str):
            values["reputation"] = Reputation.parse(reputation)
            values["reputation_raw"] = reputation
        else:
            msg = (
                "reputation must be a Reputation or the API's string (such as 'CRITICAL'), "
                f"got {type(reputation).__name__} {shown(reputation)}"
            )
            raise TypeError(msg)
    if status is not KEEP:
        if status is not None and status not in _STATUSES:
            msg = f"status must be 'ACTIVE', 'FLAGGED' or None, got {shown(status)}"
            raise ValueError(msg)
        values["status"] = status
    if forwarding_number is not KEEP:
        if forwarding_number == "":
            forwarding_number = None
        if forwarding_number is not None and not is_e164(forwarding_number):
            msg = (
                "forwarding_number must be an E.164 number such as '+12025550101', or None "
                f"to clear it, got {shown(forwarding_number)}"
            )
            raise ValueError(msg)
        values["forwarding_number"] = forwarding_number
    return values


def check_changed_at(value: object) -> datetime.datetime | None:
    """``value`` if it is ``None`` or a timezone-aware ``datetime``; else a clear error."""
    if value is None:
        return None
    if not isinstance(value, datetime.datetime):
        msg = (
            "changed_at must be a timezone-aware datetime or None, "
            f"got {type(value).__name__} {shown(value)}"
        )
        raise TypeError(msg)
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"changed_at must be timezone-aware (an event's time is in UTC), got {value!r}"
        raise ValueError(msg)
    return value
