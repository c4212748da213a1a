"""The generated copies of the parameter declarations (config schema, README tables) are what
``python -m lmt.docs`` writes, and every parameter is declared so that it can be documented."""

from __future__ import annotations

import pytest

from lmt import docs
from lmt.docs.__main__ import main
from lmt.docs.blocks import replace_block
from lmt.docs.parameters import parameters, summary
from lmt.docs.schema import documented_attacks
from lmt.methods import get_method_spec, list_methods


def test_committed_copies_match_the_declarations() -> None:
    stale = [str(path.relative_to(docs.REPO)) for path in docs.stale()]
    assert not stale, f"{stale} differ from the parameter declarations: run `python -m lmt.docs`"
    assert main(["--check"]) == 0


@pytest.mark.parametrize("cls", [*documented_attacks().values(), *(get_method_spec(m, {})[0] for m in list_methods())],
                         ids=lambda cls: cls.__qualname__)
def test_every_parameter_class_is_documented(cls: type) -> None:
    """A summary line and, for every parameter, a meaning (lmt.params.param) to copy."""
    assert summary(cls)
    assert all(p.doc for p in parameters(getattr(cls, "Params", cls)))


def test_blocks_are_replaced_between_their_markers_only() -> None:
    text = "a\n  # BEGIN generated: x (note)\n  old\n  # END generated: x\nb\n"
    assert replace_block(text, "x", "k: 1\n\nl: 2\n", "#") == \
        "a\n  # BEGIN generated: x (note)\n  k: 1\n\n  l: 2\n  # END generated: x\nb\n"
    with pytest.raises(ValueError, match="README.md: expected one block .*'<!-- BEGIN generated: y'.*found 0 BEGIN"):
        replace_block(text, "y", "", "<!--", "README.md")
    with pytest.raises(ValueError, match="found 2 BEGIN and 2 END"):
        replace_block(text + text, "x", "", "#")
