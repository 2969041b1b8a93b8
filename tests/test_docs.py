"""The API reference documents every public name, and the docs nav matches the pages.

Building the site (``mkdocs build --strict``) is CI's job; these checks need nothing
but the repository, so a name added to an ``__all__`` without a reference entry fails
here first.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
NAMESPACES = (
    "linq_router",
    "linq_router.policies",
    "linq_router.state",
    "linq_router.testing",
    "linq_router.testing.contract",
    "linq_router.testing.strategies",
)

_DIRECTIVE = re.compile(r"^:::\s+(?P<path>[\w.]+)\s*$", re.MULTILINE)


def documented() -> set[str]:
    """Every dotted path the reference pages render with a ``::: path`` directive."""
    return {
        match["path"]
        for page in REFERENCE.glob("*.md")
        for match in _DIRECTIVE.finditer(page.read_text(encoding="utf-8"))
    }


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_public_name_is_in_the_api_reference(namespace: str) -> None:
    """Each name in the namespace's ``__all__`` has a ``::: namespace.name`` entry."""
    module = importlib.import_module(namespace)
    missing = sorted(name for name in module.__all__ if f"{namespace}.{name}" not in documented())
    assert not missing, f"add to docs/reference/: {', '.join(missing)}"


def test_the_reference_names_only_public_paths() -> None:
    """Reference entries point at public names (no private modules, nothing stale)."""
    public = {f"{ns}.{name}" for ns in NAMESPACES for name in importlib.import_module(ns).__all__}
    stale = sorted(path for path in documented() if path not in public | set(NAMESPACES))
    assert not stale, f"not public (or gone): {', '.join(stale)}"


def test_every_page_is_in_the_nav() -> None:
    """mkdocs.yml's nav lists every Markdown page under docs/ (and nothing missing)."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config.split("\nnav:", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"([\w./-]+\.md)\s*$", nav, re.MULTILINE))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "_ext" not in p.parts}
    assert pages - listed == set(), "pages missing from the nav"
    assert listed - pages == set(), "nav entries without a page"
