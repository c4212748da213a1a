"""One method-agnostic training loop: seeded, resumable, logged, CUDA when present.

Each epoch ends with an atomic checkpoint (model, optimizer, power-iteration vectors, RNG
state); a rerun with the same settings resumes from it, so a crash loses at most one epoch, and
an unusable one is set aside (see :mod:`lmt.checkpoint`). The finished model is written as a
self-describing checkpoint that certification and attacks load with :func:`load_trained`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from lmt.bounds import NetworkBound
from lmt.data import Dataset, Split
from lmt.device import choose_device
from lmt.checkpoint import MODEL, RESUME, CheckpointError, load_checkpoint, load_resume, save_checkpoint
from lmt.io import atomic_path
from lmt.methods import StepContext, create_method
from lmt.models import create_model
from lmt.optim import load_scheduler_state, make_optimizer, make_scheduler, scheduler_state


@dataclass(frozen=True)
class TrainSettings:
    """The ``training`` config section plus the seed."""

    epochs: int = 20
    batch_size: int = 50
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    device: str = "auto"
    seed: int = 0


@dataclass
class TrainedModel:
    model: nn.Module
    bound: NetworkBound
    info: dict[str, Any]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Eval-mode logits for ``x``, computed on the model's device, returned on the CPU."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def accuracy(model: nn.Module, split: Split) -> float:
    return float((predict(model, split.x).argmax(1) == split.y).double().mean())


def train(
    model_name: str,
    dataset: Dataset,
    run_name: str,
    method_params: dict[str, Any],
    settings: TrainSettings,
    model_path: str | Path,
    log_path: str | Path,
    resume_path: str | Path | None = None,
    progress: bool = True,
) -> TrainedModel:
    """Train ``model_name`` with the method ``run_name``; write the model and a per-epoch log."""
    device = choose_device(settings.device)
    method = create_method(run_name, method_params)
    identity = {
        "model_name": model_name,
        "run_name": run_name,
        "method": method.name,
        "method_params": asdict(method.params),
        "settings": asdict(settings),
        "dataset": dataset.name,
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
    }

    torch.manual_seed(settings.seed)
    model = method.prepare_model(
        create_model(model_name, in_channels=dataset.input_shape[0], num_classes=dataset.num_classes)
    )
    bound = NetworkBound(model, dataset.input_shape)
    model.to(device)
    bound.to(device)
    optimizer = make_optimizer(settings, method.param_groups(model, settings.weight_decay))
    scheduler = make_scheduler(settings, optimizer)
    log_rows: list[dict[str, Any]] = []
    start_epoch = 0

    resume_path = Path(resume_path) if resume_path else None
    state = load_resume(resume_path, identity) if resume_path is not None else None
    if state is not None:
        # The state is on the CPU: load_state_dict copies into the modules' and optimizer's
        # devices; the method's tensors are moved explicitly.
        model.load_state_dict(state["model"])
        bound.load_state_dict(state["bound"])
        optimizer.load_state_dict(state["optimizer"])
        load_scheduler_state(scheduler, state["scheduler"])
        method.load_state_dict({k: v.to(device) for k, v in state["method"].items()})
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state["rng_cuda"] is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        log_rows = state["log"]
        start_epoch = state["epoch"]
        print(f"resuming {run_name} (seed {settings.seed}) after epoch {start_epoch}", flush=True)

    x_train, y_train = dataset.train.x, dataset.train.y
    n = len(y_train)
    steps_per_epoch = (n + settings.batch_size - 1) // settings.batch_size
    for epoch in range(start_epoch, settings.epochs):
        model.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(settings.seed * 100003 + epoch))
        totals = {"loss": 0.0, "correct": 0, "seen": 0}
        started = time.perf_counter()
        batches = range(steps_per_epoch)
        bar = tqdm(
            batches,
            desc=f"{run_name} seed {settings.seed} epoch {epoch + 1}/{settings.epochs}",
            disable=not progress,
            mininterval=2.0,
            leave=False,
        )
        for step in bar:
            idx = order[step * settings.batch_size : (step + 1) * settings.batch_size]
            x, y = x_train[idx].to(device), y_train[idx].to(device)
            ctx = StepContext(model, bound, epoch + step / steps_per_epoch)
            loss, logits = method.loss(ctx, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            method.after_step(ctx)
            totals["loss"] += loss.item() * len(y)
            totals["correct"] += int((logits.argmax(1) == y).sum())
            totals["seen"] += len(y)
            bar.set_postfix(loss=f"{totals['loss'] / totals['seen']:.3f}", refresh=False)
        elapsed = time.perf_counter() - started
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        with torch.no_grad():
            # Reading the estimate must not advance the persistent vectors: copy them back.
            saved = {k: v.clone() for k, v in bound.state_dict().items()}
            estimate = float(bound.training_bound().total)
            bound.load_state_dict(saved)
        row = {
            "epoch": epoch + 1,
            "loss": totals["loss"] / totals["seen"],
            "train_accuracy": totals["correct"] / totals["seen"],
            "test_accuracy": accuracy(model, dataset.test),
            "lipschitz_estimate": estimate,
            "lr": lr,
            **method.log_values(StepContext(model, bound, float(epoch + 1))),
            "examples_per_s": totals["seen"] / elapsed,
            "seconds": elapsed,
        }
        log_rows.append(row)
        print(
            f"{run_name} seed {settings.seed} epoch {row['epoch']}: loss {row['loss']:.4f} "
            f"train acc {row['train_accuracy']:.4f} test acc {row['test_accuracy']:.4f} "
            f"L est {estimate:.3g} ({row['examples_per_s']:.0f} ex/s)",
            flush=True,
        )
        if resume_path is not None:
            save_checkpoint(
                resume_path,
                RESUME,
                {
                    "identity": identity,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "bound": bound.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler_state(scheduler),
                    "method": method.state_dict(),
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "log": log_rows,
                },
            )

    info = {**identity, "device": str(device), "epochs_trained": settings.epochs}
    save_checkpoint(model_path, MODEL, {"info": info, "model": _cpu_state(model), "bound": _cpu_state(bound)})
    with atomic_path(log_path) as tmp:
        pd.DataFrame(log_rows).to_csv(tmp, index=False)
    return TrainedModel(model, bound, info)


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def load_trained(path: str | Path, device: torch.device | str = "cpu") -> TrainedModel:
    """Rebuild a model written by :func:`train`, in eval mode.

    Raises :class:`~lmt.checkpoint.CheckpointError` if the file is unusable, including weights
    that do not fit the model the checkpoint names."""
    state = load_checkpoint(path, MODEL)
    info = state["info"]
    method = create_method(info["run_name"], info["method_params"])
    model = method.prepare_model(
        create_model(info["model_name"], in_channels=info["input_shape"][0], num_classes=info["num_classes"])
    )
    _load_tensors(model, state["model"], path, f"model {info['model_name']!r}")
    bound = NetworkBound(model, tuple(info["input_shape"]))
    _load_tensors(bound, state["bound"], path, "model's bound")
    model.to(device).eval()
    bound.to(device)
    return TrainedModel(model, bound, info)


def _load_tensors(module: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path, what: str) -> None:
    """``module.load_state_dict``; tensors that do not fit make the checkpoint unusable."""
    try:
        module.load_state_dict(tensors)
    except RuntimeError as err:  # missing, unexpected or misshapen tensors; name the first
        first = " ".join(line.strip() for line in str(err).splitlines()[:2]).rstrip(".")
        raise CheckpointError(Path(path), MODEL, f"its tensors do not fit the {what} ({first})") from err
