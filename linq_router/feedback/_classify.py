"""What a send's outcome says about the line that sent it: ``classify``.

The mapping is pure and total: every outcome maps to one ``Verdict`` and nothing
raises. It reads the HTTP status and Linq's error code from whatever shape the
outcome takes (the official SDK's exceptions, ours, httpx's, a bare status, or an
``Outcome``); a shape it does not know is ``NOT_THE_LINE``, warned about once.
"""

from __future__ import annotations

import enum
import logging
import threading

import attrs

__all__ = ["Outcome", "OutcomeLike", "Verdict", "classify", "outcome_of"]

logger = logging.getLogger("linq_router")


class Verdict(str, enum.Enum):
    """What a send's outcome says about its line (``classify``'s answer).

    ====================  ==========================================================
    ``SUCCESS``           2xx: the send went out.
    ``LINE_INELIGIBLE``   403 with code 2027: the line may not send now; nothing was
                          created. The line is ejected at once.
    ``LINE_FAILURE``      5xx (3006 among them), timeouts, connection errors: the
                          line may be failing. Enough in a row eject it.
    ``PAIR_LIMITED``      429 with code 1007, or a 429 without a code: the
                          sender-recipient pair is paused until ``retry_after``. The
                          line is not at fault.
    ``NOT_THE_LINE``      everything else (2024 opted out, 2026 blocked handle, 400,
                          401, 404, 409, 422, unknown shapes): not the line's fault.
    ====================  ==========================================================

    .. versionadded:: 0.3
    """

    SUCCESS = "SUCCESS"
    LINE_INELIGIBLE = "LINE_INELIGIBLE"
    LINE_FAILURE = "LINE_FAILURE"
    PAIR_LIMITED = "PAIR_LIMITED"
    NOT_THE_LINE = "NOT_THE_LINE"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class Outcome:
    """A send's outcome given by its parts: HTTP ``status``, Linq's error ``code``.

    ``retry_after`` is the wait in seconds the answer asked for (a 429's), if any.
    ``Outcome()`` with no status is a failure with no answer (a timeout, a dropped
    connection): ``LINE_FAILURE``.

    .. versionadded:: 0.3
    """

    status: int | None = None
    code: int | None = None
    retry_after: float | None = None


OutcomeLike = Outcome | BaseException | int | None
"""What ``Router.report`` and ``classify`` take: ``None`` for success, an exception,
an HTTP status, or an ``Outcome``."""

_INELIGIBLE = 2027
_PAIR_LIMIT = 1007

# Timeouts and dropped connections, by class name, so that no SDK import is needed:
# linq.APIConnectionError / APITimeoutError, httpx.TransportError / TimeoutException
# (and their subclasses), and the standard library's own.
_NO_ANSWER = frozenset(
    {
        "APIConnectionError",
        "APITimeoutError",
        "TransportError",
        "TimeoutException",
        "NetworkError",
        "LinqConnectionError",
    }
)

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(shape: str) -> None:
    with _warned_lock:
        if shape in _warned:
            return
        _warned.add(shape)
    logger.warning(
        "cannot tell what outcome %s says about the line; treated as NOT_THE_LINE", shape
    )


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value and value >= 0 else None  # noqa: PLR0124 (NaN)
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            return None
        return seconds if seconds == seconds and seconds >= 0 else None  # noqa: PLR0124
    return None


def _from_exception(error: BaseException) -> Outcome | None:
    names = {cls.__name__ for cls in type(error).__mro__}
    status = _int_or_none(getattr(error, "status_code", None))
    if status is None:
        status = _int_or_none(getattr(error, "status", None))
    code = _int_or_none(getattr(error, "code", None))
    retry_after = _float_or_none(getattr(error, "retry_after", None))
    if status is None:
        response = getattr(error, "response", None)
        status = _int_or_none(getattr(response, "status_code", None))
    if status is not None:
        return Outcome(status, code, retry_after)
    if names & _NO_ANSWER or isinstance(error, (TimeoutError, ConnectionError)):
        return Outcome(None, code, retry_after)
    return None


def outcome_of(outcome: OutcomeLike) -> Outcome | None:
    """``outcome`` as an ``Outcome``; ``None`` for success or a shape not understood."""
    if outcome is None:
        return None
    if isinstance(outcome, Outcome):
        return outcome
    if isinstance(outcome, bool):
        return None
    if isinstance(outcome, int):
        return Outcome(outcome)
    if isinstance(outcome, BaseException):
        return _from_exception(outcome)
    return None


def _verdict(parts: Outcome) -> Verdict:  # noqa: PLR0911 (one return per row of the table)
    status, code = parts.status, parts.code
    if status is None:
        if code == _INELIGIBLE:
            return Verdict.LINE_INELIGIBLE
        if code == _PAIR_LIMIT:
            return Verdict.PAIR_LIMITED
        # No answer at all (a timeout, a dropped connection), or only Linq's 5xx code.
        return Verdict.LINE_FAILURE if code is None or code == 3006 else Verdict.NOT_THE_LINE
    if 200 <= status < 300:
        return Verdict.SUCCESS
    if status == 403 and code == _INELIGIBLE:
        return Verdict.LINE_INELIGIBLE
    if status >= 500:
        return Verdict.LINE_FAILURE
    if status == 429 and code in (None, _PAIR_LIMIT):
        return Verdict.PAIR_LIMITED
    return Verdict.NOT_THE_LINE


def classify(outcome: object) -> Verdict:
    """What ``outcome`` says about the line that sent: a ``Verdict`` (see its table).

    ``outcome`` is ``None`` (success), an exception (the official SDK's, ours,
    httpx's), an HTTP status, or an ``Outcome``. Never raises: a shape it cannot read
    is ``NOT_THE_LINE``, with a warning logged once per shape.

    .. versionadded:: 0.3
    """
    if outcome is None:
        return Verdict.SUCCESS
    try:
        parts = outcome_of(outcome)  # type: ignore[arg-type]
        if parts is not None:
            if parts.status is not None and not 100 <= parts.status <= 599:
                _warn_once(f"HTTP status {parts.status}")
                return Verdict.NOT_THE_LINE
            return _verdict(parts)
        shape = type(outcome).__qualname__
    except Exception:  # a hostile attribute: still never raise
        shape = f"{type(outcome).__qualname__} (unreadable)"
    _warn_once(shape)
    return Verdict.NOT_THE_LINE
