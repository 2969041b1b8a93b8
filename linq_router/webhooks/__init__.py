"""Linq's webhooks, verified and applied once: ``WebhookReceiver``.

A line change Linq announces (``phone_number.status_updated``, ``assigned``,
``released``, ``forwarding_updated``) reaches the registry within a millisecond, with
no list request; a ``message.failed`` reaches the feedback loop, and a
``message.received`` the line's daily budget::

    from linq_router.webhooks import WebhookReceiver

    receiver = WebhookReceiver(registry, router=router, sender=sender)  # LINQ_WEBHOOK_SECRET
    result = receiver.handle(request.headers, request.body)             # never raises
    # answer result.status; or serve receiver.asgi / receiver.wsgi as they are

See the "Webhooks" page of the docs for the setup in Linq and the security rules.

.. versionadded:: 0.4
"""

from ._receiver import SECRET_VARIABLE, WebhookReceiver
from ._result import WebhookResult

__all__ = ["SECRET_VARIABLE", "WebhookReceiver", "WebhookResult"]
