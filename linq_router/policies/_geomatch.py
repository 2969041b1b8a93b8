"""``geomatch``: prefer lines local to the recipient (country, then NANP area code)."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import phonenumbers

from linq_router._models import PhoneNumber
from linq_router._pick import PickContext, Stage

from ._base import BaseFilter, Kept, Routed
from ._compile import _Record

__all__ = ["Geomatch", "geo_of", "geomatch"]

_FALLBACK = "*"


@functools.lru_cache(maxsize=65536)
def geo_of(handle: str) -> tuple[str | None, str | None]:
    """``(region, NANP area code)`` of an E.164 handle; ``(None, None)`` for anything else.

    Cached (bounded): ``phonenumbers.parse`` costs tens of microseconds and the same
    recipients and lines come back again and again.
    """
    if not handle.startswith("+"):
        return None, None
    try:
        parsed = phonenumbers.parse(handle, None)
    except phonenumbers.NumberParseException:
        return None, None
    # Numbers outside any allocated range (fiction ranges, new blocks) have no region
    # of their own; their country code still says which country they belong to.
    found: str | None = phonenumbers.region_code_for_number(parsed) or (
        phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    )
    region = None if found in (None, "ZZ", "001") else found
    area = handle[2:5] if parsed.country_code == 1 and len(handle) == 12 else None
    return region, area


class Geomatch(BaseFilter):
    """Soft: prefers lines in the recipient's country, and in its NANP area code.

    Groups are built when the policy compiles (by region, and by area code for +1
    numbers), so a pick costs one cached parse of the recipient and a dict lookup.
    The first phone number among the recipients decides; with no phone recipient, or
    no local line, every line stays in (the filter never empties the set).

    .. versionadded:: 0.1
    """

    name = "geomatch"
    soft = True
    routes = True  # splits its input into groups (see MAX_ROUTING)

    def compile(self, lines: tuple[PhoneNumber, ...]) -> Routed:
        """Group the lines by area code and by region, plus the whole set as fallback."""
        members: dict[str, dict[str, PhoneNumber]] = {}
        for line in lines:
            for key in _keys(line):
                members.setdefault(key, {})[line.id] = line
        return self._routed(lines, {key: tuple(m.values()) for key, m in members.items()})

    def _updated(
        self, prev: _Record, given: Mapping[str, PhoneNumber], changed: frozenset[str]
    ) -> _Record:
        """The groups updated for the ``changed`` lines only (an incremental compile)."""
        passed: dict[str, Mapping[str, PhoneNumber]] = dict(prev.passed)
        copied: dict[str, dict[str, PhoneNumber]] = {}
        before = prev.given
        for line_id in changed:
            for line, adding in ((before.get(line_id), False), (given.get(line_id), True)):
                if line is None:
                    continue
                for key in _keys(line):
                    group = copied.get(key)
                    if group is None:
                        group = copied[key] = dict(passed.get(key, {}))
                        passed[key] = group
                    if adding:
                        group[line_id] = line
                    else:
                        group.pop(line_id, None)
        for key, group in copied.items():
            if not group:
                del passed[key]
        passed[_FALLBACK] = given
        assert isinstance(prev.result, Routed)  # geomatch only answers Routed
        old = prev.result.groups
        members = {
            key: tuple(copied[key].values()) if key in copied else old[key].lines
            for key in passed
            if key != _FALLBACK
        }
        return _Record(given, self._routed(tuple(given.values()), members), passed)

    def _routed(
        self, lines: tuple[PhoneNumber, ...], members: Mapping[str, tuple[PhoneNumber, ...]]
    ) -> Routed:
        total = len(lines)
        groups: dict[str, Kept] = {
            _FALLBACK: Kept(
                lines, Stage(self.name, total, total, (), "no local line for the recipient")
            )
        }
        areas: dict[str, str] = {}
        regions: dict[str, str] = {}
        for key, kept in sorted(members.items()):
            kind, _, value = key.partition(":")
            note = f"area code {value}" if kind == "area" else f"in {value}"
            (areas if kind == "area" else regions)[value] = key
            dropped = (("non-local", total - len(kept)),)
            groups[key] = Kept(kept, Stage(self.name, len(kept), total, dropped, note))

        def route(ctx: PickContext) -> str:
            for handle in ctx.recipients:
                region, area = geo_of(handle)
                if region is None:
                    continue
                return areas.get(area or "") or regions.get(region) or _FALLBACK
            return _FALLBACK

        return Routed(groups, route)


# The lines' own numbers, cached apart from recipients' so that a busy stream of new
# recipients cannot evict them (a compile of 50,000 lines would parse them all again).
_line_geo = functools.lru_cache(maxsize=1 << 18)(geo_of.__wrapped__)


def _keys(line: PhoneNumber) -> list[str]:
    """The geomatch groups ``line`` belongs to: its area code's and its region's."""
    region, area = _line_geo(line.phone_number)
    keys = [f"area:{area}"] if area is not None else []
    if region is not None:
        keys.append(f"region:{region}")
    return keys


def geomatch() -> Geomatch:
    """The ``geomatch`` soft filter; see ``Geomatch``.

    .. versionadded:: 0.1
    """
    return Geomatch()
