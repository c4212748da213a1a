"""Shared by tests that train through the workflow's train stage."""

from __future__ import annotations

import json
from pathlib import Path


def train_lmt_once(tmp_path: Path) -> tuple[dict, dict]:
    """One epoch of LMT on 60 embedded MNIST images through the train stage (CPU), as a
    workflow job runs it; its provenance record and its checkpoint's ``info``."""
    from lmt import stage_config
    from lmt.config import validate_config
    from lmt.pipeline import train_stage
    from lmt.train import load_trained

    experiment = validate_config({
        "data": {"n_train": 60, "n_test_embedded": 10}, "training": {"epochs": 1, "device": "cpu"},
        "methods": {"lmt": {"c": 1.0}},
    })["experiments"]["default"]
    train_stage(stage_config.train(experiment, "lmt", 0), str(tmp_path / "model.pt"), str(tmp_path / "log.csv"),
                progress=False)
    provenance = json.loads((tmp_path / "model.provenance.json").read_text())
    return provenance, load_trained(tmp_path / "model.pt").info
