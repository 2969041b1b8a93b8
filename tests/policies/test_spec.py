"""Policy specs: the grammar, clear errors, | composition, and plugin names."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator

import pytest

from linq_router.policies import (
    DEFAULT_POLICY,
    BaseSelector,
    Policy,
    PolicySpecError,
    _spec,
    as_policy,
    available_policies,
    geomatch,
    parse_policy,
    register_policy,
    reputation_weighted,
    round_robin,
    skip_critical,
    sticky,
)
from linq_router.testing.contract import check_policy


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("skip-critical | reputation-weighted", "skip-critical | reputation-weighted"),
        ("  skip_critical|round_robin ", "skip-critical | round-robin"),
        ("line-type(RCS) | round-robin", "line-type(RCS) | round-robin"),
        (
            "skip-critical(on_empty=ignore-health) | sticky",
            "skip-critical(on_empty=ignore-health) | sticky",
        ),
        ("reputation-weighted(HEALTHY=1, AT_RISK=0.5)", "reputation-weighted(AT_RISK=0.5)"),
        (
            "only(+12025551234, +12025559876) | round-robin",
            "only(+12025551234, +12025559876) | round-robin",
        ),
        ("sticky(max_size=100000)", "sticky"),
        ("sticky(max_size=5, AT_RISK=0)", "sticky(max_size=5, AT_RISK=0)"),
        (
            "exclude('+12025551234') | geomatch | round-robin",
            "exclude(+12025551234) | geomatch | round-robin",
        ),
    ],
)
def test_specs_parse_and_name_themselves(spec: str, name: str) -> None:
    """Each spec parses, and the policy's name is its canonical spec (which parses back)."""
    policy = parse_policy(spec)
    assert policy.name == name
    assert parse_policy(policy.name).name == name


def test_python_composition_matches_the_spec() -> None:
    """`skip_critical() | reputation_weighted()` names itself like the spec."""
    assert (skip_critical() | reputation_weighted()).name == DEFAULT_POLICY
    assert (skip_critical() | geomatch() | sticky()).name == "skip-critical | geomatch | sticky"
    partial = skip_critical() | geomatch()
    assert isinstance(partial, Policy)
    assert partial.selector is None
    assert (partial | round_robin()).name == "skip-critical | geomatch | round-robin"


def test_a_selector_must_come_last() -> None:
    """Nothing follows a selector, in Python or in a spec."""
    with pytest.raises(TypeError, match="ends a policy"):
        round_robin() | skip_critical()  # type: ignore[operator]
    with pytest.raises(PolicySpecError, match="must be the last stage"):
        parse_policy("round-robin | skip-critical")
    with pytest.raises(PolicySpecError, match="has no selector"):
        parse_policy("skip-critical")
    with pytest.raises(PolicySpecError, match="no selector"):
        as_policy(skip_critical() | geomatch())


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("skip-critical | bogus", "unknown policy 'bogus'"),
        ("", "empty policy spec"),
        ("skip-critical || round-robin", "empty stage"),
        ("line-type(SMS) | round-robin", "bad argument for 'line-type'"),
        ("reputation-weighted(HEALTHY=lots)", "HEALTHY='lots' is not a number"),
        ("skip-critical(on_empty=maybe) | round-robin", "on_empty"),
        ("round-robin(3)", "takes no arguments"),
        ("sticky(max_size=big)", "not an integer"),
        ("only() | round-robin", "at least one"),
        ("only(+1202 | round-robin", "unclosed"),
        ("round-robin)", "unbalanced"),
    ],
)
def test_bad_specs_are_clear_errors(spec: str, fragment: str) -> None:
    """Errors name the offending token; unknown names list the known ones."""
    with pytest.raises(PolicySpecError) as info:
        parse_policy(spec)
    message = str(info.value)
    assert fragment in message
    assert isinstance(info.value, ValueError)
    # Whatever was wrong, the message lists what may be written.
    assert "known names: " in message
    assert "reputation-weighted" in message.split("known names: ")[1]


class _First(BaseSelector):
    """A toy selector for registration tests: always the group's first line."""

    name = "first-line"

    def compile(self, group, previous):  # type: ignore[no-untyped-def]
        pick = group.make_pick(group.lines[0], f"first-line: chose {group.lines[0].phone_number}")
        return type("C", (), {"pick": lambda self, ctx: pick})()


@pytest.fixture
def registered() -> Iterator[str]:
    register_policy("first-line", lambda *a, **k: _First())
    yield "first-line"
    _spec._unregister("first-line")


def test_registered_names_work_like_builtins(registered: str) -> None:
    """A registered name is listed, parses in specs, and passes the contract."""
    assert registered in available_policies()
    policy = parse_policy(f"skip-critical | {registered}")
    assert policy.name == "skip-critical | first-line"
    check_policy(lambda: f"skip-critical | {registered}", max_examples=20)


def test_duplicate_registration_is_rejected(registered: str) -> None:
    """A taken name (built-in or registered) cannot be registered again."""
    with pytest.raises(PolicySpecError, match="already registered"):
        register_policy(registered, _First)
    with pytest.raises(PolicySpecError, match="already registered"):
        register_policy("round_robin", _First)


class _FakeEntryPoint:
    def __init__(self, name: str, value: str, obj: object) -> None:
        self.name, self.value, self._obj = name, value, obj

    def load(self) -> object:
        return self._obj


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[_FakeEntryPoint]]:
    found: list[_FakeEntryPoint] = []

    def entry_points(*, group: str) -> list[_FakeEntryPoint]:
        assert group == "linq_router.policies"
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(_spec, "_plugins", None)
    yield found
    monkeypatch.setattr(_spec, "_plugins", None)


def test_entry_point_plugins_are_usable_by_name(fake_entry_points: list[_FakeEntryPoint]) -> None:
    """A factory under the entry-point group parses by name, with its arguments as text."""
    seen: list[tuple[tuple[str, ...], dict[str, str]]] = []

    def factory(*args: str, **kwargs: str) -> _First:
        seen.append((args, kwargs))
        return _First()

    fake_entry_points.append(_FakeEntryPoint("first-line", "pkg:factory", factory))
    policy = parse_policy("skip-critical | first-line(a, b=c)")
    assert policy.selector is not None
    assert seen == [(("a",), {"b": "c"})]


def test_entry_point_clashing_with_a_builtin_is_rejected(
    fake_entry_points: list[_FakeEntryPoint],
) -> None:
    """A plugin may not take a built-in's name, nor another plugin's."""
    fake_entry_points.append(_FakeEntryPoint("sticky", "evil:sticky", _First))
    with pytest.raises(PolicySpecError, match="registered twice"):
        parse_policy("sticky")


def test_two_plugins_with_one_name_are_rejected(fake_entry_points: list[_FakeEntryPoint]) -> None:
    """Two distributions claiming one name is an error naming both."""
    fake_entry_points.append(_FakeEntryPoint("mine", "a:f", _First))
    fake_entry_points.append(_FakeEntryPoint("mine", "b:f", _First))
    with pytest.raises(PolicySpecError, match="a:f"):
        parse_policy("round-robin")


def test_example_plugin_end_to_end() -> None:
    """The example plugin, installed by the README's test command, is found by name."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="linq_router.policies")}
    # Fails rather than skips: the test command installs the plugin, and a skip here
    # would hide a broken entry point.
    assert "least-recent" in names, (
        "the example plugin is not installed: pip install -e examples/least-recent-plugin"
    )
    policy = parse_policy("skip-critical | least-recent")
    assert policy.name == "skip-critical | least-recent"
    check_policy(lambda: "skip-critical | least-recent", max_examples=30)
