"""Static filters: ``line-type``, ``prefer-imessage``, ``only`` and ``exclude``."""

from __future__ import annotations

from collections.abc import Iterable

from linq_router._models import LineType, PhoneNumber
from linq_router._pick import Stage

from ._base import Kept
from ._line_filter import LineFilter

__all__ = [
    "Exclude",
    "LineTypeFilter",
    "Only",
    "PreferIMessage",
    "exclude",
    "line_type",
    "only",
    "prefer_imessage",
]

_LINE_TYPES = {"imessage": "iMessage", "rcs": "RCS"}


def _type_name(line: PhoneNumber) -> str:
    return line.line_type or "unknown-type"


class LineTypeFilter(LineFilter):
    """Keeps only lines of one ``line_type`` (``"iMessage"`` or ``"RCS"``); strict.

    Lines whose type Linq did not report are dropped too, unless ``include_unknown``.

    .. versionadded:: 0.1
    """

    name = "line-type"
    order = ("RCS", "iMessage", "unknown-type")

    def __init__(self, kind: LineType | str, *, include_unknown: bool = False) -> None:
        value = _LINE_TYPES.get(str(kind).lower())
        if value is None:
            msg = f"line-type: expected iMessage or RCS, got {kind!r}"
            raise ValueError(msg)
        self.line_type = value
        self.include_unknown = include_unknown

    @property
    def spec(self) -> str:
        """The text form, e.g. ``line-type(RCS)``."""
        extra = ", include_unknown=true" if self.include_unknown else ""
        return f"{self.name}({self.line_type}{extra})"

    def reason(self, line: PhoneNumber) -> str | None:
        """The line's type when it is not the wanted one; ``None`` to keep it."""
        if line.line_type == self.line_type or (self.include_unknown and line.line_type is None):
            return None
        return _type_name(line)


class PreferIMessage(LineFilter):
    """Soft: keeps iMessage-capable lines (``iMessage`` or unknown type) when any remain.

    When none does, it keeps the RCS lines, says so in the explanation and logs a
    warning on each such pick: Linq then sends a voice memo as a plain audio
    attachment instead of the iMessage bubble. The default voice-memo policy adds it.

    .. versionadded:: 0.1
    """

    name = "prefer-imessage"
    soft = True

    def reason(self, line: PhoneNumber) -> str | None:
        """``"RCS"`` for an RCS line; ``None`` for one that can send iMessage."""
        return "RCS" if line.line_type == "RCS" else None

    def fallback(
        self, lines: tuple[PhoneNumber, ...], dropped: tuple[tuple[str, int], ...]
    ) -> Kept | None:
        """Every line (they are all RCS), with a note and a warning."""
        note = "no iMessage-capable line eligible; using RCS (voice memos arrive as audio files)"
        return Kept(
            lines,
            Stage(self.name, len(lines), len(lines), (), note),
            warning="prefer-imessage: no iMessage-capable line is eligible; using an RCS line, "
            "where Linq sends voice memos as plain audio attachments",
        )


def _handles(values: Iterable[str | Iterable[str]], name: str) -> frozenset[str]:
    flat: list[str] = []
    for value in values:
        # only("+1...", "+1...") and only(["+1...", "+1..."]) both work.
        flat.extend([value] if isinstance(value, str) else [str(v) for v in value])
    handles = frozenset(v.strip() for v in flat)
    if not handles or "" in handles:
        msg = f"{name}: give at least one phone number or line id, got {sorted(handles)!r}"
        raise ValueError(msg)
    return handles


class Only(LineFilter):
    """Static allow list: keeps the lines whose id or E.164 number is listed.

    .. versionadded:: 0.1
    """

    name = "only"
    _keep_listed = True

    def __init__(self, *values: str | Iterable[str]) -> None:
        self.values = _handles(values, self.name)

    @property
    def spec(self) -> str:
        """The text form, e.g. ``only(+12025551234, +12025559876)``."""
        return f"{self.name}({', '.join(sorted(self.values))})"

    def reason(self, line: PhoneNumber) -> str | None:
        """``"unlisted"`` (or, for ``exclude``, ``"excluded"``) for a dropped line."""
        listed = line.id in self.values or line.phone_number in self.values
        if listed == self._keep_listed:
            return None
        return "unlisted" if self._keep_listed else "excluded"


class Exclude(Only):
    """Static deny list: drops the lines whose id or E.164 number is listed.

    .. versionadded:: 0.1
    """

    name = "exclude"
    _keep_listed = False


def line_type(kind: LineType | str, *, include_unknown: bool = False) -> LineTypeFilter:
    """The ``line-type`` filter: only ``"iMessage"`` or only ``"RCS"`` lines.

    .. versionadded:: 0.1
    """
    return LineTypeFilter(kind, include_unknown=include_unknown)


def prefer_imessage() -> PreferIMessage:
    """The ``prefer-imessage`` soft filter (the default for voice memos).

    .. versionadded:: 0.1
    """
    return PreferIMessage()


def only(*values: str | Iterable[str]) -> Only:
    """The ``only`` filter: keep lines whose id or number is in ``values``.

    .. versionadded:: 0.1
    """
    return Only(*values)


def exclude(*values: str | Iterable[str]) -> Exclude:
    """The ``exclude`` filter: drop lines whose id or number is in ``values``.

    .. versionadded:: 0.1
    """
    return Exclude(*values)
