"""``Sender`` and ``AsyncSender``: sends through the official SDK, picked and reported.

The decisions (what to retry, what to remember) live in ``_common``; the twins only
pick, call the SDK and report, the async one awaiting those three.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import linq
from linq.types import ChatCreateResponse, ChatSendVoicememoResponse, MessageContentParam
from linq.types.chats import MessageSendResponse

from linq_router._arguments import check_seconds
from linq_router._errors import BudgetExhaustedError, LinqRouterError, PairLimitedError
from linq_router._pick import Pick
from linq_router._router import AsyncRouter, Router
from linq_router.feedback import OutcomeLike, Verdict, classify

from ._common import (
    DEFAULT_MAX_CHATS,
    ChatBook,
    CreateAttempts,
    Sent,
    check_chat_line,
    check_clients,
    check_max_chats,
    check_max_repicks,
    checked_recipients,
    recipients_of,
    report_failed,
)

__all__ = ["AsyncSender", "Sender"]

logger = logging.getLogger("linq_router")

_Recipients = str | Iterable[str]
_NAP = 0.01  # the shortest wait for a pair's room


class _SenderCore:
    """Everything but the I/O: arguments, the chat book, and what a send needs."""

    def __init__(
        self, client: Any, max_repicks: object, max_chats: object, max_wait: object
    ) -> None:
        self.client = client
        # Built once: with_options copies the client (sharing its connection pool). Every
        # send goes through it: the SDK would resend after a 500 or a timeout.
        self._once = client.with_options(max_retries=0)
        self.max_repicks = check_max_repicks(max_repicks)
        self.max_wait = float(check_seconds("max_wait", max_wait, positive=False))
        self._book = ChatBook(check_max_chats(max_chats))

    def _pair_limited(self, line: str, to: tuple[str, ...], wait: float) -> PairLimitedError:
        msg = (
            f"{line} may not send to {', '.join(to)} for {wait:.1f} s: the pair is at its "
            f"limit (max_wait={self.max_wait:g}); nothing was sent"
        )
        return PairLimitedError(msg, retry_after=wait, line=line, to=to)

    def _all_pair_limited(self, error: BudgetExhaustedError, waits: list[float | None]) -> None:
        """Raise ``PairLimitedError`` when every line out was out for this pair only."""
        if waits and all(w is not None and w > 0 for w in waits):
            numbers = sorted(error.resets)
            soonest = min(w for w in waits if w is not None)
            msg = f"{error}; every line is at its pair limit with these recipients"
            raise PairLimitedError(msg, retry_after=soonest, line=numbers[0], to=()) from error

    def remember(self, chat_id: str, phone_number: str, *, to: _Recipients | None = None) -> None:
        """Record that ``chat_id`` (created earlier, elsewhere) sends from ``phone_number``.

        Messages and voice memos on it are then reported against that line; ``to`` (its
        recipients) is passed on to ``Router.report`` when given.
        """
        check_chat_line(chat_id, phone_number)
        self._book.remember(chat_id, phone_number, None if to is None else checked_recipients(to))

    def line_for_chat(self, chat_id: str) -> str | None:
        """The line ``chat_id`` sends from, if this sender created it or was told."""
        known = self._book.chat(chat_id)
        return None if known is None else known[0]

    def line_for_message(self, message_id: str) -> str | None:
        """The line that sent ``message_id``, if this sender sent it (and still remembers).

        For attributing a ``message.failed`` webhook, which names no line. The first
        message of a chat ``create_chat`` made counts as sent.
        """
        return self._book.line_for_message(message_id)

    @staticmethod
    def _check_create_kwargs(kwargs: dict[str, Any]) -> None:
        for name in ("from_", "from"):
            if name in kwargs:
                msg = f"create_chat picks the line itself: do not pass {name}="
                raise TypeError(msg)

    def _on_chat(self, chat_id: str, what: str) -> tuple[str, tuple[str, ...] | None] | None:
        known = self._book.chat(chat_id)
        if known is None:
            logger.debug(
                "%s on chat %s: its line is unknown (not created by this sender, not "
                "remember()ed); sent, not reported",
                what,
                chat_id,
            )
        return known

    @staticmethod
    def _fallback(where: str, exc: Exception, outcome: OutcomeLike) -> Verdict:
        report_failed(where, exc)
        return classify(outcome)


class Sender(_SenderCore):
    """Sends through the official SDK (``linq.LinqAPIV3``) from the lines ``router`` picks.

    ``create_chat`` picks a line, creates the chat from it, reports the outcome to the
    router and hands back the SDK's answer in a ``Sent``. A create is never sent twice
    when it may have created the chat: the SDK's own retries are off for every send
    (they would resend a ``POST /v3/chats`` after a 500, which carries no idempotency
    key), and a 5xx, a timeout or a dropped connection is reported and raised. Only
    what created nothing is sent again, from another line, at most ``max_repicks``
    times: a 403 with code 2027 (the router has ejected that line by then) and a
    connect error (the request never left). The resend takes the router's next pick,
    picking up to three more times to avoid a line the call already tried (a router
    that insists, such as a sticky one, gets its way: nothing was sent).

    ``send_message`` and ``send_voice_memo`` go through the SDK as they are (without
    its retries either: a message resent after a 500 may arrive twice) and report
    against the chat's line: known for chats this
    sender created, or told with ``remember(chat_id, phone_number)``. A chat it does
    not know is sent and not reported. It remembers up to ``max_chats`` chats, and as
    many messages (``line_for_message``), dropping the least recently used.

    With pacing on (the router's default), no send goes over a sender-recipient pair at
    its limit: the sender waits for room up to ``max_wait`` seconds (default 0) and
    otherwise raises ``linq_router.PairLimitedError`` (with ``retry_after``) before any
    request is made; ``create_chat`` picks a line whose pair has room, and raises it
    only when every line's pair with the recipients is at its limit.

    Every error reaches the caller as the SDK's own exception (``linq.APIStatusError``
    and its subclasses, ``linq.APIConnectionError``...), never wrapped; a pick that
    finds no line before anything was sent raises ``NoEligibleNumberError``. Reporting
    never raises: a report that fails is logged. Safe to share between threads::

        sender = Sender(router, LinqAPIV3())
        sent = sender.create_chat(to=["+12025550123"], message={"parts": [...]})
        sent.response.chat.id, sent.phone_number, sent.attempts
        sender.send_message(sent.chat_id, message={"parts": [...]})

    .. versionadded:: 0.3
    """

    client: linq.LinqAPIV3
    _once: linq.LinqAPIV3

    def __init__(
        self,
        router: Router,
        client: linq.LinqAPIV3,
        *,
        max_repicks: int = 2,
        max_chats: int = DEFAULT_MAX_CHATS,
        max_wait: float = 0.0,
    ) -> None:
        check_clients("Sender", router, client, want_async=False)
        super().__init__(client, max_repicks, max_chats, max_wait)
        self.router = router

    def create_chat(
        self,
        *,
        to: _Recipients,
        message: MessageContentParam,
        purpose: str = "chat",
        **kwargs: Any,
    ) -> Sent:
        """Create a chat with ``to`` from a picked line; see the class docstring.

        ``kwargs`` go to ``client.chats.create`` (``override_optout``, ``timeout``,
        ``extra_headers``...). When a resend finds no line left, the last SDK error is
        raised.
        """
        self._check_create_kwargs(kwargs)
        recipients = recipients_of(to)
        tries = CreateAttempts(self.max_repicks)
        failed: linq.APIError | None = None
        while True:
            try:
                pick: Pick | None = self.router.pick(
                    recipients, purpose=purpose, wait=self.max_wait or None
                )
            except BudgetExhaustedError as error:
                if failed is None:
                    self._all_pair_limited(
                        error, [self.router.pair_retry_after(n, recipients) for n in error.resets]
                    )
                    raise
                pick = None
            except LinqRouterError:
                if failed is None:
                    raise
                pick = None
            if pick is None:
                # Raised here, out of the handler, so that its own context stays as it was.
                logger.debug("no line left to resend the create on; raising the last error")
                assert failed is not None  # only a resend's pick gets here
                raise failed
            if not tries.fresh(pick):
                continue
            self._hold(pick.phone_number, recipients)
            try:
                response = self._once.chats.create(
                    from_=pick.phone_number, to=list(recipients), message=message, **kwargs
                )
            except linq.APIError as exc:
                verdict = self._report(pick, exc, recipients)
                tries.record(pick, verdict)
                if not tries.retry(pick, verdict, exc):
                    raise
                failed = exc
                continue
            tries.record(pick, self._report(pick, None, recipients))
            self._book.learn_create(response, pick.phone_number, recipients)
            return tries.sent(response, pick)

    def send_message(
        self, chat_id: str, *, message: MessageContentParam, **kwargs: Any
    ) -> MessageSendResponse:
        """``client.chats.messages.send(chat_id, message=..., **kwargs)``, reported.

        Returns the SDK's answer unchanged. Sent once: a 5xx or a timeout is reported
        and raised, not resent (the outcome is unknown: the message may have gone out).
        """
        known = self._on_chat(chat_id, "message")
        if known is None:
            return self._once.chats.messages.send(chat_id, message=message, **kwargs)
        line, to = known
        self._hold(line, to)
        try:
            response = self._once.chats.messages.send(chat_id, message=message, **kwargs)
        except linq.APIError as exc:
            self._report(line, exc, to)
            raise
        self._report(line, None, to)
        self._book.sent_message(response.message.id, line)
        return response

    def send_voice_memo(self, chat_id: str, **kwargs: Any) -> ChatSendVoicememoResponse:
        """``client.chats.send_voicememo(chat_id, **kwargs)``, reported; the SDK's answer.

        The chat's line sends it, whatever the router would pick for a voice memo now.
        """
        known = self._on_chat(chat_id, "voice memo")
        if known is None:
            return self._once.chats.send_voicememo(chat_id, **kwargs)
        line, to = known
        self._hold(line, to)
        try:
            response = self._once.chats.send_voicememo(chat_id, **kwargs)
        except linq.APIError as exc:
            self._report(line, exc, to)
            raise
        self._report(line, None, to)
        self._book.sent_message(response.voice_memo.id, line)
        return response

    def _report(
        self, pick: Pick | str, outcome: OutcomeLike, to: tuple[str, ...] | None
    ) -> Verdict:
        try:
            return self.router.report(pick, outcome, to=to)
        except Exception as exc:  # the send's outcome matters more than its report
            return self._fallback("a send", exc, outcome)

    def _hold(self, line: str, to: tuple[str, ...] | None) -> None:
        """Wait for the pair to have room (up to ``max_wait``), or ``PairLimitedError``."""
        if not to:
            return
        deadline = time.monotonic() + self.max_wait
        while True:
            wait = self.router.pair_retry_after(line, to)
            if wait is None or wait <= 0:
                return
            if wait > deadline - time.monotonic():
                raise self._pair_limited(line, to, wait)
            time.sleep(max(_NAP, wait))

    def __repr__(self) -> str:
        return f"<Sender router={self.router!r} max_repicks={self.max_repicks}>"


class AsyncSender(_SenderCore):
    """The asyncio twin of ``Sender``, for ``linq.AsyncLinqAPIV3`` and ``AsyncRouter``.

    ``create_chat``, ``send_message`` and ``send_voice_memo`` are awaited; everything
    else, arguments and behaviour included, is as in ``Sender``.

    .. versionadded:: 0.3
    """

    client: linq.AsyncLinqAPIV3
    _once: linq.AsyncLinqAPIV3

    def __init__(
        self,
        router: AsyncRouter,
        client: linq.AsyncLinqAPIV3,
        *,
        max_repicks: int = 2,
        max_chats: int = DEFAULT_MAX_CHATS,
        max_wait: float = 0.0,
    ) -> None:
        check_clients("AsyncSender", router, client, want_async=True)
        super().__init__(client, max_repicks, max_chats, max_wait)
        self.router = router

    async def create_chat(
        self,
        *,
        to: _Recipients,
        message: MessageContentParam,
        purpose: str = "chat",
        **kwargs: Any,
    ) -> Sent:
        """Create a chat with ``to`` from a picked line; see ``Sender.create_chat``."""
        self._check_create_kwargs(kwargs)
        recipients = recipients_of(to)
        tries = CreateAttempts(self.max_repicks)
        failed: linq.APIError | None = None
        while True:
            try:
                pick: Pick | None = await self.router.pick(
                    recipients, purpose=purpose, wait=self.max_wait or None
                )
            except BudgetExhaustedError as error:
                if failed is None:
                    waits = [
                        await self.router.pair_retry_after(n, recipients) for n in error.resets
                    ]
                    self._all_pair_limited(error, waits)
                    raise
                pick = None
            except LinqRouterError:
                if failed is None:
                    raise
                pick = None
            if pick is None:
                # Raised here, out of the handler, so that its own context stays as it was.
                logger.debug("no line left to resend the create on; raising the last error")
                assert failed is not None  # only a resend's pick gets here
                raise failed
            if not tries.fresh(pick):
                continue
            await self._hold(pick.phone_number, recipients)
            try:
                response: ChatCreateResponse = await self._once.chats.create(
                    from_=pick.phone_number, to=list(recipients), message=message, **kwargs
                )
            except linq.APIError as exc:
                verdict = await self._report(pick, exc, recipients)
                tries.record(pick, verdict)
                if not tries.retry(pick, verdict, exc):
                    raise
                failed = exc
                continue
            tries.record(pick, await self._report(pick, None, recipients))
            self._book.learn_create(response, pick.phone_number, recipients)
            return tries.sent(response, pick)

    async def send_message(
        self, chat_id: str, *, message: MessageContentParam, **kwargs: Any
    ) -> MessageSendResponse:
        """``await client.chats.messages.send(...)``, reported; see ``Sender.send_message``."""
        known = self._on_chat(chat_id, "message")
        if known is None:
            return await self._once.chats.messages.send(chat_id, message=message, **kwargs)
        line, to = known
        await self._hold(line, to)
        try:
            response = await self._once.chats.messages.send(chat_id, message=message, **kwargs)
        except linq.APIError as exc:
            await self._report(line, exc, to)
            raise
        await self._report(line, None, to)
        self._book.sent_message(response.message.id, line)
        return response

    async def send_voice_memo(self, chat_id: str, **kwargs: Any) -> ChatSendVoicememoResponse:
        """``await client.chats.send_voicememo(...)``, reported; see ``Sender``."""
        known = self._on_chat(chat_id, "voice memo")
        if known is None:
            return await self._once.chats.send_voicememo(chat_id, **kwargs)
        line, to = known
        await self._hold(line, to)
        try:
            response = await self._once.chats.send_voicememo(chat_id, **kwargs)
        except linq.APIError as exc:
            await self._report(line, exc, to)
            raise
        await self._report(line, None, to)
        self._book.sent_message(response.voice_memo.id, line)
        return response

    async def _report(
        self, pick: Pick | str, outcome: OutcomeLike, to: tuple[str, ...] | None
    ) -> Verdict:
        try:
            return await self.router.report(pick, outcome, to=to)
        except Exception as exc:
            return self._fallback("a send", exc, outcome)

    async def _hold(self, line: str, to: tuple[str, ...] | None) -> None:
        """Wait for the pair to have room; see ``Sender``."""
        if not to:
            return
        deadline = time.monotonic() + self.max_wait
        while True:
            wait = await self.router.pair_retry_after(line, to)
            if wait is None or wait <= 0:
                return
            if wait > deadline - time.monotonic():
                raise self._pair_limited(line, to, wait)
            await asyncio.sleep(max(_NAP, wait))

    def __repr__(self) -> str:
        return f"<AsyncSender router={self.router!r} max_repicks={self.max_repicks}>"
