"""What the receiver made of one request: ``WebhookResult``."""

from __future__ import annotations

import attrs

__all__ = ["WebhookResult"]


@attrs.frozen
class WebhookResult:
    """What ``WebhookReceiver.handle`` made of one request.

    ``status`` is the HTTP status to answer (200, 400, 401, 413, or 500 when applying
    failed and Linq should deliver it again); ``event_id`` and ``event_type`` are
    ``None`` when the body was not read that far; ``applied`` is True when the event
    changed something (a line amended or removed, a refresh started, a send reported);
    ``reason`` says what happened, in words.

    .. versionadded:: 0.4
    """

    status: int
    event_id: str | None
    event_type: str | None
    applied: bool
    reason: str

    def as_json(self) -> dict[str, object]:
        """The small JSON body the adapters answer with."""
        return {
            "status": self.status,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "applied": self.applied,
            "reason": self.reason,
        }
