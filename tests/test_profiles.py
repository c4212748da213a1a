"""Every workflow profile is a valid Snakemake profile for this workflow.

A profile is a YAML mapping of Snakemake's long options; a broken one (a key swallowed by a
comment, a misspelt option) silently falls back to defaults — for the SLURM profile, to local
execution. So: every key is a Snakemake option, the SLURM profiles name the slurm executor,
every `set-resources` key is a rule of this workflow, and `snakemake -n` accepts each profile
(the SLURM ones only where the executor plugin is installed).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

PROFILES = sorted(p.parent for p in (REPO / "workflow" / "profiles").glob("*/config.yaml"))
SLURM_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None


def _profile(path: Path) -> dict:
    profile = yaml.safe_load((path / "config.yaml").read_text())
    assert isinstance(profile, dict), f"{path}/config.yaml is not a mapping"
    return profile


def _snakemake_options() -> set[str]:
    """Snakemake's long options (with the installed executor plugins' own)."""
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()
    return {s[2:] for action in parser._actions for s in action.option_strings if s.startswith("--")}


def _rules() -> set[str]:
    return {m for f in (REPO / "workflow" / "rules").glob("*.smk") for m in re.findall(r"^rule (\w+):", f.read_text(), re.M)}


def test_there_are_local_gpu_and_cpu_cluster_profiles() -> None:
    assert {p.name for p in PROFILES} >= {"default", "slurm", "slurm-cpu"}


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_every_key_is_a_snakemake_option(path: Path) -> None:
    options = _snakemake_options()
    unknown = [key for key in _profile(path) if key not in options]
    if not SLURM_PLUGIN:
        unknown = [key for key in unknown if not key.startswith("slurm-")]
    assert not unknown, f"{path.name}: not Snakemake options: {unknown}"


@pytest.mark.parametrize("path", [p for p in PROFILES if p.name.startswith("slurm")], ids=lambda p: p.name)
def test_slurm_profiles_submit_every_job_to_slurm(path: Path) -> None:
    profile = _profile(path)
    assert profile.get("executor") == "slurm"
    for key in ("jobs", "latency-wait", "retries", "default-resources"):
        assert key in profile, f"{path.name} has no {key!r}"
    resources = profile["default-resources"]
    assert isinstance(resources, dict) and {"runtime", "mem_mb"} <= set(resources)
    unknown = set(profile.get("set-resources", {})) - _rules()
    assert not unknown, f"{path.name}: set-resources for rules that do not exist: {sorted(unknown)}"


def test_the_cpu_profile_asks_for_no_gpu() -> None:
    """A rule that declares gpu=1 would get `--gpus=1`, which a cluster without GPU GRES rejects."""
    gpu_rules = {
        m for f in (REPO / "workflow" / "rules").glob("*.smk")
        for m in re.findall(r"^rule (\w+):(?:(?!^rule ).)*?gpu=1", f.read_text(), re.M | re.S)
    }
    assert gpu_rules >= {"train", "certify", "attack", "gradient_bounds"}
    overrides = _profile(REPO / "workflow" / "profiles" / "slurm-cpu")["set-resources"]
    assert all(overrides.get(rule, {}).get("gpu") == 0 for rule in gpu_rules), gpu_rules


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_snakemake_plans_the_default_run_with_the_profile(path: Path) -> None:
    if path.name.startswith("slurm") and not SLURM_PLUGIN:
        pytest.skip('snakemake-executor-plugin-slurm is not installed (pip install -e ".[slurm]")')
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--workflow-profile", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
