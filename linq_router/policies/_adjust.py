"""What the router's feedback changes in a compile: lines left out, weights scaled.

``Adjustments`` is handed to ``compile_policy`` beside the snapshot. ``excluded``
lines (ejected ones, and lines out of budget) are taken out before the first filter,
and named in a first stage (``ejection``, ``pacing``, or both); ``factors`` scale the
weight selectors give a line (slow start), read through ``Group.factor``. A compile
given its predecessor's adjustments and new ones recompiles only the lines whose
entry differs, as it does for snapshot changes.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from linq_router._models import Snapshot
from linq_router._pick import Stage

__all__ = [
    "FIRST_STAGES",
    "NO_ADJUSTMENTS",
    "Adjustments",
    "ejection_stage",
    "in_snapshot",
    "touched",
]

# How many ejected lines an explanation names before it says "and N more".
_NAMED = 5


@attrs.frozen
class Adjustments:
    """Lines to leave out (``excluded``: id -> what to say about it) and weight factors.

    ``factors`` maps a line id to a factor in (0, 1]; lines not in it weigh in full.
    ``reasons`` says why a line is left out, as explanations count it (``"ejected"``,
    the default, or ``"out of budget"``).

    .. versionadded:: 0.3
    """

    excluded: Mapping[str, str] = attrs.field(factory=dict)
    factors: Mapping[str, float] = attrs.field(factory=dict)
    reasons: Mapping[str, str] = attrs.field(factory=dict)


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


_STAGE_OF = {"ejected": "ejection", "out of budget": "pacing"}
FIRST_STAGES = frozenset({"ejection", "pacing", "ejection and pacing"})
"""The names the first stage an ``Adjustments`` adds may have."""


def ejection_stage(adjust: Adjustments, snapshot: Snapshot, kept: int) -> Stage | None:
    """The first stage, for the excluded lines that are in ``snapshot``, if any.

    Named ``ejection`` or ``pacing`` after why the lines are out (or both).
    """
    notes: list[str] = []
    counts: dict[str, int] = {}
    for line_id, note in adjust.excluded.items():
        if in_snapshot(snapshot, line_id):
            notes.append(note)
            why = adjust.reasons.get(line_id, "ejected")
            counts[why] = counts.get(why, 0) + 1
    if not notes:
        return None
    named = ", ".join(sorted(notes)[:_NAMED])
    if len(notes) > _NAMED:
        named += f" and {len(notes) - _NAMED} more"
    name = " and ".join(sorted({_STAGE_OF.get(why, why) for why in counts}))
    dropped = tuple(sorted(counts.items()))
    return Stage(name, kept, kept + len(notes), dropped, named)
