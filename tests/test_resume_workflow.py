"""A training job killed mid-run and rerun through the workflow ends with the same checkpoint
as an uninterrupted run with the same seed (CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from lmt.checkpoint import RESUME, CheckpointError, load_checkpoint
from lmt import stage_config
from lmt.config import validate_config
from lmt.pipeline import train_stage
from tests.conftest import REPO

CONFIG = {
    "experiment": "killed",
    "data": {"n_train": 500, "n_test_embedded": 200},
    "training": {"epochs": 40, "device": "cpu"},
    "methods": {"lmt": {"c": 1.0}},
}
TARGET = "results/killed/runs/lmt/seed0/model.pt"


def _snakemake(tmp_path, *extra: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "1",
         "--configfile", str(tmp_path / "config.yaml"), "--directory", str(tmp_path),
         "--rerun-incomplete", *extra, TARGET],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs,
    )


def _epoch_of(path) -> int:
    try:
        return int(load_checkpoint(path, RESUME)["epoch"])
    except CheckpointError:  # not written yet
        return 0


@pytest.mark.slow
def test_killed_training_resumes_to_the_uninterrupted_checkpoint(tmp_path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    resume = tmp_path / "results/killed/runs/lmt/seed0/resume.pt"
    job = _snakemake(tmp_path, start_new_session=True)
    deadline = time.monotonic() + 300
    while _epoch_of(resume) < 3:
        assert job.poll() is None, "training ended before it could be interrupted:\n" + job.stdout.read()
        assert time.monotonic() < deadline, "no epoch checkpoint appeared"
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    killed_at = _epoch_of(resume)
    assert 3 <= killed_at < CONFIG["training"]["epochs"]
    assert not (tmp_path / TARGET).exists()

    # As after any killed Snakemake run: remove its lock, then run again.
    unlock = _snakemake(tmp_path, "--unlock")
    assert unlock.wait(timeout=120) == 0
    rerun = _snakemake(tmp_path)
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output[-3000:]
    log = (tmp_path / "results/killed/logs/train/lmt_seed0.log").read_text()
    assert f"after epoch {killed_at}" in log or "resuming" in log
    assert not resume.exists(), "the epoch checkpoint is removed once the model is final"

    reference = tmp_path / "reference.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the Snakemake job (threads: 1): same float reduction order
    try:
        settings = stage_config.train(validate_config(CONFIG)["experiments"]["killed"], "lmt", 0)
        train_stage(settings, str(reference), str(tmp_path / "ref.csv"), progress=False)
    finally:
        torch.set_num_threads(threads)
    resumed, uninterrupted = (torch.load(p, weights_only=True) for p in (tmp_path / TARGET, reference))
    for part in ("model", "bound"):
        assert resumed[part].keys() == uninterrupted[part].keys()
        for key in resumed[part]:
            assert torch.equal(resumed[part][key], uninterrupted[part][key]), f"{part}.{key} differs"
