"""Policies: how a line is chosen. Filters narrow the lines; one selector picks.

Compose in Python with ``|`` or from text::

    from linq_router.policies import skip_critical, reputation_weighted, parse_policy

    policy = skip_critical() | reputation_weighted(AT_RISK=0.5)
    same = parse_policy("skip-critical | reputation-weighted(AT_RISK=0.5)")

Built-ins (by spec name): filters ``skip-critical``, ``geomatch``, ``line-type``,
``prefer-imessage``, ``only``, ``exclude``; selectors ``round-robin``,
``reputation-weighted``, ``sticky``. Third-party stages register under the
``linq_router.policies`` entry-point group and are then usable by name. How a stage
compiles against a snapshot, and which state it may keep, is documented on
``Filter`` and ``Selector`` (module ``linq_router.policies._base``).

.. versionadded:: 0.1
"""

from ._adjust import NO_ADJUSTMENTS, Adjustments
from ._base import (
    BaseFilter,
    BaseSelector,
    CompiledSelector,
    Filter,
    Group,
    Kept,
    Pinnable,
    Policy,
    Routed,
    Selector,
)
from ._compile import CompiledPolicy, compile_policy
from ._geomatch import Geomatch, geomatch
from ._line_filter import LineFilter
from ._rotation import Rotation
from ._round_robin import RoundRobin, round_robin
from ._skip_critical import SkipCritical, skip_critical
from ._spec import (
    ENTRY_POINT_GROUP,
    PolicySpecError,
    StageFactory,
    as_policy,
    available_policies,
    parse_policy,
    register_policy,
)
from ._static import (
    Exclude,
    LineTypeFilter,
    Only,
    PreferIMessage,
    exclude,
    line_type,
    only,
    prefer_imessage,
)
from ._sticky import Sticky, sticky
from ._weighted import DEFAULT_WEIGHTS, ReputationWeighted, reputation_weighted

DEFAULT_POLICY = "skip-critical | reputation-weighted"
"""The spec ``Router`` uses when given no policy."""

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_WEIGHTS",
    "ENTRY_POINT_GROUP",
    "NO_ADJUSTMENTS",
    "Adjustments",
    "BaseFilter",
    "BaseSelector",
    "CompiledPolicy",
    "CompiledSelector",
    "Exclude",
    "Filter",
    "Geomatch",
    "Group",
    "Kept",
    "LineFilter",
    "LineTypeFilter",
    "Only",
    "Pinnable",
    "Policy",
    "PolicySpecError",
    "PreferIMessage",
    "ReputationWeighted",
    "Rotation",
    "RoundRobin",
    "Routed",
    "Selector",
    "SkipCritical",
    "StageFactory",
    "Sticky",
    "as_policy",
    "available_policies",
    "compile_policy",
    "exclude",
    "geomatch",
    "line_type",
    "only",
    "parse_policy",
    "prefer_imessage",
    "register_policy",
    "reputation_weighted",
    "round_robin",
    "skip_critical",
    "sticky",
]
