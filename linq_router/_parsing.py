"""Turn Linq's JSON into models. Pure functions, shared by the sync and async clients.

Rules: a body that is not the documented shape raises ``LinqResponseError``; a bad
entry inside an otherwise good list is dropped with a warning; values newer than this
library (a reputation, line type or status it does not know) are kept as far as they
can be and logged once per value. An entry whose fields are those of an entry in the
previous list (``LineMemo``) gets the line built from that one back. Values quoted in
log lines and errors are cut to 60 characters (``_arguments.shown``).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, cast

from ._arguments import shown
from ._errors import LinqResponseError
from ._fork import renew_after_fork
from ._models import LineStatus, LineType, PhoneNumber, Reputation

__all__ = ["E164", "LineMemo", "Warned", "parse_phone_number_list", "parse_updated_number"]

logger = logging.getLogger("linq_router")

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
"""An E.164 number: '+', a country code that does not start with 0, up to 15 digits."""

_LINE_TYPES: frozenset[str] = frozenset({"iMessage", "RCS"})
_STATUSES: frozenset[str] = frozenset({"ACTIVE", "FLAGGED"})


class Warned:
    """The unknown values already warned about, so each is logged once per owner.

    Each client keeps its own; the parse functions fall back to a process-wide one.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        renew_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # A parent thread may have held the lock at the fork.
        self._lock = threading.Lock()

    def once(self, kind: str, value: str) -> None:
        """Log ``value`` of ``kind`` as unknown, unless this owner already did."""
        key = (kind, value)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        logger.warning("Linq sent an unknown %s %s; treating it as unknown", kind, shown(value))


_PROCESS_WARNED = Warned()


class LineMemo:
    """The lines built from the last list, by the content of the entries they came from.

    Parsing with one hands back last time's ``PhoneNumber`` for every entry whose
    fields are unchanged, so a refresh that changes nothing builds no new objects (no
    validation, no digest, nothing new for the garbage collector to walk) and the
    registry's next snapshot shares its lines with the last one. A client also keeps
    the raw body those lines came from (``remember``): an answer that is byte for byte
    the same is not parsed at all (``unchanged``). Only the last list is remembered.
    Each client keeps its own; it is safe to share between threads.
    """

    def __init__(self) -> None:
        self._lines: dict[tuple[object, ...], PhoneNumber] = {}
        self._body: tuple[bytes, tuple[PhoneNumber, ...]] | None = None

    def __len__(self) -> int:
        return len(self._lines)

    def unchanged(self, body: bytes) -> list[PhoneNumber] | None:
        """The lines parsed from ``body`` last time, if it is the last body remembered."""
        last = self._body
        # Comparing even 2.5 MB of equal bytes is one memcmp, a fraction of a parse.
        return list(last[1]) if last is not None and last[0] == body else None

    def remember(self, body: bytes, lines: list[PhoneNumber]) -> None:
        """Remember that ``body`` parsed to ``lines``."""
        self._body = (body, tuple(lines))


def _status_and_doc(obj: object) -> tuple[object, object] | None:
    return (obj.get("status"), obj.get("doc_url")) if isinstance(obj, dict) else None


def _entry_key(entry: dict[str, Any]) -> tuple[object, ...]:
    """Every field ``parse_phone_number`` reads, so equal keys build equal lines.

    (Values of different types that compare equal, such as ``1`` and ``True``, are all
    ones the parser discards alike.) Unhashable values make an unhashable key.
    """
    reputation = _status_and_doc(entry.get("reputation"))
    return (
        entry.get("id"),
        entry.get("phone_number"),
        reputation,
        _status_and_doc(entry.get("health_status")) if reputation is None else None,
        entry.get("forwarding_number"),
        entry.get("line_type"),
        entry.get("status"),
    )


def is_e164(value: object) -> bool:
    """True when ``value`` is a string in E.164 form."""
    return isinstance(value, str) and E164.fullmatch(value) is not None


def _reputation(entry: dict[str, Any], warned: Warned) -> tuple[Reputation, str | None, str | None]:
    """(reputation, raw status, doc_url), preferring ``reputation`` over ``health_status``."""
    for field in ("reputation", "health_status"):
        obj = entry.get(field)
        if isinstance(obj, dict):
            raw = obj.get("status")
            doc_url = obj.get("doc_url")
            doc = doc_url if isinstance(doc_url, str) else None
            rep = Reputation.parse(raw)
            raw_str = raw if isinstance(raw, str) else None
            if rep is Reputation.UNKNOWN:
                warned.once("reputation", repr(raw) if raw_str is None else raw_str)
            return rep, raw_str, doc
    return Reputation.UNKNOWN, None, None


def _optional_e164(entry: dict[str, Any], field: str) -> str | None:
    value = entry.get(field)
    if value is None or value == "":
        return None
    if is_e164(value):
        return cast("str", value)
    logger.warning(
        "ignoring %s %s on line %s: not E.164", field, shown(value), shown(entry.get("id"))
    )
    return None


def _choice(
    entry: dict[str, Any], field: str, allowed: frozenset[str], warned: Warned
) -> str | None:
    """``entry[field]`` if it is one of ``allowed``; None (warned once) for anything else."""
    value = entry.get(field)
    if value is None:
        return None
    if isinstance(value, str) and value in allowed:
        return value
    warned.once(field, str(value))
    return None


def _entry_problem(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    line_id = entry.get("id")
    if not isinstance(line_id, str) or not line_id:
        return f"missing or empty id ({shown(line_id)})"
    if not is_e164(entry.get("phone_number")):
        return f"phone_number {shown(entry.get('phone_number'))} is not E.164"
    return None


def parse_phone_number(entry: dict[str, Any], warned: Warned = _PROCESS_WARNED) -> PhoneNumber:
    """Build a ``PhoneNumber`` from one entry already known to have an id and E.164 number."""
    rep, raw, doc_url = _reputation(entry, warned)
    return PhoneNumber(
        id=entry["id"],
        phone_number=entry["phone_number"],
        reputation=rep,
        forwarding_number=_optional_e164(entry, "forwarding_number"),
        line_type=cast("LineType | None", _choice(entry, "line_type", _LINE_TYPES, warned)),
        doc_url=doc_url,
        status=cast("LineStatus | None", _choice(entry, "status", _STATUSES, warned)),
        reputation_raw=raw,
    )


def parse_phone_number_list(
    payload: object, warned: Warned = _PROCESS_WARNED, memo: LineMemo | None = None
) -> list[PhoneNumber]:
    """Parse a ``GET /v3/phone_numbers`` body.

    Raises ``LinqResponseError`` when the body is not ``{"phone_numbers": [...]}``, or
    when it lists lines but none of them is usable (a broken answer, not an empty pool).
    With ``memo``, entries unchanged since the list it last saw reuse its lines.
    """
    if not isinstance(payload, dict):
        raise LinqResponseError(
            f"expected a JSON object with 'phone_numbers', got {type(payload).__name__}"
        )
    entries = payload.get("phone_numbers")
    if not isinstance(entries, list):
        raise LinqResponseError(
            f"expected 'phone_numbers' to be a list, got {type(entries).__name__}"
        )
    last = memo._lines if memo is not None else {}
    built: dict[tuple[object, ...], PhoneNumber] = {}
    numbers: list[PhoneNumber] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        key: tuple[object, ...] | None = None
        number: PhoneNumber | None = None
        if memo is not None and isinstance(entry, dict):
            key = _entry_key(entry)
            try:
                number = last.get(key)
            except TypeError:  # a list or an object where a value belongs
                key = None
        # A remembered entry passed these checks already (same id, same number).
        problem = None if number is not None else _entry_problem(entry)
        if problem is None and entry["id"] in seen:
            problem = f"duplicate id {shown(entry['id'])}"
        if problem is not None:
            logger.warning("dropping phone_numbers[%d]: %s", index, problem)
            continue
        seen.add(entry["id"])
        if number is None:
            number = parse_phone_number(entry, warned)
        if key is not None:
            built[key] = number
        numbers.append(number)
    if entries and not numbers:
        raise LinqResponseError(f"none of the {len(entries)} listed lines is usable")
    if memo is not None:
        memo._lines = built
    return numbers


def parse_updated_number(payload: object, warned: Warned = _PROCESS_WARNED) -> PhoneNumber:
    """Parse a ``PUT /v3/phone_numbers/{id}`` body: ``id``, ``phone_number``, ``forwarding_number``.

    That answer carries no reputation; unless it does, the result's reputation is
    ``UNKNOWN`` with ``reputation_raw`` ``None``. The registry merges only the
    forwarding number into the line it already knows.
    """
    problem = _entry_problem(payload)
    if problem is not None:
        raise LinqResponseError(f"unexpected update response: {problem}")
    entry = cast("dict[str, Any]", payload)
    if "forwarding_number" in entry and not (
        entry["forwarding_number"] is None or isinstance(entry["forwarding_number"], str)
    ):
        raise LinqResponseError(
            f"unexpected update response: forwarding_number {shown(entry['forwarding_number'])}"
        )
    return parse_phone_number(entry, warned)
