"""``ReportingTransport`` and ``AsyncReportingTransport``: report sends the SDK makes itself.

An httpx transport under the official SDK's ``http_client``: it sees every attempt the
SDK makes (its retries included), reads the line from the request and the outcome from
the answer, and reports both to the router. What the SDK sends and gets is unchanged.
The reading and the reporting are shared (``_Reporting``); the twins differ only in
calling the inner transport and reading the answer's body.
"""

from __future__ import annotations

import contextlib
import logging

import httpx

from linq_router._router import AsyncRouter, Router
from linq_router.feedback import OutcomeLike

from ._common import (
    DEFAULT_MAX_CHATS,
    ChatBook,
    check_chat_line,
    check_max_chats,
    check_router,
    report_failed,
)
from ._wire import SentRequest, chat_of_create, outcome_of_answer, parse_send

__all__ = ["AsyncReportingTransport", "ReportingTransport"]

logger = logging.getLogger("linq_router")


class _Reporting:
    """What a reporting transport knows and decides: no I/O, and nothing here raises."""

    def __init__(self, max_chats: object) -> None:
        self._book = ChatBook(check_max_chats(max_chats))

    def remember(self, chat_id: str, phone_number: str) -> None:
        """Record that ``chat_id`` (created before this transport saw it) sends from a line.

        Messages and voice memos on it are then reported against ``phone_number``.
        """
        check_chat_line(chat_id, phone_number)
        self._book.remember(chat_id, phone_number)

    def line_for_chat(self, chat_id: str) -> str | None:
        """The line ``chat_id`` sends from, if this transport saw it created or was told."""
        known = self._book.chat(chat_id)
        return None if known is None else known[0]

    def _send_of(self, request: httpx.Request) -> SentRequest | None:
        """The send ``request`` is, with its line; ``None`` when there is nothing to report."""
        try:
            send = parse_send(request)
            if send is None or send.kind == "create" or send.chat_id is None:
                return send
            known = self._book.chat(send.chat_id)
            if known is None:
                logger.debug(
                    "%s on chat %s: its line is unknown to the transport; not reported",
                    send.kind,
                    send.chat_id,
                )
                return None
            return SentRequest(send.kind, send.chat_id, known[0], known[1])
        except Exception as exc:
            report_failed("a request (reading it)", exc)
            return None

    @staticmethod
    def _wants_body(send: SentRequest, status: int) -> bool:
        # An error's code says what it means; a create's answer names the new chat.
        # A message's success needs nothing more, so its body is left to stream.
        return status >= 400 or send.kind == "create"

    def _outcome(self, send: SentRequest, response: httpx.Response, raw: bytes) -> OutcomeLike:
        """The outcome ``response`` (whose body is ``raw``) says; learns a created chat."""
        try:
            body = httpx.Response(
                response.status_code, headers=response.headers, stream=httpx.ByteStream(raw)
            ).read()  # decoded (gzip and the like) from a copy: the SDK's stays raw
        except Exception:  # undecodable: the status alone still says a lot
            body = b""
        outcome = outcome_of_answer(response.status_code, response.headers, body)
        if outcome is None and send.kind == "create" and send.line is not None:
            created = chat_of_create(body)
            if created is not None:
                chat_id, message_id = created
                self._book.remember(chat_id, send.line, send.to)
                if message_id is not None:
                    self._book.sent_message(message_id, send.line)
        return outcome

    @staticmethod
    def _replay(response: httpx.Response, raw: bytes) -> httpx.Response:
        """The answer as it came, for the SDK: status, headers, extensions, raw body."""
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(raw),
            extensions=response.extensions,
        )


class ReportingTransport(_Reporting, httpx.BaseTransport):
    """An httpx transport that reports the SDK's sends to ``router`` as they happen.

    For code that calls the official SDK itself::

        transport = ReportingTransport(router)
        client = LinqAPIV3(http_client=httpx.Client(transport=transport))
        client.chats.create(from_=router.pick(to).phone_number, to=to, message=...)

    It wraps ``transport`` (default ``httpx.HTTPTransport()``). Each attempt at
    ``POST /v3/chats`` is reported against the ``from`` in its body, with its ``to``;
    ``POST /v3/chats/{id}/messages`` and ``.../voicememo`` are reported when the chat's
    line is known: from a create answer this transport saw (it remembers up to
    ``max_chats`` chats) or from ``remember(chat_id, phone_number)``. Nothing else is
    reported. An error from the inner transport (a connect error too) is reported and
    raised as it was.

    The request and the answer are passed on unchanged: for errors and creates the
    body is read here and handed on as the same bytes, with the same status and
    headers. Reporting never raises into the SDK, whether or not the line is in the
    router's current snapshot: a report that fails is logged.

    .. versionadded:: 0.3
    """

    def __init__(
        self,
        router: Router,
        transport: httpx.BaseTransport | None = None,
        *,
        max_chats: int = DEFAULT_MAX_CHATS,
    ) -> None:
        check_router("ReportingTransport", router, want_async=False)
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            msg = f"transport must be an httpx.BaseTransport, got {type(transport).__name__}"
            raise TypeError(msg)
        super().__init__(max_chats)
        self.router = router
        self.transport = transport if transport is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the inner transport; report it if it is a send."""
        send = self._send_of(request)
        if send is None:
            return self.transport.handle_request(request)
        try:
            response = self.transport.handle_request(request)
        except Exception as exc:
            self._report(send, exc)
            raise
        if not self._wants_body(send, response.status_code):
            self._report(send, None)
            return response
        try:
            raw = b"".join(response.iter_raw())
        except Exception as exc:  # the SDK would have met the same reading it
            with contextlib.suppress(Exception):
                response.close()
            self._report(send, exc)
            raise
        self._report(send, self._outcome(send, response, raw))
        return self._replay(response, raw)

    def _report(self, send: SentRequest, outcome: OutcomeLike) -> None:
        try:
            if send.line is not None:
                self.router.report(send.line, outcome, to=send.to)
        except Exception as exc:
            report_failed("a send seen by ReportingTransport", exc)

    def close(self) -> None:
        """Close the inner transport."""
        self.transport.close()

    def __repr__(self) -> str:
        return f"<ReportingTransport router={self.router!r} transport={self.transport!r}>"


class AsyncReportingTransport(_Reporting, httpx.AsyncBaseTransport):
    """The asyncio twin of ``ReportingTransport``, for ``AsyncRouter`` and ``httpx.AsyncClient``.

    ``AsyncLinqAPIV3(http_client=httpx.AsyncClient(transport=AsyncReportingTransport(router)))``;
    ``transport`` defaults to ``httpx.AsyncHTTPTransport()``. Same behaviour otherwise.

    .. versionadded:: 0.3
    """

    def __init__(
        self,
        router: AsyncRouter,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        max_chats: int = DEFAULT_MAX_CHATS,
    ) -> None:
        check_router("AsyncReportingTransport", router, want_async=True)
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            msg = f"transport must be an httpx.AsyncBaseTransport, got {type(transport).__name__}"
            raise TypeError(msg)
        super().__init__(max_chats)
        self.router = router
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the inner transport; report it if it is a send."""
        send = self._send_of(request)
        if send is None:
            return await self.transport.handle_async_request(request)
        try:
            response = await self.transport.handle_async_request(request)
        except Exception as exc:
            await self._report(send, exc)
            raise
        if not self._wants_body(send, response.status_code):
            await self._report(send, None)
            return response
        try:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        except Exception as exc:
            with contextlib.suppress(Exception):
                await response.aclose()
            await self._report(send, exc)
            raise
        await self._report(send, self._outcome(send, response, raw))
        return self._replay(response, raw)

    async def _report(self, send: SentRequest, outcome: OutcomeLike) -> None:
        try:
            if send.line is not None:
                await self.router.report(send.line, outcome, to=send.to)
        except Exception as exc:
            report_failed("a send seen by AsyncReportingTransport", exc)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.transport.aclose()

    def __repr__(self) -> str:
        return f"<AsyncReportingTransport router={self.router!r} transport={self.transport!r}>"
