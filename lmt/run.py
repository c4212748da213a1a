"""What every stage does first: strict float32, the config's plugins, its data set and, for a
stage that evaluates a trained run, the device and that run's model.

One place, so that no stage can forget a step (a missing plugin would make a checkpoint's
method unknown; TF32 would make reported numbers disagree with the certified float32 network).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from lmt.bounds import NetworkBound
from lmt.data import Dataset, load_dataset
from lmt.device import choose_device
from lmt.registry import load_plugins
from lmt.numerics import strict_float32
from lmt.train import load_trained

EVALUATION_KEYS = ("plugins", "data", "device")


@dataclass(frozen=True)
class Run:
    """A trained run ready to evaluate: its model (eval mode) and bound on ``device``, its
    identity (``info``, as written by :func:`lmt.train.train`) and its data set."""

    model: nn.Module
    bound: NetworkBound
    info: dict[str, Any]
    dataset: Dataset
    device: torch.device

    @property
    def label(self) -> str:
        """``lmt (seed 0)``: how the run is named in errors."""
        return f"{self.info['run_name']} (seed {self.info['settings']['seed']})"


def prepare_stage(config: Mapping[str, Any]) -> Dataset:
    """Strict float32 arithmetic, the plugins of ``config`` (they register methods and models
    that checkpoints name), then its data set."""
    strict_float32()
    load_plugins(config["plugins"])
    return load_dataset(config["data"])


def load_run(config: Mapping[str, Any], model_path: str | Path) -> Run:
    """The trained run at ``model_path``, prepared as ``config`` (an evaluation subset of
    :mod:`lmt.stage_config`: plugins, data, device) says.

    Raises ``ValueError`` naming the run and the missing settings, and
    :class:`~lmt.checkpoint.CheckpointError` naming the file if the model is missing or unusable."""
    missing = [key for key in EVALUATION_KEYS if key not in config]
    if missing:
        raise ValueError(f"cannot load the run {model_path}: its stage settings lack {missing} (lmt.stage_config)")
    dataset = prepare_stage(config)
    device = choose_device(config["device"])
    trained = load_trained(model_path, device)
    return Run(trained.model, trained.bound, trained.info, dataset, device)
