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
import difflib
import os
import re
import shlex
import shutil
import subprocess
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
        monkeypatch.setenv("LINQ_WEBHOOK_SECRET", server.webhook_secret)
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


TEST_COMMAND = "bash scripts/setup.sh && . .venv/bin/activate && python -m pytest"
"""The README's test command: sets a fresh clone up and runs the whole suite."""
SETUP = ROOT / "scripts" / "setup.sh"


def _first_screen_commands() -> list[str]:
    """The shell blocks that start within the README's first 25 lines."""
    return [
        block.source.strip()
        for block in code_blocks(README)
        if block.line <= 25 and block.language in {"bash", "sh", "shell", "console"}
    ]


def test_readme_first_screen_has_the_two_commands() -> None:
    """The README's first screen installs and runs ``linq-router simulate``, and runs the tests."""
    commands = _first_screen_commands()
    assert any(
        "pip install" in command and re.search(r"\blinq-router simulate\b", command)
        for command in commands
    ), commands
    assert TEST_COMMAND in commands, commands


def test_the_test_command_sets_up_a_fresh_clone_and_runs_pytest() -> None:
    """scripts/setup.sh makes the venv, installs the packages and chromium; pytest follows."""
    setup = SETUP.read_text(encoding="utf-8")
    assert TEST_COMMAND.endswith("python -m pytest")
    assert "python3 -m venv .venv" in setup
    assert "pip install -q -e '.[dev]' -e examples/least-recent-plugin" in setup
    assert re.search(r"^\s*if apt_install chromium ", setup, re.MULTILINE)


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs the README's test command itself, after lint, types, docs and benchmarks."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in ci.splitlines()]
    assert TEST_COMMAND in lines
    steps = ["ruff check .", "mypy --strict linq_router", "mkdocs build --strict"]
    steps += ["python benchmarks/run.py --quick --no-write", TEST_COMMAND]
    where = [next(i for i, line in enumerate(lines) if step in line) for step in steps]
    assert where == sorted(where), dict(zip(steps, where, strict=True))
    assert '"$status" -eq 5' in ci  # "no tests ran" is a failure


def _stub(path: Path, body: str) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    path.write_text(f"#!{bash}\n{body}", encoding="utf-8")
    path.chmod(0o755)


def _setup_browser(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """``scripts/setup.sh --browser`` with nothing on PATH but ``bin_dir``."""
    bash = shutil.which("bash")
    assert bash is not None
    env = shutil.which("env")
    assert env is not None
    (bin_dir / "env").symlink_to(env)
    return subprocess.run(
        [bash, str(SETUP), "--browser"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": str(bin_dir), "HOME": str(bin_dir)},
    )


def test_setup_installs_chromium_with_apt_get_when_no_browser_is_found(tmp_path: Path) -> None:
    """With no browser but apt-get (as root, or through sudo), the set-up installs chromium."""
    bin_dir, log = tmp_path / "bin", tmp_path / "apt-get.log"
    bin_dir.mkdir()
    chmod = shutil.which("chmod")
    assert chmod is not None
    browser = bin_dir / "chromium"
    _stub(
        bin_dir / "apt-get",
        f'echo "$*" >> {shlex.quote(str(log))}\n'
        f'if [ "$1" = install ]; then\n'
        f"  printf '#!/bin/sh\\necho Chromium\\n' > {shlex.quote(str(browser))}\n"
        f"  {chmod} +x {shlex.quote(str(browser))}\n"
        f"fi\n",
    )
    _stub(bin_dir / "sudo", 'exec "$@"\n')  # for a test run by someone other than root
    run = _setup_browser(bin_dir)
    assert run.returncode == 0, run.stderr
    assert log.read_text(encoding="utf-8").splitlines() == ["update -qq", "install -y -qq chromium"]
    assert f"browser: {browser} (installed)" in run.stdout


def test_setup_says_how_to_get_a_browser_when_it_cannot_install_one(tmp_path: Path) -> None:
    """Without a browser or apt-get, the set-up warns that the browser test will fail, and how."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    run = _setup_browser(bin_dir)
    assert run.returncode == 0, run.stderr  # the tests still run, and the browser test fails
    assert "no apt-get" in run.stderr
    assert "will FAIL" in run.stderr
    assert "apt-get install -y chromium" in run.stderr


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_registry_section_shows_refresh() -> None:
    """The README's registry section calls ``refresh()`` in its example and says what it does."""
    section = _section(README.read_text(encoding="utf-8"), "The registry")
    example = next(b for b in code_blocks(README) if b.language == "python" and b.source in section)
    assert "registry.refresh()" in example.source
    assert "`registry.refresh()`" in section.replace(example.source, "")


def test_local_numbers_are_credited_to_geomatch() -> None:
    """Where the README or the docs index says "local", the paragraph names ``geomatch``."""
    for page in (README, DOCS / "index.md"):
        for paragraph in page.read_text(encoding="utf-8").split("\n\n"):
            if re.search(r"\blocal\b", paragraph):
                assert "geomatch" in paragraph, f"{page.name}: {paragraph}"


_SIMULATE_MARK = re.compile(r"^<!--\s*simulate-output:\s*(?P<columns>\d+) columns\b.*-->$")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_PICKS_PER_SECOND = re.compile(r"^((?:picks|sends)/s\s+)[\d,]+", re.MULTILINE)
_STAY_RATE = re.compile(r"^(returning recipients\b.*?)\d+\.\d%", re.MULTILINE)


def _normalized(output: str) -> str:
    """Output without colour codes, trailing spaces, blank edges or the picks/s figure."""
    lines = [line.rstrip() for line in _ANSI.sub("", output).splitlines()]
    text = "\n".join(lines).strip("\n")
    return _PICKS_PER_SECOND.sub(r"\g<1>(varies)", text)


def _steady(text: str) -> str:
    """``_normalized`` output with the share of returning recipients who kept their line masked.

    It is the one figure besides picks/s that moves between seeded runs: four threads
    share one rotation, so which returning recipient meets which line depends on how
    they interleave (by about 0.1%). Everything else (the layout, the per-line picks
    and timelines, the pool events and the other figures) must match exactly.
    """
    return _STAY_RATE.sub(lambda m: m[1] + "99.9%", text)


def _readme_simulate_block() -> tuple[int, list[str], str]:
    """(terminal columns, the command's arguments, its pasted output) from the README."""
    lines = README.read_text(encoding="utf-8").splitlines()
    for block in code_blocks(README):
        prompt, _, output = block.source.partition("\n")
        if not prompt.startswith("$ linq-router simulate"):
            continue
        above = next(line for line in reversed(lines[: block.line - 1]) if line.strip())
        mark = _SIMULATE_MARK.match(above.strip())
        assert mark, f"README.md:{block.line}: mark the block with <!-- simulate-output: ... -->"
        return int(mark["columns"]), shlex.split(prompt[2:])[1:], output
    pytest.fail("README.md has no `$ linq-router simulate` block")


def test_readme_simulate_output_is_what_the_command_prints(tmp_path: Path) -> None:
    """The README's pasted ``linq-router simulate`` output is what a run prints, picks/s aside."""
    columns, args, pasted = _readme_simulate_block()
    env = {k: v for k, v in os.environ.items() if k not in {API_KEY_ENV, BASE_URL_ENV}}
    # A terminal of that width (rich >= 14 reads these), without colour or progress bar.
    env.update(
        COLUMNS=str(columns), LINES="60", TTY_COMPATIBLE="1", TTY_INTERACTIVE="0", NO_COLOR="1"
    )
    run = subprocess.run(
        [sys.executable, "-m", "linq_router", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    expected, got = _steady(_normalized(pasted)), _steady(_normalized(run.stdout))
    if got != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), got.splitlines(), "README.md", "a run", lineterm=""
        )
        pytest.fail("the README's simulate output is stale; paste a fresh run:\n" + "\n".join(diff))


def test_the_simulate_comparison_sees_a_changed_figure() -> None:
    """The comparison masks only the moving figures: a changed retry count still differs."""
    _, _, pasted = _readme_simulate_block()
    steady = _steady(_normalized(pasted))
    assert "(varies)" in steady
    assert "99.9%" in steady
    changed = re.sub(r"\b(\d+) retries\b", lambda m: f"{int(m[1]) + 1} retries", pasted)
    assert changed != pasted
    assert _steady(_normalized(changed)) != steady


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
