"""Test helpers for code that uses linq_router: a fake Linq API and sample data.

``FakeLinqServer`` serves Linq's phone-number and send endpoints on 127.0.0.1 with
lines, response shapes, faults and per-line send behaviour you control at run time,
and records every send as a ``SentMessage``::

    from linq_router.testing import FakeLinqServer, sample_pool

    with FakeLinqServer(sample_pool()) as server:
        server.fail_next("3006")
        server.set_line_behaviour("+12025550101", "ineligible")
        ...  # point the client at server.base_url, key server.api_key
        assert server.send_count("+12025550101") == 0

For policy plugin authors (needs hypothesis): ``check_policy(factory)`` and the
strategies ``phone_numbers()``, ``snapshots()``, ``recipients()``.

.. versionadded:: 0.1
"""

from typing import TYPE_CHECKING, Any

from ._clock import FakeClock
from ._fake_api import FakeLinqServer
from ._fake_data import NumberSpec, Shape, default_pool, sample_pool
from ._fake_sends import SentMessage
from ._faults import FAULT_KINDS, Fault, error_envelope
from ._redis_server import RedisServer
from ._routes import RecordedRequest
from ._state_contract import StateContractError, check_async_state, check_state
from ._webhook_delivery import DeliveredWebhook

if TYPE_CHECKING:
    from .contract import PolicyContractError, check_policy
    from .strategies import e164_numbers, emails, phone_numbers, recipients, snapshots

# The policy kit needs hypothesis, a test-time dependency: import it on first use so
# that the fake API works without it.
_LAZY = {
    "PolicyContractError": "contract",
    "check_policy": "contract",
    "e164_numbers": "strategies",
    "emails": "strategies",
    "phone_numbers": "strategies",
    "recipients": "strategies",
    "snapshots": "strategies",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib  # noqa: PLC0415

    try:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    except ImportError as exc:
        msg = f"linq_router.testing.{name} needs hypothesis: pip install 'linq-router[testing]'"
        raise ImportError(msg) from exc
    globals()[name] = value
    return value


__all__ = [
    "FAULT_KINDS",
    "DeliveredWebhook",
    "FakeClock",
    "FakeLinqServer",
    "Fault",
    "NumberSpec",
    "PolicyContractError",
    "RecordedRequest",
    "RedisServer",
    "SentMessage",
    "Shape",
    "StateContractError",
    "check_async_state",
    "check_policy",
    "check_state",
    "default_pool",
    "e164_numbers",
    "emails",
    "error_envelope",
    "phone_numbers",
    "recipients",
    "sample_pool",
    "snapshots",
]
