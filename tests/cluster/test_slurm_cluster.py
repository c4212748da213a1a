"""The workflow on a real SLURM cluster: every job through sbatch, the same tables as locally.

Run by tests/cluster/slurm_local_check.sh, which starts a one-node cluster on this machine and
sets LMT_SLURM_CHECK=1 (skipped otherwise: a test suite should not submit jobs to whatever
cluster it happens to run on). The tiny test experiment (.test/config/config.yaml) runs once
with `--workflow-profile workflow/profiles/slurm-cpu` and once locally; the controller's log must
show an allocation and a completion for every job Snakemake submitted, and every table must be
byte-identical between the two runs.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(os.environ.get("LMT_SLURM_CHECK") != "1" or shutil.which("sbatch") is None,
                       reason="needs tests/cluster/slurm_local_check.sh (a running SLURM cluster)"),
]
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"


def _snakemake(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(TEST_CONFIG),
         "--directory", str(workdir), *args],
        cwd=REPO, capture_output=True, text=True, timeout=3600,
    )
    return result, time.perf_counter() - started


def _same_table(a: Path, b: Path) -> bool:
    """Byte-identical, except a training log's wall-clock columns."""
    if a.name != "train_log.csv":
        return filecmp.cmp(a, b, shallow=False)
    import pandas as pd

    timing = ["examples_per_s", "seconds"]
    return pd.read_csv(a).drop(columns=timing).equals(pd.read_csv(b).drop(columns=timing))


def _wall_seconds(controller_log: str) -> dict[str, float]:
    """Per SLURM job id, seconds from its allocation to its completion, from the log's timestamps."""
    stamp = r"\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\]"
    done = {job: when for when, job in re.findall(stamp + r" _job_complete: JobId=(\d+) done", controller_log)}
    allocated = {job: when for when, job in re.findall(stamp + r" sched: Allocate JobId=(\d+)\b", controller_log)}
    return {job: (datetime.fromisoformat(done[job]) - datetime.fromisoformat(start)).total_seconds()
            for job, start in allocated.items() if job in done}


def test_the_workflow_runs_through_slurm_with_the_tables_of_a_local_run(tmp_path: Path) -> None:
    cluster, local = tmp_path / "cluster", tmp_path / "local"
    result, cluster_seconds = _snakemake(
        cluster, "--workflow-profile", str(REPO / "workflow" / "profiles" / "slurm-cpu"),
        # This cluster has no accounting database and no accounts (see the profile's SITE lines).
        "--slurm-status-command", "squeue", "--slurm-no-account", "--slurm-keep-successful-logs",
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    submitted = dict(re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: .*?/rule_(\w+)/", log))
    assert submitted, "no job went through sbatch:\n" + log[-3000:]
    assert "localrule" not in log.replace("localrule all", ""), "some job ran outside SLURM"

    controller = Path(os.environ["SLURM_CONTROLLER_LOG"]).read_text()
    for job_id, rule in submitted.items():
        assert re.search(rf"sched: Allocate JobId={job_id}\b", controller), f"job {job_id} ({rule}) was never allocated"
        assert re.search(rf"JobId={job_id} .*done|_job_complete: JobId={job_id} done", controller), (
            f"job {job_id} ({rule}) never completed")
        assert re.search(rf"_job_complete: JobId={job_id} WEXITSTATUS 0\b", controller), (
            f"job {job_id} ({rule}) did not exit with status 0")
    rules: dict[str, int] = {}
    for rule in submitted.values():
        rules[rule] = rules.get(rule, 0) + 1
    walls = _wall_seconds(controller)
    print("\nSLURM jobs (id, rule, wall seconds from allocation to completion in the controller's log):")
    for job_id, rule in sorted(submitted.items(), key=lambda item: int(item[0])):
        print(f"  {job_id:>4} {rule:<30} {walls.get(job_id, float('nan')):7.1f}")

    result, local_seconds = _snakemake(local, "--cores", "2")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    tables = sorted(p.relative_to(local) for p in local.glob("results/tiny/**/*.csv") if "benchmarks" not in p.parts)
    different = [str(p) for p in tables if not _same_table(local / p, cluster / p)]
    print(f"\nSLURM: {len(submitted)} sbatch jobs {sorted(rules.items())}, job ids "
          f"{min(map(int, submitted))}–{max(map(int, submitted))}, {cluster_seconds:.0f} s; local run "
          f"{local_seconds:.0f} s; {len(tables) - len(different)} of {len(tables)} CSV files identical "
          "(training logs apart from their timing columns)")
    assert tables and not different, f"tables differ between the SLURM and the local run: {different}"
