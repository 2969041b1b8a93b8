"""What the router's feedback changes in a compile: lines left out, weights scaled.

``Adjustments`` is handed to ``compile_policy`` beside the snapshot. ``excluded``
lines (ejected ones) are taken out before the first filter, and named in a first
``ejection`` stage; ``factors`` scale the weight selectors give a line (slow start),
read through ``Group.factor``. A compile given its predecessor's adjustments and new
ones recompiles only the lines whose entry differs, as it does for snapshot changes.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from linq_router._models import Snapshot
from linq_router._pick import Stage

__all__ = ["NO_ADJUSTMENTS", "Adjustments", "ejection_stage", "in_snapshot", "touched"]

# How many ejected lines an explanation names before it says "and N more".
_NAMED = 5


@attrs.frozen
class Adjustments:
    """Lines to leave out (``excluded``: id -> what to say about it) and weight factors.

    ``factors`` maps a line id to a factor in (0, 1]; lines not in it weigh in full.

    .. versionadded:: 0.3
    """

    excluded: Mapping[str, str] = attrs.field(factory=dict)
    factors: Mapping[str, float] = attrs.field(factory=dict)


NO_ADJUSTMENTS = Adjustments()


def touched(before: Adjustments, after: Adjustments) -> frozenset[str]:
    """The ids whose exclusion or factor differs between ``before`` and ``after``."""
    if before is after:
        return frozenset()
    ids = set(before.excluded.keys() ^ after.excluded.keys())
    ids.update(i for i, note in after.excluded.items() if before.excluded.get(i, note) != note)
    ids.update(before.factors.keys() ^ after.factors.keys())
    ids.update(i for i, f in after.factors.items() if before.factors.get(i, f) != f)
    return frozenset(ids)


def in_snapshot(snapshot: Snapshot, line_id: str) -> bool:
    """Whether ``snapshot`` has a line whose id is ``line_id``."""
    line = snapshot.get(line_id)
    return line is not None and line.id == line_id


def ejection_stage(excluded: Mapping[str, str], snapshot: Snapshot, kept: int) -> Stage | None:
    """The ``ejection`` stage for the excluded lines that are in ``snapshot``, if any."""
    notes = [note for line_id, note in excluded.items() if in_snapshot(snapshot, line_id)]
    if not notes:
        return None
    named = ", ".join(sorted(notes)[:_NAMED])
    if len(notes) > _NAMED:
        named += f" and {len(notes) - _NAMED} more"
    return Stage("ejection", kept, kept + len(notes), (("ejected", len(notes)),), named)
