"""Frozen values: a line's reputation, a line, and a snapshot of the partner's lines."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal, overload

import attrs

__all__ = ["LineStatus", "LineType", "PhoneNumber", "Reputation", "Snapshot"]

LineType = Literal["iMessage", "RCS"]
"""What a line can send: ``"iMessage"`` (iMessage-capable) or ``"RCS"`` (RCS and SMS only)."""

LineStatus = Literal["ACTIVE", "FLAGGED"]
"""A line's runtime sending state; ``FLAGGED`` means Linq says to pause outbound on it."""


class Reputation(str, enum.Enum):
    """A line's reputation as Linq scores it.

    ``UNKNOWN`` stands for any value Linq may add later; it ranks worst, below
    ``CRITICAL``, so nothing ever prefers a line whose standing it cannot read.

    .. versionadded:: 0.1
    """

    HEALTHY = "HEALTHY"
    AT_RISK = "AT_RISK"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"

    @property
    def rank(self) -> int:
        """0 for the best standing (HEALTHY) up to 3 for the worst (UNKNOWN)."""
        return _RANK[self]

    @classmethod
    def _missing_(cls, value: object) -> Reputation:
        # Reputation("SUSPENDED") is UNKNOWN rather than a ValueError: Linq may add values.
        return cls.UNKNOWN

    @classmethod
    def parse(cls, value: object) -> Reputation:
        """Map a raw API value to a member; anything unrecognised is ``UNKNOWN``."""
        if isinstance(value, str):
            member = cls.__members__.get(value)
            if member is not None and member is not cls.UNKNOWN:
                return member
        return cls.UNKNOWN

    def __str__(self) -> str:
        return self.value


_RANK = {
    Reputation.HEALTHY: 0,
    Reputation.AT_RISK: 1,
    Reputation.CRITICAL: 2,
    Reputation.UNKNOWN: 3,
}


@attrs.frozen
class PhoneNumber:
    """One of the partner's lines, as ``GET /v3/phone_numbers`` describes it.

    ``reputation_raw`` keeps the string the API sent (``None`` when it sent none), so
    a status newer than this library survives as ``Reputation.UNKNOWN`` plus its name.
    ``status`` is ``None`` when the response did not say.

    .. versionadded:: 0.1
    """

    id: str
    phone_number: str
    reputation: Reputation = Reputation.HEALTHY
    forwarding_number: str | None = None
    line_type: LineType | None = None
    doc_url: str | None = None
    status: LineStatus | None = None
    reputation_raw: str | None = attrs.field(default=None, repr=False)

    @property
    def is_flagged(self) -> bool:
        """True when Linq reports the line FLAGGED (pause outbound on it)."""
        return self.status == "FLAGGED"


def _content_version(numbers: tuple[PhoneNumber, ...]) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for n in numbers:
        digest.update(
            "\x1f".join(
                (
                    n.id,
                    n.phone_number,
                    n.reputation.value,
                    n.reputation_raw or "",
                    n.forwarding_number or "",
                    n.line_type or "",
                    n.doc_url or "",
                    n.status or "",
                )
            ).encode()
        )
        digest.update(b"\x1e")
    return digest.hexdigest()


def _as_tuple(numbers: Iterable[PhoneNumber]) -> tuple[PhoneNumber, ...]:
    return tuple(numbers)


@attrs.frozen
class Snapshot:
    """An immutable view of the partner's lines at one moment.

    ``fetched_at`` is the registry clock's reading when the list was fetched (by
    default ``time.monotonic()``). ``version`` is a digest of the content: two
    snapshots with the same lines in the same order share it, so it changes only when
    the content does. A snapshot is iterable, sized and indexable.

    .. versionadded:: 0.1
    """

    numbers: tuple[PhoneNumber, ...] = attrs.field(converter=_as_tuple)
    fetched_at: float = 0.0
    version: str = attrs.field(init=False)
    _by_key: Mapping[str, PhoneNumber] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "version", _content_version(self.numbers))
        by_key: dict[str, PhoneNumber] = {}
        for n in self.numbers:
            by_key.setdefault(n.id, n)
            by_key.setdefault(n.phone_number, n)
        object.__setattr__(self, "_by_key", by_key)

    def __iter__(self) -> Iterator[PhoneNumber]:
        return iter(self.numbers)

    def __len__(self) -> int:
        return len(self.numbers)

    @overload
    def __getitem__(self, index: int) -> PhoneNumber: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[PhoneNumber, ...]: ...
    def __getitem__(self, index: int | slice) -> PhoneNumber | tuple[PhoneNumber, ...]:
        return self.numbers[index]

    def get(self, key: str) -> PhoneNumber | None:
        """The line whose id or E.164 number is ``key``, or ``None``."""
        return self._by_key.get(key)

    def replace_number(self, updated: PhoneNumber, *, fetched_at: float | None = None) -> Snapshot:
        """A new snapshot with the line of the same id replaced by ``updated``."""
        numbers = tuple(updated if n.id == updated.id else n for n in self.numbers)
        return Snapshot(numbers, self.fetched_at if fetched_at is None else fetched_at)
