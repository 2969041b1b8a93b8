"""What the fleet tests share: waiting for a notice, a test's namespace from its URI."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Wait up to ``timeout`` s for ``condition``: a notice crossing a real socket (Redis)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return condition()


def namespace_of(state_uri: str) -> str:
    """The ``namespace=`` of a state URI."""
    return state_uri.split("namespace=")[1].split("&", maxsplit=1)[0]


PATIENT = "&socket_timeout_ms=2000&socket_connect_timeout_ms=2000"
"""State URI options for tests of many processes on two cores: Redis answers late there.

The default 50 ms timeouts would count a busy machine as an outage; the outage tests
kill a server of their own instead.
"""
