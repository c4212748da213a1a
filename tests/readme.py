"""The README's code examples, for tests that run them exactly as written."""

from __future__ import annotations

import re

from tests.conftest import REPO


def readme_code(heading: str, index: int = 0) -> str | None:
    """The ``index``-th fenced ``python`` block of the README section ``## {heading}`` (up to
    the next heading of that level), or None where the README has no such section or block."""
    text = (REPO / "README.md").read_text()
    section = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    blocks = re.findall(r"^```python\n(.*?)^```", section.group(1), re.M | re.S) if section else []
    return blocks[index] if index < len(blocks) else None


def without_leading_comments(code: str) -> str:
    """``code`` without its first lines of comments (where the README says which file it is)."""
    lines = code.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)
