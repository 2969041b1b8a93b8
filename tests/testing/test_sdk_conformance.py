"""The official SDK (linq-python) against FakeLinqServer: the fake speaks the real API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import linq
import pytest
from linq import AsyncLinqAPIV3, LinqAPIV3

from linq_router.testing import FakeLinqServer, sample_pool

LIST = "GET /v3/phone_numbers"
UPDATE = "PUT /v3/phone_numbers/{id}"


@pytest.fixture
def fake() -> Iterator[FakeLinqServer]:
    with FakeLinqServer(sample_pool()) as server:
        yield server


def sdk(
    server: FakeLinqServer, *, api_key: str | None = None, base_url: str | None = None
) -> LinqAPIV3:
    """A strict SDK client with no retries, pointed at the fake."""
    return LinqAPIV3(
        api_key=api_key or server.api_key,
        base_url=base_url or server.base_url,
        _strict_response_validation=True,
        max_retries=0,
        timeout=5.0,
    )


@pytest.mark.parametrize("suffix", ["", "/api/partner", "/api/partner/"])
def test_list_parses_every_field_strictly(fake: FakeLinqServer, suffix: str) -> None:
    """Strict validation accepts the newest shape and every field matches what was served."""
    with sdk(fake, base_url=fake.base_url + suffix) as client:
        response = client.phone_numbers.list()
    served = fake.numbers
    assert len(response.phone_numbers) == len(served) == 12
    for parsed, entry in zip(response.phone_numbers, served, strict=True):
        assert parsed.id == entry["id"]
        assert parsed.phone_number == entry["phone_number"]
        assert parsed.reputation.status == entry["reputation"]["status"]
        assert parsed.reputation.doc_url == entry["reputation"]["doc_url"]
        assert parsed.line_type == entry["line_type"]
        assert parsed.forwarding_number == entry["forwarding_number"]
        # `status` is not in the SDK's model; it survives as an extra field.
        assert (parsed.model_extra or {}).get("status") == entry.get("status")
    assert {p.reputation.status for p in response.phone_numbers} == {
        "HEALTHY",
        "AT_RISK",
        "CRITICAL",
    }
    assert {p.line_type for p in response.phone_numbers} == {"iMessage", "RCS"}
    assert any(p.forwarding_number for p in response.phone_numbers)
    assert fake.count(LIST) == 1
    assert fake.requests[-1].authorized


def test_list_parses_the_transitional_shape(fake: FakeLinqServer) -> None:
    """With both reputation and health_status, the SDK reads reputation and keeps the rest."""
    fake.shape = "both"
    with sdk(fake) as client:
        response = client.phone_numbers.list()
    first = response.phone_numbers[0]
    assert first.reputation.status == "HEALTHY"
    assert (first.model_extra or {})["health_status"]["status"] == "HEALTHY"


def test_strict_sdk_rejects_the_oldest_shape(fake: FakeLinqServer) -> None:
    """The SDK declares `reputation` required, so a health_status-only list fails strictly."""
    fake.shape = "health_status"
    with sdk(fake) as client, pytest.raises(linq.APIResponseValidationError):
        client.phone_numbers.list()


def test_run_time_changes_reach_the_sdk(fake: FakeLinqServer) -> None:
    """A reputation change and a removed line show in the SDK's next list."""
    fake.set_reputation("+12025550101", "CRITICAL")
    fake.set_line_type("+12025550101", None)
    fake.remove_number("+61491570112")
    with sdk(fake) as client:
        lines = {p.phone_number: p for p in client.phone_numbers.list().phone_numbers}
    assert lines["+12025550101"].reputation.status == "CRITICAL"
    assert lines["+12025550101"].reputation.doc_url.endswith("#critical")
    assert lines["+12025550101"].line_type is None
    assert "+61491570112" not in lines


def test_update_parses_and_clears(fake: FakeLinqServer) -> None:
    """update() parses as PhoneNumberUpdateResponse; None and "" both clear."""
    line = fake.numbers[0]
    with sdk(fake) as client:
        updated = client.phone_numbers.update(line["id"], forwarding_number="+13125550000")
        assert updated.id == line["id"]
        assert updated.phone_number == line["phone_number"]
        assert updated.forwarding_number == "+13125550000"
        assert fake.numbers[0]["forwarding_number"] == "+13125550000"
        for cleared in (None, ""):
            fake.set_forwarding_number(line["id"], "+13125550001")
            result = client.phone_numbers.update(line["id"], forwarding_number=cleared)
            assert result.forwarding_number is None
            assert fake.numbers[0]["forwarding_number"] is None
    assert fake.count(UPDATE) == 3


def test_wrong_key_raises_authentication_error(fake: FakeLinqServer) -> None:
    """A refused key surfaces as the SDK's AuthenticationError carrying the 2004 envelope."""
    with sdk(fake, api_key="wrong-key") as client, pytest.raises(linq.AuthenticationError) as info:
        client.phone_numbers.list()
    assert info.value.status_code == 401
    # The SDK unwraps the envelope: `body` is the inner `error` object.
    assert info.value.body == {
        "status": 401,
        "code": 2004,
        "message": "Unauthorized - missing or invalid authentication token",
        "doc_url": "https://docs.linqapp.com/error/codes/2xxx/2004/",
    }
    assert fake.count(LIST) == 1


def test_3006_raises_internal_server_error_without_retries(fake: FakeLinqServer) -> None:
    """A queued 3006 is the SDK's InternalServerError after exactly one request."""
    fake.fail_next("3006")
    with sdk(fake) as client, pytest.raises(linq.InternalServerError) as info:
        client.phone_numbers.list()
    assert info.value.status_code == 500
    assert info.value.body == {
        "status": 500,
        "code": 3006,
        "message": "Internal server error",
        "doc_url": "https://docs.linqapp.com/error/codes/3xxx/3006/",
    }
    assert fake.count(LIST) == 1


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("429", "RateLimitError"),
        ("403", "PermissionDeniedError"),
        ("503", "InternalServerError"),
    ],
)
def test_other_faults_map_to_sdk_errors(fake: FakeLinqServer, kind: str, error: str) -> None:
    """429, 403 and 503 faults surface as the SDK's matching status errors."""
    fake.fail_next(kind, retry_after=0)
    with sdk(fake) as client, pytest.raises(getattr(linq, error)):
        client.phone_numbers.list()


def test_update_unknown_id_raises_not_found(fake: FakeLinqServer) -> None:
    """PUT on an unknown id is the SDK's NotFoundError."""
    with sdk(fake) as client, pytest.raises(linq.NotFoundError):
        client.phone_numbers.update("no-such-line", forwarding_number=None)


def test_sdk_retries_a_3006_when_allowed(fake: FakeLinqServer) -> None:
    """With retries on, the SDK gets past one 3006, waiting the Retry-After it was given."""
    fake.fail_next("3006", retry_after=0.01)
    with LinqAPIV3(
        api_key=fake.api_key, base_url=fake.base_url, max_retries=1, timeout=5.0
    ) as client:
        assert len(client.phone_numbers.list().phone_numbers) == 12
    assert fake.count(LIST) == 2


def test_async_sdk_lists(fake: FakeLinqServer) -> None:
    """The async SDK client parses the list strictly too."""

    async def main() -> int:
        async with AsyncLinqAPIV3(
            api_key=fake.api_key,
            base_url=fake.base_url,
            _strict_response_validation=True,
            max_retries=0,
            timeout=5.0,
        ) as client:
            response = await client.phone_numbers.list()
        return len(response.phone_numbers)

    assert asyncio.run(main()) == 12
