"""Generated copies of the parameter declarations; ``python -m lmt.docs`` rewrites them.

The parameter dataclasses (attacks in :mod:`lmt.attacks`, training methods' ``Params``) are the
one source of every parameter's default, range, choices and meaning
(:func:`lmt.params.param`). Their copies live between ``BEGIN generated: NAME`` / ``END
generated: NAME`` markers (:mod:`lmt.docs.blocks`) in

* ``lmt/schemas/config.schema.yaml``: ``attack-patterns`` (which ``$defs`` entry checks an
  attack label), ``attack-budgets`` (``$defs.attack_NAME``) and ``smoothing-settings``
  (``certify.smoothing``, from :class:`lmt.smoothing.SmoothingSettings`);
* ``README.md``: ``training-methods``, ``attack-budgets`` and ``smoothing-settings`` (tables),
  and the ``results-*`` blocks: sections of the published results under ``docs/results/``
  (:mod:`lmt.docs.results`), so the README's numbers are copies of files that commands wrote.

``tests/test_docs.py`` fails when a committed copy differs from what the command writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import yaml

from lmt.docs import readme, results, schema
from lmt.docs.blocks import comment_of, replace_block
from lmt.docs.parameters import REPO

SCHEMA = REPO / "lmt" / "schemas" / "config.schema.yaml"
README = REPO / "README.md"

BLOCKS: dict[Path, dict[str, Callable[[], str]]] = {
    SCHEMA: {
        "attack-patterns": lambda: schema.to_yaml(schema.attack_patterns()),
        "attack-budgets": lambda: schema.to_yaml(schema.attack_defs()),
        "smoothing-settings": lambda: schema.to_yaml(schema.smoothing_schema()),
    },
    README: {"training-methods": readme.methods_table, "attack-budgets": readme.attack_budget_table,
             "smoothing-settings": readme.smoothing_table,
             **{name: (lambda path=path, heading=heading: results.section(path, heading))
                for name, (path, heading) in results.RESULT_SECTIONS.items()}},
}


def rendered(path: Path) -> str:
    """``path``'s text with every generated block rewritten from the declarations."""
    text = path.read_text(encoding="utf-8")
    for name, render in BLOCKS[path].items():
        text = replace_block(text, name, render(), comment_of(path), str(path.relative_to(REPO)))
    if path == SCHEMA:
        _check_schema(text)
    return text


def _check_schema(text: str) -> None:
    """The written YAML reads back as exactly the generated entries (quoting, floats, indents)."""
    loaded = yaml.safe_load(text)
    patterns = loaded["properties"]["attack"]["properties"]["attacks"]["patternProperties"]
    certify = loaded["properties"]["certify"]["properties"]
    for expected, actual in ((schema.attack_defs(), loaded["$defs"]), (schema.attack_patterns(), patterns),
                             (schema.smoothing_schema(), certify)):
        wrong = [key for key, value in expected.items() if actual.get(key) != value]
        if wrong:
            raise AssertionError(f"{SCHEMA}: generated entries {wrong} do not read back as written")


def stale() -> list[Path]:
    """The files whose generated blocks differ from what :func:`write` would write."""
    return [path for path in BLOCKS if path.read_text(encoding="utf-8") != rendered(path)]


def write() -> list[Path]:
    """Rewrite every generated block; the files that changed."""
    changed = []
    for path in BLOCKS:
        text = rendered(path)
        if text != path.read_text(encoding="utf-8"):
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed
