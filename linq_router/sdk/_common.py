"""What ``Sender`` and ``ReportingTransport`` share, sync and async alike: no I/O here.

``Sent`` (what ``create_chat`` returns), the bounded book of which line sent which
chat and message, the arguments' checks, the test for "this error was raised before
the request left", and the create loop's decisions.
"""

from __future__ import annotations

import collections
import inspect
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

import attrs
import httpx
import linq
from linq.types import ChatCreateResponse

from linq_router._arguments import check_count, shown
from linq_router._pick import Pick, make_context
from linq_router.feedback import Verdict

__all__ = [
    "DEFAULT_MAX_CHATS",
    "ChatBook",
    "CreateAttempts",
    "Sent",
    "check_chat_line",
    "check_clients",
    "check_max_chats",
    "check_max_repicks",
    "check_router",
    "checked_recipients",
    "is_before_send",
    "recipients_of",
    "report_failed",
]

logger = logging.getLogger("linq_router")

DEFAULT_MAX_CHATS = 100_000
"""How many chats (and, separately, messages) a sender remembers the line of."""

_K = TypeVar("_K")
_V = TypeVar("_V")


@attrs.frozen
class Sent:
    """What ``Sender.create_chat`` returns: the SDK's answer, the pick, every attempt.

    ``response`` is the SDK's own ``ChatCreateResponse``, unchanged. ``pick`` is the
    pick the chat went out on; ``attempts`` lists ``(phone_number, verdict)`` for every
    create sent, in order, the last one ``SUCCESS`` (a 2027 on an earlier line, then
    success on another, reads ``(("+1…01", LINE_INELIGIBLE), ("+1…02", SUCCESS))``).

    .. versionadded:: 0.3
    """

    response: ChatCreateResponse = attrs.field(repr=False)
    pick: Pick
    attempts: tuple[tuple[str, Verdict], ...]

    @property
    def chat_id(self) -> str:
        """The new chat's id (``response.chat.id``)."""
        return self.response.chat.id

    @property
    def phone_number(self) -> str:
        """The line the chat went out on (``pick.phone_number``)."""
        return self.pick.phone_number


class _LRU(Generic[_K, _V]):
    """A dict bounded to ``size`` entries, the least recently used going first.

    Locked: a sender is shared by threads.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: collections.OrderedDict[_K, _V] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


@attrs.frozen
class _Chat:
    line: str
    to: tuple[str, ...] | None


class ChatBook:
    """Which line a chat, and a message, went out on; both bounded to ``size`` entries."""

    def __init__(self, size: int) -> None:
        self._chats: _LRU[str, _Chat] = _LRU(size)
        self._messages: _LRU[str, str] = _LRU(size)

    def remember(self, chat_id: str, line: str, to: tuple[str, ...] | None = None) -> None:
        """Record that ``chat_id`` sends from ``line`` (to ``to``, when known)."""
        known = self._chats.get(chat_id)
        # remember() without handles must not forget the handles a create recorded.
        if to is None and known is not None and known.line == line:
            to = known.to
        self._chats.put(chat_id, _Chat(line, to))

    def chat(self, chat_id: str) -> tuple[str, tuple[str, ...] | None] | None:
        """``(line, to)`` for a chat we know, else ``None``."""
        known = self._chats.get(chat_id)
        return None if known is None else (known.line, known.to)

    def sent_message(self, message_id: str, line: str) -> None:
        """Record that ``message_id`` went out on ``line``."""
        self._messages.put(message_id, line)

    def line_for_message(self, message_id: str) -> str | None:
        """The line ``message_id`` went out on, if we sent it (and still remember)."""
        return self._messages.get(message_id)

    def learn_create(self, response: ChatCreateResponse, line: str, to: tuple[str, ...]) -> None:
        """Record the chat (and its first message) a successful create made."""
        chat = response.chat
        self.remember(chat.id, line, to)
        self.sent_message(chat.message.id, line)


def check_max_chats(value: object) -> int:
    """``max_chats`` if it is an int of at least 1."""
    return check_count("max_chats", value)


def check_max_repicks(value: object) -> int:
    """``max_repicks`` if it is an int of at least 0."""
    return check_count("max_repicks", value, minimum=0)


def check_chat_line(chat_id: object, phone_number: object) -> None:
    """A ``TypeError``/``ValueError`` unless both are non-empty strings."""
    for name, value in (("chat_id", chat_id), ("phone_number", phone_number)):
        if not isinstance(value, str):
            msg = f"{name} must be a str, got {type(value).__name__} {shown(value)}"
            raise TypeError(msg)
        if not value.strip():
            msg = f"{name} must not be empty, got {shown(value)}"
            raise ValueError(msg)


def checked_recipients(to: object) -> tuple[str, ...]:
    """``to`` as a tuple of handles, checked as a pick checks them (``ValueError``)."""
    handles = recipients_of(to)
    make_context(handles)
    return handles


def check_clients(owner: str, router: object, client: object, *, want_async: bool) -> None:
    """A ``TypeError`` when ``router`` or ``client`` is not the twin ``owner`` drives."""
    sync_type, async_type = linq.LinqAPIV3, linq.AsyncLinqAPIV3
    wanted, other = (async_type, sync_type) if want_async else (sync_type, async_type)
    twin = "Sender" if want_async else "AsyncSender"
    if isinstance(client, other):
        msg = f"{owner} drives a {wanted.__name__}, got {other.__name__}: use {twin} for it"
        raise TypeError(msg)
    if not isinstance(client, wanted):
        msg = f"client must be a linq.{wanted.__name__}, got {type(client).__name__}"
        raise TypeError(msg)
    check_router(owner, router, want_async=want_async)


def check_router(owner: str, router: object, *, want_async: bool) -> None:
    """A ``TypeError`` unless ``router`` is a (sync or async, as wanted) router."""
    wanted = "AsyncRouter" if want_async else "Router"
    pick, report = getattr(router, "pick", None), getattr(router, "report", None)
    if not callable(pick) or not callable(report):
        msg = f"router must be a {wanted} (pick and report), got {type(router).__name__}"
        raise TypeError(msg)
    if inspect.iscoroutinefunction(pick) != want_async:
        kind = "asyncio" if want_async else "synchronous"
        msg = f"{owner} needs a {kind} router ({wanted}), got {type(router).__name__}"
        raise TypeError(msg)


def recipients_of(to: object) -> tuple[str, ...]:
    """``to`` as a tuple of handles: one handle, or several."""
    if isinstance(to, str):
        return (to,)
    if isinstance(to, Iterable) and not isinstance(to, (bytes, bytearray, Mapping)):
        return tuple(to)
    return (to,)  # type: ignore[return-value] # the router's pick says what is wrong


def is_before_send(error: BaseException) -> bool:
    """True if ``error`` (the SDK's) was raised before the request left: a connect error.

    The SDK raises ``APIConnectionError`` (``APITimeoutError`` for a timeout) ``from``
    httpx's own error, so the cause says which phase failed: connecting
    (``httpx.ConnectError``, ``httpx.ConnectTimeout``: nothing was sent) or anything
    else (a read or write error or timeout, a dropped connection: the request may have
    arrived). A pool timeout counts as unknown too: safe to retry, but no line's fault.
    """
    if not isinstance(error, linq.APIConnectionError):
        return False
    seen: set[int] = set()
    cause: BaseException | None = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout)):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


_warned: set[str] = set()
_warned_lock = threading.Lock()


def report_failed(where: str, exc: BaseException) -> None:
    """Log a report that raised (a WARNING once per kind of error, then DEBUG); no more.

    A send's outcome matters more than its report, so this never raises.
    """
    kind = f"{where}:{type(exc).__qualname__}"
    with _warned_lock:
        first = kind not in _warned
        _warned.add(kind)
    level = logging.WARNING if first else logging.DEBUG
    logger.log(level, "reporting the outcome of %s failed: %r", where, exc, exc_info=exc)


_EXTRA_PICKS = 3
"""How many more picks a resend makes to find a line its call has not tried yet."""


class CreateAttempts:
    """The create loop's memory and decisions: what to do after each attempt."""

    __slots__ = ("_extra", "_tried", "attempts", "max_repicks")

    def __init__(self, max_repicks: int) -> None:
        self.max_repicks = max_repicks
        self.attempts: list[tuple[str, Verdict]] = []
        self._tried: set[str] = set()
        self._extra = 0

    def fresh(self, pick: Pick) -> bool:
        """True to send from ``pick``; False to pick again first.

        A resend goes to another line: an ejected line is out of the picks already, but
        a connect error ejects nothing (and ``Router(ejection=None)`` nothing at all).
        A few more picks find one this call has not tried; a router that keeps
        answering the same line (sticky, or one line left) gets its way, since nothing
        was sent.
        """
        if pick.phone_number in self._tried and self._extra < _EXTRA_PICKS:
            self._extra += 1
            return False
        self._extra = 0
        return True

    def record(self, pick: Pick, verdict: Verdict) -> None:
        """Add one attempt."""
        self.attempts.append((pick.phone_number, verdict))
        self._tried.add(pick.phone_number)

    def retry(self, pick: Pick, verdict: Verdict, error: BaseException) -> bool:
        """After ``error`` on ``pick``: pick again and resend (True), or raise (False).

        Only when nothing can have been created: a 2027 (Linq refused the line before
        creating anything) or a connect error (the request never left). A 5xx, a
        timeout or a dropped connection may have created the chat: never resent.
        """
        safe = verdict is Verdict.LINE_INELIGIBLE or is_before_send(error)
        again = safe and len(self.attempts) <= self.max_repicks
        logger.debug(
            "create from %s: %s (%s); %s",
            pick.phone_number,
            verdict,
            type(error).__name__,
            "picking again" if again else "raising",
        )
        return again

    def sent(self, response: ChatCreateResponse, pick: Pick) -> Sent:
        """The ``Sent`` for a create that succeeded on ``pick``."""
        return Sent(response, pick, tuple(self.attempts))
