"""Training methods: a small interface and a registry keyed by name.

A method is a training objective with typed parameters and optional hooks. LMT is registered
here; baselines live one per module in ``baselines/`` and register themselves with
``@register_method`` (every module there is imported on first use). A config entry
``methods: {NAME: {param: value}}`` or ``NAME.TAG`` selects a method and its parameters.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds import NetworkBound
from lmt.losses import VARIANTS, lmt_loss


@dataclass
class StepContext:
    """What a method sees at a training step."""

    model: nn.Module
    bound: NetworkBound
    epoch: float  # fractional epoch, for schedules


class Method:
    """Base class: override :meth:`loss`; optionally :meth:`after_step`.

    ``Params`` is a dataclass of the method's hyperparameters; config values are checked
    against it, so an unknown or ill-typed parameter is an error naming it.
    """

    name: ClassVar[str] = ""

    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, params: Any) -> None:
        self.params = params

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(loss, logits)`` for a mini-batch."""
        raise NotImplementedError

    def after_step(self, ctx: StepContext) -> None:
        """Called after every optimizer step (e.g. a Parseval retraction)."""


_METHODS: dict[str, type[Method]] = {}


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def decorator(cls: type[Method]) -> type[Method]:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorator


def _discover_baselines() -> None:
    import baselines

    for info in pkgutil.iter_modules(baselines.__path__):
        importlib.import_module(f"baselines.{info.name}")


def list_methods() -> list[str]:
    _discover_baselines()
    return sorted(_METHODS)


def split_run_name(run_name: str) -> tuple[str, str | None]:
    """``"lmt.avg"`` -> ``("lmt", "avg")``: the registered name and an optional tag."""
    name, _, tag = run_name.partition(".")
    return name, tag or None


def get_method_spec(run_name: str, params: dict[str, Any] | None) -> tuple[type[Method], Any]:
    """The method class and its validated parameters; clear errors for unknown names/keys."""
    name, _ = split_run_name(run_name)
    _discover_baselines()
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r}; registered methods: {sorted(_METHODS)}")
    cls = _METHODS[name]
    params = dict(params or {})
    known = {f.name for f in dataclasses.fields(cls.Params)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise TypeError(
            f"unknown parameter(s) {unknown} for method {name!r}; it takes {sorted(known) or 'none'}"
        )
    return cls, cls.Params(**params)


def create_method(run_name: str, params: dict[str, Any] | None = None) -> Method:
    cls, parsed = get_method_spec(run_name, params)
    return cls(parsed)


@register_method("lmt")
class LMT(Method):
    """Lipschitz-Margin Training: cross-entropy on logits shifted by c times the Lipschitz margin."""

    @dataclass(frozen=True)
    class Params:
        c: float = 1.0
        variant: str = "prop2_clipped"

        def __post_init__(self) -> None:
            if not isinstance(self.c, (int, float)) or isinstance(self.c, bool) or self.c < 0:
                raise ValueError(f"parameter 'c' must be a number ≥ 0, got {self.c!r}")
            if self.variant not in VARIANTS:
                raise ValueError(f"parameter 'variant' must be one of {VARIANTS}, got {self.variant!r}")

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = ctx.model(x)
        bound = ctx.bound.training_bound()
        loss = lmt_loss(
            logits, y, self.params.c, self.params.variant,
            total=bound.total, body=bound.body, head_weight=bound.head_weight,
        )
        return loss, logits


def cross_entropy_loss(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax cross-entropy, shared by baselines that only add hooks or penalties."""
    logits = ctx.model(x)
    return F.cross_entropy(logits, y), logits
