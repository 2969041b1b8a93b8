"""The Webhooks page's serving examples run, and each answers Linq's webhooks as it says.

docs/webhooks.md has four complete modules, each a ```python block titled with its
file name (``title="webhooks_fastapi.py"``). Each runs here as tests/test_readme.py
runs the README's blocks (its ``code_blocks`` finds them), in a fresh namespace, with
a ``FakeLinqServer`` behind ``LINQ_API_V3_*`` and a fresh ``LINQ_WEBHOOK_SECRET``. The
FastAPI and Flask ones are given the names the page says they assume: ``registry``,
``router`` and ``sender``. Then signed webhooks go through the framework's own test
client. test_readme skips these blocks, with a reason that points here.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
import werkzeug.test
from linq import AsyncLinqAPIV3, LinqAPIV3
from test_readme import Block, code_blocks

from linq_router import (
    API_KEY_ENV,
    BASE_URL_ENV,
    AsyncLinqClient,
    AsyncRegistry,
    AsyncRouter,
    LinqClient,
    Registry,
    Reputation,
    Router,
    Snapshot,
    Verdict,
)
from linq_router.sdk import AsyncSender, Sender
from linq_router.testing import FakeLinqServer, sample_pool
from linq_router.webhooks import SECRET_VARIABLE

with warnings.catch_warnings():
    # Starlette 1.x asks for the httpx2 package; its TestClient still runs on httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "webhooks.md"
MODULES = ("webhooks_app.py", "webhooks_wsgi.py", "webhooks_fastapi.py", "webhooks_flask.py")
"""The titled examples the page must have, in page order."""
PATH = "/linq/webhooks"
LINE = "+12025550101"
"""A line of ``sample_pool()``: HEALTHY and ACTIVE until a webhook says otherwise."""
LIST = "GET /v3/phone_numbers"
TO = ["+14155550123"]
HELLO = {"parts": [{"type": "text", "value": "Hello!"}]}

_TITLE = re.compile(r'\btitle="(?P<title>[^"]+)"')

Answer = tuple[int, dict[str, Any]]
Post = Callable[[bytes, dict[str, str]], Answer]


def titled_blocks() -> dict[str, Block]:
    """The page's Python blocks that carry a ``title="..."``, by title."""
    fences = PAGE.read_text(encoding="utf-8").splitlines()
    found: dict[str, Block] = {}
    for block in code_blocks(PAGE):
        title = _TITLE.search(fences[block.line - 1])
        if block.language == "python" and title is not None:
            found[title["title"]] = block
    return found


BLOCKS = titled_blocks()


def run_module(title: str, **given: object) -> dict[str, Any]:
    """Run the block titled ``title`` as that module would run, with ``given`` defined."""
    block = BLOCKS[title]
    namespace: dict[str, Any] = {"__name__": Path(title).stem, "__file__": str(PAGE), **given}
    exec(compile(block.source, block.id, "exec"), namespace)  # running the docs is the point
    return namespace


def new_secret() -> str:
    """A signing secret in Linq's format: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode("ascii")


def envelope(event_type: str, data: dict[str, Any]) -> bytes:
    """A webhook body in Linq's envelope (the official SDK's event models)."""
    now = datetime.datetime.now(tz=datetime.timezone.utc).isoformat()
    event = {
        "api_version": "v3",
        "created_at": now,
        "event_id": f"evt_{uuid.uuid4().hex}",
        "event_type": event_type,
        "partner_id": "partner_docs",
        "trace_id": uuid.uuid4().hex,
        "webhook_version": "2026-02-03",
        "data": data,
    }
    return json.dumps(event).encode("utf-8")


def status_updated(number: str = LINE) -> bytes:
    """``phone_number.status_updated``: ``number`` went CRITICAL and FLAGGED just now."""
    return envelope(
        "phone_number.status_updated",
        {
            "phone_number": number,
            "previous_reputation": "HEALTHY",
            "new_reputation": "CRITICAL",
            "previous_status": "ACTIVE",
            "new_status": "FLAGGED",
            "changed_at": datetime.datetime.now(tz=datetime.timezone.utc).isoformat(),
        },
    )


def signed(body: bytes, secret: str) -> dict[str, str]:
    """The Standard Webhooks headers Linq sends with ``body``, signed with ``secret`` now."""
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(secret).sign(msg_id, now, body.decode()),
    }


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh signing secret, in ``LINQ_WEBHOOK_SECRET`` as the examples read it."""
    value = new_secret()
    monkeypatch.setenv(SECRET_VARIABLE, value)
    return value


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLinqServer]:
    """A fake Linq API with the sample pool, and the environment pointing at it."""
    with FakeLinqServer(sample_pool()) as server:
        monkeypatch.setenv(API_KEY_ENV, server.api_key)
        monkeypatch.setenv(BASE_URL_ENV, server.base_url)
        yield server


@pytest.fixture
def sync_names(fake_api: FakeLinqServer) -> Iterator[dict[str, Any]]:
    """``registry``, ``router`` and ``sender`` as the page assumes, the list fetched once."""
    client = LinqClient()
    sdk = LinqAPIV3()
    registry = Registry(client)
    router = Router(registry)
    router.pick()
    yield {"registry": registry, "router": router, "sender": Sender(router, sdk)}
    registry.close()
    client.close()
    sdk.close()


def fastapi_post(client: TestClient) -> Post:
    """POST through Starlette's test client (FastAPI's, and any ASGI app's)."""

    def post(body: bytes, headers: dict[str, str]) -> Answer:
        response = client.post(PATH, content=body, headers=headers)
        return response.status_code, response.json()

    return post


def werkzeug_post(client: werkzeug.test.Client) -> Post:
    """POST through werkzeug's test client (Flask's, and any WSGI app's)."""

    def post(body: bytes, headers: dict[str, str]) -> Answer:
        response = client.post(PATH, data=body, headers=headers)
        return response.status_code, response.get_json()

    return post


def check_answers(
    post: Post, secret: str, server: FakeLinqServer, snapshot: Callable[[], Snapshot]
) -> None:
    """A forged event is 401; a signed one 200, applied with no list request; a repeat 200."""
    before = server.count(LIST)
    assert before >= 1, "the registry should hold a snapshot before the event"
    body = status_updated()

    status, answer = post(body, signed(body, new_secret()))
    assert (status, answer["status"], answer["applied"]) == (401, 401, False), answer
    assert snapshot().get(LINE).reputation is Reputation.HEALTHY  # type: ignore[union-attr]

    status, answer = post(body, signed(body, secret))
    assert (status, answer["applied"]) == (200, True), answer
    assert answer["event_type"] == "phone_number.status_updated"
    line = snapshot().get(LINE)
    assert line is not None
    assert (line.reputation, line.status) == (Reputation.CRITICAL, "FLAGGED")

    status, answer = post(body, signed(body, secret))  # Linq delivering it again
    assert (status, answer["applied"]) == (200, False), answer
    assert server.count(LIST) == before


def test_the_page_has_its_four_examples() -> None:
    """The page has the four titled modules, each skipped by test_readme with a pointer here."""
    assert list(BLOCKS) == list(MODULES)
    for block in BLOCKS.values():
        assert block.skip is not None, f"{block.id}: mark it <!-- no-test: ... -->"
        assert "tests/test_docs_webhooks.py" in block.skip, block.id


def test_the_asgi_module_answers_webhooks(fake_api: FakeLinqServer, secret: str) -> None:
    """webhooks_app.py, as uvicorn would serve it: signed events change the snapshot."""
    names = run_module("webhooks_app.py")
    registry = names["registry"]
    try:
        names["router"].pick()
        with TestClient(names["app"]) as client:
            check_answers(fastapi_post(client), secret, fake_api, registry.snapshot)
    finally:
        registry.close()
        registry.client.close()


def test_the_wsgi_module_answers_webhooks(fake_api: FakeLinqServer, secret: str) -> None:
    """webhooks_wsgi.py, as gunicorn would serve it (imported, not run as a script)."""
    names = run_module("webhooks_wsgi.py")
    registry = names["registry"]
    try:
        names["router"].pick()
        client = werkzeug.test.Client(names["app"])
        check_answers(werkzeug_post(client), secret, fake_api, registry.snapshot)
    finally:
        registry.close()
        registry.client.close()


def test_the_fastapi_example_answers_webhooks(
    fake_api: FakeLinqServer, secret: str, sync_names: dict[str, Any]
) -> None:
    """webhooks_fastapi.py with a Registry and Router: ``ahandle`` calls the router's part."""
    names = run_module("webhooks_fastapi.py", **sync_names)
    with TestClient(names["app"]) as client:
        check_answers(fastapi_post(client), secret, fake_api, sync_names["registry"].snapshot)


def test_the_fastapi_example_answers_webhooks_with_the_async_twins(
    fake_api: FakeLinqServer, secret: str
) -> None:
    """webhooks_fastapi.py with an AsyncRegistry, AsyncRouter and AsyncSender."""
    # Built here, used only on the test client's event loop (httpx binds on first use).
    client, sdk = AsyncLinqClient(), AsyncLinqAPIV3()
    registry = AsyncRegistry(client)
    router = AsyncRouter(registry)
    sender = AsyncSender(router, sdk)
    names = run_module("webhooks_fastapi.py", registry=registry, router=router, sender=sender)
    with TestClient(names["app"]) as http:
        try:
            http.portal.call(router.pick)
            check_answers(
                fastapi_post(http), secret, fake_api, lambda: http.portal.call(registry.snapshot)
            )
        finally:
            http.portal.call(registry.aclose)
            http.portal.call(client.aclose)
            http.portal.call(sdk.close)


def test_the_flask_example_answers_webhooks(
    fake_api: FakeLinqServer, secret: str, sync_names: dict[str, Any]
) -> None:
    """webhooks_flask.py: ``request.get_data()`` and ``request.headers`` verify as sent."""
    names = run_module("webhooks_flask.py", **sync_names)
    client = names["app"].test_client()
    check_answers(werkzeug_post(client), secret, fake_api, sync_names["registry"].snapshot)


def test_the_flask_example_reports_a_failed_message_through_the_sender(
    fake_api: FakeLinqServer, secret: str, sync_names: dict[str, Any]
) -> None:
    """A ``message.failed`` (which names no line) reaches its line through the ``sender``."""
    names = run_module("webhooks_flask.py", **sync_names)
    post = werkzeug_post(names["app"].test_client())
    sent = sync_names["sender"].create_chat(to=TO, message=HELLO)
    line = sent.pick.phone_number
    body = envelope(
        "message.failed",
        {
            "code": 2027,
            "failed_at": datetime.datetime.now(tz=datetime.timezone.utc).isoformat(),
            "chat_id": sent.response.chat.id,
            "message_id": sent.response.chat.message.id,
        },
    )
    status, answer = post(body, signed(body, secret))
    assert (status, answer["applied"]) == (200, True), answer
    ejected = {e.line: e.verdict for e in sync_names["router"].ejections()}
    assert ejected == {line: Verdict.LINE_INELIGIBLE}
