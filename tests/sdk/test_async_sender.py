"""AsyncSender and AsyncReportingTransport: the asyncio SDK against the fake, same rules."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import linq
import pytest

from linq_router import AsyncLinqClient, AsyncRegistry, AsyncRouter, LinqClient, Registry, Router
from linq_router.feedback import OutcomeLike, Verdict
from linq_router.sdk import (
    AsyncReportingTransport,
    AsyncSender,
    ReportingTransport,
    Sender,
    Sent,
)
from linq_router.testing import FakeLinqServer

from .helpers import CREATE, LINES, MESSAGE, closed_port, recipient

VOICE_MEMO_URL = "https://example.com/memo.m4a"


class AsyncSpyRouter(AsyncRouter):
    """A real AsyncRouter that keeps every report: (line, outcome, to, verdict)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reports: list[tuple[str, OutcomeLike, Any, Verdict]] = []

    async def report(self, pick: Any, outcome: OutcomeLike = None, *, to: Any = None) -> Verdict:
        verdict = await super().report(pick, outcome, to=to)
        line = pick if isinstance(pick, str) else pick.phone_number
        self.reports.append((line, outcome, to, verdict))
        return verdict


class AsyncRefuseFirst(httpx.AsyncBaseTransport):
    """Sends the first ``refuse`` POSTs to a closed port (a real connect error), then on."""

    def __init__(self, refuse: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.left = refuse
        self.port = closed_port()
        self.raised: list[BaseException] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and self.left > 0:
            self.left -= 1
            request = httpx.Request(
                request.method,
                request.url.copy_with(port=self.port),
                headers=request.headers,
                content=request.content,
                extensions=request.extensions,
            )
            try:
                return await self.inner.handle_async_request(request)
            except Exception as exc:
                self.raised.append(exc)
                raise
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def world(
    fake: FakeLinqServer,
    *,
    policy: str = "round-robin",
    transport: Callable[[AsyncRouter], httpx.AsyncBaseTransport] | None = None,
) -> AsyncIterator[tuple[AsyncSpyRouter, linq.AsyncLinqAPIV3]]:
    """An AsyncRegistry, a spying AsyncRouter and a strict async SDK client, all closed after."""
    async with AsyncLinqClient(fake.api_key, base_url=fake.base_url) as ours:
        registry = AsyncRegistry(ours)
        router = AsyncSpyRouter(registry, policy=policy)
        http = httpx.AsyncClient(transport=transport(router)) if transport else None
        client = linq.AsyncLinqAPIV3(
            api_key=fake.api_key,
            base_url=fake.base_url,
            _strict_response_validation=True,
            timeout=10.0,
            http_client=http,
        )
        try:
            yield router, client
        finally:
            await client.close()
            router.close()
            await registry.aclose()


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main()`` with a timeout."""

    async def bounded() -> None:
        await asyncio.wait_for(main(), timeout=30)

    asyncio.run(bounded())


def test_create_chat_returns_the_sdks_answer_and_the_pick(fake: FakeLinqServer) -> None:
    """One create from the picked line, awaited; the SDK's own answer comes back unchanged."""

    async def main() -> None:
        async with world(fake) as (router, client):
            sent = await AsyncSender(router, client).create_chat(to=recipient(1), message=MESSAGE)
            assert isinstance(sent, Sent)
            assert sent.attempts == ((sent.phone_number, Verdict.SUCCESS),)
            assert fake.sends[-1].from_ == sent.phone_number
            assert [(r[0], tuple(r[2]), r[3]) for r in router.reports] == [
                (sent.phone_number, (recipient(1),), Verdict.SUCCESS)
            ]

    run(main)


def test_create_chat_to_a_2027_line_lands_on_another_line_in_one_call(
    fake: FakeLinqServer,
) -> None:
    """The pinned line answers 2027: the same awaited call lands on another line."""

    async def main() -> None:
        async with world(fake, policy="sticky") as (router, client):
            bad = LINES[3]
            await router.pin(recipient(2), bad)
            fake.set_line_behaviour(bad, "ineligible")
            sent = await AsyncSender(router, client).create_chat(to=[recipient(2)], message=MESSAGE)
            assert sent.attempts == (
                (bad, Verdict.LINE_INELIGIBLE),
                (sent.phone_number, Verdict.SUCCESS),
            )
            assert fake.rejected_count(bad, code=2027) == 1

    run(main)


def test_a_500_and_a_read_timeout_are_raised_never_resent(fake: FakeLinqServer) -> None:
    """Unknown outcomes: the SDK's own error, exactly one request each."""

    async def main() -> None:
        async with world(fake) as (router, client):
            sender = AsyncSender(router, client)
            fake.fail_next("3006", route=CREATE)
            with pytest.raises(linq.InternalServerError):
                await sender.create_chat(to=[recipient(3)], message=MESSAGE)
            assert fake.count(CREATE) == 1
            fake.fail_next("delay", route=CREATE, delay=30)
            with pytest.raises(linq.APITimeoutError):
                await sender.create_chat(to=[recipient(4)], message=MESSAGE, timeout=0.3)
            assert fake.count(CREATE) == 2
            assert [r[3] for r in router.reports] == [Verdict.LINE_FAILURE] * 2

    run(main)


def test_a_connect_error_is_retried_on_another_line(fake: FakeLinqServer) -> None:
    """Refused at connect: reported, then sent from a new pick in the same call."""
    refusing = AsyncRefuseFirst(1)

    async def main() -> None:
        async with world(fake, transport=lambda _: refusing) as (router, client):
            sent = await AsyncSender(router, client).create_chat(to=[recipient(5)], message=MESSAGE)
            [(first, verdict), (second, success)] = sent.attempts
            assert (verdict, success) == (Verdict.LINE_FAILURE, Verdict.SUCCESS)
            assert first != second
            assert isinstance(refusing.raised[0], httpx.ConnectError)
            assert fake.count(CREATE) == 1

    run(main)


def test_messages_and_voice_memos_report_against_the_chats_line(fake: FakeLinqServer) -> None:
    """Awaited sends on a chat are reported against its line; a 2027 ejects it."""

    async def main() -> None:
        async with world(fake) as (router, client):
            sender = AsyncSender(router, client)
            sent = await sender.create_chat(to=[recipient(6)], message=MESSAGE)
            reply = await sender.send_message(sent.chat_id, message=MESSAGE)
            memo = await sender.send_voice_memo(sent.chat_id, voice_memo_url=VOICE_MEMO_URL)
            assert sender.line_for_message(reply.message.id) == sent.phone_number
            assert sender.line_for_message(memo.voice_memo.id) == sent.phone_number
            assert [r[0] for r in router.reports] == [sent.phone_number] * 3
            fake.set_line_behaviour(sent.phone_number, "ineligible")
            with pytest.raises(linq.PermissionDeniedError):
                await sender.send_message(sent.chat_id, message=MESSAGE)
            picks = {(await router.pick(recipient(100 + i))).phone_number for i in range(24)}
            assert sent.phone_number not in picks
            # A chat it does not know: sent, not reported.
            free = next(line for line in LINES if line != sent.phone_number)
            other = await client.chats.create(from_=free, to=[recipient(7)], message=MESSAGE)
            before = len(router.reports)
            await sender.send_message(other.chat.id, message=MESSAGE)
            assert len(router.reports) == before

    run(main)


def test_async_reporting_transport_reports_and_hands_the_answer_on(fake: FakeLinqServer) -> None:
    """The async transport: creates and chat sends reported, the SDK's errors as without it."""

    async def main() -> None:
        async with world(fake, transport=AsyncReportingTransport) as (router, client):
            line = (await router.pick(recipient(8))).phone_number
            chat = (await client.chats.create(from_=line, to=[recipient(8)], message=MESSAGE)).chat
            await client.chats.messages.send(chat.id, message=MESSAGE)
            fake.set_line_behaviour(line, "ineligible")
            with pytest.raises(linq.PermissionDeniedError) as info:
                await client.chats.send_voicememo(chat.id, voice_memo_url=VOICE_MEMO_URL)
            assert info.value.code == 2027
            assert [(r[0], r[3]) for r in router.reports] == [
                (line, Verdict.SUCCESS),
                (line, Verdict.SUCCESS),
                (line, Verdict.LINE_INELIGIBLE),
            ]
            picks = {(await router.pick(recipient(200 + i))).phone_number for i in range(24)}
            assert line not in picks
            fake.fail_next("drop", route=CREATE)
            with pytest.raises(linq.APIConnectionError):
                await client.with_options(max_retries=0).chats.create(
                    from_=LINES[0], to=[recipient(9)], message=MESSAGE
                )
            assert router.reports[-1][3] is Verdict.LINE_FAILURE

    run(main)


def test_the_async_twins_are_checked_and_match_the_sync_ones(fake: FakeLinqServer) -> None:
    """Sync twins refuse async parts and the other way round; public methods match by name."""

    async def main() -> None:
        async with world(fake) as (router, _):
            with pytest.raises(TypeError, match="Sender"):
                AsyncSender(router, linq.LinqAPIV3(api_key="k", base_url=fake.base_url))  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="synchronous"):
                ReportingTransport(router)  # type: ignore[arg-type]

    run(main)
    with LinqClient(fake.api_key, base_url=fake.base_url) as ours, Registry(ours) as registry:
        with Router(registry) as sync_router, pytest.raises(TypeError, match="asyncio"):
            AsyncReportingTransport(sync_router)  # type: ignore[arg-type]
        with Router(registry) as sync_router, pytest.raises(TypeError, match="asyncio"):
            AsyncSender(sync_router, linq.AsyncLinqAPIV3(api_key="k", base_url=fake.base_url))  # type: ignore[arg-type]

    def public(cls: type) -> set[str]:
        return {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}

    assert public(Sender) == public(AsyncSender)
    assert public(ReportingTransport) - {"handle_request", "close"} == public(
        AsyncReportingTransport
    ) - {"handle_async_request", "aclose"}
    for name in ("create_chat", "send_message", "send_voice_memo"):
        assert inspect.iscoroutinefunction(getattr(AsyncSender, name))
        assert not inspect.iscoroutinefunction(getattr(Sender, name))
