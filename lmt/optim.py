"""Optimisers and learning-rate schedules from the ``training`` config section."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch


def make_optimizer(settings: Any, param_groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """Adam (paper §6.1) or SGD with (Nesterov) momentum (paper §6.2); weight decay per group."""
    if settings.optimizer == "adam":
        return torch.optim.Adam(param_groups, lr=settings.lr)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            param_groups, lr=settings.lr, momentum=settings.momentum, nesterov=settings.nesterov
        )
    raise ValueError(f"unknown optimizer {settings.optimizer!r}; choose adam or sgd")


def make_scheduler(settings: Any, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.MultiStepLR:
    """Multiply the learning rate by ``lr_gamma`` after each epoch in ``lr_milestones``."""
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(settings.lr_milestones), gamma=settings.lr_gamma
    )


def scheduler_state(scheduler: torch.optim.lr_scheduler.MultiStepLR) -> dict[str, Any]:
    """The scheduler's state in plain values: the milestone ``Counter`` becomes a dict, so that a
    checkpoint holds nothing beyond what the weights-only unpickler reads by design."""
    state = scheduler.state_dict()
    return {**state, "milestones": dict(state["milestones"])}


def load_scheduler_state(scheduler: torch.optim.lr_scheduler.MultiStepLR, state: dict[str, Any]) -> None:
    """Inverse of :func:`scheduler_state`."""
    scheduler.load_state_dict({**state, "milestones": Counter(state["milestones"])})
