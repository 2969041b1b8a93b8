"""The fake API's lines: how they are given, stored and rendered, and the sample pools."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias, get_args

import attrs

from linq_router._models import PhoneNumber, Reputation

from ._fake_checks import (
    LINE_TYPES,
    STATUSES,
    check_choice,
    check_e164,
    check_forwarding,
    check_id,
    check_raw,
    check_reputation,
    choice_value,
)

__all__ = ["NumberSpec", "Shape", "default_pool", "find_line", "sample_pool", "to_lines"]

Shape = Literal["reputation", "health_status", "both"]
"""Which list shape the fake serves.

``"reputation"`` is the newest (``reputation`` and ``line_type``), ``"health_status"``
the oldest (only ``health_status``, no ``line_type``), ``"both"`` the transitional one
(``reputation``, ``health_status`` and ``line_type``).
"""

SHAPES: frozenset[str] = frozenset(get_args(Shape))

NumberSpec: TypeAlias = str | Mapping[str, Any] | PhoneNumber
"""A line as the fake accepts it.

* an E.164 string: a HEALTHY iMessage line with an id derived from the number;
* a mapping, flat (``{"phone_number": ..., "reputation": "AT_RISK"}``) or as the API
  serves it (``"reputation"`` / ``"health_status"`` as ``{"status", "doc_url"}``).
  Missing keys take the defaults of ``FakeLinqServer.add_number``; a key present with
  ``None`` means "omit it" for ``line_type`` and ``status``. ``raw_reputation``,
  ``raw_status`` and ``raw_line_type`` serve any string instead (a value Linq may add
  later);
* a ``linq_router.PhoneNumber``.

Values are checked as ``add_number`` checks them: a number that is not E.164, a
reputation, status or line type Linq does not send, or an unknown key is a
``ValueError`` that names it.

.. versionchanged:: 0.2 values are checked; the ``raw_*`` keys.
"""

_MAPPING_KEYS = frozenset(
    {
        "id",
        "phone_number",
        "reputation",
        "health_status",
        "raw_reputation",
        "line_type",
        "raw_line_type",
        "status",
        "raw_status",
        "forwarding_number",
        "doc_url",
    }
)

_ID_NAMESPACE = uuid.UUID("5d3c0b8e-4f1a-4c1e-9a55-1b7e2f0d6c41")

_REPUTATION_GUIDE = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation"
_HEALTH_GUIDE = "https://docs.linqapp.com/guides/phone-numbers/phone-health"


def line_id_for(phone_number: str) -> str:
    """The id the fake gives a line added without one: a uuid5 of its number."""
    return str(uuid.uuid5(_ID_NAMESPACE, phone_number))


def guide_url(status: str, *, guide: str = _REPUTATION_GUIDE) -> str:
    """The guide deep link for a reputation status, e.g. ``...#at-risk`` for AT_RISK."""
    return f"{guide}#{status.lower().replace('_', '-')}"


@attrs.define
class Line:
    """One line held by the fake, mutable under the server's lock."""

    id: str
    phone_number: str
    reputation: str = "HEALTHY"
    line_type: str | None = "iMessage"
    status: str | None = None
    forwarding_number: str | None = None
    doc_url: str | None = None  # an explicit link; None means "derive from reputation"

    def render(self, shape: str) -> dict[str, Any]:
        """The entry as ``GET /v3/phone_numbers`` serves it in ``shape``."""
        entry: dict[str, Any] = {"id": self.id, "phone_number": self.phone_number}
        if shape in {"reputation", "both"}:
            entry["reputation"] = {
                "status": self.reputation,
                "doc_url": self.doc_url or guide_url(self.reputation),
            }
        if shape in {"health_status", "both"}:
            guide = _HEALTH_GUIDE if shape == "health_status" else _REPUTATION_GUIDE
            entry["health_status"] = {
                "status": self.reputation,
                "doc_url": self.doc_url or guide_url(self.reputation, guide=guide),
            }
        entry["forwarding_number"] = self.forwarding_number
        # The older shape predates line_type, so it never carries one.
        if self.line_type is not None and shape != "health_status":
            entry["line_type"] = self.line_type
        if self.status is not None:
            entry["status"] = self.status
        return entry

    def update_response(self) -> dict[str, Any]:
        """The body of a successful ``PUT /v3/phone_numbers/{id}``."""
        return {
            "id": self.id,
            "phone_number": self.phone_number,
            "forwarding_number": self.forwarding_number,
        }


def _mapping_reputation(spec: Mapping[str, Any]) -> tuple[str, str | None]:
    """(status, explicit doc_url) from a mapping's reputation keys."""
    key = next((k for k in ("reputation", "health_status") if k in spec), None)
    raw = spec.get("raw_reputation")
    if raw is not None:
        if key is not None:
            msg = f"give {key} ({spec[key]!r}) or raw_reputation ({raw!r}), not both"
            raise ValueError(msg)
        return check_raw(raw, "raw_reputation"), None
    if key is None:
        return "HEALTHY", None
    value = spec[key]
    if isinstance(value, Mapping):
        doc_url = value.get("doc_url")
        status = check_reputation(value.get("status", "HEALTHY"), f"{key}.status")
        return status, doc_url if isinstance(doc_url, str) else None
    if isinstance(value, (str, Reputation)):
        return check_reputation(value, key), None
    msg = f"{key} must be a string, a Reputation or a {{status, doc_url}} object, got {value!r}"
    raise TypeError(msg)


def _mapping_choice(
    spec: Mapping[str, Any], key: str, accepted: tuple[str, ...], default: str | None
) -> str | None:
    raw = spec.get(f"raw_{key}")
    # The default gives way to a raw value; a value given explicitly conflicts with it.
    return choice_value(spec.get(key, default if raw is None else None), raw, key, accepted)


def _optional_str(spec: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = spec.get(key, default)
    if value is None or isinstance(value, str):
        return value
    msg = f"{key} must be a string or None, got {value!r}"
    raise TypeError(msg)


def _from_model(spec: PhoneNumber) -> Line:
    # A PhoneNumber is the library's own value: its reputation is whatever it holds
    # (the raw status the API sent, if any); the rest is checked like any other spec.
    raw = spec.reputation_raw
    return Line(
        id=check_id(spec.id),
        phone_number=check_e164(spec.phone_number),
        reputation=raw if raw is not None else spec.reputation.value,
        line_type=check_choice(spec.line_type, "line_type", LINE_TYPES, "raw_line_type"),
        status=check_choice(spec.status, "status", STATUSES, "raw_status"),
        forwarding_number=check_forwarding(spec.forwarding_number),
        doc_url=spec.doc_url,
    )


def to_line(spec: NumberSpec) -> Line:
    """Build a ``Line`` from any accepted spec (see ``NumberSpec``), checking its values."""
    if isinstance(spec, str):
        return Line(id=line_id_for(check_e164(spec)), phone_number=spec)
    if isinstance(spec, PhoneNumber):
        return _from_model(spec)
    if not isinstance(spec, Mapping):
        msg = f"expected an E.164 string, a mapping or a PhoneNumber, got {spec!r}"
        raise TypeError(msg)
    unknown = sorted(set(spec) - _MAPPING_KEYS)
    if unknown:
        msg = (
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"in a line; the keys are {', '.join(sorted(_MAPPING_KEYS))}"
        )
        raise ValueError(msg)
    phone_number = spec.get("phone_number")
    if not isinstance(phone_number, str):
        msg = f"a line needs a string phone_number, got {phone_number!r}"
        raise TypeError(msg)
    check_e164(phone_number)
    line_id = spec.get("id")
    line_id = line_id_for(phone_number) if line_id is None else check_id(line_id)
    reputation, doc_url = _mapping_reputation(spec)
    if doc_url in {guide_url(reputation), guide_url(reputation, guide=_HEALTH_GUIDE)}:
        doc_url = None  # the standard link: keep deriving it, so each shape gets its own
    explicit_doc = _optional_str(spec, "doc_url", None)
    return Line(
        id=line_id,
        phone_number=phone_number,
        reputation=reputation,
        line_type=_mapping_choice(spec, "line_type", LINE_TYPES, "iMessage"),
        status=_mapping_choice(spec, "status", STATUSES, None),
        forwarding_number=check_forwarding(spec.get("forwarding_number")),
        doc_url=explicit_doc or doc_url,
    )


def to_lines(numbers: Iterable[NumberSpec]) -> list[Line]:
    """``Line``s from specs, each checked; an error names the spec (``numbers[2]: ...``)."""
    lines = []
    for index, spec in enumerate(numbers):
        try:
            lines.append(to_line(spec))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"numbers[{index}]: {exc}") from None
    ids = [line.id for line in lines]
    if len(set(ids)) != len(ids):
        msg = f"duplicate line ids in {ids}"
        raise ValueError(msg)
    return lines


def find_line(lines: Iterable[Line], id_or_number: str) -> Line:
    """The line with this id or, failing that, this E.164 number; ``KeyError`` if none."""
    lines = list(lines)
    for line in lines:
        if line.id == id_or_number:
            return line
    for line in lines:
        if line.phone_number == id_or_number:
            return line
    msg = f"no line with id or number {id_or_number!r}"
    raise KeyError(msg)


def _entry(
    line_id: str,
    phone_number: str,
    reputation: str = "HEALTHY",
    line_type: str = "iMessage",
    status: str | None = "ACTIVE",
    forwarding_number: str | None = None,
) -> dict[str, Any]:
    return Line(
        id=line_id,
        phone_number=phone_number,
        reputation=reputation,
        line_type=line_type,
        status=status,
        forwarding_number=forwarding_number,
    ).render("reputation")


# US numbers use the fictional 555-01xx block; +44 7700 900xxx and +61 491 570 xxx are
# the UK and Australian regulators' ranges reserved for drama.
_SAMPLE: tuple[dict[str, Any], ...] = (
    _entry("0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c01", "+12025550101"),
    _entry(
        "0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c02",
        "+12125550102",
        forwarding_number="+12125550199",
    ),
    _entry("0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c03", "+13105550103"),
    _entry("0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c04", "+14155550104", status=None),
    _entry("0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c05", "+13125550105", "AT_RISK"),
    _entry("0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c06", "+16175550106", line_type="RCS"),
    _entry("0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c07", "+17135550107", status=None),
    _entry("0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c08", "+12065550108", "AT_RISK", "RCS"),
    _entry("0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c09", "+13055550109", "CRITICAL"),
    _entry("0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c10", "+15125550110", status="FLAGGED"),
    _entry(
        "0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c11",
        "+447700900111",
        forwarding_number="+447700900999",
    ),
    _entry("0b6f1c2e-5a7d-4e3b-9c1a-2f4d6e8a0c12", "+61491570112", "CRITICAL", "RCS"),
)

_DEFAULT: tuple[dict[str, Any], ...] = (
    _entry("550e8400-e29b-41d4-a716-446655440000", "+12025551234"),
    _entry("550e8400-e29b-41d4-a716-446655440001", "+12025559876", "AT_RISK"),
    _entry("550e8400-e29b-41d4-a716-446655440002", "+13105550100", line_type="RCS"),
)


def sample_pool() -> list[dict[str, Any]]:
    """A realistic pool of twelve lines, as ``GET /v3/phone_numbers`` entries (newest shape).

    Eight HEALTHY, two AT_RISK, two CRITICAL; one HEALTHY line is FLAGGED; nine
    iMessage and three RCS lines; two carry a forwarding number; ten US numbers across
    area codes, one UK (+44) and one Australian (+61). Ids are fixed, so the pool is
    the same on every call; each call returns fresh copies.

    Example::

        with FakeLinqServer(sample_pool()) as server:
            ...

    .. versionadded:: 0.1
    """
    return copy.deepcopy(list(_SAMPLE))


def default_pool() -> list[dict[str, Any]]:
    """The three lines a ``FakeLinqServer`` starts with when given no ``numbers``.

    ``+12025551234`` (HEALTHY, iMessage), ``+12025559876`` (AT_RISK, iMessage) and
    ``+13105550100`` (HEALTHY, RCS), with ids ``550e8400-...-446655440000`` to ``...02``
    as in Linq's own examples.

    .. versionadded:: 0.1
    """
    return copy.deepcopy(list(_DEFAULT))
