"""What a failed command prints: one line that names what to fix, never a secret.

The command line's failures are click exceptions (``Failure``, exit code 1, and
``UsageLine``, exit code 2, both one line); ``describe_api_error`` turns what the
library raised into that line, with the URL tried (without its user, password or
query) and the variable to check; ``HoldingErrors`` shows the library's warnings but
holds back its error logs, which would only repeat that line.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import urlsplit

import click

from ._client import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from ._errors import AuthenticationError, LinqAPIError, LinqConnectionError

__all__ = [
    "Failure",
    "HoldingErrors",
    "UsageLine",
    "check_base_url",
    "describe_api_error",
    "report_path_problem",
    "root_error",
    "safe_url",
    "scrub",
]


class Failure(click.ClickException):
    """An API or selection failure: exit code 1, message on stderr."""

    exit_code = 1


class UsageLine(click.ClickException):
    """A usage error told in one line (no usage banner): exit code 2."""

    exit_code = 2


class HoldingErrors(logging.StreamHandler):  # type: ignore[type-arg]
    """Shows the library's warnings on stderr; holds its errors back until the end.

    A failure the command reports itself (its one ``Error:`` line) makes them
    redundant: after ``failed()`` they are dropped, even those a background refresh
    logs a moment after the failure reached the command. Otherwise ``show_held()``
    shows them at the end.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        self.setLevel(logging.WARNING)
        self.held: list[logging.LogRecord] = []
        self._failed = False

    def emit(self, record: logging.LogRecord) -> None:
        """Write a warning at once; keep an error for later (or drop it after a failure)."""
        if record.levelno < logging.ERROR:
            super().emit(record)
        elif not self._failed:
            self.held.append(record)

    def failed(self) -> None:
        """The command reports its failure itself: drop the errors, held and to come."""
        self._failed = True
        self.held = []

    # Not ``release``: that is ``logging.Handler``'s own (its lock).
    def show_held(self) -> None:
        """Write the errors held back."""
        held, self.held = self.held, []
        for record in held:
            super().emit(record)


def safe_url(url: str) -> str:
    """``url`` without user, password, query or fragment: what a message may show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port that is not a number, say
        return "<the URL in " + BASE_URL_ENV + ">"
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")


_USERINFO = re.compile(r"//[^/@\s]*@")
_MIN_SCRUBBED_KEY = 6


def scrub(text: str, url: str) -> str:
    """A message from elsewhere with the base URL made safe and any key left out."""
    text = text.replace(url, safe_url(url))
    text = _USERINFO.sub("//", text)
    key = os.environ.get(API_KEY_ENV, "")
    # A key of a few characters would match inside ordinary words ("k" in "known").
    return text.replace(key, "<the key>") if len(key) >= _MIN_SCRUBBED_KEY else text


def root_error(exc: LinqAPIError) -> LinqAPIError:
    """The API error behind a registry error (the registry wraps what the client raised)."""
    while isinstance(exc.__cause__, LinqAPIError):
        exc = exc.__cause__
    return exc


def _answer(exc: LinqAPIError) -> str:
    """'HTTP 401, code 2004: Unauthorized - ...': the status, code and message, once each."""
    parts = [f"HTTP {exc.status}"] if exc.status is not None else []
    if exc.code is not None:
        parts.append(f"code {exc.code}")
    return f"{', '.join(parts)}: {exc.message}" if parts else exc.message


def describe_api_error(exc: LinqAPIError, url: str) -> str:
    """One line saying what went wrong with the API at ``url`` and what to check."""
    root = root_error(exc)
    where = f"the Linq API at {safe_url(url)}"
    if os.environ.get(BASE_URL_ENV) and url == os.environ[BASE_URL_ENV].rstrip("/"):
        origin = f" (from {BASE_URL_ENV})"
    else:
        origin = ""
    if isinstance(root, AuthenticationError) or root.code == 2004 or root.status == 401:
        text = f"{where}{origin} refused the API key in {API_KEY_ENV} ({_answer(root)})"
    elif isinstance(root, LinqConnectionError):
        cause = root.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else root.message
        hint = "" if origin else f"; set {BASE_URL_ENV} to use another server"
        text = f"no answer from {where}{origin}: {detail}{hint}"
    elif root.status is not None:
        text = f"{where}{origin} answered {_answer(root)}"
    else:
        text = f"{where}{origin}: {_answer(root)}"
    return scrub(text, url)


def check_base_url() -> None:
    """A usage error when ``LINQ_API_V3_BASE_URL`` is set but not an http(s) URL."""
    url = (os.environ.get(BASE_URL_ENV) or "").strip()  # blank counts as unset, as in the client
    if url and not url.startswith(("http://", "https://")):
        msg = (
            f"{BASE_URL_ENV} must be an http:// or https:// URL such as {DEFAULT_BASE_URL}, "
            f"got {safe_url(url)!r}"
        )
        raise click.UsageError(msg)


def report_path_problem(path: str) -> str | None:
    """Why an HTML report could not be written to ``path``, or ``None`` if it could."""
    if os.path.isdir(path):
        return "is a directory; give a file name such as report.html"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(parent):
        return f"directory {parent} does not exist"
    if not os.path.isdir(parent):
        return f"{parent} is not a directory"
    if os.path.exists(path):
        return None if os.access(path, os.W_OK) else "the file is not writable"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    return None
