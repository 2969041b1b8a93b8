"""The simulation's sends: ``POST /v3/chats`` over httpx, answered as an ``Outcome``.

A few lines of HTTP rather than the official SDK, so that ``linq-router simulate``
runs with the ``cli`` extra alone. The error envelope is read by the client's own
parser (``_answers.error_from_response``), so a status, a Linq code and a
``retry_after`` mean here what they mean everywhere else in the library.
"""

from __future__ import annotations

import httpx
import orjson

from linq_router._answers import error_from_response
from linq_router.feedback import Outcome

__all__ = ["FIRST_MESSAGE", "ChatSender", "SendAnswer"]

FIRST_MESSAGE = {"parts": [{"type": "text", "value": "Hello from linq-router simulate"}]}
"""The first message of every simulated chat (no link: a new chat's may not carry one)."""

SendAnswer = tuple[Outcome | None, bool]
"""(outcome, sent): ``None`` for an accepted send, else its ``Outcome``; ``sent`` is
False when the request never left (a connect error), so resending it is safe."""


class ChatSender:
    """Creates chats on one API (the fake's base URL) with one key; thread-safe.

    ``create(from_, to)`` sends ``POST /v3/chats`` with that line and recipient and
    answers with a ``SendAnswer``. No retries: the simulated worker decides what to
    send again, as ``linq_router.sdk.Sender`` does.
    """

    def __init__(self, base_url: str, api_key: str, *, workers: int, timeout: float = 10.0) -> None:
        self._url = httpx.URL(base_url.rstrip("/") + "/v3/chats")
        self._headers = httpx.Headers(
            {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        )
        self._timeout = {"timeout": httpx.Timeout(timeout).as_dict()}
        # The transport itself, not an httpx.Client: on one fixed URL a client's cookie,
        # redirect and URL-merging work is a third of each send's time, and the run is
        # as long as its sends. One connection per worker: a batch goes out side by side.
        self._transport = httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        )

    def create(self, from_: str, to: str) -> SendAnswer:
        """Send one create; its outcome (``None`` when accepted) and whether it left."""
        body = orjson.dumps({"from": from_, "to": [to], "message": FIRST_MESSAGE})
        request = httpx.Request(
            "POST", self._url, headers=self._headers, content=body, extensions=self._timeout
        )
        try:
            response = self._transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.ConnectError:
            return Outcome(), False  # never sent: nothing can have been created
        except httpx.TransportError:
            return Outcome(), True  # a timeout or a dropped connection: it may have landed
        if response.is_success:
            return None, True
        response.request = request
        error = error_from_response(response)
        return Outcome(error.status, error.code, error.retry_after), True

    def close(self) -> None:
        """Close the connections."""
        self._transport.close()

    def __enter__(self) -> ChatSender:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
