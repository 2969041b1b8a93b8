"""Test helpers for code that uses linq_router: a fake Linq API and sample data.

``FakeLinqServer`` serves Linq's phone-number endpoints on 127.0.0.1 with lines,
response shapes and faults you control at run time::

    from linq_router.testing import FakeLinqServer, sample_pool

    with FakeLinqServer(sample_pool()) as server:
        server.fail_next("3006")
        ...  # point the client at server.base_url, key server.api_key

.. versionadded:: 0.1
"""

from ._clock import FakeClock
from ._fake_api import FakeLinqServer
from ._fake_data import NumberSpec, Shape, default_pool, sample_pool
from ._faults import FAULT_KINDS, Fault, error_envelope
from ._routes import RecordedRequest

__all__ = [
    "FAULT_KINDS",
    "FakeClock",
    "FakeLinqServer",
    "Fault",
    "NumberSpec",
    "RecordedRequest",
    "Shape",
    "default_pool",
    "error_envelope",
    "sample_pool",
]
