"""Generated blocks inside hand-written files, between two marker comments:

    <!-- BEGIN generated: NAME (any note) -->      # BEGIN generated: NAME (any note)
    ...                                             ...
    <!-- END generated: NAME -->                   # END generated: NAME

Only what lies between the markers is rewritten; it takes the BEGIN line's indentation.
"""

from __future__ import annotations

import re
from pathlib import Path

COMMENTS = {".md": "<!--", ".yaml": "#", ".yml": "#"}  # how a marker line starts, by file suffix


def replace_block(text: str, name: str, body: str, comment: str, where: str = "text") -> str:
    """``text`` with the block ``name`` holding ``body`` (lines indented like its BEGIN marker).
    A missing, unclosed or repeated block is an error naming ``where`` and the block."""

    def marker(kind: str) -> str:
        return rf"^(?P<{kind}>[ \t]*){re.escape(comment)} {kind.upper()} generated: {re.escape(name)}\b[^\n]*\n?"

    begins = list(re.finditer(marker("begin"), text, re.MULTILINE))
    ends = list(re.finditer(marker("end"), text, re.MULTILINE))
    if len(begins) != 1 or len(ends) != 1 or ends[0].start() < begins[0].end():
        raise ValueError(f"{where}: expected one block from '{comment} BEGIN generated: {name}' to "
                         f"'{comment} END generated: {name}', found {len(begins)} BEGIN and {len(ends)} END")
    indent = begins[0]["begin"]
    lines = body.splitlines(keepends=True)
    indented = "".join(indent + line if line.strip() else line for line in lines)
    return text[: begins[0].end()] + indented + text[ends[0].start():]


def comment_of(path: Path) -> str:
    """The comment that starts a marker line in ``path`` (by its suffix)."""
    try:
        return COMMENTS[path.suffix]
    except KeyError:
        raise ValueError(f"{path}: no marker comment known for {path.suffix!r} files") from None
