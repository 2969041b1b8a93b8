"""The fake API's sends: chats, per-line behaviours, opt-outs, the pair limit, ``SentMessage``.

``SendBook`` holds the state and decides each send; the server calls it under its own
lock and carries out the plan it returns. ``Sending`` is the server's public side of
it. No I/O.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Literal, get_args

import attrs

from linq_router._parsing import is_e164

from ._answers import Chat, error_plan, json_plan, timestamp
from ._fake_checks import (
    Refusal,
    chat_request,
    check_handle,
    handle_key,
    message_request,
    voice_memo_request,
)
from ._fake_data import Line, find_line
from ._http import Plan
from ._routes import CREATE_CHAT_ROUTE, SEND_MESSAGE_ROUTE, VOICE_MEMO_ROUTE

__all__ = [
    "LINE_BEHAVIOURS",
    "PAIR_LIMIT",
    "PAIR_WINDOW",
    "FailedLater",
    "LineBehaviour",
    "SendBook",
    "SendKind",
    "Sending",
    "SentMessage",
]

SendKind = Literal["chat", "message", "voice_memo"]
"""What a send was: a chat created (or reused) with its first message, a message on
a chat, or a voice memo on a chat."""

LineBehaviour = Literal["ok", "ineligible", "failing", "ineligible-async"]
"""How a line answers sends: normally, 403 / 2027 (ineligible), 500 / 3006, or
normally and then a ``message.failed`` webhook (ineligible-async)."""

LINE_BEHAVIOURS: tuple[str, ...] = get_args(LineBehaviour)

PAIR_LIMIT = 30
"""Linq's hard limit: messages a sender-recipient pair may exchange per ``PAIR_WINDOW``."""
PAIR_WINDOW = 60.0
"""Seconds of the pair limit's moving window."""

_KINDS: dict[str, SendKind] = {
    CREATE_CHAT_ROUTE: "chat",
    SEND_MESSAGE_ROUTE: "message",
    VOICE_MEMO_ROUTE: "voice_memo",
}
_CREATED, _REUSED, _QUEUED = 201, 200, 202
_FAILED_CODE = 2027  # an "ineligible-async" line's message.failed code unless told


@attrs.frozen
class FailedLater:
    """A send accepted from an ``"ineligible-async"`` line: its ``message.failed`` to come."""

    chat_id: str
    message_id: str
    code: int
    service: str


@attrs.frozen
class SentMessage:
    """One send ``FakeLinqServer`` received, accepted or not, in arrival order.

    ``kind`` is ``"chat"`` (``POST /v3/chats``), ``"message"``
    (``POST /v3/chats/{id}/messages``) or ``"voice_memo"``
    (``POST /v3/chats/{id}/voicememo``). ``from_`` is the E.164 number of the line it
    went out on (for messages and voice memos, the chat's line), as the request gave
    it when it named no line of the fake's, and ``""`` when it named none. ``to`` holds
    the recipients' handles. ``chat_id`` is the chat it was for (``None`` for a
    refused create of a chat that does not exist yet); ``message_id`` is set when it
    was accepted. ``status`` is the HTTP status answered, ``code`` the Linq error code
    (``None`` when accepted), ``at`` the server clock's reading when it arrived.

    .. versionadded:: 0.3
    """

    kind: SendKind
    from_: str
    to: tuple[str, ...]
    chat_id: str | None
    message_id: str | None
    status: int
    code: int | None
    at: float

    @property
    def accepted(self) -> bool:
        """True when Linq took the send (a 2xx answer)."""
        return self.status < 400


def _who(body: bytes) -> tuple[str, tuple[str, ...]]:
    """(from, to) as far as a body gives them, for logging a send refused unread."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return "", ()
    if not isinstance(payload, dict):
        return "", ()
    sender, to = payload.get("from"), payload.get("to")
    handles = tuple(h for h in to if isinstance(h, str)) if isinstance(to, list) else ()
    return (sender if isinstance(sender, str) else ""), handles


class SendBook:
    """The send state of one ``FakeLinqServer``: chats, behaviours, opt-outs, windows.

    Not locked: the server calls it under its own lock. ``on_failure`` hears of each
    send accepted from an ``"ineligible-async"`` line (the server queues a webhook).
    """

    def __init__(self, on_failure: Callable[[FailedLater], None] | None = None) -> None:
        self.sends: list[SentMessage] = []
        self.behaviours: dict[str, LineBehaviour] = {}  # line id -> behaviour; absent: "ok"
        self.failed_codes: dict[str, int] = {}  # line id -> code, for "ineligible-async"
        self._on_failure = on_failure
        self.failing_later: list[FailedLater] = []
        self.opted_out: set[str] = set()  # handle_key()s
        self._chats: dict[str, Chat] = {}
        self._keys: dict[tuple[str, frozenset[str]], str] = {}  # (line id, to set) -> chat
        # (from number, handle key) -> arrival times of accepted sends, oldest first.
        self._windows: dict[tuple[str, str], deque[float]] = {}

    # -- deciding --------------------------------------------------------------------

    def answer(
        self, route: str, chat_id: str | None, body: bytes, lines: Sequence[Line], now: float
    ) -> Plan:
        """Decide a send to one of the send routes, log it, and return the answer."""
        kind = _KINDS[route]
        if kind == "chat":
            return self._create(body, lines, now)
        return self._follow_up(kind, chat_id or "", body, lines, now)

    def refused(
        self, route: str, chat_id: str | None, body: bytes, now: float, status: int, code: int
    ) -> None:
        """Log a send answered before the fake read it: a refused key, a queued fault."""
        kind = _KINDS[route]
        if kind == "chat":
            sender, to = _who(body)
            self.sends.append(SentMessage(kind, sender, to, None, None, status, code, now))
            return
        chat = self._chats.get(chat_id or "")
        sender, to = (chat.from_, chat.to) if chat is not None else ("", ())
        self.sends.append(SentMessage(kind, sender, to, chat_id, None, status, code, now))

    def _create(self, body: bytes, lines: Sequence[Line], now: float) -> Plan:
        request = chat_request(body)
        if isinstance(request, Refusal):
            sender, to = _who(body)
            return self._refuse(SentMessage("chat", sender, to, None, None, 0, None, now), request)
        draft = SentMessage("chat", request.from_, request.to, None, None, 0, None, now)
        line = next((x for x in lines if x.phone_number == request.from_), None)
        if line is None:
            message = f"{request.from_} is not one of your phone numbers"
            return self._refuse(draft, Refusal(403, 2005, message))
        key = (line.id, frozenset(handle_key(h) for h in request.to))
        chat = self._chats.get(self._keys.get(key, ""))
        if chat is not None:
            draft = attrs.evolve(draft, chat_id=chat.id)
        elif request.first_message_issue is not None:
            return self._refuse(draft, Refusal(400, 1005, request.first_message_issue))
        refusal = self._gate(line, request.to, request.override_optout, now)
        if refusal is not None:
            return self._refuse(draft, refusal)
        status = _REUSED
        if chat is None:
            chat = Chat(
                str(uuid.uuid4()),
                line.id,
                line.phone_number,
                request.to,
                line.line_type,
                timestamp(),
            )
            self._chats[chat.id] = chat
            self._keys[key] = chat.id
            status = _CREATED
        message_id = self._accept(draft, chat, status)
        return json_plan(status, chat.created(chat.message(message_id, request.parts)))

    def _follow_up(
        self, kind: SendKind, chat_id: str, body: bytes, lines: Sequence[Line], now: float
    ) -> Plan:
        chat = self._chats.get(chat_id)
        if chat is None:
            draft = SentMessage(kind, "", (), chat_id, None, 0, None, now)
            return self._refuse(draft, Refusal(404, 2001, f"Chat {chat_id} not found"))
        draft = SentMessage(kind, chat.from_, chat.to, chat_id, None, 0, None, now)
        request = message_request(body) if kind == "message" else voice_memo_request(body)
        if isinstance(request, Refusal):
            return self._refuse(draft, request)
        line = next((x for x in lines if x.id == chat.line_id), None)
        if line is None:
            message = f"{chat.from_}, the line of chat {chat_id}, is no longer one of yours"
            return self._refuse(draft, Refusal(403, 2005, message))
        refusal = self._gate(line, chat.to, request.override_optout, now)
        if refusal is not None:
            return self._refuse(draft, refusal)
        message_id = self._accept(draft, chat, _QUEUED)
        if kind == "message":
            payload = {"chat_id": chat.id, "message": chat.message(message_id, request.parts)}
            return json_plan(_QUEUED, payload)
        return json_plan(_QUEUED, chat.voice_memo(message_id, request))

    def _gate(
        self, line: Line, to: Sequence[str], override_optout: bool, now: float
    ) -> Refusal | None:
        """Why a well-formed send from ``line`` is refused, checked in Linq's order."""
        behaviour = self.behaviours.get(line.id, "ok")
        if behaviour == "ineligible":
            return Refusal(403, 2027)
        if behaviour == "failing":
            return Refusal(500, 3006)
        if not override_optout:
            out = next((h for h in to if handle_key(h) in self.opted_out), None)
            if out is not None:
                return Refusal(403, 2024, f"{out} has opted out of messages")
        wait = self._wait(line.phone_number, to, now)
        if wait > 0:
            return Refusal(429, 1007, retry_after=wait)
        return None

    def _wait(self, sender: str, to: Sequence[str], now: float) -> float:
        """Seconds until every pair (sender, recipient) has room again; 0 when it has now."""
        wait = 0.0
        for handle in to:
            window = self._windows.get((sender, handle_key(handle)))
            if not window:
                continue
            while window and window[0] <= now - PAIR_WINDOW:
                window.popleft()
            if len(window) >= PAIR_LIMIT:
                wait = max(wait, window[-PAIR_LIMIT] + PAIR_WINDOW - now)
        return wait

    def _refuse(self, draft: SentMessage, refusal: Refusal) -> Plan:
        self.sends.append(attrs.evolve(draft, status=refusal.status, code=refusal.code))
        return error_plan(
            refusal.status, refusal.code, refusal.message, retry_after=refusal.retry_after
        )

    def _accept(self, draft: SentMessage, chat: Chat, status: int) -> str:
        """Log an accepted send, count it against each of its pairs; its message id."""
        message_id = str(uuid.uuid4())
        for handle in draft.to:
            window = self._windows.setdefault((draft.from_, handle_key(handle)), deque())
            window.append(draft.at)
        self.sends.append(
            attrs.evolve(draft, chat_id=chat.id, message_id=message_id, status=status)
        )
        code = self.failed_codes.get(chat.line_id)
        if code is not None and self._on_failure is not None:
            # Heard once the answer is written: the webhook must not overtake the answer.
            self.failing_later.append(FailedLater(chat.id, message_id, code, chat.service))
        return message_id

    def take_failures(self) -> Callable[[], None] | None:
        """What to call after the answer is written: the failures that answer decided."""
        failures, self.failing_later = self.failing_later, []
        hook = self._on_failure
        if not failures or hook is None:
            return None

        def tell() -> None:
            for failure in failures:
                hook(failure)

        return tell

    def direct_chat(self, line_id: str, handle: str) -> Chat | None:
        """The chat between the line and ``handle`` alone, if a send created one."""
        return self._chats.get(self._keys.get((line_id, frozenset({handle_key(handle)})), ""))

    # -- counting --------------------------------------------------------------------

    def send_count(self, number: str | None) -> int:
        """Accepted sends, from the line with E.164 ``number`` when given."""
        return sum(1 for s in self.sends if s.accepted and number in {None, s.from_})

    def rejected_count(self, number: str | None, code: int | None) -> int:
        """Refused sends, from ``number`` and with ``code`` when given."""
        return sum(
            1
            for s in self.sends
            if not s.accepted and number in {None, s.from_} and code in {None, s.code}
        )


class Sending:
    """``FakeLinqServer``'s send methods: line behaviours, opt-outs, ``sends`` and counts.

    A base class: the server holds its ``SendBook`` in ``_sends`` and its lines in
    ``_lines``, both under ``_cond``.
    """

    _cond: threading.Condition
    _lines: list[Line]
    _sends: SendBook

    def set_line_behaviour(
        self, number: str, behaviour: LineBehaviour, *, failed_code: int | None = None
    ) -> None:
        """Make a line's sends answer normally, be refused, fail, or fail after acceptance.

        ``number`` is the line's E.164 number or its id. ``"ineligible"``: every send
        from it (a create, and messages and voice memos on its chats) answers 403 with
        code 2027; ``"failing"``: 500 with code 3006; nothing is created either way.
        ``"ineligible-async"``: every send is accepted as usual (chat and message ids),
        then a ``message.failed`` webhook for it is delivered, with code
        ``failed_code`` (2027 unless given; any int, e.g. 4005), if the server has a
        ``webhook_url``. ``"ok"`` (the default) answers normally again. Reads are
        unaffected. An unknown line or behaviour is a ``ValueError`` naming it and the
        accepted values, as is a ``failed_code`` with another behaviour.

        .. versionadded:: 0.3
        .. versionchanged:: 0.4 ``"ineligible-async"`` and ``failed_code``.
        """
        if behaviour not in LINE_BEHAVIOURS:
            expected = ", ".join(map(repr, LINE_BEHAVIOURS))
            msg = f"behaviour must be one of {expected}, got {behaviour!r}"
            raise ValueError(msg)
        if failed_code is not None and (
            behaviour != "ineligible-async"
            or not isinstance(failed_code, int)
            or isinstance(failed_code, bool)
        ):
            msg = f"failed_code must be an int, with 'ineligible-async' only, got {failed_code!r}"
            raise ValueError(msg)
        with self._cond:
            try:
                line = find_line(self._lines, number)
            except KeyError:
                known = ", ".join(repr(x.phone_number) for x in self._lines[:10]) or "none"
                more = ", ..." if len(self._lines) > 10 else ""
                msg = (
                    f"number must be the E.164 number or id of one of the lines "
                    f"({known}{more}), got {number!r}"
                )
                raise ValueError(msg) from None
            self._sends.failed_codes.pop(line.id, None)
            if behaviour == "ok":
                self._sends.behaviours.pop(line.id, None)
            else:
                self._sends.behaviours[line.id] = behaviour
            if behaviour == "ineligible-async":
                self._sends.failed_codes[line.id] = (
                    _FAILED_CODE if failed_code is None else failed_code
                )

    def opt_out(self, handle: str) -> None:
        """Opt a recipient out: a send to any chat with ``handle`` answers 403 / 2024.

        ``handle`` is an E.164 number or an email (emails match in any case); anything
        else is refused. Creates, messages and voice memos are refused alike, on every
        line, unless the request sets ``override_optout``. ``opt_in`` ends it.

        .. versionadded:: 0.3
        """
        key = handle_key(check_handle(handle))
        with self._cond:
            self._sends.opted_out.add(key)

    def opt_in(self, handle: str) -> None:
        """End ``opt_out(handle)``; a handle that is not opted out stays as it is.

        .. versionadded:: 0.3
        """
        key = handle_key(check_handle(handle))
        with self._cond:
            self._sends.opted_out.discard(key)

    @property
    def sends(self) -> list[SentMessage]:
        """Every send since start (or ``reset_counts()``), accepted or refused, oldest first.

        Sends a ``"drop"``, ``"malformed"`` or ``"wrong-shape"`` fault answered are not
        in it (no Linq status was answered); ``requests`` has them.

        .. versionadded:: 0.3
        """
        with self._cond:
            return list(self._sends.sends)

    def send_count(self, number: str | None = None) -> int:
        """How many sends were accepted; from one line when ``number`` (E.164 or id) is given.

        .. versionadded:: 0.3
        """
        with self._cond:
            return self._sends.send_count(self._sender(number))

    def rejected_count(self, number: str | None = None, code: int | None = None) -> int:
        """How many sends were refused, from ``number`` and with the Linq ``code`` if given.

        .. versionadded:: 0.3
        """
        with self._cond:
            return self._sends.rejected_count(self._sender(number), code)

    def _sender(self, number: str | None) -> str | None:
        """The E.164 number sends record for ``number`` (a number, or a line's id)."""
        if number is None or is_e164(number):
            return number
        line = next((x for x in self._lines if x.id == number), None)
        if line is None:
            msg = f"number must be an E.164 number or the id of a line, got {number!r}"
            raise ValueError(msg)
        return line.phone_number
