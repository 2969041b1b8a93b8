"""What a client is configured with: the API key and the base URL, checked once.

Both come from the client's arguments or else the environment (the official SDK's
variable names).

The key is then held where no repr, log, pickle or frame local shows it. Tracebacks
rendered with their frames' local variables (``rich.traceback`` with
``show_locals=True``, ``traceback.TracebackException(capture_locals=True)``, Sentry)
print the ``repr`` of every local. So from the clients' first line on the key lives
only in a ``Secret`` (whose repr is ``<redacted>``), and the ``Authorization`` header
only in ``BearerAuth``, an ``httpx.Auth`` that sets it on each request: no dict of
headers the library passes around holds it. Neither object pickles.

A key read as it is from a file or an environment variable keeps its newline: the
whitespace around it is stripped. A key that still holds a control character (or any
character outside printable ASCII) cannot be sent in a header, and an empty one is no
key: both are refused when the client is built, by an error that names the argument
or the environment variable and never shows the key. The base URL is stripped and
checked the same way; credentials inside it are masked wherever it is shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator
from typing import NoReturn

import httpx

from ._arguments import shown

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "BearerAuth",
    "Secret",
    "base_url_setting",
    "bearer_auth",
    "masked_url",
]

API_KEY_ENV = "LINQ_API_V3_API_KEY"
"""The environment variable the API key is read from (the official SDK's name)."""
DEFAULT_BASE_URL = "https://api.linqapp.com/api/partner"
"""Linq's partner API; paths such as ``/v3/phone_numbers`` are relative to it."""
BASE_URL_ENV = "LINQ_API_V3_BASE_URL"
"""The environment variable the base URL is read from (the official SDK's name)."""

_SCRUB_MIN = 8


class Secret:
    """A value that no ``repr``, ``str`` or pickle shows; ``reveal()`` hands it out."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        self._value = value

    def reveal(self) -> object:
        """The value itself."""
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        msg = "a Linq API key is never pickled"
        raise TypeError(msg)


class BearerAuth(httpx.Auth):
    """Sets ``Authorization: Bearer <key>`` on each request; shows the key nowhere."""

    def __init__(self, key: str) -> None:
        self._key = Secret(key)
        self._header = Secret(f"Bearer {key}")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the header (httpx masks it in ``repr(request.headers)``) and send."""
        request.headers["Authorization"] = self._header.reveal()  # type: ignore[assignment]
        yield request

    def scrub(self, text: str) -> str:
        """``text`` with the key replaced by ``<redacted>``, in each form a message shows it.

        For messages of errors raised below the library (httpx, httpcore, h11), which
        may quote a header back; a key that passed ``bearer_auth`` should never be in
        one, this makes sure.
        """
        key = str(self._key.reveal())
        forms = {key, repr(key)[1:-1], repr(key.encode())[2:-1]}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(f"Bearer {form}", "Bearer <redacted>")
            # A short key (a test's "k") would also match ordinary words: only the
            # header form is certain to be it.
            if len(form) >= _SCRUB_MIN:
                text = text.replace(form, "<redacted>")
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"

    def __reduce__(self) -> NoReturn:
        msg = "a Linq API key is never pickled"
        raise TypeError(msg)


def bearer_auth(given: Secret) -> BearerAuth:
    """The auth for the key ``given`` (``None``: the environment's), checked and stripped.

    Raises ``TypeError`` or ``ValueError`` naming ``api_key`` or ``LINQ_API_V3_API_KEY``;
    no local of this frame (or of the callers', who hold ``Secret`` objects) is the key.
    """
    key = given if given.reveal() is not None else Secret(os.environ.get(API_KEY_ENV))
    source = "api_key" if given.reveal() is not None else API_KEY_ENV
    problem = _problem(key, source)
    if problem is not None:
        error, msg = problem
        raise error(msg)
    return BearerAuth(str(key.reveal()).strip())


def _problem(key: Secret, source: str) -> tuple[type[Exception], str] | None:
    """What is wrong with the key, as (exception class, message); None when nothing is.

    Returns rather than raises, so that the frame whose locals hold the key's text is
    gone before any traceback is made.
    """
    value = key.reveal()
    if value is None or (source == API_KEY_ENV and isinstance(value, str) and not value):
        return ValueError, (
            f"no Linq API key: pass api_key=... or set the {API_KEY_ENV} environment variable"
        )
    if not isinstance(value, str):
        return TypeError, (
            f"{source} must be a str (the Linq API key), got {type(value).__name__} "
            "(the value is not shown: it may be the key)"
        )
    stripped = value.strip()
    if not stripped:
        return ValueError, (
            f"{source} must be a non-empty Linq API key, but it is empty or only whitespace"
        )
    for position, char in enumerate(stripped):
        if not " " <= char <= "~":  # printable ASCII; whitespace around is already gone
            control = char < " " or char == "\x7f"
            kind = "a control character" if control else "a character outside ASCII"
            return ValueError, (
                f"{source} must be printable ASCII (only whitespace around it is stripped), "
                f"but it has {kind}, U+{ord(char):04X}, at position {position}; "
                "check how the key was read or pasted"
            )
    return None


# -- the base URL --------------------------------------------------------------------

_USERINFO = re.compile(r"(?<=//)[^/?#@]*@")


def masked_url(url: str) -> str:
    """``url`` with any ``user:password@`` shown as ``***@``."""
    return _USERINFO.sub("***@", url)


def base_url_setting(given: object) -> str:
    """The checked base URL: ``given``, else ``LINQ_API_V3_BASE_URL``, else the default.

    An empty (or all-whitespace) variable counts as unset, as shells and container
    configurations leave variables defined but empty; an empty argument is an error.
    """
    if given is None:
        value = os.environ.get(BASE_URL_ENV, "")
        return DEFAULT_BASE_URL if not value.strip() else _checked_url(BASE_URL_ENV, value)
    if not isinstance(given, str):
        msg = (
            f"base_url must be a str (an http:// or https:// URL), "
            f"got {type(given).__name__} {shown(given)}"
        )
        raise TypeError(msg)
    return _checked_url("base_url", given)


def _checked_url(name: str, raw: str) -> str:
    url = raw.strip()  # a URL read from a file keeps its newline
    need = f"{name} must be an http:// or https:// URL such as {DEFAULT_BASE_URL!r}"
    got = shown(masked_url(raw))
    problem = None
    if not url:
        problem = "it is empty"
    elif any(c.isspace() for c in url):
        problem = "it has whitespace inside"
    elif any(ord(c) < 32 or ord(c) == 127 for c in url):
        problem = "it has a control character"
    elif not url.lower().startswith(("http://", "https://")):
        problem = "it does not start with http:// or https://"
    else:
        try:
            host = httpx.URL(url).host
        except httpx.InvalidURL as exc:
            problem = f"httpx cannot parse it ({exc})"
        else:
            if not host:
                problem = "it has no host"
    if problem is not None:
        msg = f"{need}; got {got}: {problem}"
        raise ValueError(msg)
    return url.rstrip("/")
