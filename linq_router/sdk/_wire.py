"""Reading a send off the wire, for ``ReportingTransport``: no I/O here.

Which requests are sends (``POST /v3/chats``, ``.../messages``, ``.../voicememo``),
the line and recipients a create names, the outcome an answer says (Linq's error
envelope), and the chat a create's answer made.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import attrs
import httpx

from linq_router.feedback import Outcome, OutcomeLike

from ._common import checked_recipients

__all__ = ["SentRequest", "chat_of_create", "outcome_of_answer", "parse_send"]

_CREATE = re.compile(r"(?:^|/)v3/chats/?$")
_ON_CHAT = re.compile(r"(?:^|/)v3/chats/([^/]+)/(messages|voicememo)/?$")


@attrs.frozen
class SentRequest:
    """A send seen on the wire: a create (with ``line`` and ``to``) or a send on a chat."""

    kind: str  # "create", "messages" or "voicememo"
    chat_id: str | None = None
    line: str | None = None
    to: tuple[str, ...] | None = None


def parse_send(request: httpx.Request) -> SentRequest | None:
    """The send ``request`` is, or ``None`` for anything else (a list, a read...)."""
    if request.method != "POST":
        return None
    path = request.url.path
    if _CREATE.search(path):
        return _create_of(request)
    match = _ON_CHAT.search(path)
    if match is None:
        return None
    return SentRequest(match.group(2), match.group(1))


def _create_of(request: httpx.Request) -> SentRequest | None:
    try:
        content = request.content
    except httpx.RequestNotRead:  # a streamed body: nothing to read the line from
        return None
    body = _json(content)
    line = body.get("from") if isinstance(body, dict) else None
    if not isinstance(line, str):
        return None
    try:  # recipients the router would refuse are not passed on (Linq refuses them too)
        handles: tuple[str, ...] | None = checked_recipients(body.get("to"))
    except ValueError:
        handles = None
    return SentRequest("create", None, line, handles)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _retry_after(headers: httpx.Headers, error: Mapping[str, Any]) -> float | None:
    for value in (error.get("retry_after"), headers.get("retry-after")):
        try:
            seconds = float(value) if value is not None else None
        except (TypeError, ValueError):
            continue
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def outcome_of_answer(status: int, headers: httpx.Headers, body: bytes) -> OutcomeLike:
    """The outcome an answer says (``None`` for a 2xx); the error code from Linq's envelope."""
    if 200 <= status < 300:
        return None
    parsed = _json(body) if body else None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    return Outcome(
        status,
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        _retry_after(headers, error),
    )


def chat_of_create(body: bytes) -> tuple[str, str | None] | None:
    """``(chat id, first message id)`` from a create's 2xx body, if it has them."""
    parsed = _json(body)
    chat = parsed.get("chat") if isinstance(parsed, dict) else None
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    if not isinstance(chat_id, str):
        return None
    message = chat.get("message") if isinstance(chat, dict) else None
    message_id = message.get("id") if isinstance(message, dict) else None
    return chat_id, message_id if isinstance(message_id, str) else None
