"""The API reference documents every public name, and the docs nav matches the pages.

Most checks need nothing but the repository, so a name added to an ``__all__``
without a reference entry fails here first. The rest look at the site itself, built
once per run (``mkdocs build --strict``, as CI builds it) into a temporary folder:
every public method has a heading of its own, and no page shows doctest markup.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
NAMESPACES = (
    "linq_router",
    "linq_router.policies",
    "linq_router.sdk",
    "linq_router.state",
    "linq_router.testing",
    "linq_router.testing.contract",
    "linq_router.testing.strategies",
    "linq_router.webhooks",
)

_DIRECTIVE = re.compile(r"^:::\s+(?P<path>[\w.]+)\s*$", re.MULTILINE)
BUILD_TIMEOUT = 180.0
"""Seconds the site build may take (about five here)."""


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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, built with ``mkdocs build --strict`` into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return out


def _pages(site: Path) -> Iterator[tuple[str, str]]:
    for page in sorted(site.rglob("*.html")):
        yield str(page.relative_to(site)), page.read_text(encoding="utf-8")


def _ext() -> ModuleType:
    """docs/_ext/griffe_rest.py, the extension mkdocs.yml loads, imported by path."""
    spec = importlib.util.spec_from_file_location("griffe_rest", DOCS / "_ext" / "griffe_rest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_rendered_page_shows_doctest_markup(site: Path) -> None:
    """No page of the built site shows a ``doctest:`` directive or a ``>>>`` quoted thrice."""
    shown = [name for name, text in _pages(site) if "doctest:" in text]
    assert not shown, f"'doctest:' shows on {', '.join(shown)}"
    nested = re.compile(r"<blockquote>\s*<blockquote>\s*<blockquote>")
    quoted = [name for name, text in _pages(site) if nested.search(text)]
    assert not quoted, f"a >>> example renders as nested quotes on {', '.join(quoted)}"


def _documented_objects() -> Iterator[tuple[str, object]]:
    """Every public name of every namespace, and the methods of its classes."""
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        yield namespace, module
        for name in module.__all__:
            value = getattr(module, name)
            yield f"{namespace}.{name}", value
            if inspect.isclass(value):
                for attr, member in vars(value).items():
                    if not attr.startswith("_") and callable(member):
                        yield f"{namespace}.{name}.{attr}", member


def test_no_rendered_docstring_keeps_doctest_markup() -> None:
    """After the docs' extension, no docstring has a directive or an unfenced ``>>>``."""
    rewrite: Callable[[str], str] = _ext().rewrite
    bad = []
    for path, value in _documented_objects():
        doc = inspect.getdoc(value) if isinstance(value, ModuleType) else value.__doc__
        if not doc:
            continue
        rendered = rewrite(inspect.cleandoc(doc))
        outside = re.sub(r"```pycon\n.*?\n```", "", rendered, flags=re.DOTALL)
        if "doctest:" in rendered or re.search(r"^\s*>>>", outside, re.MULTILINE):
            bad.append(path)
    assert not bad, f"doctest markup would render in: {', '.join(bad)}"


def test_the_extension_fences_examples_and_drops_directives() -> None:
    """A ``>>>`` example becomes a ``pycon`` block, without its ``# doctest:`` directive."""
    rewrite: Callable[[str], str] = _ext().rewrite
    text = "Use it.\n>>> x = f()  # doctest: +SKIP\n>>> x\n'+1202'\n\n.. versionadded:: 0.1"
    assert rewrite(text) == (
        "Use it.\n\n```pycon\n>>> x = f()\n>>> x\n'+1202'\n```\n\n*Added in version 0.1.*"
    )


def _public_classes() -> dict[int, str]:
    """id(class) -> its documented path, for every public class."""
    found: dict[int, str] = {}
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value):
                found.setdefault(id(value), f"{namespace}.{name}")
    return found


def test_every_public_method_has_a_reference_entry(site: Path) -> None:
    """Each public method or property of a public class has a heading of its own."""
    # A member inherited from a public class may be documented there instead; one
    # inherited from a private base (_RegistryCore, _RouterCore...) must show here.
    anchors = {
        anchor
        for _, text in _pages(site / "reference")
        for anchor in re.findall(r'<h\d id="([\w.]+)"', text)
    }
    public = _public_classes()
    missing = []
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        for name in module.__all__:
            cls = getattr(module, name)
            if not inspect.isclass(cls):
                continue
            for attr in dir(cls):
                owner = next((k for k in cls.__mro__ if attr in vars(k)), None)
                if attr.startswith("_") or owner is None:
                    continue
                if not owner.__module__.startswith("linq_router"):
                    continue  # object's, Exception's, Enum's, Protocol's own
                member = vars(owner)[attr]
                if not (inspect.isfunction(member) or isinstance(member, property)):
                    continue
                here = f"{namespace}.{name}.{attr}"
                there = f"{public[id(owner)]}.{attr}" if id(owner) in public else None
                if here not in anchors and there not in anchors:
                    missing.append(here)
    assert not missing, f"no reference entry for: {', '.join(sorted(missing))}"
