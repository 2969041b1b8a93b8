"""Sender and pacing: never a send over a pair at its limit, and no 429 from the fake."""

from __future__ import annotations

import asyncio
import time

import linq
import pytest

from linq_router import AsyncLinqClient, AsyncRegistry, AsyncRouter, Pacing, PairLimitedError
from linq_router.sdk import AsyncSender, Sender
from linq_router.testing import FakeLinqServer

from .helpers import MESSAGE, SpyRouter, recipient, sdk_client


def test_a_burst_of_40_over_one_pair_is_30_sends_and_a_pair_limited_error(
    fake: FakeLinqServer, sender: Sender
) -> None:
    """The chat and 29 messages go out; the 31st send raises before any request."""
    to = recipient(40)
    sent = sender.create_chat(to=[to], message=MESSAGE)
    accepted, refused = 1, None
    for _ in range(39):
        try:
            sender.send_message(sent.chat_id, message=MESSAGE)
        except PairLimitedError as error:
            refused = error
            break
        accepted += 1
    assert accepted == 30
    assert refused is not None
    assert refused.line == sent.phone_number
    assert refused.to == (to,)
    assert 55.0 < refused.retry_after <= 60.0
    assert fake.rejected_count(code=1007) == 0
    assert fake.send_count(sent.phone_number) == 30


def test_a_create_to_a_limited_pair_goes_to_another_line(
    fake: FakeLinqServer, sender: Sender
) -> None:
    """Once one line's pair with a recipient is full, a new chat to them picks another."""
    to = recipient(41)
    sent = sender.create_chat(to=[to], message=MESSAGE)
    for _ in range(29):
        sender.send_message(sent.chat_id, message=MESSAGE)
    other = sender.create_chat(to=[to], message=MESSAGE)
    assert other.phone_number != sent.phone_number
    assert fake.rejected_count(code=1007) == 0


def test_max_wait_waits_for_room(fake: FakeLinqServer, registry: object) -> None:
    """With max_wait, a send over a full pair waits for the window instead of raising."""
    router = SpyRouter(registry, policy="round-robin", pacing=Pacing(per_pair="3/second"))
    with sdk_client(fake) as client:
        sender = Sender(router, client, max_wait=2.0)
        sent = sender.create_chat(to=[recipient(42)], message=MESSAGE)
        started = time.monotonic()
        for _ in range(4):
            sender.send_message(sent.chat_id, message=MESSAGE)
        waited = time.monotonic() - started
    router.close()
    assert 0.5 < waited < 3.0
    assert fake.send_count(sent.phone_number) == 5
    with pytest.raises(ValueError, match="max_wait"):
        Sender(router, client, max_wait=-1)


def test_the_async_sender_raises_pair_limited_too(fake: FakeLinqServer) -> None:
    """AsyncSender checks the pair the same way."""

    async def main() -> None:
        async with AsyncLinqClient(fake.api_key, base_url=fake.base_url) as client:
            registry = AsyncRegistry(client)
            router = AsyncRouter(registry, "round-robin", pacing=Pacing(per_pair="2/minute"))
            sdk = linq.AsyncLinqAPIV3(
                api_key=fake.api_key, base_url=fake.base_url, _strict_response_validation=True
            )
            sender = AsyncSender(router, sdk)
            sent = await sender.create_chat(to=[recipient(43)], message=MESSAGE)
            await sender.send_message(sent.chat_id, message=MESSAGE)
            with pytest.raises(PairLimitedError):
                await sender.send_message(sent.chat_id, message=MESSAGE)
            await sdk.close()
            router.close()
            await registry.aclose()

    asyncio.run(main())
    assert fake.rejected_count(code=1007) == 0
