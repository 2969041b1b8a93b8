"""``check_policy``: the contract every policy (built-in or plugin) must pass.

It compiles a fresh policy against generated snapshots, picks for generated
recipients, and fails, after Hypothesis shrinks the case to a minimal one, when the
policy:

* picks a line that is not in the snapshot, or one its own filters dropped;
* returns something that is not a ``Pick`` (or a ``Pick`` whose number disagrees);
* raises anything but ``NoEligibleNumberError`` (an empty snapshot must raise it);
* fails to compile, or mutates the snapshot or its lines;
* is declared ``deterministic`` yet picks differently in a second, fresh run.

.. versionadded:: 0.1
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from linq_router._errors import NoEligibleNumberError
from linq_router._models import Snapshot
from linq_router._pick import PURPOSES, Pick, make_context
from linq_router._router import voice_memo_policy
from linq_router.policies import Policy, as_policy, compile_policy

from .strategies import recipients, snapshots

__all__ = ["PolicyContractError", "check_policy"]

Recipient = str | list[str] | None


class PolicyContractError(AssertionError):
    """A policy broke the contract; the message says how, for which input.

    .. versionadded:: 0.1
    """


def _policy_for(factory: Callable[[], object], purpose: str) -> Policy:
    policy = as_policy(factory())
    return voice_memo_policy(policy) if purpose == "voice_memo" else policy


def _run(
    policy: Policy, snapshot: Snapshot, tos: Sequence[Recipient], purpose: str
) -> list[str | None]:
    """Compile and pick once per recipient; the picked ids (None for 'no eligible line')."""
    try:
        compiled = compile_policy(policy, snapshot, purpose=purpose)
    except Exception as exc:
        msg = f"{policy.name!r} raised {type(exc).__name__} while compiling: {exc}"
        raise PolicyContractError(msg) from exc
    picked: list[str | None] = []
    for to in tos:
        ctx = make_context(to, purpose)
        try:
            pick: object = compiled.pick(ctx)
        except NoEligibleNumberError:
            picked.append(None)
            continue
        except Exception as exc:
            msg = (
                f"{policy.name!r} raised {type(exc).__name__} for to={to!r}: {exc}; "
                "only NoEligibleNumberError is allowed"
            )
            raise PolicyContractError(msg) from exc
        if not isinstance(pick, Pick):
            msg = f"{policy.name!r} returned {pick!r} for to={to!r}, not a Pick"
            raise PolicyContractError(msg)
        if pick.number not in snapshot.numbers:
            msg = f"{policy.name!r} picked {pick.number!r}, which is not in the snapshot"
            raise PolicyContractError(msg)
        if pick.number not in compiled.candidates(ctx):
            msg = (
                f"{policy.name!r} picked {pick.phone_number} for to={to!r}, a line its own "
                f"filters dropped ({pick.number.reputation.value}, status {pick.number.status})"
            )
            raise PolicyContractError(msg)
        if pick.phone_number != pick.number.phone_number:
            msg = f"{policy.name!r} returned a Pick whose phone_number disagrees with its number"
            raise PolicyContractError(msg)
        picked.append(pick.number.id)
    if not snapshot.numbers and any(p is not None for p in picked):
        msg = f"{policy.name!r} picked a line from an empty snapshot"
        raise PolicyContractError(msg)
    return picked


def check_one(
    factory: Callable[[], object],
    snapshot: Snapshot,
    tos: Sequence[Recipient],
    purpose: str = "chat",
) -> None:
    """Run the contract once, on one snapshot and sequence of recipients.

    .. versionadded:: 0.1
    """
    numbers = copy.deepcopy(snapshot.numbers)
    by_key = {
        key: snapshot.get(key)
        for key in (*(n.id for n in numbers), *(n.phone_number for n in numbers))
    }
    version = snapshot.version
    policy = _policy_for(factory, purpose)
    first = _run(policy, snapshot, tos, purpose)
    unchanged = (
        snapshot.numbers == numbers
        and snapshot.version == version
        and Snapshot(snapshot.numbers).version == version
        and all(snapshot.get(key) == value for key, value in by_key.items())
    )
    if not unchanged:
        msg = f"{policy.name!r} mutated the snapshot it was compiled against"
        raise PolicyContractError(msg)
    if getattr(policy.selector, "deterministic", True):
        second = _run(_policy_for(factory, purpose), snapshot, tos, purpose)
        if first != second:
            msg = (
                f"{policy.name!r} declares a deterministic selector but two fresh runs "
                f"picked differently: {first} vs {second}"
            )
            raise PolicyContractError(msg)


def check_policy(
    factory: Callable[[], object],
    *,
    max_examples: int = 100,
    max_picks: int = 6,
    purposes: Sequence[str] = PURPOSES,
) -> None:
    """Drive ``factory()`` (a ``Policy``, spec or selector) through generated cases.

    ``factory`` must build a fresh policy on each call. Raises ``PolicyContractError``
    (an ``AssertionError``) with a minimal counterexample when the contract breaks.

    >>> from linq_router.policies import skip_critical, round_robin
    >>> check_policy(lambda: skip_critical() | round_robin(), max_examples=10)

    .. versionadded:: 0.1
    """

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        # Shrinking gives the minimal counterexample; Hypothesis's "explain" phase
        # would multiply the run time for little more.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    )
    @given(
        snapshot=snapshots(),
        tos=st.lists(st.none() | recipients(), min_size=1, max_size=max_picks),
        purpose=st.sampled_from(list(purposes)),
    )
    def contract(snapshot: Snapshot, tos: list[Recipient], purpose: str) -> None:
        check_one(factory, snapshot, tos, purpose)

    try:
        contract()
    except PolicyContractError:
        raise
    except Exception as exc:
        # A policy that fails only sometimes (say, a random one declared deterministic)
        # surfaces as Hypothesis's flaky-failure group: report the contract breach.
        breach = _find_breach(exc)
        if breach is None:
            raise
        raise PolicyContractError(str(breach)) from exc


def _find_breach(exc: BaseException) -> PolicyContractError | None:
    if isinstance(exc, PolicyContractError):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _find_breach(inner)
        if found is not None:
            return found
    return None
