"""Is a webhook request from Linq? Its signature, by either of Linq's two schemes.

* Standard Webhooks (what Linq sends today): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature`` (space-separated ``v1,<base64>`` entries) over
  ``"{id}.{timestamp}.{body}"``, keyed with the ``whsec_`` secret's bytes. The
  ``standardwebhooks`` package computes the expected signature; its own ``verify``
  is not used, because it checks the timestamp against the wall clock with a fixed
  5-minute window, and the receiver's ``tolerance`` and ``clock`` must rule.
* The older scheme in Linq's API reference: ``X-Webhook-Timestamp`` and
  ``X-Webhook-Signature``, the hex HMAC-SHA256 of ``"{timestamp}.{body}"`` keyed with
  the whole secret string as UTF-8 (as in Linq's published example). No package
  implements it; it is three lines of ``hmac``.

A request carrying ``webhook-signature`` is checked by the first scheme, one carrying
only ``X-Webhook-Signature`` by the second. Every comparison is constant-time. No I/O.
"""

from __future__ import annotations

import binascii
import datetime
import hashlib
import hmac
import math
from collections.abc import Callable, Mapping

import attrs
import standardwebhooks

__all__ = ["Rejected", "Verified", "Verifier"]

# A signature header longer than this is no Linq header: refuse it before any work
# (a few dozen signatures, for secrets being rotated, fit easily).
_MAX_SIGNATURE_HEADER = 8192


@attrs.frozen
class Verified:
    """The request is signed with the secret; ``msg_id`` is the standard scheme's id."""

    scheme: str
    msg_id: str | None


@attrs.frozen
class Rejected:
    """The request is not (provably) from Linq: answer 401 with ``reason``."""

    reason: str


class Verifier:
    """Checks signatures and timestamps for one secret."""

    def __init__(self, secret: str, tolerance: float, clock: Callable[[], float]) -> None:
        try:
            self._standard = standardwebhooks.Webhook(secret)
        except Exception:  # binascii.Error, EmptyWebhookSecretError: never show the secret
            msg = (
                "secret must be the webhook signing secret Linq gave, 'whsec_' followed by "
                "base64 (the value given is not; it is not shown)"
            )
            raise ValueError(msg) from None
        self._legacy_key = secret.encode("utf-8")
        self._tolerance = tolerance
        self._clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"Verifier(tolerance={self._tolerance})"

    def verify(self, headers: Mapping[str, str], body: bytes) -> Verified | Rejected:
        """Check the request's signature; ``headers`` has lower-case names."""
        if "webhook-signature" in headers or "webhook-id" in headers:
            return self._verify_standard(headers, body)
        if "x-webhook-signature" in headers:
            return self._verify_legacy(headers, body)
        return Rejected("no signature: neither webhook-signature nor X-Webhook-Signature")

    def _timestamp(self, raw: str | None, header: str) -> int | Rejected:
        if not raw:
            return Rejected(f"missing {header}")
        text = raw.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 12:
            return Rejected(f"{header} is not a time in whole seconds")
        stamp = int(text)
        now = self._clock()
        if not math.isfinite(now) or abs(now - stamp) > self._tolerance:
            return Rejected(
                f"{header} is outside the tolerance of {self._tolerance:g}s "
                "(a stale or replayed request, or a clock off)"
            )
        return stamp

    def _verify_standard(  # noqa: PLR0911 (one return per check)
        self, headers: Mapping[str, str], body: bytes
    ) -> Verified | Rejected:
        msg_id = headers.get("webhook-id")
        signature = headers.get("webhook-signature")
        if not msg_id or not signature:
            return Rejected("missing webhook-id or webhook-signature")
        stamp = self._timestamp(headers.get("webhook-timestamp"), "webhook-timestamp")
        if isinstance(stamp, Rejected):
            return stamp
        if len(signature) > _MAX_SIGNATURE_HEADER:
            return Rejected("webhook-signature is too long")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            # What the package signs is text; a body that is not UTF-8 matches no signature.
            return Rejected("signature does not match (the body is not UTF-8)")
        when = datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc)
        expected = self._standard.sign(msg_id, when, text).partition(",")[2]
        try:
            expected_bytes = binascii.a2b_base64(expected)
        except binascii.Error:  # pragma: no cover - the package always gives base64
            return Rejected("signature does not match")
        matched = False
        for entry in signature.split():
            version, _, given = entry.partition(",")
            if version != "v1" or not given:
                continue
            try:
                given_bytes = binascii.a2b_base64(given)
            except binascii.Error:
                continue
            # No early exit: every entry costs the same, matched or not.
            matched |= hmac.compare_digest(expected_bytes, given_bytes)
        if not matched:
            return Rejected("signature does not match")
        return Verified("standard", msg_id)

    def _verify_legacy(self, headers: Mapping[str, str], body: bytes) -> Verified | Rejected:
        raw_stamp = headers.get("x-webhook-timestamp")
        stamp = self._timestamp(raw_stamp, "X-Webhook-Timestamp")
        if isinstance(stamp, Rejected):
            return stamp
        given = headers.get("x-webhook-signature", "").strip().lower()
        given = given.removeprefix("sha256=")
        if len(given) > _MAX_SIGNATURE_HEADER:
            return Rejected("X-Webhook-Signature is too long")
        assert raw_stamp is not None  # checked by _timestamp
        message = raw_stamp.strip().encode("ascii") + b"." + body
        expected = hmac.new(self._legacy_key, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace")):
            return Rejected("signature does not match")
        return Verified("legacy", None)
