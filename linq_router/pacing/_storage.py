"""``limits``' storage for a ``Pacing(storage=...)`` URI: ``storage``. No I/O until used.

linq_router's own query options (``key_prefix``, socket timeouts in seconds) become
the storage's options; a Sentinel URI also takes the state's ``/service_name/db``
form. Errors name the URI without its password.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from limits.errors import ConfigurationError
from limits.storage import storage_from_string

__all__ = ["storage"]

_SENTINELS = ("redis+sentinel", "valkey+sentinel")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _sentinel_options(base: str, options: dict[str, Any]) -> str:
    """A Sentinel URI's ``/service_name[/db]`` path as ``limits``' options; its base.

    ``limits`` reads the whole path as the service name (``/mymaster/0`` would be a
    service ``mymaster0``), and passes its options on to ``redis.sentinel.Sentinel``,
    whose master connections take ``db``. ``options`` holds ``db`` and ``use_replicas``
    as the query gave them; they are checked and converted here.
    """
    parts = urllib.parse.urlsplit(base)
    steps = [step for step in parts.path.split("/") if step]
    if len(steps) > 2:
        msg = f"the path is /service_name or /service_name/db, got {parts.path!r}"
        raise ConfigurationError(msg)
    if steps:
        options["service_name"] = urllib.parse.unquote(steps[0])
        base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    if len(steps) == 2:
        if "db" in options:
            msg = "the database is given twice, in the path and as db="
            raise ConfigurationError(msg)
        options["db"] = steps[1]
    if "db" in options:
        db = options["db"]
        if not db.isdigit():
            msg = f"db must be a database number, got {db!r}"
            raise ConfigurationError(msg)
        options["db"] = int(db)
    replicas = options.get("use_replicas", "false").lower()
    if replicas not in _TRUE + _FALSE:
        msg = f"use_replicas must be true or false, got {replicas!r}"
        raise ConfigurationError(msg)
    options["use_replicas"] = replicas in _TRUE
    return base


_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")


def _seconds_option(uri: str, name: str, value: str) -> float:
    """A timeout option's value in seconds; a ``ValueError`` naming it otherwise."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        shown_uri = uri.split("@", 1)[-1]
        msg = f"Pacing(storage={shown_uri!r}): {name} must be seconds > 0, got {value!r}"
        raise ValueError(msg)
    return seconds


def storage(uri: str) -> Any:
    """``limits``' storage for ``uri``; a ``ValueError`` naming it if limits refuses it.

    A ``key_prefix=`` in the query string is the storage's option of that name (what
    ``Router(state=...)`` sets, so two fleets on one Redis keep apart), and so are
    ``socket_timeout=`` and ``socket_connect_timeout=`` (seconds); the asyncio
    Redis storages use redis-py, as the rest of linq_router does.

    A Sentinel URI takes linq_router's state form too, ``/service_name/db``, and the
    options ``db=`` and ``use_replicas=``. Budgets are read from the master unless
    ``use_replicas=true``: a replica that lags would show room a line no longer has.
    """
    base, _, query = uri.partition("?")
    options: dict[str, Any] = {}
    kept = []
    scheme = base.split("://", 1)[0]
    sentinel = scheme.removeprefix("async+") in _SENTINELS
    target = uri
    try:
        for part in query.split("&") if query else ():
            name, _, value = part.partition("=")
            value = urllib.parse.unquote(value)
            if name == "key_prefix":
                options["key_prefix"] = value
            elif name in _TIMEOUTS:
                options[name] = _seconds_option(uri, name, value)
            elif sentinel and name in ("db", "use_replicas"):
                options[name] = value
            else:
                kept.append(part)
        if sentinel:
            base = _sentinel_options(base, options)
        if scheme.startswith("async+redis"):
            options.setdefault("implementation", "redispy")
        target = base + ("?" + "&".join(kept) if kept else "")
        return storage_from_string(target, **options)
    except ConfigurationError as error:
        shown_uri = uri.split("@", 1)[-1] if "@" in uri else uri  # never a password
        said = str(error).replace(uri, shown_uri)
        if "@" in target:  # limits names the URI it was given: this one, without options
            said = said.replace(target, target.split("@", 1)[-1])
        msg = f"Pacing(storage={shown_uri!r}) cannot be used: {said}"
        raise ValueError(msg) from None
