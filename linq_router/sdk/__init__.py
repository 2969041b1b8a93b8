"""Sending through the official SDK (``linq-python``) from the lines a router picks.

Needs the ``sdk`` extra: ``pip install 'linq-router[sdk]'``.

``Sender`` (``AsyncSender`` for asyncio) wraps a ``linq.LinqAPIV3``: ``create_chat``
picks the line, sends, reports the outcome to the router and picks again when the
line was refused (code 2027) or the request never left, and never sends a create
twice when the first may have created the chat. ``send_message`` and
``send_voice_memo`` report against the chat's line::

    from linq import LinqAPIV3
    from linq_router import LinqClient, Registry, Router
    from linq_router.sdk import Sender

    router = Router(Registry(LinqClient()))
    sender = Sender(router, LinqAPIV3())
    sent = sender.create_chat(to=["+12025550123"], message={"parts": [...]})
    sent.phone_number, sent.attempts    # the line it went out on, and every attempt

For code that calls the SDK itself, ``ReportingTransport`` (``AsyncReportingTransport``)
reports every send the SDK makes, retries included, from under its ``http_client``::

    LinqAPIV3(http_client=httpx.Client(transport=ReportingTransport(router)))

Errors reach the caller as the SDK's own exceptions.

.. versionadded:: 0.3
"""

try:
    import linq as _linq  # noqa: F401 (only to say what is missing, here)
except ImportError as exc:  # pragma: no cover - exercised with linq hidden
    msg = "linq_router.sdk needs the official SDK, linq-python: pip install 'linq-router[sdk]'"
    raise ImportError(msg, name=exc.name) from exc

from ._common import Sent
from ._sender import AsyncSender, Sender
from ._transport import AsyncReportingTransport, ReportingTransport

__all__ = ["AsyncReportingTransport", "AsyncSender", "ReportingTransport", "Sender", "Sent"]
