"""A griffe extension: render the reST bits of linq_router's docstrings as Markdown.

The docstrings are plain text with ``literals``, ``.. versionadded:: X`` notes and
``Heading::`` literal blocks. Markdown already shows double-backtick literals as code;
this turns the version notes into a short italic line and ``::`` into ``:`` (the
indented block after it is a Markdown code block already), without touching the code.
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
_WORDS = {
    "versionadded": "Added in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
}


def rewrite(text: str) -> str:
    """``text`` with version notes and ``::`` literal-block intros made Markdown."""
    text = _VERSION_NOTE.sub(lambda m: f"{m['indent']}*{_WORDS[m['kind']]} {m['version']}.*", text)
    return _LITERAL_INTRO.sub(":", text)


class RestNotes(griffe.Extension):
    """Rewrite every docstring once the object tree is built."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: D102
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
