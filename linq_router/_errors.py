"""Every exception linq_router raises, in one place.

The tree::

    LinqRouterError
    ├── LinqAPIError                 anything about talking to Linq (status, code, message, doc_url)
    │   ├── AuthenticationError      401 / code 2004: the key was refused; never retried
    │   ├── ServerError              5xx (code 3006 among them), after the retries ran out
    │   ├── RateLimitError           429, after the retries ran out; carries ``retry_after``
    │   ├── LinqConnectionError      the request never got an answer (connect error, timeout,
    │   │                            dropped connection), after the retries ran out
    │   ├── LinqResponseError        a 2xx answer whose body is not the documented shape
    │   └── RegistryUnavailableError the registry has no snapshot it may serve
    ├── NoEligibleNumberError        a policy found no line it may send from (a LookupError)
    │   └── BudgetExhaustedError     every line it could use is out of budget; ``retry_at``
    ├── PairLimitedError             the sender-recipient pair is at its limit; ``retry_after``
    └── PolicySpecError              a policy spec or plugin registration is wrong (a ValueError)

``RegistryUnavailableError`` raised at a cold start (no snapshot was ever fetched) is
also an instance of the error that caused it, so ``except AuthenticationError`` still
catches a refused key whether it came from the client or through the registry.

Every error pickles and unpickles to the same class with its fields (``status``,
``code``, ``message``, ``doc_url``, ``retry_after``), so errors cross process pools;
like any exception, its ``__cause__`` and traceback stay behind.

Messages never contain the API key.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "BudgetExhaustedError",
    "LinqAPIError",
    "LinqConnectionError",
    "LinqResponseError",
    "LinqRouterError",
    "NoEligibleNumberError",
    "PairLimitedError",
    "PolicySpecError",
    "RateLimitError",
    "RegistryUnavailableError",
    "ServerError",
]


class LinqRouterError(Exception):
    """Base class of every error linq_router raises.

    .. versionadded:: 0.1
    """


class LinqAPIError(LinqRouterError):
    """The Linq API answered with an error, or could not be used.

    Attributes mirror Linq's error envelope
    (``{"error": {"status", "code", "message", "doc_url"}, "success": false}``);
    each is ``None`` where the answer did not carry it. ``retry_after`` is the wait in
    seconds the answer asked for (429 and 503 carry one), else ``None``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        doc_url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.doc_url = doc_url
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        prefix = f"[{', '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"code={self.code!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor arguments do not survive the default pickling, and
        # errors cross process pools. The registry's combined classes are built at run
        # time and cannot be found by name: they are pickled as the class of the cause
        # they combine with, and built again (or found in the cache) when unpickled.
        because = type(self).__dict__.get("_because")
        if because is not None:
            return (_rebuild_unavailable, (because, self.message, self.__dict__))
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[LinqAPIError], message: str, state: dict[str, Any]) -> LinqAPIError:
    err = cls.__new__(cls)
    LinqAPIError.__init__(err, message)
    err.__dict__.update(state)
    return err


def _rebuild_unavailable(
    because: type[LinqAPIError], message: str, state: dict[str, Any]
) -> LinqAPIError:
    return _rebuild(_unavailable_because(because), message, state)


class AuthenticationError(LinqAPIError):
    """HTTP 401 / code 2004: the API key is missing or was refused. Never retried.

    .. versionadded:: 0.1
    """


class ServerError(LinqAPIError):
    """HTTP 5xx (Linq's code 3006 among them) that outlasted the retries.

    .. versionadded:: 0.1
    """


class RateLimitError(LinqAPIError):
    """HTTP 429 that outlasted the retries.

    ``retry_after`` is the wait in seconds the API asked for (``Retry-After`` header or
    ``retry_after`` in the body), or ``None`` when it named none.

    .. versionadded:: 0.1
    """


class LinqConnectionError(LinqAPIError):
    """No answer came back: connection refused or dropped, or a timeout.

    Raised after the retries ran out; the transport error is its ``__cause__``.

    .. versionadded:: 0.1
    """


class LinqResponseError(LinqAPIError):
    """A 2xx answer whose body is not the documented shape (bad JSON, missing keys).

    A response like this never replaces a good cached snapshot.

    .. versionadded:: 0.1
    """


class RegistryUnavailableError(LinqAPIError):
    """The registry has no snapshot it may serve.

    Either no list was ever fetched successfully, or the last good one is older than
    its TTL plus ``stale_if_error``. The failure behind it is its ``__cause__``.

    .. versionadded:: 0.1
    """


class NoEligibleNumberError(LinqRouterError, LookupError):
    """A policy found no line it may send from; the message says what was dropped and why.

    ``ejected`` lists the lines the router's ejection had taken out (``Ejected``
    values, with their reasons and return times), empty when none were.

    .. versionadded:: 0.1
    .. versionchanged:: 0.3 ``ejected``.
    """

    ejected: tuple[Any, ...] = ()


class BudgetExhaustedError(NoEligibleNumberError):
    """Every line the policy could use is out of budget (see ``Pacing``).

    ``retry_at`` is the earliest time a line has room again, on the router's clock;
    ``resets`` maps each line (E.164) that was out to the time it has room again.
    ``Router.pick(..., wait=seconds)`` waits for room instead of raising, up to that
    bound.

    .. versionadded:: 0.3
    """

    def __init__(
        self,
        message: str,
        *,
        retry_at: float,
        resets: dict[str, float] | None = None,
        ejected: tuple[Any, ...] = (),
    ) -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.resets: dict[str, float] = dict(resets or {})
        self.ejected = ejected

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_plain, (type(self), self.args, self.__dict__))


class PairLimitedError(LinqRouterError):
    """A send would go over the sender-recipient pair limit (30 messages per 60 s).

    Raised by ``linq_router.sdk.Sender`` before any request is made. ``retry_after``
    is how many seconds until the pair has room; ``line`` and ``to`` name the pair.

    .. versionadded:: 0.3
    """

    def __init__(self, message: str, *, retry_after: float, line: str, to: tuple[str, ...]) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.line = line
        self.to = to

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_plain, (type(self), self.args, self.__dict__))


def _rebuild_plain(cls: type[Exception], args: tuple[Any, ...], state: dict[str, Any]) -> Exception:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class PolicySpecError(LinqRouterError, ValueError):
    """A policy spec or registration is wrong: unknown name, bad argument, bad syntax.

    The message names the offending token and lists the known names.

    .. versionadded:: 0.1
    """


_UNAVAILABLE_BECAUSE: dict[type[LinqAPIError], type[RegistryUnavailableError]] = {}


def _unavailable_because(cause: type[LinqAPIError]) -> type[RegistryUnavailableError]:
    """A ``RegistryUnavailableError`` subclass that is also a ``cause``.

    So callers catching the cause's class (say ``AuthenticationError``) still catch it
    when it surfaces through the registry. One class per cause class, built on first
    use; instances pickle by naming the cause class (``LinqAPIError.__reduce__``), so an
    unpickled one is an instance of this same class.
    """
    if issubclass(cause, RegistryUnavailableError):
        return cause
    cls = _UNAVAILABLE_BECAUSE.get(cause)
    if cls is None:
        built = type(
            f"RegistryUnavailableError[{cause.__name__}]",
            (RegistryUnavailableError, cause),
            {
                "__module__": __name__,
                "__qualname__": f"RegistryUnavailableError[{cause.__name__}]",
                "__doc__": RegistryUnavailableError.__doc__,
                "_because": cause,
            },
        )
        # Two threads may both build one; setdefault (atomic) keeps the first for both,
        # so that an unpickled error's class is always the original's.
        cls = _UNAVAILABLE_BECAUSE.setdefault(cause, built)
    return cls


def registry_unavailable(message: str, cause: BaseException | None) -> RegistryUnavailableError:
    """Build the error the registry raises when it has nothing to serve."""
    if isinstance(cause, LinqAPIError):
        cls = _unavailable_because(type(cause))
        return cls(
            # The status and code prefix this error's own str(): say them once.
            f"{message}: {cause.message}",
            status=cause.status,
            code=cause.code,
            doc_url=cause.doc_url,
            retry_after=cause.retry_after,
        )
    detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
    return RegistryUnavailableError(f"{message}{detail}")
