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
    # A digest of the content, computed once per line object: a snapshot's version is a
    # digest of these, and lines reused across refreshes are not hashed again.
    _digest: bytes = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_digest", _line_digest(self))

    @property
    def is_flagged(self) -> bool:
        """True when Linq reports the line FLAGGED (pause outbound on it)."""
        return self.status == "FLAGGED"


def _line_digest(n: PhoneNumber) -> bytes:
    text = "\x1f".join(
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
    )
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


# The version digests the lines' digests in blocks of this many, then the blocks'
# digests: a change to one line re-digests its block and the list of blocks only.
_BLOCK = 256
# How far back a snapshot remembers what changed: ancestors, and ids changed in all.
_LINEAGE_DEPTH = 32
_LINEAGE_IDS = 1024


def _block_digest(numbers: tuple[PhoneNumber, ...], start: int) -> bytes:
    chunk = b"".join([n._digest for n in numbers[start : start + _BLOCK]])
    return hashlib.blake2b(chunk, digest_size=16).digest()


def _block_digests(numbers: tuple[PhoneNumber, ...], start: int = 0) -> list[bytes]:
    """The digests of the blocks from the one holding ``start`` on (about 1 ms at 10,000)."""
    first = start - start % _BLOCK
    return [_block_digest(numbers, i) for i in range(first, len(numbers), _BLOCK)]


def _version_of(blocks: list[bytes]) -> str:
    return hashlib.blake2b(b"".join(blocks), digest_size=8).hexdigest()


def _content_version(numbers: tuple[PhoneNumber, ...]) -> str:
    """A digest of the lines' digests, in order: what ``Snapshot.version`` is."""
    return _version_of(_block_digests(numbers))


def _as_tuple(numbers: Iterable[PhoneNumber]) -> tuple[PhoneNumber, ...]:
    return tuple(numbers)


@attrs.frozen
class Snapshot:
    """An immutable view of the partner's lines at one moment.

    ``fetched_at`` is the registry clock's reading when the list was fetched (by
    default ``time.monotonic()``). ``version`` is a digest of the content: two
    snapshots with the same lines in the same order share it, so it changes only when
    the content does. A snapshot is iterable, sized and indexable.

    A snapshot made from another (``replace_number``, or the registry installing a
    refresh) remembers which lines differ from it, so ``changes_since`` answers in
    time proportional to the change; that is what lets a router recompile only what
    changed.

    .. versionadded:: 0.1
    """

    numbers: tuple[PhoneNumber, ...] = attrs.field(converter=_as_tuple)
    fetched_at: float = 0.0
    version: str = attrs.field(init=False)
    # Each line id and E.164 number -> the line's position in ``numbers`` (the first
    # one's, for a key two lines share). Positions, not lines: replace_number keeps
    # every line where it was, so the snapshots it makes share this dict.
    _index: Mapping[str, int] = attrs.field(init=False, repr=False, eq=False)
    # The block digests the version is made of (see _block_digests).
    _blocks: list[bytes] = attrs.field(init=False, repr=False, eq=False)
    # The snapshots this one descends from, as (version, ids changed in the step from
    # it to the next): its parent first, then up to _LINEAGE_DEPTH - 1 older ones.
    _lineage: tuple[tuple[str, frozenset[str]], ...] = attrs.field(
        init=False, repr=False, eq=False, default=()
    )

    def __attrs_post_init__(self) -> None:
        blocks = _block_digests(self.numbers)
        object.__setattr__(self, "_blocks", blocks)
        object.__setattr__(self, "version", _version_of(blocks))
        object.__setattr__(self, "_index", _index_of(self.numbers))

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
        at = self._index.get(key)
        return None if at is None else self.numbers[at]

    def changes_since(self, other: Snapshot) -> frozenset[str]:
        """The ids of the lines that differ from ``other``: added, removed or changed.

        Immediate when this snapshot was derived from ``other``, directly or through a
        few small changes (a router whose compile is a few webhooks behind asks this);
        otherwise one pass over both. Through several changes, a line changed and
        changed back may be among them.

        .. versionadded:: 0.2
        """
        if other.version == self.version:
            return frozenset()
        wanted = other.version
        changed: set[str] = set()
        for version, step in self._lineage:
            changed.update(step)
            if version == wanted:
                return frozenset(changed)
            if len(changed) > _LINEAGE_IDS:
                break
        return _changed_ids(other, self.numbers)

    def _descend(self, child: Snapshot, changed: frozenset[str]) -> None:
        """Record on ``child`` (made from this snapshot) the steps from its ancestors."""
        lineage = ((self.version, changed), *self._lineage[: _LINEAGE_DEPTH - 1])
        object.__setattr__(child, "_lineage", lineage)

    def derive(
        self, numbers: Iterable[PhoneNumber], *, fetched_at: float | None = None
    ) -> Snapshot:
        """A snapshot of ``numbers`` that remembers what changed since this one.

        Lines equal to the ones here are replaced by the objects here, so unchanged
        lines keep their identity (and everything cached on them) across refreshes.

        .. versionadded:: 0.2
        """
        mine, mine_at = self.numbers, self._index
        kept: list[PhoneNumber] = []
        changed: set[str] = set()
        for n in numbers:
            at = mine_at.get(n.id)
            old = None if at is None else mine[at]
            if old is n or (old is not None and old._digest == n._digest):
                kept.append(old)
            else:
                kept.append(n)
                changed.add(n.id)
        derived = Snapshot(tuple(kept), self.fetched_at if fetched_at is None else fetched_at)
        ids = derived._index
        changed.update(n.id for n in self.numbers if ids.get(n.id) is None)
        self._descend(derived, frozenset(changed))
        return derived

    def replace_number(self, updated: PhoneNumber, *, fetched_at: float | None = None) -> Snapshot:
        """A new snapshot with the line of the same id replaced by ``updated``.

        In time independent of the pool's size but for one C-level copy of the tuple:
        the index is shared and the version updated, not recomputed.
        """
        when = self.fetched_at if fetched_at is None else fetched_at
        index = self._index
        at = index.get(updated.id)
        old = None if at is None else self.numbers[at]
        if old is None or old.id != updated.id or old.phone_number != updated.phone_number:
            numbers = tuple(updated if n.id == updated.id else n for n in self.numbers)
            replaced = Snapshot(numbers, when)
        else:
            # The common case (a reputation, status or forwarding change): the line keeps
            # its place, and with it its keys.
            assert at is not None
            listed = list(self.numbers)
            listed[at] = updated
            numbers = tuple(listed)
            blocks = list(self._blocks)
            blocks[at // _BLOCK] = _block_digest(numbers, at - at % _BLOCK)
            replaced = self._sibling(numbers, when, index, blocks)
        changed = frozenset({updated.id}) if replaced.version != self.version else frozenset()
        self._descend(replaced, changed)
        return replaced

    def _sibling(
        self,
        numbers: tuple[PhoneNumber, ...],
        fetched_at: float,
        index: Mapping[str, int],
        blocks: list[bytes],
    ) -> Snapshot:
        made = object.__new__(Snapshot)
        object.__setattr__(made, "numbers", numbers)
        object.__setattr__(made, "fetched_at", fetched_at)
        object.__setattr__(made, "_blocks", blocks)
        object.__setattr__(made, "version", _version_of(blocks))
        object.__setattr__(made, "_index", index)
        return made

    def remove_number(self, key: str, *, fetched_at: float | None = None) -> Snapshot:
        """A new snapshot without the line whose id or E.164 number is ``key``.

        The same snapshot when there is no such line. The lines after it move up one
        place, so the blocks from its own on are digested again.

        .. versionadded:: 0.4
        """
        at = self._index.get(key)
        if at is None:
            return self
        old = self.numbers[at]
        numbers = self.numbers[:at] + self.numbers[at + 1 :]
        when = self.fetched_at if fetched_at is None else fetched_at
        blocks = self._blocks[: at // _BLOCK] + _block_digests(numbers, at)
        replaced = self._sibling(numbers, when, _index_of(numbers), blocks)
        self._descend(replaced, frozenset({old.id}))
        return replaced


def _index_of(numbers: tuple[PhoneNumber, ...]) -> dict[str, int]:
    index: dict[str, int] = {}
    for at, n in enumerate(numbers):
        index.setdefault(n.id, at)
        index.setdefault(n.phone_number, at)
    return index


def _changed_ids(before: Snapshot, numbers: tuple[PhoneNumber, ...]) -> frozenset[str]:
    get = before.get
    changed = {n.id for n in numbers if getattr(get(n.id), "_digest", None) != n._digest}
    ids = {n.id for n in numbers}
    changed.update(n.id for n in before.numbers if n.id not in ids)
    return frozenset(changed)
