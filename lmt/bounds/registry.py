"""Per-layer Lipschitz bounds, registered by module type or function.

Every operation the graph walker meets is looked up here. A layer's bound works in two modes:

* ``train``: a cheap estimate, differentiable in the weights, with persistent state
  (one power-iteration step per optimizer step, as in the official code);
* ``certify``: a sound upper bound in float64, reported with the method that produced it.

An operation with no registered bound is an error that names it, never a silent 1.

Each bound also gives a *rounding model* of its operation (:class:`Rounding`): how far a
floating-point evaluation of the operation can be from its exact value. The certificate uses it
to stay sound for the network as evaluated in float32 (:mod:`lmt.bounds.rounding`). An
operation without a rounding model cannot be certified (the error names it).

Operations of several input-dependent arguments (``x + y``, ``torch.cat``) are *combiners*
(:class:`Combiner`): a rule that combines their inputs' bounds, registered the same way.
Both kinds are stored in :class:`lmt.registry.Registry` instances (``LAYER_BOUNDS``,
``COMBINERS``), which list them.
"""

from __future__ import annotations

import abc
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Mapping, Union

import torch
from torch import nn

from lmt.bounds.constants import resolve
from lmt.registry import Registry


CONV_METHODS = ("fft", "power_iteration")


@dataclass(frozen=True)
class CertifySettings:
    """How convolutions are bounded at certification.

    ``conv_method="fft"`` (default): guaranteed — the exact norm from the explicit Gram matrix
    for layers whose input or output has at most ``explicit_max_dim`` entries, otherwise the
    deterministic bound of :mod:`lmt.bounds.conv_spectrum` (with Cor. 1 and the operator's
    Frobenius norm, whichever is smallest).
    ``"power_iteration"``: the official code's float64 multi-start power iteration with the
    Thm 2 error term — an upper bound only with high probability. ``n_iter``/``n_starts``/``seed``
    configure that power iteration, which the comparison table (Fig. 3) always reports; the
    official code used 5 000 iterations × 128 starts.
    """

    n_iter: int = 5000
    n_starts: int = 16
    seed: int = 0
    conv_method: str = "fft"
    explicit_max_dim: int = 4096  # 0: never build explicit Gram matrices

    def __post_init__(self) -> None:
        if self.conv_method not in CONV_METHODS:
            raise ValueError(f"conv_method must be one of {CONV_METHODS}, got {self.conv_method!r}")


@dataclass
class BoundContext:
    """What a layer's bound may use: the mode, its input shape (no batch axis), its state and,
    for a function or method call, the call's other arguments (``INPUT`` marks the input; an
    argument computed from the model's attributes is a :class:`~lmt.bounds.constants.Constant`,
    which :meth:`argument` and :meth:`apply` evaluate)."""

    mode: str  # "train" or "certify"
    name: str
    input_shape: tuple[int, ...]
    settings: CertifySettings = field(default_factory=CertifySettings)
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Functional training (NetworkBound.functional_training_bound): a train() that advances its
    # state puts the new values here instead of writing ``state`` in place.
    updates: dict[str, torch.Tensor] | None = None
    # Functional training: the BatchNorm batch variances to read (module -> variance) instead
    # of those the last training pass recorded (lmt.bounds.batchnorm).
    batch_variances: Mapping[nn.Module, torch.Tensor] | None = None

    def apply(self, op: Any, x: torch.Tensor) -> torch.Tensor:
        """Run the operation on ``x`` with the call's other arguments (modules: ``op(x)``)."""
        if isinstance(op, nn.Module):
            return op(x)
        args = tuple(x if a is INPUT else resolve(a) for a in self.args)
        kwargs = {k: x if v is INPUT else resolve(v) for k, v in self.kwargs.items()}
        if isinstance(op, str):  # a tensor method: args[0] is the tensor
            return getattr(args[0], op)(*args[1:], **kwargs)
        return op(*args, **kwargs)

    def argument(self, position: int, name: str, default: Any = None) -> Any:
        """A call's argument by position or keyword, evaluated (``INPUT`` for the input)."""
        if len(self.args) > position:
            return resolve(self.args[position])
        return resolve(self.kwargs.get(name, default))


class _Input:
    def __repr__(self) -> str:
        return "INPUT"


INPUT = _Input()  # placeholder for the input-dependent argument in BoundContext.args


@dataclass(frozen=True)
class Rounding:
    """Forward-error model of one operation evaluated in floating point.

    For every computed input x̂ of one example with ‖x̂‖₂ ≤ M, the floating-point result
    satisfies ‖fl(op(x̂)) − op(x̂)‖₂ ≤ γ_terms · (gain·M + offset), where
    γ_k = k·u / (1 − k·u) and u is the unit roundoff of the evaluation (2⁻²⁴ in float32).

    * ``terms = 0``: the operation is exact in floating point (ReLU, max pooling, reshapes,
      concatenation, zero padding).
    * A dot product of n terms plus a bias, in any summation order: ``terms = n + 1``,
      ``gain`` ≥ ‖|A|‖₂ (the operator with absolute weights), ``offset`` ≥ ‖|b|‖₂ over the
      output (standard forward error analysis: |fl(w·x + b) − (w·x + b)| ≤ γ_{n+1}·(|w|·|x| + |b|)).
    * An elementwise operation correct to ``terms`` roundings relative to its result:
      ``gain`` = its Lipschitz constant, ``offset`` ≥ ‖op(0)‖₂ (since |op(x)| ≤ |op(0)| + L|x|).
    """

    terms: int
    gain: float = 0.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.terms < 0 or not all(math.isfinite(v) and v >= 0 for v in (self.gain, self.offset)):
            raise ValueError(f"invalid rounding model {self}")


EXACT = Rounding(0)  # exact in floating point


@dataclass(frozen=True)
class LayerCertificate:
    """One layer's certification-mode bound and how it was obtained (``exact``, ``closed_form``,
    …); the whole network's is :class:`lmt.bounds.graph.CertifiedBound`. ``promised``: the
    Lipschitz constant the layer's construction promises (1-Lipschitz layers), reported beside
    the certified ``value`` and checked against it (:func:`lmt.soundness.check_promises`),
    never used as a bound; None for layers that promise nothing."""

    value: float
    method: str
    promised: float | None = None


class LayerBound(abc.ABC):
    """How to bound one kind of operation."""

    def state_shapes(self, module: Any, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Persistent training-mode tensors this layer needs (name -> shape)."""
        return {}

    @abc.abstractmethod
    def train(self, module: Any, ctx: BoundContext) -> torch.Tensor:
        """Training-mode bound: a scalar tensor, differentiable in the layer's parameters."""

    @abc.abstractmethod
    def certify(self, module: Any, ctx: BoundContext) -> LayerCertificate:
        """Certification-mode upper bound (float64, eval mode)."""

    def compare(self, module: Any, ctx: BoundContext) -> dict[str, float] | None:
        """The Fig. 3 comparison bounds by column name (:data:`lmt.bounds.comparison.COLUMNS`),
        and optionally ``estimate``, a lower bound; a missing column (None: every column) is
        the certified value."""
        return None

    def prepare(self, module: Any) -> None:
        """Called once when a network containing ``module`` is bounded (e.g. to attach hooks)."""

    def validate(self, module: Any, ctx: BoundContext) -> None:
        """Called once when a network is traced, with the certify-mode context of this call:
        raise :class:`UnboundedOperationError` if the bound does not cover it (``2 / x``)."""

    def rounding(self, module: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        """The operation's floating-point forward-error model (see :class:`Rounding`), in
        certify mode; ``lipschitz`` is this layer's certified bound. The default refuses: a
        certificate for the float32 network needs a model of every operation."""
        raise UnboundedOperationError(
            f"no rounding-error model for {ctx.name!r} ({type(self).__name__}); give its bound a "
            "rounding() method or register it with rounding=... (see README, 'Floating point')"
        )


RoundingSpec = Union[Rounding, int, Callable[[Any, "BoundContext", float], Rounding], None]


def zero_response_norm(op: Any, ctx: BoundContext) -> float:
    """‖op(0)‖₂ for one example, evaluated in float64 (a float64 copy of a module)."""
    zeros = torch.zeros(1, *ctx.input_shape, dtype=torch.float64)
    if isinstance(op, nn.Module):
        op = copy.deepcopy(op).double().cpu()
    elif isinstance(op, tuple):  # a fused pair of modules
        op = nn.Sequential(*(copy.deepcopy(m) for m in op)).double().cpu()
    with torch.no_grad():
        return float(ctx.apply(op, zeros).double().norm())


def elementwise_rounding(
    terms: int, op: Any, ctx: BoundContext, lipschitz: float, absolute: float = 0.0
) -> Rounding:
    """An elementwise operation whose computed value is within ``terms`` roundings of the
    exact one, relative to |op(x)| + ``absolute``: gain = L, offset = ‖op(0)‖ + absolute·√n."""
    if terms == 0:
        return EXACT
    numel = math.prod(ctx.input_shape)
    return Rounding(terms, lipschitz, zero_response_norm(op, ctx) + absolute * math.sqrt(numel))


def _resolve_rounding(spec: RoundingSpec, op: Any, ctx: BoundContext, lipschitz: float) -> Rounding | None:
    if spec is None:
        return None
    if isinstance(spec, Rounding):
        return spec
    if isinstance(spec, int):
        return elementwise_rounding(spec, op, ctx, lipschitz)
    return spec(op, ctx, lipschitz)


class _RoundingSpecBound(LayerBound):
    """A bound whose rounding model is given at registration (``rounding_spec``, see
    :class:`ConstantBound`)."""

    rounding_spec: RoundingSpec = None

    def rounding(self, module: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        model = _resolve_rounding(self.rounding_spec, module, ctx, lipschitz)
        return super().rounding(module, ctx, lipschitz) if model is None else model


class ConstantBound(_RoundingSpecBound):
    """A layer whose Lipschitz constant does not depend on parameters (ReLU: 1, sigmoid: 1/4).

    ``rounding``: 0 for operations that are exact in floating point, else the number of
    roundings relative to the result (see :func:`elementwise_rounding`), a :class:`Rounding`,
    or a function ``(op, ctx, lipschitz) -> Rounding``; None (the default): no model, so the
    operation cannot be certified."""

    def __init__(self, value: float, reason: str = "closed_form", rounding: RoundingSpec = None) -> None:
        self.value = float(value)
        self.reason = reason
        self.rounding_spec = rounding

    def train(self, module: Any, ctx: BoundContext) -> torch.Tensor:
        return torch.tensor(self.value)

    def certify(self, module: Any, ctx: BoundContext) -> LayerCertificate:
        return LayerCertificate(self.value, self.reason)


class FunctionBound(_RoundingSpecBound):
    """Wraps a plain function ``fn(module, ctx) -> float | Tensor`` valid in both modes, and
    the operation's rounding model (``rounding``, as for :class:`ConstantBound`; None: none)."""

    def __init__(self, fn: Callable[[Any, BoundContext], Any], rounding: RoundingSpec = None) -> None:
        self.fn = fn
        self.rounding_spec = rounding

    def __repr__(self) -> str:  # names the function (the registry compares registrations by it)
        name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        return f"FunctionBound({getattr(self.fn, '__module__', '')}.{name})"

    def train(self, module: Any, ctx: BoundContext) -> torch.Tensor:
        return torch.as_tensor(self.fn(module, ctx))

    def certify(self, module: Any, ctx: BoundContext) -> LayerCertificate:
        return LayerCertificate(float(self.fn(module, ctx)), f"function:{self.fn.__name__}")


@dataclass(frozen=True)
class Combiner:
    """How an operation of several input-dependent arguments (``x + y``, ``torch.cat``) bounds
    its output from its inputs' bounds (notes §2.1).

    ``rule`` maps the inputs' bounds (floats at certification, tensors in training; an input
    used twice, ``x + x``, is listed twice) to the output's. ``exact``: the operation is exact
    in floating point (it copies entries, as concatenation does); otherwise it is a sum or
    difference of two operands, rounded once per entry (:mod:`lmt.bounds.rounding`), and a call
    with a scaling (``alpha``) or a third operand is refused when the network is traced.
    """

    name: str
    rule: Callable[[list[Any]], Any]
    exact: bool

    def __call__(self, bounds: list[Any]) -> Any:
        return self.rule(bounds)


# Keys: module types (looked up along the MRO), functions, tensor method names ("view"), and
# the pairs (first, second) of register_fusion.
LAYER_BOUNDS: Registry[LayerBound] = Registry("layer bound")
# Keys: functions and tensor method names of operations with several input-dependent arguments.
COMBINERS: Registry[Combiner] = Registry("combiner")


def _as_bound(obj: Any, rounding: RoundingSpec = None) -> LayerBound:
    if isinstance(obj, type) and issubclass(obj, LayerBound) or isinstance(obj, LayerBound):
        if rounding is not None:
            raise TypeError("rounding= is for plain bound functions; a LayerBound subclass "
                            "defines its rounding() method")
        return obj() if isinstance(obj, type) else obj
    return FunctionBound(obj, rounding)


def register_bound(*keys: Any, rounding: RoundingSpec = None) -> Callable[[Any], Any]:
    """Register a bound for module types, functions or method names (``"view"``).

    Decorate a :class:`LayerBound` subclass (instantiated without arguments), an instance-
    returning factory, or a plain function ``fn(module, ctx)`` returning the bound. For a plain
    function, ``rounding`` is the operation's floating-point error model: an int k for an
    elementwise operation correct to k roundings of its result (``x * 0.5``: 1), a
    :class:`Rounding`, or a function ``(op, ctx, lipschitz) -> Rounding``.
    """

    def decorator(obj: Any) -> Any:
        bound = _as_bound(obj, rounding)
        for key in keys:
            LAYER_BOUNDS.add(key, bound)
        return obj

    return decorator


def register_fusion(first: type, second: type) -> Callable[[Any], Any]:
    """Register a bound for module ``first`` whose only user is a module ``second`` (e.g.
    Conv2d → BatchNorm2d), bounded as one operator; its target is the pair of modules."""

    def decorator(obj: Any) -> Any:
        LAYER_BOUNDS.add((first, second), _as_bound(obj))
        return obj

    return decorator


def register_constant_bound(keys: Iterable[Any], value: float, rounding: RoundingSpec = None) -> None:
    """Register a parameter-free Lipschitz constant for each key; ``rounding`` as for
    :class:`ConstantBound` (0: exact in floating point; required for certification)."""
    bound = ConstantBound(value, rounding=rounding)
    for key in keys:
        LAYER_BOUNDS.add(key, bound)


def register_combiner(keys: Iterable[Hashable], combiner: Combiner) -> None:
    """Register ``combiner`` for functions and method names of several inputs (``torch.cat``)."""
    for key in keys:
        COMBINERS.add(key, combiner)


def registered_bounds() -> dict[Any, LayerBound]:
    """Every registered key with its bound: module types, functions and method names, and the
    fused pairs ``(first, second)`` of :func:`register_fusion`."""
    return {key: entry.factory for key, entry in LAYER_BOUNDS.entries().items()}


def registered_combiners() -> dict[Hashable, Combiner]:
    """Every registered combiner key (function or method name) with its combiner."""
    return {key: entry.factory for key, entry in COMBINERS.entries().items()}


def lookup_fusion(first: Any, second: Any) -> LayerBound | None:
    """The fused bound of two consecutive modules, if one is registered (following the MROs)."""
    for a in type(first).__mro__:
        for b in type(second).__mro__:
            if (a, b) in LAYER_BOUNDS:
                return LAYER_BOUNDS.get((a, b))
    return None


def lookup_combiner(key: Any) -> Combiner | None:
    """The combiner of a function or method name, if it is one (modules never are)."""
    if isinstance(key, nn.Module) or key not in COMBINERS:
        return None
    return COMBINERS.get(key)


class UnboundedOperationError(LookupError):
    """The network uses an operation for which no Lipschitz bound is registered."""


def _bounded_class(module: nn.Module) -> type | None:
    """The nearest class in the module's MRO with a registered bound — provided the module
    computes the same function: a user subclass that overrides ``forward`` is not covered (a
    PyTorch subclass of a registered PyTorch base, like ``nn.Dropout`` of ``_DropoutNd``, is)."""
    mro = type(module).__mro__
    definer = next((c for c in mro if "forward" in vars(c)), nn.Module)
    for cls in mro:
        if cls in LAYER_BOUNDS:
            same_function = issubclass(cls, definer) or definer.__module__.startswith("torch.")
            return cls if same_function else None
    return None


def has_registered_bound(module: nn.Module) -> bool:
    return _bounded_class(module) is not None


def lookup_bound(key: Any, description: str) -> LayerBound:
    """The bound for a module instance (by type, following the MRO), function or method name."""
    if isinstance(key, nn.Module):
        cls = _bounded_class(key)
        if cls is not None:
            return LAYER_BOUNDS.get(cls)
    elif key in LAYER_BOUNDS:
        return LAYER_BOUNDS.get(key)
    raise UnboundedOperationError(
        f"no Lipschitz bound is registered for {description}; register one with "
        "lmt.bounds.register_bound (see README, 'Bound your own model')"
    )
