"""Per-layer Lipschitz bounds, registered by module type or function.

Every operation the graph walker meets is looked up here. A layer's bound works in two modes:

* ``train``: a cheap estimate, differentiable in the weights, with persistent state
  (one power-iteration step per optimizer step, as in the official code);
* ``certify``: a sound upper bound in float64, reported with the method that produced it.

An operation with no registered bound is an error that names it, never a silent 1.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn


@dataclass(frozen=True)
class CertifySettings:
    """Certification-mode power iteration (the official code used 5 000 iterations × 128 starts)."""

    n_iter: int = 5000
    n_starts: int = 16
    seed: int = 0


@dataclass
class BoundContext:
    """What a layer's bound may use: the mode, its input shape (no batch axis) and its state."""

    mode: str  # "train" or "certify"
    name: str
    input_shape: tuple[int, ...]
    settings: CertifySettings = field(default_factory=CertifySettings)
    state: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Certified:
    """A certification-mode bound and how it was obtained (``exact``, ``closed_form``, …)."""

    value: float
    method: str


class LayerBound(abc.ABC):
    """How to bound one kind of operation."""

    def state_shapes(self, module: Any, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Persistent training-mode tensors this layer needs (name -> shape)."""
        return {}

    @abc.abstractmethod
    def train(self, module: Any, ctx: BoundContext) -> torch.Tensor:
        """Training-mode bound: a scalar tensor, differentiable in the layer's parameters."""

    @abc.abstractmethod
    def certify(self, module: Any, ctx: BoundContext) -> Certified:
        """Certification-mode upper bound (float64, eval mode)."""


class ConstantBound(LayerBound):
    """A layer whose Lipschitz constant does not depend on parameters (ReLU: 1, sigmoid: 1/4)."""

    def __init__(self, value: float, reason: str = "closed_form") -> None:
        self.value = float(value)
        self.reason = reason

    def train(self, module: Any, ctx: BoundContext) -> torch.Tensor:
        return torch.tensor(self.value)

    def certify(self, module: Any, ctx: BoundContext) -> Certified:
        return Certified(self.value, self.reason)


class FunctionBound(LayerBound):
    """Wraps a plain function ``fn(module, ctx) -> float | Tensor`` valid in both modes."""

    def __init__(self, fn: Callable[[Any, BoundContext], Any]) -> None:
        self.fn = fn

    def train(self, module: Any, ctx: BoundContext) -> torch.Tensor:
        return torch.as_tensor(self.fn(module, ctx))

    def certify(self, module: Any, ctx: BoundContext) -> Certified:
        return Certified(float(self.fn(module, ctx)), f"function:{self.fn.__name__}")


_BOUNDS: dict[Any, LayerBound] = {}


def register_bound(*keys: Any) -> Callable[[Any], Any]:
    """Register a bound for module types, functions or method names (``"view"``).

    Decorate a :class:`LayerBound` subclass (instantiated without arguments), an instance-
    returning factory, or a plain function ``fn(module, ctx)`` returning the bound.
    """

    def decorator(obj: Any) -> Any:
        if isinstance(obj, type) and issubclass(obj, LayerBound):
            bound: LayerBound = obj()
        elif isinstance(obj, LayerBound):
            bound = obj
        else:
            bound = FunctionBound(obj)
        for key in keys:
            _BOUNDS[key] = bound
        return obj

    return decorator


def register_constant_bound(keys: Iterable[Any], value: float) -> None:
    """Register a parameter-free Lipschitz constant for each key."""
    bound = ConstantBound(value)
    for key in keys:
        _BOUNDS[key] = bound


class UnboundedOperationError(LookupError):
    """The network uses an operation for which no Lipschitz bound is registered."""


def _bounded_class(module: nn.Module) -> type | None:
    """The nearest class in the module's MRO with a registered bound — provided the module
    computes the same function (a subclass that overrides ``forward`` is not covered)."""
    forward = type(module).forward
    for cls in type(module).__mro__:
        if cls in _BOUNDS:
            return cls if cls.forward is forward else None
    return None


def has_registered_bound(module: nn.Module) -> bool:
    return _bounded_class(module) is not None


def lookup_bound(key: Any, description: str) -> LayerBound:
    """The bound for a module instance (by type, following the MRO), function or method name."""
    if isinstance(key, nn.Module):
        cls = _bounded_class(key)
        if cls is not None:
            return _BOUNDS[cls]
    elif key in _BOUNDS:
        return _BOUNDS[key]
    raise UnboundedOperationError(
        f"no Lipschitz bound is registered for {description}; register one with "
        "lmt.bounds.register_bound (see README, 'Bound your own model')"
    )
