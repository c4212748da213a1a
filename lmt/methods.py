"""Training methods: a small interface and a registry keyed by name.

A method is a training objective with typed parameters (its ``Params`` dataclass) and optional
hooks. LMT is registered here; the baselines in the repository's ``baselines/`` (installed as
the plugin package ``lmt_bench_baselines``) and a config's ``plugins`` register themselves with
``@register_method``. A config entry ``methods: {NAME: {param: value}}`` or ``NAME.TAG``
selects a method and its parameters; :data:`METHODS` is a :class:`lmt.registry.Registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds import NetworkBound
from lmt.compiled import ENV_VAR as COMPILE_ENV_VAR
from lmt.compiled import CompiledMargin, compile_requested
from lmt.cuda_graphs import ENV_VAR as GRAPHS_ENV_VAR
from lmt.cuda_graphs import GraphedMargin, cuda_graphs_requested
from lmt.losses import VARIANTS, margin_logits
from lmt.params import CheckedParams, ParamError, param
from lmt.registry import Registry


@dataclass
class StepContext:
    """What a method sees at a training step."""

    model: nn.Module
    bound: NetworkBound
    epoch: float  # fractional epoch, for schedules


class Method:
    """Base class: override :meth:`loss`; optionally the hooks below.

    ``Params`` is a dataclass of the method's hyperparameters; config values are checked
    against it, so an unknown or ill-typed parameter is an error naming it.
    """

    name: ClassVar[str] = ""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        pass

    def __init__(self, params: Any) -> None:
        self.params = params

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(loss, logits)`` for a mini-batch."""
        raise NotImplementedError

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Transform the freshly built model (e.g. Parseval's scaled convolutions)."""
        return model

    def param_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups; by default every parameter with the configured decay."""
        return [{"params": list(model.parameters()), "weight_decay": weight_decay}]

    def after_step(self, ctx: StepContext) -> None:
        """Called after every optimizer step (e.g. a Parseval retraction)."""

    def log_values(self, ctx: StepContext) -> dict[str, float]:
        """Extra per-epoch training-log columns (e.g. LMT's current c)."""
        return {}

    def run_record(self) -> dict[str, Any]:
        """How the method ran beyond its parameters, for the training provenance (e.g. LMT's
        margin as CUDA graphs); empty where there is nothing to say."""
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Persistent tensors of the method (e.g. power-iteration vectors), checkpointed with
        the model so that a resumed run continues exactly."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"method {self.name!r} keeps no state, got {sorted(state)}")


METHODS: Registry[type[Method]] = Registry("method")


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: register a :class:`Method` subclass under ``name`` (also its ``name``)."""

    def decorator(cls: type[Method]) -> type[Method]:
        METHODS.add(name, cls)
        cls.name = name
        return cls

    return decorator


def list_methods() -> list[str]:
    return METHODS.list()


def get_method_spec(label: str, params: dict[str, Any] | None) -> tuple[type[Method], Any]:
    """The method class of ``label`` (``NAME`` or ``NAME.TAG``) and its checked parameters: an
    unknown name is a KeyError, an unknown parameter a TypeError, a bad value a ParamError."""
    return METHODS.get(label), METHODS.params(label, params)


def create_method(label: str, params: dict[str, Any] | None = None) -> Method:
    cls, parsed = get_method_spec(label, params)
    return cls(parsed)


def check_warmup(name: str, value: float, start_name: str, start: float | None, epochs: float) -> None:
    """A linear warm-up of a method parameter from ``start`` to ``value`` over ``epochs``: both
    given or neither, and rising (ParamError naming the parameter otherwise)."""
    if epochs > 0 and start is None:
        raise ParamError("warmup_epochs", f"needs '{start_name}', the {name} the warm-up starts from")
    if start is None:
        return
    if epochs == 0:
        raise ParamError(start_name, "needs 'warmup_epochs' > 0 (without a warm-up it is ignored)")
    if not 0 < value or start > value:
        raise ParamError(
            start_name, f"must be ≤ {name}, with {name} > 0 (the warm-up rises from {start_name} to {name}), "
            f"got {start_name}={start!r}, {name}={value!r}",
        )


def warmed_up(value: float, start: float | None, epochs: float, epoch: float) -> float:
    """The parameter after ``epoch`` (fractional) epochs: linear from ``start`` to ``value`` over
    ``epochs``, then ``value``; ``value`` throughout without a warm-up (``start`` None)."""
    if start is None or epochs <= 0 or epoch >= epochs:
        return value
    return start + (value - start) * epoch / epochs


@register_method("lmt")
class LMT(Method):
    """Lipschitz-margin training: cross-entropy on logits shifted by c times the Lipschitz margin."""

    @dataclass(frozen=True)
    class Params(CheckedParams):
        c: float = param(1.0, "The guarded radius.", ge=0)
        variant: str = param("prop2_clipped", "The margin: Prop. 2 clipped as in the official code, Prop. 2 or Prop. 1.",
                             choices=VARIANTS)
        c_start: float | None = param(
            None, "The c a linear per-iteration warm-up starts from (the official GoyalSchedule); null for none.", ge=0,
        )
        warmup_epochs: float = param(0.0, "Epochs over which c rises from c_start to c.", ge=0)

        def __post_init__(self) -> None:
            super().__post_init__()
            check_warmup("c", self.c, "c_start", self.c_start, self.warmup_epochs)

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.cuda_graphs = cuda_graphs_requested()  # the margin as CUDA graphs on a GPU (lmt.cuda_graphs)
        self.compile = compile_requested()  # the margin through torch.compile (lmt.compiled)
        if self.cuda_graphs and self.compile:
            raise ValueError(f"{GRAPHS_ENV_VAR}=1 and {COMPILE_ENV_VAR}=1 exclude each other: set one of them")
        self._graphed: tuple[nn.Module, NetworkBound, GraphedMargin] | None = None
        self._compiled: tuple[nn.Module, NetworkBound, CompiledMargin] | None = None

    def c_at(self, epoch: float) -> float:
        """c after ``epoch`` (fractional) epochs of training."""
        return warmed_up(self.params.c, self.params.c_start, self.params.warmup_epochs, epoch)

    def margin(
        self, bound: NetworkBound, logits: torch.Tensor, labels: torch.Tensor, c: float | torch.Tensor,
        variances: dict[nn.Module, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The logits shifted by c times the margin: one power-iteration step of ``bound``
        (reading ``variances`` as the BatchNorm batch variances if given)."""
        # The Prop. 2 margins read only the body bound and the head's weight.
        with bound.batch_statistics_as(variances or {}):
            estimate = bound.training_bound(need_total=self.params.variant == "prop1")
        return margin_logits(logits, labels, c, self.params.variant,
                             total=estimate.total, body=estimate.body, head_weight=estimate.head_weight)

    def loss(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = ctx.model(x)
        c = self.c_at(ctx.epoch)
        if self.compile:
            shifted = self.compiled_margin(ctx)(logits, y, c, ctx.bound.batch_statistics())
        elif self.cuda_graphs and logits.is_cuda:
            shifted = self.graphed_margin(ctx)(logits, y, c, ctx.bound.batch_statistics())
        else:
            shifted = self.margin(ctx.bound, logits, y, c)
        return F.cross_entropy(shifted, y), logits

    def graphed_margin(self, ctx: StepContext) -> GraphedMargin:
        """The CUDA-graphed :meth:`margin` of this model and bound (built on first use)."""
        if self._graphed is None or self._graphed[0] is not ctx.model or self._graphed[1] is not ctx.bound:
            model, bound = ctx.model, ctx.bound
            graphed = GraphedMargin(lambda logits, labels, c, variances: self.margin(bound, logits, labels, c, variances),
                                    parameters=lambda: list(model.parameters()), state=lambda: list(bound.buffers()))
            self._graphed = (model, bound, graphed)
        return self._graphed[2]

    def compiled_margin(self, ctx: StepContext) -> CompiledMargin:
        """The compiled :meth:`margin` of this model and bound (built on first use)."""
        if self._compiled is None or self._compiled[0] is not ctx.model or self._compiled[1] is not ctx.bound:
            model, bound = ctx.model, ctx.bound
            compiled = CompiledMargin(bound, self.params.variant,
                                      lambda logits, labels, c, variances: self.margin(bound, logits, labels, c, variances),
                                      parameters=lambda: list(model.parameters()))
            self._compiled = (ctx.model, bound, compiled)
        return self._compiled[2]

    def log_values(self, ctx: StepContext) -> dict[str, float]:
        return {"c": self.c_at(ctx.epoch)}

    def run_record(self) -> dict[str, Any]:
        """With ``$LMT_CUDA_GRAPHS=1``: how many margin graphs this process captured and how
        many input signatures ran eagerly (a failed capture, too many shapes); 0 and 0 on the
        CPU, which never graphs. With ``$LMT_COMPILE=1``: whether the margin ran compiled, and
        if not, why (None before the first step)."""
        if self.compile:
            failure = None if self._compiled is None else self._compiled[2].failure
            return {"compile": {"compiled": None if self._compiled is None else failure is None, "failure": failure}}
        if not self.cuda_graphs:
            return {}
        graphs = {} if self._graphed is None else self._graphed[2].graphs
        captured = sum(g is not None for g in graphs.values())
        return {"cuda_graphs": {"graphs": captured, "eager": len(graphs) - captured}}


def cross_entropy_loss(ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax cross-entropy, shared by baselines that only add hooks or penalties."""
    logits = ctx.model(x)
    return F.cross_entropy(logits, y), logits
