"""The fake API's webhooks, the server's side: events its changes and sends give rise to.

``Webhooks`` is a base of ``FakeLinqServer``, as ``Sending`` is: it builds events
(``_webhook_events``) when lines change, sends fail later or a test asks, and queues
them into the ``WebhookDelivery`` (``_webhook_delivery``) that POSTs them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._fake_checks import check_handle, handle_key
from ._fake_data import Line, find_line
from ._fake_sends import FailedLater, SendBook
from ._webhook_delivery import (
    WEBHOOK_DELAYS,
    DeliveredWebhook,
    WebhookDelivery,
    check_delays,
    check_url,
)
from ._webhook_events import (
    DEFAULT_SECRET,
    WebhookScheme,
    check_secret,
    envelope,
    forwarding_updated,
    iso,
    message_failed,
    message_received,
    ownership_changed,
    status_updated,
)

__all__ = ["Webhooks"]

_CHATS = uuid.UUID("b2c4d6e8-1a3b-4c5d-8e7f-0a1b2c3d4e5f")


class Webhooks:
    """``FakeLinqServer``'s webhook methods: events to deliver, deliveries and counts.

    A base class: the server holds its lines in ``_lines`` and its ``SendBook`` in
    ``_sends``, both under ``_cond``; ``_init_webhooks`` sets the rest up.
    """

    _cond: threading.Condition
    _lines: list[Line]
    _sends: SendBook
    _webhooks: WebhookDelivery | None
    _webhook_secret: str
    _wall_clock: Callable[[], float]

    def _init_webhooks(
        self,
        url: str | None,
        secret: str | None,
        delays: Sequence[float] | None,
        scheme: WebhookScheme,
        wall_clock: Callable[[], float],
    ) -> None:
        secret = DEFAULT_SECRET if secret is None else secret
        self._webhook_secret = check_secret(secret, scheme, signing=url is not None)
        self._wall_clock = wall_clock
        self._webhooks = None
        if url is not None:
            self._webhooks = WebhookDelivery(
                check_url(url),
                self._webhook_secret,
                scheme=scheme,
                delays=WEBHOOK_DELAYS if delays is None else check_delays(delays),
                wall_clock=wall_clock,
            )
        elif delays is not None:
            check_delays(delays)

    @property
    def webhook_secret(self) -> str:
        """The secret deliveries are signed with (a fixed ``whsec_`` test key by default).

        .. versionadded:: 0.4
        """
        return self._webhook_secret

    @property
    def webhook_url(self) -> str | None:
        """Where events are POSTed; ``None`` when the fake delivers none.

        .. versionadded:: 0.4
        """
        return None if self._webhooks is None else self._webhooks.url

    def deliver_event(self, event_type: str, data: Mapping[str, Any]) -> str:
        """Queue any event, ``data`` in Linq's envelope; returns its ``event_id``.

        ``data`` must be JSON-serializable. Without a ``webhook_url`` it is a
        ``RuntimeError``.

        .. versionadded:: 0.4
        """
        if not isinstance(event_type, str) or not event_type:
            msg = f"event_type must be a non-empty string, got {event_type!r}"
            raise ValueError(msg)
        if self._webhooks is None:
            msg = "FakeLinqServer was built without webhook_url: it delivers no webhooks"
            raise RuntimeError(msg)
        event_id, body = envelope(event_type, data, self._wall_clock())
        self._webhooks.queue(event_type, body, event_id)
        return event_id

    def receive_message(
        self, line_number: str, from_handle: str, text: str = "hi", *, chat_id: str | None = None
    ) -> str:
        """Deliver a ``message.received``: ``from_handle`` wrote ``text`` to a line.

        ``line_number`` is the line's E.164 number or id; ``from_handle`` an E.164
        number or an email. The chat is ``chat_id``, else the line's direct chat with
        that handle if a send created one, else a stable id for the pair. Returns the
        ``event_id``.

        .. versionadded:: 0.4
        """
        handle = check_handle(from_handle)
        now = self._wall_clock()
        with self._cond:
            line = find_line(self._lines, line_number)
            chat = self._sends.direct_chat(line.id, handle)
        if chat_id is None:
            chat_id = chat.id if chat is not None else _pair_chat(line.id, handle)
        data = message_received(
            line=line.phone_number,
            sender=handle,
            text=text,
            chat_id=chat_id,
            service="RCS" if line.line_type == "RCS" else "iMessage",
            joined_at=chat.created_at if chat is not None else iso(now),
            now=now,
        )
        return self.deliver_event("message.received", data)

    def redeliver(self, event_id: str) -> None:
        """Deliver an event once more, same ``event_id`` and body (a duplicate, for dedup tests).

        It is queued behind the others, as a delivery of its own in ``webhooks``. An id
        never queued is a ``KeyError``.

        .. versionadded:: 0.4
        """
        if self._webhooks is None:
            raise KeyError(event_id)
        self._webhooks.redeliver(event_id)

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Block until every queued delivery succeeded or gave up; False if ``timeout`` passes.

        Deliveries go out only while the server runs (events queued before ``start()``
        wait for it). True at once without a ``webhook_url``.

        .. versionadded:: 0.4
        """
        return self._webhooks is None or self._webhooks.wait(timeout)

    def webhook_deliveries(
        self, event_id: str | None = None, *, event_type: str | None = None
    ) -> int:
        """How many delivery attempts were made, for an event id or type when given.

        .. versionadded:: 0.4
        """
        return 0 if self._webhooks is None else self._webhooks.attempts(event_id, event_type)

    @property
    def webhooks(self) -> list[DeliveredWebhook]:
        """Every delivery queued, oldest first, with its attempts so far.

        .. versionadded:: 0.4
        """
        return [] if self._webhooks is None else self._webhooks.records()

    # -- hooks the server calls, under its lock, after a change ---------------------

    def _emit(self, event_type: str, data: Callable[[float], dict[str, Any]]) -> None:
        """Queue an event when the fake delivers any; ``data`` builds it at ``now``."""
        if self._webhooks is not None:
            self.deliver_event(event_type, data(self._wall_clock()))

    def _status_changed(self, line: Line, reputation: str, status: str | None) -> None:
        """A line's reputation or status was set; ``reputation`` and ``status`` are before."""
        previous = (reputation, status or "ACTIVE")  # an omitted status is ACTIVE
        new = (line.reputation, line.status or "ACTIVE")
        if previous != new:
            number = line.phone_number
            self._emit(
                "phone_number.status_updated",
                lambda now: status_updated(number, previous, new, now),
            )

    def _ownership_changed(self, event_type: str, line: Line) -> None:
        number = line.phone_number
        self._emit(event_type, lambda now: ownership_changed(number, now))

    def _forwarding_changed(self, line: Line, old: str | None) -> None:
        number, new = line.phone_number, line.forwarding_number
        if old != new:
            self._emit(
                "phone_number.forwarding_updated",
                lambda now: forwarding_updated(number, old, new, now),
            )

    def _failed_later(self, failure: FailedLater) -> None:
        """``SendBook`` accepted a send from an ``"ineligible-async"`` line."""
        self._emit(
            "message.failed",
            lambda now: message_failed(
                failure.chat_id, failure.message_id, failure.code, failure.service, now
            ),
        )


def _pair_chat(line_id: str, handle: str) -> str:
    """A stable chat id for inbound messages from ``handle`` to a line with no chat yet."""
    return str(uuid.uuid5(_CHATS, f"{line_id}:{handle_key(handle)}"))
