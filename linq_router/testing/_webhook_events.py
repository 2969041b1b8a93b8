"""The fake API's webhook events as Linq sends them: envelopes, payloads and signatures.

No I/O and no state: ``_fake_webhooks`` queues and delivers what these build. Every
payload parses with the official SDK's model for its event type (``linq.types``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from standardwebhooks import Webhook

__all__ = [
    "API_VERSION",
    "DEFAULT_SECRET",
    "PARTNER_ID",
    "SCHEMES",
    "WEBHOOK_VERSION",
    "WebhookScheme",
    "check_secret",
    "envelope",
    "forwarding_updated",
    "iso",
    "message_failed",
    "message_received",
    "ownership_changed",
    "sign",
    "status_updated",
]

WebhookScheme = Literal["standard", "legacy"]
"""How deliveries are signed: Standard Webhooks (``webhook-*`` headers, what the SDK
verifies) or Linq's older ``X-Webhook-Signature`` scheme."""

SCHEMES: tuple[str, ...] = get_args(WebhookScheme)
API_VERSION = "v3"
WEBHOOK_VERSION = "2026-02-03"
PARTNER_ID = "8c0f5e2a-6b1d-4f3e-9a7c-2d4e6f8a0b1c"
"""The ``partner_id`` every event of the fake carries."""
# A fixed key, so a test can verify without configuring one: base64 of 32 ASCII bytes.
DEFAULT_SECRET = "whsec_bGlucS1yb3V0ZXItZmFrZS13ZWJob29rLXNlY3JldCE="

_CHAT_HEALTH = "https://docs.linqapp.com/channel/imessage/guides/chats/chat-health#healthy"
_HANDLE_IDS = uuid.UUID("3e7d9b1a-5c2f-4a8e-b6d0-9f1e3a5c7b2d")
_REASONS = {2027: "The phone number is temporarily ineligible to send messages"}


def iso(seconds: float) -> str:
    """A wall-clock reading as Linq writes timestamps: ISO-8601 UTC, microseconds, ``Z``."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def envelope(event_type: str, data: Mapping[str, Any], now: float) -> tuple[str, bytes]:
    """A new event's id and its JSON body: Linq's envelope around ``data``."""
    event_id = str(uuid.uuid4())
    event = {
        "api_version": API_VERSION,
        "created_at": iso(now),
        "event_id": event_id,
        "event_type": event_type,
        "partner_id": PARTNER_ID,
        "trace_id": uuid.uuid4().hex,
        "webhook_version": WEBHOOK_VERSION,
        "data": dict(data),
    }
    return event_id, json.dumps(event).encode()


# -- payloads ------------------------------------------------------------------------


def status_updated(
    phone_number: str,
    previous: tuple[str, str],
    new: tuple[str, str],
    now: float,
) -> dict[str, Any]:
    """``phone_number.status_updated``: (reputation, status) before and after."""
    return {
        "phone_number": phone_number,
        "previous_reputation": previous[0],
        "new_reputation": new[0],
        "previous_status": previous[1],
        "new_status": new[1],
        "changed_at": iso(now),
    }


def ownership_changed(phone_number: str, now: float) -> dict[str, Any]:
    """``phone_number.assigned`` and ``phone_number.released``."""
    return {"phone_number": phone_number, "changed_at": iso(now)}


def forwarding_updated(
    phone_number: str, old: str | None, new: str | None, now: float
) -> dict[str, Any]:
    """``phone_number.forwarding_updated``: an account event, changed through the API."""
    return {
        "summary": "Forwarding number updated",
        "occurred_at": iso(now),
        "actor": {"type": "api"},
        "origin": "api",
        "phone_number": phone_number,
        "change": {"from": old, "to": new},
    }


def message_failed(
    chat_id: str, message_id: str, code: int, service: str, now: float
) -> dict[str, Any]:
    """``message.failed`` for a message Linq accepted (it names no line)."""
    return {
        "code": code,
        "failed_at": iso(now),
        "chat_id": chat_id,
        "message_id": message_id,
        "reason": _REASONS.get(code, "The message could not be delivered"),
        "service": service,
    }


def message_received(
    *,
    line: str,
    sender: str,
    text: str,
    chat_id: str,
    service: str,
    joined_at: str,
    now: float,
) -> dict[str, Any]:
    """``message.received`` in the 2026-02-03 format: ``sender`` wrote to ``line``."""
    return {
        "id": str(uuid.uuid4()),
        "direction": "inbound",
        "parts": [{"type": "text", "value": text}],
        "sender_handle": {
            "id": _handle_id(chat_id, sender),
            "handle": sender,
            "joined_at": joined_at,
            "service": service,
        },
        "service": service,
        "sent_at": iso(now),
        "chat": {
            "id": chat_id,
            "is_group": False,
            "health_status": {
                "doc_url": _CHAT_HEALTH,
                "status": "HEALTHY",
                "updated_at": joined_at,
            },
            "owner_handle": {
                "id": _handle_id(chat_id, line),
                "handle": line,
                "joined_at": joined_at,
                "service": service,
                "is_me": True,
            },
        },
    }


def _handle_id(chat_id: str, handle: str) -> str:
    return str(uuid.uuid5(_HANDLE_IDS, f"{chat_id}:{handle}"))


# -- signing -------------------------------------------------------------------------


def check_secret(secret: object, scheme: str, *, signing: bool) -> str:
    """``secret`` if ``scheme`` can sign with it; the error never shows the secret.

    A Standard Webhooks key is tried (which needs the package) only when ``signing``.
    """
    if scheme not in SCHEMES:
        msg = f"webhook_scheme must be one of {', '.join(map(repr, SCHEMES))}, got {scheme!r}"
        raise ValueError(msg)
    if not isinstance(secret, str) or not secret:
        msg = "webhook_secret must be a non-empty string"
        raise ValueError(msg)
    if signing and scheme == "standard":
        try:
            _webhook(secret)
        except ImportError:
            raise
        except Exception:  # binascii.Error, EmptyWebhookSecretError: both name no secret
            msg = "webhook_secret must be 'whsec_' followed by a base64 key"
            raise ValueError(msg) from None
    return secret


def sign(scheme: str, secret: str, event_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The signature headers for one attempt, signed at ``timestamp`` (whole seconds)."""
    if scheme == "legacy":
        # Linq's published example keys the HMAC with the secret string itself.
        digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
        return {"X-Webhook-Timestamp": str(timestamp), "X-Webhook-Signature": digest.hexdigest()}
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": _webhook(secret).sign(event_id, moment, body),
    }


def _webhook(secret: str) -> Webhook:
    """A ``standardwebhooks.Webhook``; the package is imported when first needed."""
    try:
        import standardwebhooks  # noqa: PLC0415
    except ImportError as exc:
        msg = "FakeLinqServer's standard webhook signing needs: pip install standardwebhooks"
        raise ImportError(msg) from exc
    return standardwebhooks.Webhook(secret)
