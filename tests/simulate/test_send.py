"""The simulation's send helper: real POST /v3/chats to the fake, answers read as Outcomes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from linq_router import Outcome
from linq_router.simulate._send import ChatSender
from linq_router.testing import FakeClock, FakeLinqServer, sample_pool

LINE = "+13105550103"
TO = "+12125550123"


@pytest.fixture
def fake_clock() -> FakeClock:
    """The fake's clock, for its pair limit."""
    return FakeClock(0.0)


@pytest.fixture
def fake(fake_clock: FakeClock) -> Iterator[FakeLinqServer]:
    """The fake Linq API with the sample pool, stopped after the test."""
    with FakeLinqServer(sample_pool(), clock=fake_clock) as server:
        yield server


@pytest.fixture
def sender(fake: FakeLinqServer) -> Iterator[ChatSender]:
    """A sender on the fake, closed after the test."""
    with ChatSender(fake.base_url, fake.api_key, workers=2) as chats:
        yield chats


def test_an_accepted_create_is_none_and_lands_on_the_line(
    fake: FakeLinqServer, sender: ChatSender
) -> None:
    """A create the fake takes answers (None, True) and is recorded from the picked line."""
    assert sender.create(LINE, TO) == (None, True)
    (sent,) = fake.sends
    assert (sent.kind, sent.from_, sent.to, sent.status) == ("chat", LINE, (TO,), 201)
    assert sender.create(LINE, TO) == (None, True)  # the same chat again: reused, 200
    assert fake.sends[-1].status == 200
    assert fake.send_count(LINE) == 2


def test_an_email_recipient_is_sent_as_is(fake: FakeLinqServer, sender: ChatSender) -> None:
    """The workload's email recipients go out in ``to`` like numbers."""
    assert sender.create(LINE, "user00000001@example.com") == (None, True)
    assert fake.sends[-1].to == ("user00000001@example.com",)


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [("ineligible", Outcome(403, 2027)), ("failing", Outcome(500, 3006))],
)
def test_a_line_behaviour_comes_back_as_its_outcome(
    fake: FakeLinqServer, sender: ChatSender, behaviour: str, outcome: Outcome
) -> None:
    """An ineligible line answers Outcome(403, 2027), a failing one Outcome(500, 3006)."""
    fake.set_line_behaviour(LINE, behaviour)  # type: ignore[arg-type]
    assert sender.create(LINE, TO) == (outcome, True)
    assert fake.rejected_count(LINE, outcome.code) == 1
    assert fake.send_count() == 0
    fake.set_line_behaviour(LINE, "ok")
    assert sender.create(LINE, TO) == (None, True)


def test_the_pair_limit_carries_its_retry_after(
    fake: FakeLinqServer, sender: ChatSender, fake_clock: FakeClock
) -> None:
    """The 31st send to one pair within 60 s is a 429 / 1007 with the wait it asked for."""
    for _ in range(30):
        assert sender.create(LINE, TO) == (None, True)
    fake_clock.advance(20.0)
    outcome, sent = sender.create(LINE, TO)
    assert sent
    assert outcome is not None
    assert (outcome.status, outcome.code) == (429, 1007)
    assert outcome.retry_after == 40.0


def test_a_line_that_is_not_ours_is_refused(sender: ChatSender) -> None:
    """A from the fake has no line for answers its 403 / 2005, not an exception."""
    assert sender.create("+19995550100", TO) == (Outcome(403, 2005), True)


def test_a_refused_key_is_an_outcome_too(fake: FakeLinqServer) -> None:
    """A wrong key answers Outcome(401, 2004): the envelope is read, nothing raised."""
    with ChatSender(fake.base_url, "wrong", workers=1) as chats:
        assert chats.create(LINE, TO) == (Outcome(401, 2004), True)


def test_nothing_listening_never_left() -> None:
    """A connect error is an Outcome with no status, marked as never sent (safe to resend)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ChatSender(f"http://127.0.0.1:{port}", "k", workers=1, timeout=2.0) as chats:
        assert chats.create(LINE, TO) == (Outcome(), False)
