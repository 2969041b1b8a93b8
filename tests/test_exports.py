"""The public surface: what users import is exported, sorted and documented."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

NAMESPACES = [
    "linq_router",
    "linq_router.policies",
    "linq_router.sdk",
    "linq_router.state",
    "linq_router.testing",
    "linq_router.webhooks",
]


@pytest.mark.parametrize("name", NAMESPACES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    """Each public namespace's __all__ is sorted, and every name in it exists."""
    module = importlib.import_module(name)
    exported = list(module.__all__)
    # isort-style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []


@pytest.mark.parametrize("name", NAMESPACES)
def test_public_classes_and_functions_have_docstrings(name: str) -> None:
    """Every exported class and function carries a docstring."""
    module = importlib.import_module(name)

    def is_code(obj: object) -> bool:
        # On Python 3.10 a parametrised alias such as Callable[[X], None] passes isclass.
        if isinstance(obj, types.GenericAlias):
            return False
        return inspect.isclass(obj) or inspect.isfunction(obj)

    undocumented = [
        n
        for n in module.__all__
        if is_code(getattr(module, n)) and not inspect.getdoc(getattr(module, n))
    ]
    assert undocumented == []


def test_public_names_come_from_private_modules_only() -> None:
    """Nothing in the package's top level is public by accident."""
    import linq_router

    public = {
        n for n, v in vars(linq_router).items() if not n.startswith("_") and not inspect.ismodule(v)
    }
    assert public == set(linq_router.__all__)
