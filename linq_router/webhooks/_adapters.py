"""The receiver as an ASGI 3 app and as a WSGI app: no framework needed.

Each answers ``POST`` at any path with the ``WebhookResult``'s status and a small JSON
body, and any other method with 405. The body is read up to ``max_body`` + 1 bytes,
so an oversized one is refused without being held in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Protocol

import orjson

from ._result import WebhookResult


class WebhookReceiver(Protocol):
    """What the adapters need of a receiver (``_receiver.WebhookReceiver``)."""

    max_body: int

    def handle(self, headers: Any, body: bytes) -> WebhookResult:
        """Answer one request."""
        ...

    async def ahandle(self, headers: Any, body: bytes) -> WebhookResult:
        """Answer one request, for asyncio."""
        ...


__all__ = ["asgi_app", "wsgi_app"]

logger = logging.getLogger("linq_router")

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    405: "Method Not Allowed",
    413: "Content Too Large",
    500: "Internal Server Error",
}
_NOT_POST = b'{"status": 405, "reason": "webhooks are POSTed"}'

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _json(result: WebhookResult) -> bytes:
    return orjson.dumps(result.as_json())


def _too_large(receiver: WebhookReceiver) -> WebhookResult:
    why = f"the body is over max_body={receiver.max_body} bytes"
    return WebhookResult(413, None, None, False, why)


def asgi_app(receiver: WebhookReceiver) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI 3 application that hands each POST to ``receiver.ahandle``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope.get("method") != "POST":
            await _asgi_answer(send, 405, _NOT_POST)
            return
        chunks: list[bytes] = []
        size = 0
        limit = receiver.max_body
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _asgi_answer(send, 413, _json(_too_large(receiver)))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        result = await receiver.ahandle(scope.get("headers", ()), b"".join(chunks))
        await _asgi_answer(send, result.status, _json(result))

    return app


async def _asgi_answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wsgi_app(
    receiver: WebhookReceiver,
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """A WSGI application that hands each POST to ``receiver.handle``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _wsgi_answer(start_response, 405, _NOT_POST)
        raw_length = environ.get("CONTENT_LENGTH")
        if not raw_length and environ.get("wsgi.input_terminated"):
            # No length (chunked), and the server ends the input for us: read to its end.
            body = environ["wsgi.input"].read(receiver.max_body + 1)
            if len(body) > receiver.max_body:
                return _wsgi_answer(start_response, 413, _json(_too_large(receiver)))
            return _wsgi_handle(receiver, environ, body, start_response)
        try:
            length = int(raw_length or 0)
        except ValueError:
            length = -1
        if length < 0:
            bad = WebhookResult(400, None, None, False, "Content-Length is not a number")
            return _wsgi_answer(start_response, 400, _json(bad))
        if length > receiver.max_body:
            return _wsgi_answer(start_response, 413, _json(_too_large(receiver)))
        body = environ["wsgi.input"].read(length) if length else b""
        return _wsgi_handle(receiver, environ, body, start_response)

    return app


def _wsgi_handle(
    receiver: WebhookReceiver,
    environ: dict[str, Any],
    body: bytes,
    start_response: Callable[..., Any],
) -> list[bytes]:
    headers = [
        (key[5:].replace("_", "-"), value)
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    ]
    if environ.get("CONTENT_TYPE"):
        headers.append(("content-type", environ["CONTENT_TYPE"]))
    result = receiver.handle(headers, body)
    return _wsgi_answer(start_response, result.status, _json(result))


def _wsgi_answer(start_response: Callable[..., Any], status: int, body: bytes) -> list[bytes]:
    start_response(
        f"{status} {_REASONS.get(status, '')}".rstrip(),
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
