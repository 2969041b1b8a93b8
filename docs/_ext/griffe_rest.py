"""A griffe extension: render the reST bits of linq_router's docstrings as Markdown.

The docstrings are plain text with ``literals``, ``.. versionadded:: X`` notes,
``Heading::`` literal blocks and, here and there, ``>>>`` examples. Markdown already
shows double-backtick literals as code; this turns the version notes into a short
italic line, ``::`` into ``:`` (the indented block after it is a Markdown code block
already), and a ``>>>`` example into a ``pycon`` code block without its
``# doctest:`` directives (Markdown would show it as three nested quotes, and the
directives are for doctest, not for readers), without touching the code.
Loaded by mkdocs.yml (``extensions:``); not part of the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_VERSION_NOTE = re.compile(
    r"^(?P<indent>[ \t]*)\.\. (?P<kind>versionadded|versionchanged|deprecated)::"
    r"[ \t]*(?P<version>\S+)[ \t]*$",
    re.MULTILINE,
)
_LITERAL_INTRO = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)
_PROMPT = re.compile(r"^(?P<indent>[ \t]*)>>>(?: |$)")
_DIRECTIVE = re.compile(r"[ \t]*#[ \t]*doctest:[^\n]*$")
_WORDS = {
    "versionadded": "Added in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
}


def fence_examples(text: str) -> str:
    """``text`` with each ``>>>`` example (up to a blank line) as a fenced ``pycon`` block.

    ``# doctest: ...`` directives are dropped from the prompt lines; the example's
    output lines are kept as they are.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        prompt = _PROMPT.match(lines[i])
        if prompt is None:
            out.append(lines[i])
            i += 1
            continue
        if out and out[-1].strip():  # a fence glued to a paragraph would not open
            out.append("")
        indent = prompt["indent"]
        block: list[str] = []
        while i < len(lines) and lines[i].strip():
            line = lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip()
            if line.startswith((">>>", "...")):
                line = _DIRECTIVE.sub("", line)
            block.append(line)
            i += 1
        out += [f"{indent}```pycon", *(f"{indent}{b}" for b in block), f"{indent}```"]
    return "\n".join(out)


def rewrite(text: str) -> str:
    """``text`` with version notes, ``::`` intros and ``>>>`` examples made Markdown."""
    text = _VERSION_NOTE.sub(lambda m: f"{m['indent']}*{_WORDS[m['kind']]} {m['version']}.*", text)
    text = _LITERAL_INTRO.sub(":", text)
    return fence_examples(text)


class RestNotes(griffe.Extension):
    """Rewrite every docstring once the object tree is built."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: D102
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
