"""A verified body as one of the events the receiver acts on: ``parse_event``.

Dispatch is on the ``event_type`` string, and each payload is validated here, field by
field: the official SDK's ``unwrap`` can return the wrong model class (in linq-python
0.65 every event model declares the full ``event_type`` literal, so a
``phone_number.released`` parses as the assigned event). A body that is not a Linq
event, or a known event missing a field it needs, is a ``BadEvent`` (answered 400);
an event type the receiver does not act on is an ``Ignored`` one (answered 200).
No I/O.
"""

from __future__ import annotations

import datetime
import logging
import re

import attrs
import orjson

from linq_router._arguments import shown
from linq_router._parsing import is_e164

__all__ = [
    "BadEvent",
    "Envelope",
    "Forwarding",
    "Ignored",
    "Inbound",
    "LineChange",
    "MessageFailed",
    "StatusUpdated",
    "parse_event",
]

logger = logging.getLogger("linq_router")

_STATUS = "phone_number.status_updated"
_ASSIGNED = "phone_number.assigned"
_RELEASED = "phone_number.released"
_FORWARDING = "phone_number.forwarding_updated"
_FAILED = "message.failed"
_RECEIVED = "message.received"
HANDLED = frozenset({_STATUS, _ASSIGNED, _RELEASED, _FORWARDING, _FAILED, _RECEIVED})

# RFC 3339 as Linq writes it; fromisoformat on Python 3.10 does not take a "Z".
_ZULU = re.compile(r"[zZ]$")
_MAX_ID = 256


class BadEvent(Exception):
    """The body is not a Linq event the receiver can read; ``str()`` says why."""


@attrs.frozen
class Envelope:
    """The fields every event has that the receiver reads."""

    event_id: str
    event_type: str


@attrs.frozen
class StatusUpdated:
    """``phone_number.status_updated``: a line's new reputation and status."""

    envelope: Envelope
    phone_number: str
    reputation: str
    status: str | None
    changed_at: datetime.datetime


@attrs.frozen
class LineChange:
    """``phone_number.assigned`` or ``phone_number.released``."""

    envelope: Envelope
    phone_number: str
    changed_at: datetime.datetime | None
    released: bool


@attrs.frozen
class Forwarding:
    """``phone_number.forwarding_updated``: ``forwarding_number`` ``None`` when cleared."""

    envelope: Envelope
    phone_number: str
    forwarding_number: str | None
    changed_at: datetime.datetime | None


@attrs.frozen
class MessageFailed:
    """``message.failed``: Linq's ``code`` for a message (it names no line)."""

    envelope: Envelope
    code: int
    message_id: str | None
    chat_id: str | None


@attrs.frozen
class Inbound:
    """``message.received``: the line it arrived on, or the chat to look it up by."""

    envelope: Envelope
    line: str | None
    chat_id: str | None


@attrs.frozen
class Ignored:
    """A verified event of a type the receiver does not act on."""

    envelope: Envelope


Event = StatusUpdated | LineChange | Forwarding | MessageFailed | Inbound | Ignored


def parse_event(body: bytes) -> Event:
    """The event in ``body``; ``BadEvent`` when it is not one the receiver can read."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = f"the body is not JSON ({exc})"
        raise BadEvent(msg) from None
    if not isinstance(payload, dict):
        msg = f"the body is JSON but not an object (got {type(payload).__name__})"
        raise BadEvent(msg)
    envelope = Envelope(
        _text(payload, "event_id", "the event"), _text(payload, "event_type", "the event")
    )
    kind = envelope.event_type
    if kind not in HANDLED:
        return Ignored(envelope)
    data = payload.get("data")
    if not isinstance(data, dict):
        msg = f"{kind} has no data object"
        raise BadEvent(msg)
    if kind == _STATUS:
        return StatusUpdated(
            envelope,
            _line(data, kind),
            _text(data, "new_reputation", kind),
            _optional_text(data, "new_status", kind),
            _time(data, "changed_at", kind, required=True),  # type: ignore[arg-type]
        )
    if kind in (_ASSIGNED, _RELEASED):
        return LineChange(
            envelope, _line(data, kind), _time(data, "changed_at", kind), kind == _RELEASED
        )
    if kind == _FORWARDING:
        return _forwarding(envelope, data)
    if kind == _FAILED:
        code = data.get("code")
        if type(code) is not int:
            msg = f"{kind}.data.code must be an integer, got {shown(code)}"
            raise BadEvent(msg)
        return MessageFailed(
            envelope,
            code,
            _optional_text(data, "message_id", kind),
            _optional_text(data, "chat_id", kind),
        )
    return _inbound(envelope, data)


def _forwarding(envelope: Envelope, data: dict[str, object]) -> Forwarding:
    kind = envelope.event_type
    change = data.get("change")
    if not isinstance(change, dict) or "to" not in change:
        msg = f"{kind}.data.change.to is missing (the new forwarding number)"
        raise BadEvent(msg)
    to = change.get("to")
    if to == "":
        to = None
    if to is not None and not is_e164(to):
        msg = f"{kind}.data.change.to must be an E.164 number or null, got {shown(to)}"
        raise BadEvent(msg)
    when = _time(data, "occurred_at", kind) or _time(data, "changed_at", kind)
    return Forwarding(envelope, _line(data, kind), to, when)


def _inbound(envelope: Envelope, data: dict[str, object]) -> Inbound:
    kind = envelope.event_type
    chat = data.get("chat")
    line: str | None = None
    chat_id: str | None = None
    if isinstance(chat, dict):
        owner = chat.get("owner_handle")
        if isinstance(owner, dict) and is_e164(owner.get("handle")):
            line = owner["handle"]
        chat_id = _optional_text(chat, "id", f"{kind}.data.chat")
    if chat_id is None:
        chat_id = _optional_text(data, "chat_id", kind)
    if line is None and chat_id is None:
        msg = f"{kind} names neither its line (data.chat.owner_handle.handle) nor its chat"
        raise BadEvent(msg)
    return Inbound(envelope, line, chat_id)


def _text(obj: dict[str, object], field: str, where: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        msg = f"{where}'s {field} must be a non-empty string, got {shown(value)}"
        raise BadEvent(msg)
    return value


def _optional_text(obj: dict[str, object], field: str, where: str) -> str | None:
    value = obj.get(field)
    if value is None:
        return None
    return _text(obj, field, where)


def _line(data: dict[str, object], kind: str) -> str:
    value = data.get("phone_number")
    if not is_e164(value):
        msg = f"{kind}.data.phone_number must be an E.164 number, got {shown(value)}"
        raise BadEvent(msg)
    assert isinstance(value, str)
    return value


def _time(
    data: dict[str, object], field: str, kind: str, *, required: bool = False
) -> datetime.datetime | None:
    value = data.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > 64:
        msg = f"{kind}.data.{field} must be an RFC 3339 time, got {shown(value)}"
        raise BadEvent(msg)
    try:
        when = datetime.datetime.fromisoformat(_ZULU.sub("+00:00", value))
    except ValueError:
        msg = f"{kind}.data.{field} must be an RFC 3339 time, got {shown(value)}"
        raise BadEvent(msg) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when
