"""What the fake API accepts: the values Linq sends, E.164 numbers, and raw escapes.

A value the client would read as ``UNKNOWN`` (a typo such as ``"critical"``) makes a
test pass for the wrong reason, since policies drop UNKNOWN lines as they drop
CRITICAL ones; so the fake refuses it, naming the argument, the value and the
accepted values. ``raw_*`` arguments serve any string, for values Linq may add later.
"""

from __future__ import annotations

from linq_router._models import Reputation
from linq_router._parsing import is_e164

__all__ = [
    "LINE_TYPES",
    "REPUTATIONS",
    "STATUSES",
    "check_choice",
    "check_e164",
    "check_forwarding",
    "check_id",
    "check_raw",
    "check_reputation",
    "choice_value",
    "reputation_value",
]

REPUTATIONS: tuple[str, ...] = ("HEALTHY", "AT_RISK", "CRITICAL")
"""The reputation statuses Linq sends; ``raw_reputation=`` serves any other string."""
STATUSES: tuple[str, ...] = ("ACTIVE", "FLAGGED")
"""The line statuses Linq sends; ``raw_status=`` serves any other string."""
LINE_TYPES: tuple[str, ...] = ("iMessage", "RCS")
"""The line types Linq sends; ``raw_line_type=`` serves any other string."""


def _near(value: str, accepted: tuple[str, ...]) -> str | None:
    """The accepted value ``value`` differs from only by case or separators."""
    folded = value.strip().upper().replace("-", "_").replace(" ", "_")
    return next((a for a in accepted if a.upper() == folded), None)


def _refused(
    argument: str, value: object, accepted: tuple[str, ...], raw: str, *, none_ok: bool
) -> ValueError:
    expected = ", ".join(repr(a) for a in accepted) + (" or None" if none_ok else "")
    msg = f"{argument} must be one of {expected}, got {value!r}"
    if isinstance(value, str):
        near = _near(value, accepted)
        if near is not None:
            msg += f"; did you mean {near!r}?"
        else:
            msg += f"; to serve a value Linq may add later, pass {raw}={value!r}"
    return ValueError(msg)


def check_reputation(
    value: object, argument: str = "reputation", raw: str = "raw_reputation"
) -> str:
    """A reputation status Linq sends (a name or a ``Reputation``), or a clear error."""
    if isinstance(value, Reputation):
        if value is not Reputation.UNKNOWN:
            return str(value.value)
        msg = (
            f"{argument} must be one of {', '.join(map(repr, REPUTATIONS))}, got "
            f"Reputation.UNKNOWN, which is how linq_router reads a status it does not know, "
            f"not one Linq sends; to serve such a status, pass {raw}='SOME_NEW_STATUS'"
        )
        raise ValueError(msg)
    if not isinstance(value, str):
        msg = f"{argument} must be a string or a Reputation, got {value!r}"
        raise TypeError(msg)
    if value in REPUTATIONS:
        return value
    raise _refused(argument, value, REPUTATIONS, raw, none_ok=False)


def check_choice(value: object, argument: str, accepted: tuple[str, ...], raw: str) -> str | None:
    """``value`` if it is one of ``accepted`` or ``None`` (omitted); else a clear error."""
    if value is None or (isinstance(value, str) and value in accepted):
        return value
    if not isinstance(value, str):
        msg = f"{argument} must be a string or None, got {value!r}"
        raise TypeError(msg)
    raise _refused(argument, value, accepted, raw, none_ok=True)


def check_raw(value: object, argument: str) -> str:
    """A ``raw_...`` value: any string, served as it is."""
    if not isinstance(value, str):
        msg = f"{argument} must be a string (served as it is), got {value!r}"
        raise TypeError(msg)
    return value


def check_e164(value: object, argument: str = "phone_number") -> str:
    """An E.164 number as the client's parser accepts it, or a clear error."""
    if not isinstance(value, str):
        msg = f"{argument} must be a string, an E.164 number like '+12025551234'; got {value!r}"
        raise TypeError(msg)
    if not is_e164(value):
        msg = (
            f"{argument} must be an E.164 number like '+12025551234' ('+', a country code "
            f"that does not start with 0, at most 15 digits), got {value!r}"
        )
        raise ValueError(msg)
    return value


def check_forwarding(value: object, argument: str = "forwarding_number") -> str | None:
    """An E.164 forwarding number, or ``None`` for none (``""`` too)."""
    if value is None or value == "":
        return None
    return check_e164(value, argument)


def check_id(value: object, argument: str = "id") -> str:
    """A line id: a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        msg = f"{argument} must be a non-empty string, got {value!r}"
        raise (ValueError if isinstance(value, str) else TypeError)(msg)
    return value


def reputation_value(reputation: object, raw_reputation: object) -> str:
    """The status to serve from ``reputation`` or ``raw_reputation`` (exactly one)."""
    if raw_reputation is not None:
        if reputation is not None:
            msg = (
                f"give reputation ({reputation!r}) or raw_reputation ({raw_reputation!r}), not both"
            )
            raise ValueError(msg)
        return check_raw(raw_reputation, "raw_reputation")
    if reputation is None:
        msg = (
            f"give a reputation ({', '.join(map(repr, REPUTATIONS))}), or raw_reputation= "
            "for a status Linq may add later"
        )
        raise ValueError(msg)
    return check_reputation(reputation)


def choice_value(
    value: object, raw_value: object, argument: str, accepted: tuple[str, ...]
) -> str | None:
    """``value`` checked against ``accepted``, or ``raw_value`` served as it is."""
    raw = f"raw_{argument}"
    if raw_value is None:
        return check_choice(value, argument, accepted, raw)
    if value is not None:
        msg = f"give {argument} ({value!r}) or {raw} ({raw_value!r}), not both"
        raise ValueError(msg)
    return check_raw(raw_value, raw)
