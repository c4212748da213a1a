"""Packaging: baselines/ is installed as ``lmt_bench_baselines`` and found as a plugin through
its entry point; lmt never imports it by name, and no top-level ``baselines`` is installed."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest

from lmt.methods import METHODS
from lmt.registry import PLUGIN_GROUP
from tests.conftest import BASELINES, REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_is_listed_and_baselines_is_mapped() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    packages = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "lmt").rglob("__init__.py")}
    assert sorted(setuptools["packages"]) == sorted(packages | {BASELINES})
    assert setuptools["package-dir"] == {BASELINES: "baselines"}
    assert "baselines" not in setuptools["packages"]


def test_baselines_are_announced_as_a_plugin() -> None:
    assert PYPROJECT["project"]["entry-points"][PLUGIN_GROUP] == {"baselines": BASELINES}


def test_lmt_never_imports_the_baselines_by_name() -> None:
    names = f"(baselines|{BASELINES})\\b"
    by_name = re.compile(rf"^\s*(import|from)\s+{names}|import_module\(\w*[\"']{names}", re.M)
    for path in (REPO / "lmt").rglob("*.py"):
        assert not by_name.search(path.read_text()), path


def test_a_fresh_interpreter_finds_the_baselines_through_the_entry_point(tmp_path) -> None:
    announced = [p.value for p in metadata.entry_points(group=PLUGIN_GROUP)]
    if BASELINES not in announced:
        pytest.skip(f"the installed lmt-bench predates the {PLUGIN_GROUP!r} entry point: `pip install -e .`")
    expected = sorted(n for n, e in METHODS.entries().items() if e.factory.__module__.startswith(f"{BASELINES}."))
    script = "import sys; from lmt.methods import list_methods; print(list_methods(), 'baselines' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    methods, top_level = done.stdout.rsplit(" ", 1)
    assert set(expected) <= set(ast.literal_eval(methods)) and top_level.strip() == "False"
