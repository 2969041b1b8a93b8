"""The README's and the docs' Python examples run, so they cannot rot.

Every ```python block of README.md and of the executable docs pages runs in a fresh
namespace against a ``FakeLinqServer``: ``LINQ_API_V3_API_KEY`` and
``LINQ_API_V3_BASE_URL`` point at it, so an example written for the real API (a bare
``LinqClient()``) talks to the fake. A block that cannot run (it needs Redis, a process
pool's ``__main__``, a plugin that is not installed...) is marked on the line before
its fence with ``<!-- no-test -->`` (optionally ``<!-- no-test: why -->``) and shows
up as a skipped test with that reason, never silently.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from linq_router import API_KEY_ENV, BASE_URL_ENV
from linq_router.testing import FakeLinqServer, sample_pool

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# Docs pages whose Python blocks run too; every page but the generated ones.
EXCLUDED_DOCS = frozenset({"benchmarks.md"})
TIMEOUT = 30.0
"""Seconds one block may take (the fake answers in milliseconds; retries sleep a little)."""

_FENCE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_NO_TEST = re.compile(r"^\s*<!--\s*no-test\s*(?::\s*(?P<why>.*?))?\s*-->\s*$")
_PYTHON = frozenset({"python", "py", "python3", "pycon"})


@attrs.frozen
class Block:
    """One fenced code block: where it is, its language, its text, and a skip reason."""

    path: Path
    line: int
    language: str
    source: str
    skip: str | None

    @property
    def id(self) -> str:
        """``README.md:42``: the file (relative to the repository) and the fence's line."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, with any ``no-test`` mark before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = (opening["info"].split() or [""])[0].lower().strip("{}.")
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            closing = _FENCE.match(lines[i])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        i += 1
        blocks.append(Block(path, start + 1, language, "\n".join(body) + "\n", _mark(lines, start)))
    return blocks


def _mark(lines: list[str], fence_index: int) -> str | None:
    """The ``no-test`` reason on the nearest non-blank line above a fence, if any."""
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return None
    mark = _NO_TEST.match(lines[j])
    if mark is None:
        return None
    return mark["why"] or "marked <!-- no-test --> in the page"


def doc_pages() -> list[Path]:
    """README.md, then every docs page that may hold runnable examples."""
    pages = [README]
    if DOCS.is_dir():
        pages += sorted(
            page
            for page in DOCS.rglob("*.md")
            if page.name not in EXCLUDED_DOCS and "reference" not in page.relative_to(DOCS).parts
        )
    return pages


def python_blocks() -> list[Block]:
    """Every Python block of every page, in page order."""
    return [
        block for page in doc_pages() for block in code_blocks(page) if block.language in _PYTHON
    ]


BLOCKS = python_blocks()


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLinqServer]:
    """A fake Linq API with the sample pool, and the environment pointing at it."""
    with FakeLinqServer(sample_pool()) as server:
        monkeypatch.setenv(API_KEY_ENV, server.api_key)
        monkeypatch.setenv(BASE_URL_ENV, server.base_url)
        yield server


def _close_leftovers(namespace: dict[str, Any]) -> None:
    """Close the sync clients, registries and routers an example left open."""
    for value in list(namespace.values()):
        module = getattr(type(value), "__module__", "") or ""
        close = getattr(value, "close", None)
        if module.startswith("linq_router.") and callable(close):
            # Best effort: the example may have closed it already, or left it broken.
            with contextlib.suppress(Exception):
                close()


def run_block(block: Block, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Run ``block`` in a fresh namespace, in a thread, failing if it outlasts ``timeout``.

    ``__name__`` is ``"__main__"`` so ``if __name__ == "__main__": asyncio.run(main())``
    runs, and an example's own ``asyncio.run`` gets a thread with no running loop.
    """
    code = compile(block.source, block.id, "exec")
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(block.path)}
    errors: list[BaseException] = []

    def target() -> None:
        try:
            exec(code, namespace)  # running the documentation is the point
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    worker = threading.Thread(target=target, name=f"example {block.id}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        pytest.fail(f"{block.id}: the example did not finish within {timeout:g} s")
    _close_leftovers(namespace)
    if errors:
        exc = errors[0]
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            return namespace
        raise AssertionError(f"{block.id}: the example raised {exc!r}") from exc
    return namespace


def test_readme_has_python_examples() -> None:
    """The README has Python examples for this suite to run (so it never passes vacuously)."""
    assert [b for b in BLOCKS if b.path == README and b.skip is None]


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example_runs(block: Block, fake_api: FakeLinqServer) -> None:
    """The example runs to completion against the fake Linq API, within the timeout."""
    if block.skip is not None:
        pytest.skip(f"{block.id}: {block.skip}")
    run_block(block)


def test_readme_first_screen_has_the_two_commands() -> None:
    """The first screen of the README shows the try-it command and the test command."""
    first_screen = README.read_text(encoding="utf-8").splitlines()[:25]
    commands = [
        block.source
        for block in code_blocks(README)
        if block.line <= len(first_screen) and block.language in {"bash", "sh", "shell", "console"}
    ]
    assert any("linq-router" in command for command in commands), first_screen
    assert any(re.search(r"\bpytest\b", command) for command in commands), first_screen


def test_no_test_marks_are_explicit(tmp_path: Path) -> None:
    """A ``no-test`` mark skips only the block right after it, and carries its reason."""
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- no-test: needs Redis -->\n```python\nraise SystemExit(1)\n```\n\n"
        "```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    first, second = code_blocks(page)
    assert first.skip == "needs Redis"
    assert second.skip is None
    assert second.source == "x = 1\n"


def test_run_block_fails_a_block_that_hangs(tmp_path: Path) -> None:
    """An example that outlasts the timeout fails its test instead of hanging the suite."""
    block = Block(tmp_path / "x.md", 1, "python", "import time\ntime.sleep(5)\n", None)
    with pytest.raises(pytest.fail.Exception, match="did not finish"):
        run_block(attrs.evolve(block, path=ROOT / "x.md"), timeout=0.2)


def test_run_block_runs_async_examples() -> None:
    """A block that defines ``async def main()`` and calls ``asyncio.run(main())`` runs."""
    source = (
        "import asyncio\n\nasync def main():\n    await asyncio.sleep(0)\n    return 42\n\n"
        "result = asyncio.run(main())\n"
    )
    namespace = run_block(Block(ROOT / "x.md", 1, "python", source, None))
    assert namespace["result"] == 42


if __name__ == "__main__":  # pragma: no cover - handy for `python tests/test_readme.py`
    sys.exit(pytest.main([__file__, "-q"]))
