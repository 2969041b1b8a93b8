"""What the fake API accepts: the values Linq sends, E.164 numbers, raw escapes, send bodies.

A value the client would read as ``UNKNOWN`` (a typo such as ``"critical"``) makes a
test pass for the wrong reason, since policies drop UNKNOWN lines as they drop
CRITICAL ones; so the fake refuses it, naming the argument, the value and the
accepted values. ``raw_*`` arguments serve any string, for values Linq may add later.

The send routes' bodies are checked here too, as Linq checks them: each problem is a
``Refusal`` with the status and code Linq answers (400 / 1001 to 1005).
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import attrs

from linq_router._models import Reputation
from linq_router._parsing import is_e164

__all__ = [
    "LINE_TYPES",
    "MAX_RECIPIENTS",
    "REPUTATIONS",
    "STATUSES",
    "Refusal",
    "SendRequest",
    "chat_request",
    "check_choice",
    "check_e164",
    "check_forwarding",
    "check_handle",
    "check_id",
    "check_raw",
    "check_reputation",
    "choice_value",
    "handle_key",
    "is_handle",
    "message_request",
    "reputation_value",
    "voice_memo_request",
]

REPUTATIONS: tuple[str, ...] = ("HEALTHY", "AT_RISK", "CRITICAL")
"""The reputation statuses Linq sends; ``raw_reputation=`` serves any other string."""
STATUSES: tuple[str, ...] = ("ACTIVE", "FLAGGED")
"""The line statuses Linq sends; ``raw_status=`` serves any other string."""
LINE_TYPES: tuple[str, ...] = ("iMessage", "RCS")
"""The line types Linq sends; ``raw_line_type=`` serves any other string."""
MAX_RECIPIENTS = 31
"""The most handles a chat's ``to`` may list: a group of 32 with the line."""
_MAX_PARTS = 100
_PART_TYPES = frozenset({"text", "media", "link", "imessage_app", "app_clip"})
_ALONE = frozenset({"link", "imessage_app", "app_clip"})  # must be the message's only part
_URL = re.compile(r"https?://", re.IGNORECASE)


def _near(value: str, accepted: tuple[str, ...]) -> str | None:
    """The accepted value ``value`` differs from only by case or separators."""
    folded = value.strip().upper().replace("-", "_").replace(" ", "_")
    return next((a for a in accepted if a.upper() == folded), None)


def _refused(
    argument: str, value: object, accepted: tuple[str, ...], raw: str, *, none_ok: bool
) -> ValueError:
    expected = ", ".join(repr(a) for a in accepted) + (" or None" if none_ok else "")
    msg = f"{argument} must be one of {expected}, got {value!r}"
    if isinstance(value, str):
        near = _near(value, accepted)
        if near is not None:
            msg += f"; did you mean {near!r}?"
        else:
            msg += f"; to serve a value Linq may add later, pass {raw}={value!r}"
    return ValueError(msg)


def check_reputation(
    value: object, argument: str = "reputation", raw: str = "raw_reputation"
) -> str:
    """A reputation status Linq sends (a name or a ``Reputation``), or a clear error."""
    if isinstance(value, Reputation):
        if value is not Reputation.UNKNOWN:
            return str(value.value)
        msg = (
            f"{argument} must be one of {', '.join(map(repr, REPUTATIONS))}, got "
            f"Reputation.UNKNOWN, which is how linq_router reads a status it does not know, "
            f"not one Linq sends; to serve such a status, pass {raw}='SOME_NEW_STATUS'"
        )
        raise ValueError(msg)
    if not isinstance(value, str):
        msg = f"{argument} must be a string or a Reputation, got {value!r}"
        raise TypeError(msg)
    if value in REPUTATIONS:
        return value
    raise _refused(argument, value, REPUTATIONS, raw, none_ok=False)


def check_choice(value: object, argument: str, accepted: tuple[str, ...], raw: str) -> str | None:
    """``value`` if it is one of ``accepted`` or ``None`` (omitted); else a clear error."""
    if value is None or (isinstance(value, str) and value in accepted):
        return value
    if not isinstance(value, str):
        msg = f"{argument} must be a string or None, got {value!r}"
        raise TypeError(msg)
    raise _refused(argument, value, accepted, raw, none_ok=True)


def check_raw(value: object, argument: str) -> str:
    """A ``raw_...`` value: any string, served as it is."""
    if not isinstance(value, str):
        msg = f"{argument} must be a string (served as it is), got {value!r}"
        raise TypeError(msg)
    return value


def check_e164(value: object, argument: str = "phone_number") -> str:
    """An E.164 number as the client's parser accepts it, or a clear error."""
    if not isinstance(value, str):
        msg = f"{argument} must be a string, an E.164 number like '+12025551234'; got {value!r}"
        raise TypeError(msg)
    if not is_e164(value):
        msg = (
            f"{argument} must be an E.164 number like '+12025551234' ('+', a country code "
            f"that does not start with 0, at most 15 digits), got {value!r}"
        )
        raise ValueError(msg)
    return value


def check_forwarding(value: object, argument: str = "forwarding_number") -> str | None:
    """An E.164 forwarding number, or ``None`` for none (``""`` too)."""
    if value is None or value == "":
        return None
    return check_e164(value, argument)


# Loose on purpose: Linq's own rule is unpublished, and the fake should refuse only
# what is plainly not an address (no "@", spaces, no dot in the domain).
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def is_handle(value: object) -> bool:
    """Whether ``value`` is a recipient handle Linq takes: an E.164 number or an email."""
    return isinstance(value, str) and (is_e164(value) or _EMAIL.fullmatch(value) is not None)


def check_handle(value: object, argument: str = "handle") -> str:
    """A recipient handle (E.164 number or email address), or a clear error."""
    if not isinstance(value, str):
        msg = f"{argument} must be a string, an E.164 number or an email; got {value!r}"
        raise TypeError(msg)
    if not is_handle(value):
        msg = (
            f"{argument} must be an E.164 number like '+12025551234' or an email address "
            f"like 'someone@example.com', got {value!r}"
        )
        raise ValueError(msg)
    return value


def handle_key(handle: str) -> str:
    """The form two handles are compared in: emails ignore case, numbers are exact."""
    return handle.lower() if "@" in handle else handle


def check_id(value: object, argument: str = "id") -> str:
    """A line id: a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        msg = f"{argument} must be a non-empty string, got {value!r}"
        raise (ValueError if isinstance(value, str) else TypeError)(msg)
    return value


def reputation_value(reputation: object, raw_reputation: object) -> str:
    """The status to serve from ``reputation`` or ``raw_reputation`` (exactly one)."""
    if raw_reputation is not None:
        if reputation is not None:
            msg = (
                f"give reputation ({reputation!r}) or raw_reputation ({raw_reputation!r}), not both"
            )
            raise ValueError(msg)
        return check_raw(raw_reputation, "raw_reputation")
    if reputation is None:
        msg = (
            f"give a reputation ({', '.join(map(repr, REPUTATIONS))}), or raw_reputation= "
            "for a status Linq may add later"
        )
        raise ValueError(msg)
    return check_reputation(reputation)


def choice_value(
    value: object, raw_value: object, argument: str, accepted: tuple[str, ...]
) -> str | None:
    """``value`` checked against ``accepted``, or ``raw_value`` served as it is."""
    raw = f"raw_{argument}"
    if raw_value is None:
        return check_choice(value, argument, accepted, raw)
    if value is not None:
        msg = f"give {argument} ({value!r}) or {raw} ({raw_value!r}), not both"
        raise ValueError(msg)
    return check_raw(raw_value, raw)


# -- the send routes' bodies ---------------------------------------------------------


@attrs.frozen
class Refusal:
    """A send the fake turns down: the status and Linq code it answers with."""

    status: int
    code: int
    message: str | None = None
    retry_after: float | None = None


@attrs.frozen
class SendRequest:
    """A send's body, checked. ``from_`` and ``to`` are the create's (empty otherwise)."""

    from_: str = ""
    to: tuple[str, ...] = ()
    parts: tuple[dict[str, Any], ...] = ()
    # What a new chat's first message may not carry: a link, an effect, a reply.
    first_message_issue: str | None = None
    override_optout: bool = False
    voice_memo_url: str | None = None
    attachment_id: str | None = None


def _object(body: bytes) -> dict[str, Any] | Refusal:
    """The JSON object a body holds, or the 400 for a body that is not one."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the stack
        return Refusal(400, 1003)
    return payload if isinstance(payload, dict) else Refusal(400, 1003)


def _missing(payload: dict[str, Any], *names: str) -> Refusal | None:
    absent = [name for name in names if payload.get(name) is None]
    if absent:
        return Refusal(400, 1001, f"Missing required field: {', '.join(absent)}")
    return None


def _override(payload: dict[str, Any]) -> bool | Refusal:
    value = payload.get("override_optout", False)
    if isinstance(value, bool):
        return value
    return Refusal(400, 1005, "override_optout must be a boolean")


def _part_issue(index: int, part: object) -> str | None:
    """What is wrong with one part (as Linq's 1004 would say), or None."""
    where = f"message.parts[{index}]"
    if not isinstance(part, dict) or part.get("type") not in _PART_TYPES:
        return f"{where} must be an object whose type is one of {', '.join(sorted(_PART_TYPES))}"
    kind = part["type"]
    if kind in {"text", "link", "app_clip"} and not isinstance(part.get("value"), str):
        return f"{where} ({kind}) needs a string value"
    if kind == "media" and not any(isinstance(part.get(k), str) for k in ("url", "attachment_id")):
        return f"{where} (media) needs a url or an attachment_id"
    if kind == "imessage_app":
        app = part.get("app")
        fields = ("bundle_id", "name", "team_id")
        if not isinstance(app, dict) or not all(isinstance(app.get(f), str) for f in fields):
            return f"{where} (imessage_app) needs an app with bundle_id, name and team_id"
        if not isinstance(part.get("layout"), dict):
            return f"{where} (imessage_app) needs a layout object"
    return None


def _content(  # noqa: PLR0911 (one return per rule Linq documents)
    message: object,
) -> tuple[tuple[dict[str, Any], ...], str | None] | Refusal:
    """(parts, first-message issue) from a ``message`` object, or the 400 for it."""
    if not isinstance(message, dict):
        return Refusal(400, 1004, "message must be an object")
    parts, experience = message.get("parts"), message.get("experience")
    if parts is not None and experience is not None:
        return Refusal(400, 1004, "a message carries parts or an experience, not both")
    if experience is not None:
        if not isinstance(experience, dict) or not all(
            isinstance(experience.get(k), str) for k in ("name", "action")
        ):
            return Refusal(400, 1004, "message.experience needs a name and an action")
        parts = []
    elif not isinstance(parts, list) or not parts:
        return Refusal(400, 1004, "message needs a non-empty parts list (or an experience)")
    elif len(parts) > _MAX_PARTS:
        return Refusal(400, 1004, f"a message has at most {_MAX_PARTS} parts")
    for index, part in enumerate(parts):
        issue = _part_issue(index, part)
        if issue is not None:
            return Refusal(400, 1004, issue)
    kinds = [part["type"] for part in parts]
    alone = next((k for k in kinds if k in _ALONE), None)
    if alone is not None and len(kinds) > 1:
        return Refusal(400, 1004, f"a {alone} part must be the only part in the message")
    if any(a == b == "text" for a, b in itertools.pairwise(kinds)):
        return Refusal(400, 1004, "text parts must be separated by media parts")
    issue = None
    texts = (p["value"] for p in parts if p["type"] == "text")
    if "link" in kinds or any(_URL.search(text) for text in texts):
        issue = "The first message of a new chat cannot contain a link"
    elif message.get("effect") is not None or message.get("reply_to") is not None:
        issue = "The first message of a new chat cannot carry an effect or a reply_to"
    return tuple(parts), issue


def _recipients(value: object) -> tuple[str, ...] | Refusal:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_RECIPIENTS:
        return Refusal(400, 1005, f"to must list 1 to {MAX_RECIPIENTS} handles")
    for index, handle in enumerate(value):
        if not is_handle(handle):
            code = 1005 if not isinstance(handle, str) or "@" in handle else 1002
            detail = "an E.164 number or an email address"
            return Refusal(400, code, f"to[{index}] must be {detail}, got {handle!r}")
    unique: dict[str, str] = {}  # a set of handles: the first spelling of each
    for handle in value:
        unique.setdefault(handle_key(handle), handle)
    return tuple(unique.values())


def chat_request(body: bytes) -> SendRequest | Refusal:
    """The checked body of ``POST /v3/chats``, or the refusal to answer it with."""
    payload = _object(body)
    if isinstance(payload, Refusal):
        return payload
    refusal = _missing(payload, "from", "to", "message") or _sender_issue(payload["from"])
    if refusal is not None:
        return refusal
    to = _recipients(payload["to"])
    if isinstance(to, Refusal):
        return to
    content = _content(payload["message"])
    if isinstance(content, Refusal):
        return content
    override = _override(payload)
    if isinstance(override, Refusal):
        return override
    parts, issue = content
    return SendRequest(payload["from"], to, parts, issue, override)


def _sender_issue(sender: object) -> Refusal | None:
    if not isinstance(sender, str):
        return Refusal(400, 1005, "from must be a string")
    return None if is_e164(sender) else Refusal(400, 1002)


def message_request(body: bytes) -> SendRequest | Refusal:
    """The checked body of ``POST /v3/chats/{id}/messages``, or the refusal."""
    payload = _object(body)
    if isinstance(payload, Refusal):
        return payload
    refusal = _missing(payload, "message")
    if refusal is not None:
        return refusal
    content = _content(payload["message"])
    if isinstance(content, Refusal):
        return content
    override = _override(payload)
    if isinstance(override, Refusal):
        return override
    return SendRequest(parts=content[0], override_optout=override)


def voice_memo_request(body: bytes) -> SendRequest | Refusal:
    """The checked body of ``POST /v3/chats/{id}/voicememo``, or the refusal."""
    payload = _object(body)
    if isinstance(payload, Refusal):
        return payload
    url, attachment = payload.get("voice_memo_url"), payload.get("attachment_id")
    refusal = _memo_issue(url, attachment)
    if refusal is not None:
        return refusal
    override = _override(payload)
    if isinstance(override, Refusal):
        return override
    return SendRequest(override_optout=override, voice_memo_url=url, attachment_id=attachment)


def _memo_issue(url: object, attachment: object) -> Refusal | None:
    """Why a voice memo's source is refused: exactly one of a public https URL or an id."""
    if url is None and attachment is None:
        return Refusal(400, 1001, "Missing required field: voice_memo_url or attachment_id")
    if url is not None and attachment is not None:
        return Refusal(400, 1005, "give voice_memo_url or attachment_id, not both")
    if url is not None and not (isinstance(url, str) and url.lower().startswith("https://")):
        return Refusal(400, 1005, "voice_memo_url must be a public https URL")
    if attachment is not None and not (isinstance(attachment, str) and attachment):
        return Refusal(400, 1005, "attachment_id must be a non-empty string")
    return None
