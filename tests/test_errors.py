"""Every public exception survives pickling, as errors crossing a process pool do."""

from __future__ import annotations

import copy
import math
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

import linq_router
from linq_router import (
    AuthenticationError,
    BudgetExhaustedError,
    LinqAPIError,
    LinqClient,
    LinqRouterError,
    NoEligibleNumberError,
    PairLimitedError,
    RateLimitError,
    Registry,
    RegistryUnavailableError,
    ServerError,
)
from linq_router._errors import _unavailable_because, registry_unavailable
from linq_router.testing import FakeLinqServer

EXPORTED = sorted(
    (
        value
        for name in linq_router.__all__
        if isinstance(value := getattr(linq_router, name), type)
        and issubclass(value, BaseException)
    ),
    key=lambda cls: cls.__name__,
)
API_ERRORS = [cls for cls in EXPORTED if issubclass(cls, LinqAPIError)]
# What the registry raises with a cause: RegistryUnavailableError that is also the cause.
COMBINED = [_unavailable_because(cls) for cls in API_ERRORS]

FIELDS = ("message", "status", "code", "doc_url", "retry_after")
WITH_FIELDS = (BudgetExhaustedError, PairLimitedError)  # keyword fields: pickled below


def test_the_exported_errors_are_the_documented_tree() -> None:
    """The property tests below cover every error class linq_router exports."""
    assert {cls.__name__ for cls in EXPORTED} == {
        "AuthenticationError",
        "BudgetExhaustedError",
        "LinqAPIError",
        "LinqConnectionError",
        "LinqResponseError",
        "LinqRouterError",
        "NoEligibleNumberError",
        "PairLimitedError",
        "PolicySpecError",
        "RateLimitError",
        "RegistryUnavailableError",
        "ServerError",
    }


def same_fields(a: LinqAPIError, b: LinqAPIError) -> bool:
    """Whether two API errors carry equal fields (a NaN retry_after equals a NaN)."""
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y or type(x) is not type(y):
            return False
    return True


api_fields = st.fixed_dictionaries(
    {
        "status": st.none() | st.integers(100, 599),
        "code": st.none() | st.integers(0, 10_000),
        "doc_url": st.none() | st.text(max_size=40),
        "retry_after": st.none() | st.floats(allow_nan=True),
    }
)


@given(cls=st.sampled_from(API_ERRORS + COMBINED), message=st.text(max_size=80), fields=api_fields)
def test_api_errors_pickle_to_the_same_class_and_fields(
    cls: type[LinqAPIError], message: str, fields: dict[str, object]
) -> None:
    """Every API error class, the registry's combinations included, round-trips whole."""
    err = cls(message, **fields)  # type: ignore[arg-type]
    for back in (pickle.loads(pickle.dumps(err)), copy.copy(err), copy.deepcopy(err)):
        assert type(back) is cls
        assert same_fields(back, err)
        assert str(back) == str(err)
        assert back.args == err.args


@given(
    cls=st.sampled_from([c for c in EXPORTED if not issubclass(c, (LinqAPIError, *WITH_FIELDS))]),
    message=st.text(max_size=80),
)
def test_other_errors_pickle_to_the_same_class_and_message(
    cls: type[LinqRouterError], message: str
) -> None:
    """NoEligibleNumberError, PolicySpecError and the base class round-trip too."""
    back = pickle.loads(pickle.dumps(cls(message)))
    assert type(back) is cls
    assert str(back) == message


@given(
    message=st.text(max_size=40),
    retry=st.floats(allow_nan=False, allow_infinity=False),
    protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
)
def test_budget_and_pair_errors_pickle_with_their_fields(
    message: str, retry: float, protocol: int
) -> None:
    """BudgetExhaustedError and PairLimitedError keep their fields across processes."""
    budget = BudgetExhaustedError(message, retry_at=retry, resets={"+12025550100": retry})
    back = pickle.loads(pickle.dumps(budget, protocol))
    assert type(back) is BudgetExhaustedError
    assert (str(back), back.retry_at, back.resets) == (message, retry, budget.resets)
    assert isinstance(back, NoEligibleNumberError)
    pair = PairLimitedError(message, retry_after=retry, line="+1", to=("+2",))
    again = pickle.loads(pickle.dumps(pair, protocol))
    assert (type(again), str(again), again.retry_after, again.line, again.to) == (
        PairLimitedError,
        message,
        retry,
        "+1",
        ("+2",),
    )


@given(
    cause=st.sampled_from(API_ERRORS),
    message=st.text(max_size=40),
    fields=api_fields,
    protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
)
def test_the_registry_error_still_is_its_cause_after_pickling(
    cause: type[LinqAPIError], message: str, fields: dict[str, object], protocol: int
) -> None:
    """An unpickled registry error is still caught as its cause's class."""
    err = registry_unavailable("no usable snapshot", cause(message, **fields))  # type: ignore[arg-type]
    back = pickle.loads(pickle.dumps(err, protocol=protocol))
    assert type(back) is type(err)
    assert isinstance(back, RegistryUnavailableError)
    assert isinstance(back, cause)
    assert same_fields(back, err)


def test_notes_and_extra_attributes_survive() -> None:
    """Notes added to an error (and attributes set on it) are pickled with it."""
    err = registry_unavailable("down", ServerError("boom", status=500, code=3006))
    err.add_note("while refreshing")
    err.attempts = 3  # type: ignore[attr-defined]
    back = pickle.loads(pickle.dumps(err))
    assert back.__notes__ == ["while refreshing"]
    assert back.attempts == 3  # type: ignore[attr-defined]


def fail_through_the_registry(base_url: str, key: str) -> None:
    """A worker: build a client and registry against ``base_url`` and ask for a snapshot."""
    with LinqClient(key, base_url=base_url, max_attempts=2, backoff_initial=0.0) as client:
        Registry(client).snapshot()


@pytest.mark.parametrize(
    ("key", "fault", "expected"),
    [("wrong-key", None, AuthenticationError), ("test-key", "3006", ServerError)],
)
def test_a_registry_error_crosses_a_process_pool(
    key: str, fault: str | None, expected: type[LinqAPIError]
) -> None:
    """A worker's registry error reaches the parent as itself: class, cause class, fields."""
    with FakeLinqServer() as server:
        if fault is not None:
            server.fail_next(fault, times=None)
        # spawn: a fresh interpreter, as on macOS and Windows (and what pickles the most).
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            future = pool.submit(fail_through_the_registry, server.base_url, key)
            with pytest.raises(expected) as info:
                future.result(timeout=60)
    err = info.value
    assert isinstance(err, RegistryUnavailableError)
    assert err.status == (401 if expected is AuthenticationError else 500)
    assert err.code == (2004 if expected is AuthenticationError else 3006)
    assert err.doc_url is not None
    assert err.doc_url.startswith("https://docs.linqapp.com/error/codes/")
    assert not isinstance(err, RateLimitError)


def test_the_registry_error_names_status_and_code_once() -> None:
    """A combined registry error reads '[HTTP 401, code 2004] ...' once, not twice."""
    from linq_router._errors import AuthenticationError, registry_unavailable

    cause = AuthenticationError("Unauthorized", status=401, code=2004)
    error = registry_unavailable("no usable phone-number snapshot", cause)
    assert str(error) == "[HTTP 401, code 2004] no usable phone-number snapshot: Unauthorized"
    assert isinstance(error, AuthenticationError)
