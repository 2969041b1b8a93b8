"""``geomatch``: prefer lines local to the recipient (country, then NANP area code)."""

from __future__ import annotations

import functools

import phonenumbers

from linq_router._models import PhoneNumber
from linq_router._pick import PickContext, Stage

from ._base import BaseFilter, Kept, Routed

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

    def compile(self, lines: tuple[PhoneNumber, ...]) -> Routed:
        """Group the lines by area code and by region, plus the whole set as fallback."""
        by_area: dict[str, list[PhoneNumber]] = {}
        by_region: dict[str, list[PhoneNumber]] = {}
        for line in lines:
            region, area = geo_of(line.phone_number)
            if area is not None:
                by_area.setdefault(area, []).append(line)
            if region is not None:
                by_region.setdefault(region, []).append(line)
        total = len(lines)
        groups: dict[str, Kept] = {
            _FALLBACK: Kept(
                lines, Stage(self.name, total, total, (), "no local line for the recipient")
            )
        }
        for key, note, members in [
            *((f"area:{a}", f"area code {a}", m) for a, m in by_area.items()),
            *((f"region:{r}", f"in {r}", m) for r, m in by_region.items()),
        ]:
            dropped = (("non-local", total - len(members)),)
            groups[key] = Kept(tuple(members), Stage(self.name, len(members), total, dropped, note))
        areas = {area: f"area:{area}" for area in by_area}
        regions = {region: f"region:{region}" for region in by_region}

        def route(ctx: PickContext) -> str:
            for handle in ctx.recipients:
                region, area = geo_of(handle)
                if region is None:
                    continue
                return areas.get(area or "") or regions.get(region) or _FALLBACK
            return _FALLBACK

        return Routed(groups, route)


def geomatch() -> Geomatch:
    """The ``geomatch`` soft filter; see ``Geomatch``.

    .. versionadded:: 0.1
    """
    return Geomatch()
