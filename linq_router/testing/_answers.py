"""Answers the fake API builds, as plans the HTTP layer carries out, and chats' payloads.

No I/O: the server decides, these build what it answers.
"""

from __future__ import annotations

import json
import math
import mimetypes
import posixpath
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import attrs

from linq_router._parsing import is_e164

from ._fake_checks import SendRequest
from ._faults import Fault, error_envelope
from ._http import Plan

__all__ = ["Chat", "error_plan", "fault_plan", "forwarding_number", "json_plan", "timestamp"]

_CDN = "https://cdn.linqapp.com/attachments"
_CHAT_HEALTH = "https://docs.linqapp.com/channel/imessage/guides/chats/chat-health#healthy"
_HANDLE_IDS = uuid.UUID("8a1f4c2e-3b5d-4e6f-9a7b-0c1d2e3f4a5b")
# mimetypes reads the system's tables, so the voice memo formats Linq lists are fixed here.
_AUDIO = {
    ".aac": "audio/aac",
    ".aiff": "audio/aiff",
    ".amr": "audio/amr",
    ".caf": "audio/x-caf",
    ".m4a": "audio/x-m4a",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
}


def json_plan(status: int, payload: object) -> Plan:
    """A JSON answer."""
    return Plan(status=status, body=json.dumps(payload).encode())


def error_plan(
    status: int,
    code: int | None = None,
    message: str | None = None,
    *,
    retry_after: float | None = None,
) -> Plan:
    """An answer in Linq's error envelope; ``retry_after`` adds the header and the field."""
    if retry_after is None:
        return json_plan(status, error_envelope(status, code, message))
    seconds = math.ceil(retry_after)  # Linq sends whole seconds; never promise too soon
    plan = json_plan(status, error_envelope(status, code, message, retry_after=seconds))
    return attrs.evolve(plan, headers=(("Retry-After", str(seconds)),))


def fault_plan(fault: Fault) -> Plan:
    """The answer to a request that consumed an error, body or drop fault."""
    delay = fault.delay or 0.0
    if fault.kind == "drop":
        return Plan(drop=True, delay=delay)
    if fault.kind in {"malformed", "wrong-shape"}:
        plan = Plan(status=200, body=fault.replacement_body())
    else:
        plan = Plan(status=fault.status or 500, body=fault.error_body())
    return attrs.evolve(plan, delay=delay, headers=tuple(fault.headers()))


def forwarding_number(body: bytes) -> str | Plan | None:
    """The forwarding number a PUT body asks for (None clears), or the error to answer."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the stack
        return error_plan(400, 1003)
    if not isinstance(payload, dict):
        return error_plan(400, 1003)
    if "forwarding_number" not in payload:
        return error_plan(400, 1001, "Missing required field: forwarding_number")
    value = payload["forwarding_number"]
    if value is not None and not isinstance(value, str):
        return error_plan(422, 1005, "forwarding_number must be a string or null")
    if value and not is_e164(value):
        return error_plan(400, 1002)
    return value or None


# -- chats ---------------------------------------------------------------------------


def timestamp() -> str:
    """Now, as Linq writes it (the API's timestamps are wall-clock, not the test clock)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.frozen
class Chat:
    """A chat the fake created: the line it lives on and its recipients."""

    id: str
    line_id: str
    from_: str
    to: tuple[str, ...]
    line_type: str | None
    created_at: str

    @property
    def service(self) -> str:
        """The chat's service: an RCS line never sends iMessage."""
        return "RCS" if self.line_type == "RCS" else "iMessage"

    def handles(self) -> list[dict[str, Any]]:
        """The participants as ``ChatHandle`` objects, the line first."""
        return [self._handle(self.from_, me=True)] + [self._handle(h) for h in self.to]

    def _handle(self, handle: str, *, me: bool = False) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": str(uuid.uuid5(_HANDLE_IDS, f"{self.id}:{handle}")),
            "handle": handle,
            "joined_at": self.created_at,
            "service": self.service,
            "is_me": me,
            "status": "active",
        }
        if me and self.line_type in {"iMessage", "RCS"}:
            entry["line_type"] = self.line_type
        return entry

    def message(self, message_id: str, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """A ``SentMessage`` object (the SDK's) for a message just queued on this chat."""
        return {
            "id": message_id,
            "created_at": timestamp(),
            "delivery_status": "queued",
            "is_read": False,
            "parts": [_part(part) for part in parts],
            "sent_at": None,
            "from_handle": self.handles()[0],
            "service": self.service,
        }

    def created(self, message: dict[str, Any]) -> dict[str, Any]:
        """The body of a successful ``POST /v3/chats``."""
        chat = {
            "id": self.id,
            "display_name": ", ".join(self.to),
            "handles": self.handles(),
            "health_status": {
                "doc_url": _CHAT_HEALTH,
                "status": "HEALTHY",
                "updated_at": self.created_at,
            },
            "is_group": len(self.to) > 1,
            "message": message,
            "service": self.service,
        }
        return {"chat": chat}

    def voice_memo(self, message_id: str, request: SendRequest) -> dict[str, Any]:
        """The body of a successful ``POST /v3/chats/{id}/voicememo``."""
        memo_id = request.attachment_id or str(uuid.uuid4())
        name = "voice-memo.m4a"
        if request.voice_memo_url:
            name = posixpath.basename(urlsplit(request.voice_memo_url).path) or name
        mime = _AUDIO.get(posixpath.splitext(name)[1].lower(), "audio/mpeg")
        memo = {
            "id": message_id,
            "chat": {
                "id": self.id,
                "handles": self.handles(),
                "is_active": True,
                "is_group": len(self.to) > 1,
                "service": self.service,
            },
            "created_at": timestamp(),
            "from": self.from_,
            "status": "queued",
            "to": list(self.to),
            "voice_memo": {
                "id": memo_id,
                "filename": name,
                "mime_type": mime,
                "size_bytes": 0,
                "url": f"{_CDN}/{memo_id}/{name}",
                "duration_ms": None,
            },
            "service": self.service,
        }
        return {"voice_memo": memo}


def _part(part: dict[str, Any]) -> dict[str, Any]:
    """A request's message part as the response echoes it."""
    kind = part["type"]
    if kind in {"text", "link", "app_clip"}:
        return {"type": kind, "value": part["value"]}
    if kind == "imessage_app":
        return {
            "type": kind,
            "app": part["app"],
            "layout": part["layout"],
            "url": part.get("url") or "",
        }
    attachment = part.get("attachment_id") or str(uuid.uuid4())
    name = posixpath.basename(urlsplit(part.get("url") or "").path) or "attachment"
    return {
        "type": "media",
        "id": attachment,
        "filename": name,
        "mime_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
        "size_bytes": 0,
        "url": f"{_CDN}/{attachment}/{name}",
    }
