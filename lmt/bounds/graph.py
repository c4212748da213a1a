"""Whole-network Lipschitz bounds by walking the ``torch.fx`` graph.

Sequential composition multiplies, addition adds, concatenation adds in quadrature; each
operation's own factor comes from the registry. If the network ends in a fully connected layer,
its weight is kept apart (the "head") for the pairwise Prop. 2 certificate and LMT loss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

import lmt.bounds.layers  # noqa: F401  (registers the built-in bounds)
from lmt.bounds.layers import COMBINERS
from lmt.bounds.registry import (
    BoundContext,
    CertifySettings,
    LayerBound,
    UnboundedOperationError,
    has_registered_bound,
    lookup_bound,
)


@dataclass(frozen=True)
class _Step:
    """One operation of the traced network with its registered bound."""

    node: str
    kind: str  # "layer" or "combine"
    description: str
    inputs: tuple[str, ...]  # input-dependent argument nodes
    target: Any = None
    bound: LayerBound | None = None
    input_shape: tuple[int, ...] = ()


@dataclass
class CertifiedBound:
    """Certification-mode bounds of a network (float64, eval mode)."""

    total: float  # L_F: bound of the whole logit map
    body: float | None  # L_G: bound of everything before the head (None without a linear head)
    head_weight: torch.Tensor | None  # W of the final linear layer, float64 on the CPU
    layers: list[dict[str, Any]] = field(default_factory=list)  # node, type, bound, method


@dataclass
class TrainingBound:
    """Training-mode bounds: differentiable scalars."""

    total: torch.Tensor
    body: torch.Tensor | None
    head_weight: torch.Tensor | None


class _BoundTracer(fx.Tracer):
    """Keeps every module with a registered bound whole (a custom layer is bounded as a unit,
    not traced into operations that may have no bound of their own)."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return has_registered_bound(module) or super().is_leaf_module(module, qualified_name)


def _state_key(node: str, name: str) -> str:
    return re.sub(r"\W", "_", f"{node}__{name}")


class NetworkBound(nn.Module):
    """Lipschitz bound of ``model`` on inputs of shape ``input_shape`` (no batch axis).

    Holds the persistent power-iteration vectors as buffers, so they travel with ``.to()`` and
    are saved by ``state_dict()``. ``training_bound()`` advances each vector by one step;
    ``certified_bound()`` computes sound float64 bounds in eval mode.
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.model = [model]  # a list, so the model is not registered as a submodule
        self.input_shape = tuple(input_shape)
        self.steps, self.output, self.head = self._trace(model)
        for step in self.steps:
            if step.bound is not None:
                for name, shape in step.bound.state_shapes(step.target, step.input_shape).items():
                    self.register_buffer(_state_key(step.node, name), torch.randn(shape))

    # -- tracing ------------------------------------------------------------------------------

    def _trace(self, model: nn.Module) -> tuple[list[_Step], str, str | None]:
        graph_module = fx.GraphModule(model, _BoundTracer().trace(model))
        param = next(model.parameters(), None)
        example = torch.zeros(
            (1, *self.input_shape),
            dtype=param.dtype if param is not None else torch.float32,
            device=param.device if param is not None else None,
        )
        ShapeProp(graph_module).propagate(example)
        depends: set[str] = set()
        steps: list[_Step] = []
        output = ""
        for node in graph_module.graph.nodes:
            if node.op == "placeholder":
                depends.add(node.name)
                continue
            if node.op == "get_attr":
                continue
            inputs = tuple(a.name for a in node.all_input_nodes if a.name in depends)
            if node.op == "output":
                output = inputs[0]
                continue
            if not inputs:
                continue  # a constant: does not depend on the input
            depends.add(node.name)
            steps.append(self._make_step(model, node, inputs))
        head = self._find_head(steps, output)
        return steps, output, head

    def _make_step(self, model: nn.Module, node: fx.Node, inputs: tuple[str, ...]) -> _Step:
        if node.op == "call_module":
            target: Any = model.get_submodule(node.target)
            key, description = target, f"module {node.target!r} ({type(target).__name__})"
        elif node.op == "call_function":
            target = key = node.target
            description = f"function {getattr(key, '__name__', key)!r} (node {node.name!r})"
        else:  # call_method
            target = key = node.target
            description = f"tensor method {key!r} (node {node.name!r})"
        if not isinstance(key, nn.Module) and key in COMBINERS:
            return _Step(node.name, "combine", description, inputs, target=key)
        if len(inputs) != 1:
            raise UnboundedOperationError(
                f"{description} takes {len(inputs)} input-dependent arguments and is no "
                "registered combination (add, cat)"
            )
        bound = lookup_bound(key, description)
        arg = node.all_input_nodes[[a.name for a in node.all_input_nodes].index(inputs[0])]
        shape = tuple(arg.meta["tensor_meta"].shape[1:])
        return _Step(node.name, "layer", description, inputs, target, bound, shape)

    @staticmethod
    def _find_head(steps: list[_Step], output: str) -> str | None:
        last = next((s for s in steps if s.node == output), None)
        if last is not None and isinstance(last.target, nn.Linear):
            return last.node
        return None

    # -- evaluation ---------------------------------------------------------------------------

    def _state(self, node: str) -> dict[str, torch.Tensor]:
        prefix = _state_key(node, "")
        return {k[len(prefix):]: v for k, v in self._buffers.items() if k.startswith(prefix)}

    def _walk(self, layer_bound) -> tuple[dict[str, Any], Any]:
        """Propagate bounds through the graph; ``layer_bound(step)`` gives each layer's factor."""
        bounds: dict[str, Any] = {}
        body = None
        for step in self.steps:
            incoming = [bounds.get(name, 1.0) for name in step.inputs]
            if step.kind == "combine":
                bounds[step.node] = COMBINERS[step.target](incoming)
                continue
            if step.node == self.head:
                body = incoming[0]
            bounds[step.node] = layer_bound(step) * incoming[0]
        return bounds, body

    def training_bound(self) -> TrainingBound:
        """One power-iteration step per layer; the result is differentiable in the weights."""

        def layer_bound(step: _Step) -> torch.Tensor:
            ctx = BoundContext("train", step.node, step.input_shape, state=self._state(step.node))
            return step.bound.train(step.target, ctx)

        bounds, body = self._walk(layer_bound)
        head = self._head_module()
        return TrainingBound(
            torch.as_tensor(bounds[self.output]),
            body if body is None else torch.as_tensor(body),
            None if head is None else head.weight,
        )

    @torch.no_grad()
    def certified_bound(self, settings: CertifySettings = CertifySettings()) -> CertifiedBound:
        """Sound float64 upper bounds of the eval-mode network, with a per-layer record."""
        model = self.model[0]
        was_training = model.training
        model.eval()
        rows: list[dict[str, Any]] = []

        def layer_bound(step: _Step) -> float:
            ctx = BoundContext("certify", step.node, step.input_shape, settings)
            certified = step.bound.certify(step.target, ctx)
            rows.append(
                {
                    "node": step.node,
                    "operation": step.description,
                    "input_shape": "x".join(map(str, step.input_shape)),
                    "bound": certified.value,
                    "method": certified.method,
                }
            )
            return certified.value

        try:
            bounds, body = self._walk(layer_bound)
        finally:
            model.train(was_training)
        head = self._head_module()
        return CertifiedBound(
            float(bounds[self.output]),
            None if body is None else float(body),
            None if head is None else head.weight.detach().double().cpu().clone(),
            rows,
        )

    def _head_module(self) -> nn.Linear | None:
        if self.head is None:
            return None
        return next(s.target for s in self.steps if s.node == self.head)
