"""linq_router: choose the ``from`` number for outbound Linq messages.

A cached registry of the partner's lines (``GET /v3/phone_numbers``) feeds policies
that pick the line to send from. Import everything from here; modules whose names
start with an underscore are private.
"""

import logging

from ._client import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, AsyncLinqClient, LinqClient
from ._errors import (
    AuthenticationError,
    BudgetExhaustedError,
    LinqAPIError,
    LinqConnectionError,
    LinqResponseError,
    LinqRouterError,
    NoEligibleNumberError,
    PairLimitedError,
    PolicySpecError,
    RateLimitError,
    RegistryUnavailableError,
    ServerError,
)
from ._models import LineStatus, LineType, PhoneNumber, Reputation, Snapshot
from ._pick import PURPOSES, Explanation, Pick, PickContext, Stage
from ._registry import AsyncRegistry, Registry, SnapshotListener
from ._router import AsyncRouter, AsyncSnapshotSource, Router, SnapshotSource, voice_memo_policy
from .feedback import Ejected, Ejection, LineEvent, Outcome, SlowStart, Verdict, classify
from .pacing import Budget, Pacing
from .policies import DEFAULT_POLICY, Policy

# A library logs, the application decides where to: without this, warnings would go
# to stderr through logging's last resort in applications that configure nothing.
logging.getLogger("linq_router").addHandler(logging.NullHandler())

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_POLICY",
    "PURPOSES",
    "AsyncLinqClient",
    "AsyncRegistry",
    "AsyncRouter",
    "AsyncSnapshotSource",
    "AuthenticationError",
    "Budget",
    "BudgetExhaustedError",
    "Ejected",
    "Ejection",
    "Explanation",
    "LineEvent",
    "LineStatus",
    "LineType",
    "LinqAPIError",
    "LinqClient",
    "LinqConnectionError",
    "LinqResponseError",
    "LinqRouterError",
    "NoEligibleNumberError",
    "Outcome",
    "Pacing",
    "PairLimitedError",
    "PhoneNumber",
    "Pick",
    "PickContext",
    "Policy",
    "PolicySpecError",
    "RateLimitError",
    "Registry",
    "RegistryUnavailableError",
    "Reputation",
    "Router",
    "ServerError",
    "SlowStart",
    "Snapshot",
    "SnapshotListener",
    "SnapshotSource",
    "Stage",
    "Verdict",
    "classify",
    "voice_memo_policy",
]
