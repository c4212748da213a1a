"""One method-agnostic training loop: seeded, resumable, logged, CUDA when present.

Each epoch ends with an atomic checkpoint (model, optimizer, power-iteration vectors, RNG
state); a rerun with the same settings resumes from it, so a crash loses at most one epoch, and
an unusable one is set aside (see :mod:`lmt.checkpoint`). The finished model is written as a
self-describing checkpoint that certification and attacks load with :func:`load_trained`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
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
from lmt.methods import Method, StepContext, create_method
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
    """Train ``model_name`` with the method ``run_name``; write the model and a per-epoch log.

    With ``resume_path``, continue from the checkpoint there (if it belongs to this run) and
    write one after every epoch."""
    training = start_training(model_name, dataset, run_name, method_params, settings)
    resume_path = Path(resume_path) if resume_path else None
    if resume_path is not None:
        resume_training(training, resume_path)
    for epoch in range(training.epochs_done, settings.epochs):
        totals = train_epoch(training, dataset.train, epoch, progress)
        lr = advance_schedule(training)
        log_epoch(training, epoch_row(training, dataset.test, epoch, totals, lr))
        if resume_path is not None:
            save_resume(training, resume_path)
    return finish_training(training, model_path, log_path)


@dataclass
class Training:
    """One training run in progress: what every epoch updates and every checkpoint saves."""

    identity: dict[str, Any]  # what a resume checkpoint must match to continue this run
    settings: TrainSettings
    device: torch.device
    method: Method
    model: nn.Module
    bound: NetworkBound
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    log_rows: list[dict[str, Any]] = field(default_factory=list)
    epochs_done: int = 0

    @property
    def label(self) -> str:
        """``lmt seed 0``: how progress lines name the run."""
        return f"{self.identity['run_name']} seed {self.settings.seed}"


@dataclass
class EpochTotals:
    """Sums over one epoch's training batches."""

    loss: float = 0.0  # summed over examples
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0


def start_training(
    model_name: str, dataset: Dataset, run_name: str, method_params: dict[str, Any], settings: TrainSettings
) -> Training:
    """The seeded model, its bound, optimizer and schedule on the chosen device, at epoch 0."""
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
    torch.manual_seed(settings.seed)  # the initial weights
    model = method.prepare_model(
        create_model(model_name, in_channels=dataset.input_shape[0], num_classes=dataset.num_classes)
    )
    bound = NetworkBound(model, dataset.input_shape)
    model.to(device)
    bound.to(device)
    optimizer = make_optimizer(settings, method.param_groups(model, settings.weight_decay))
    scheduler = make_scheduler(settings, optimizer)
    return Training(identity, settings, device, method, model, bound, optimizer, scheduler)


def resume_training(training: Training, path: Path) -> None:
    """Continue from the resume checkpoint at ``path`` if it belongs to this run (model, bound,
    optimizer, schedule, method state, RNG states, log); else leave ``training`` at epoch 0."""
    state = load_resume(path, training.identity)
    if state is None:
        return
    # The state is on the CPU: load_state_dict copies into the modules' and optimizer's
    # devices; the method's tensors are moved explicitly.
    device = training.device
    training.model.load_state_dict(state["model"])
    training.bound.load_state_dict(state["bound"])
    training.optimizer.load_state_dict(state["optimizer"])
    load_scheduler_state(training.scheduler, state["scheduler"])
    training.method.load_state_dict({k: v.to(device) for k, v in state["method"].items()})
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and state["rng_cuda"] is not None:
        torch.cuda.set_rng_state(state["rng_cuda"], device)
    training.log_rows = state["log"]
    training.epochs_done = state["epoch"]
    print(f"resuming {training.identity['run_name']} (seed {training.settings.seed}) after epoch "
          f"{training.epochs_done}", flush=True)


def train_epoch(training: Training, split: Split, epoch: int, progress: bool) -> EpochTotals:
    """One pass over ``split`` in an order fixed by the seed and the epoch (so a resumed run
    sees the same batches), one optimizer step per batch."""
    settings, model, method = training.settings, training.model, training.method
    model.train()
    n = len(split.y)
    steps_per_epoch = (n + settings.batch_size - 1) // settings.batch_size
    order = torch.randperm(n, generator=torch.Generator().manual_seed(settings.seed * 100003 + epoch))
    totals = EpochTotals()
    started = time.perf_counter()
    bar = tqdm(
        range(steps_per_epoch),
        desc=f"{training.label} epoch {epoch + 1}/{settings.epochs}",
        disable=not progress,
        mininterval=2.0,
        leave=False,
    )
    for step in bar:
        idx = order[step * settings.batch_size : (step + 1) * settings.batch_size]
        x, y = split.x[idx].to(training.device), split.y[idx].to(training.device)
        ctx = StepContext(model, training.bound, epoch + step / steps_per_epoch)
        loss, logits = method.loss(ctx, x, y)
        training.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        training.optimizer.step()
        method.after_step(ctx)
        totals.loss += loss.item() * len(y)
        totals.correct += int((logits.argmax(1) == y).sum())
        totals.seen += len(y)
        bar.set_postfix(loss=f"{totals.loss / totals.seen:.3f}", refresh=False)
    totals.seconds = time.perf_counter() - started
    return totals


def advance_schedule(training: Training) -> float:
    """Step the learning-rate schedule at the end of an epoch; return the rate the epoch used."""
    lr = training.optimizer.param_groups[0]["lr"]
    training.scheduler.step()
    return lr


@torch.no_grad()
def lipschitz_estimate(bound: NetworkBound) -> float:
    """The training-mode bound, for the log. Reading it must not advance the persistent
    power-iteration vectors (that would change training): they are copied back. A linear
    head's factor is its exact spectral norm: the Prop. 2 losses never advance the head's
    vector (:meth:`NetworkBound.training_bound` with ``need_total=False``), so its one-step
    estimate would be far from converged."""
    saved = {k: v.clone() for k, v in bound.state_dict().items()}
    estimated = bound.training_bound(need_total=False)
    bound.load_state_dict(saved)
    if estimated.total is not None:
        return float(estimated.total)
    head = torch.linalg.matrix_norm(estimated.head_weight.detach().double(), ord=2)
    return float(estimated.body) * float(head)


def epoch_row(training: Training, test: Split, epoch: int, totals: EpochTotals, lr: float) -> dict[str, Any]:
    """The ``train_log.csv`` row of a finished epoch: loss, accuracies, bound estimate, rate,
    the method's own values and speed."""
    estimate = lipschitz_estimate(training.bound)
    return {
        "epoch": epoch + 1,
        "loss": totals.loss / totals.seen,
        "train_accuracy": totals.correct / totals.seen,
        "test_accuracy": accuracy(training.model, test),
        "lipschitz_estimate": estimate,
        "lr": lr,
        **training.method.log_values(StepContext(training.model, training.bound, float(epoch + 1))),
        "examples_per_s": totals.seen / totals.seconds,
        "seconds": totals.seconds,
    }


def log_epoch(training: Training, row: dict[str, Any]) -> None:
    """Record a finished epoch's row and print it (the job's log shows progress)."""
    training.log_rows.append(row)
    training.epochs_done = row["epoch"]
    print(
        f"{training.label} epoch {row['epoch']}: loss {row['loss']:.4f} "
        f"train acc {row['train_accuracy']:.4f} test acc {row['test_accuracy']:.4f} "
        f"L est {row['lipschitz_estimate']:.3g} ({row['examples_per_s']:.0f} ex/s)",
        flush=True,
    )


def save_resume(training: Training, path: Path) -> None:
    """The epoch checkpoint: everything :func:`resume_training` needs to continue bitwise."""
    device = training.device
    save_checkpoint(
        path,
        RESUME,
        {
            "identity": training.identity,
            "epoch": training.epochs_done,
            "model": training.model.state_dict(),
            "bound": training.bound.state_dict(),
            "optimizer": training.optimizer.state_dict(),
            "scheduler": scheduler_state(training.scheduler),
            "method": training.method.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "log": training.log_rows,
        },
    )


def finish_training(training: Training, model_path: str | Path, log_path: str | Path) -> TrainedModel:
    """Write the self-describing model checkpoint (weights on the CPU) and the per-epoch log."""
    info = {**training.identity, "device": str(training.device), "epochs_trained": training.settings.epochs}
    if run_record := training.method.run_record():
        info["method_run"] = run_record
    save_checkpoint(
        model_path, MODEL, {"info": info, "model": _cpu_state(training.model), "bound": _cpu_state(training.bound)}
    )
    with atomic_path(log_path) as tmp:
        pd.DataFrame(training.log_rows).to_csv(tmp, index=False)
    return TrainedModel(training.model, training.bound, info)


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
