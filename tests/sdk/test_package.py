"""linq_router.sdk as a package: its exports, its docs, and its place above the router."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import linq_router.sdk


def test_all_is_sorted_resolves_and_is_documented() -> None:
    """__all__ is sorted, every name exists and carries a docstring with its version."""
    exported = list(linq_router.sdk.__all__)
    assert exported == sorted(exported)
    for name in exported:
        doc = inspect.getdoc(getattr(linq_router.sdk, name)) or ""
        assert ".. versionadded:: 0.3" in doc, name
    assert "pip install 'linq-router[sdk]'" in (linq_router.sdk.__doc__ or "")


def test_without_linq_python_the_import_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With linq-python missing, importing linq_router.sdk names the extra to install."""
    hidden = [n for n in sys.modules if n == "linq" or n.startswith(("linq.", "linq_router.sdk"))]
    for name in hidden:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "linq", None)  # type: ignore[arg-type]
    with pytest.raises(ImportError, match=r"pip install 'linq-router\[sdk\]'"):
        importlib.import_module("linq_router.sdk")


def test_nothing_else_in_the_package_imports_it() -> None:
    """Every other module of linq_router imports without pulling in linq_router.sdk or linq."""
    code = """
import importlib, pkgutil, sys
import linq_router
# Not walk_packages: it imports every package it finds, linq_router.sdk among them.
todo = [linq_router]
while todo:
    package = todo.pop()
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if info.name.startswith("linq_router.sdk"):
            continue
        module = importlib.import_module(info.name)
        if info.ispkg:
            todo.append(module)
loaded = [n for n in sys.modules if n.startswith("linq_router.sdk") or n.split(".")[0] == "linq"]
print(sorted(loaded))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
