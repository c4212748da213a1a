"""Whole-network Lipschitz bounds by walking the ``torch.fx`` graph.

Sequential composition multiplies; an operation of several inputs combines their bounds by its
registered rule (:mod:`lmt.bounds.combiners`: addition adds, concatenation adds in quadrature);
each operation's own factor comes from the registry, and a registered pair of consecutive modules
(Conv2d → BatchNorm2d) is bounded as one operator when the first one's only user is the second.
Shape queries (``x.size(0)``, ``x.shape``) carry no data and are skipped; arguments computed
from parameters and buffers only reach the bounds as constants (:mod:`lmt.bounds.constants`).
A model that is itself a layer with a registered bound (``nn.Conv2d(2, 3, 3)``) is one step.
If the network ends in a fully connected layer, its weight is kept apart (the "head") for the
pairwise Prop. 2 certificate and LMT loss.

One propagation (:meth:`NetworkBound.propagate`) serves both modes. At certification each
layer's bound is a sound float64 upper bound (its own business, see :mod:`lmt.bounds.numerics`),
and the propagation rounds products up and inflates sums and quadratures by the rounding margin,
so rounding never takes the network's bound below. In training it skips the multiplications by
exactly 1 (the input, parameter-free 1-Lipschitz layers) and reuses each layer's context.
"""

from __future__ import annotations

import builtins
import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from lmt.bounds.batchnorm import batch_variances_as, recorded_batch_variances
from lmt.bounds.constants import constant_argument
from lmt.bounds.numerics import product_up, with_margin
from lmt.bounds.registry import (
    INPUT,
    BoundContext,
    CertifySettings,
    Combiner,
    ConstantBound,
    LayerBound,
    UnboundedOperationError,
    has_registered_bound,
    lookup_bound,
    lookup_combiner,
    lookup_fusion,
)


@dataclass(frozen=True)
class Step:
    """One operation of the traced network with its registered bound."""

    node: str  # the fx node whose value this step produces
    kind: str  # "layer" or "combine"
    description: str
    inputs: tuple[str, ...]  # input-dependent arguments, with repetitions (x + x)
    target: Any = None  # module, function, method name, or a tuple of fused modules
    bound: LayerBound | None = None  # a layer's
    input_shape: tuple[int, ...] = ()
    layer: str = ""  # module path(s) or function name, for tables
    type_name: str = ""
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    combiner: Combiner | None = None  # a combination's


@dataclass
class CertifiedBound:
    """Certification-mode bounds of the whole network (float64, eval mode); each layer's
    certificate (:class:`~lmt.bounds.registry.LayerCertificate`) is a row of ``layers``."""

    total: float  # L_F: bound of the whole logit map
    body: float | None  # L_G: bound of everything before the head (None without a linear head)
    head_weight: torch.Tensor | None  # W of the final linear layer, float64 on the CPU
    layers: list[dict[str, Any]] = field(default_factory=list)  # node, type, bound, method (, promised)

    def promises(self) -> list[dict[str, Any]]:
        """The layers that promise a Lipschitz constant: layer, type, promised, certified and
        the relative excess certified/promised − 1 (≤ 0 where the promise is kept)."""
        return [
            {"layer": row["layer"], "type": row["type"], "promised": row["promised"], "certified": row["bound"],
             "excess": row["bound"] / row["promised"] - 1.0 if row["promised"] > 0 else float("inf")}
            for row in self.layers if row.get("promised") is not None
        ]


@dataclass
class TrainingBound:
    """Training-mode bounds: differentiable scalars. ``total`` is None only where it was not
    asked for (``training_bound(need_total=False)`` on a network with a linear head)."""

    total: torch.Tensor | None
    body: torch.Tensor | None
    head_weight: torch.Tensor | None


def _is_one(value: Any) -> bool:
    return isinstance(value, float) and value == 1.0


def _times(factor: Any, incoming: Any, upward: bool) -> Any:
    """factor · incoming, rounded up if ``upward``. A multiplication by exactly 1 (the graph's
    input, a parameter-free 1-Lipschitz layer) is skipped: it changes no value (x·1 = x, also
    rounded up) and no gradient, and costs a tensor operation in training."""
    if _is_one(incoming):
        return factor
    if _is_one(factor):
        return incoming
    return product_up(factor, incoming) if upward else factor * incoming


def _is_unit(step: Step) -> bool:
    """A parameter-free factor of exactly 1 (ReLU, say): its bound is never evaluated."""
    return isinstance(step.bound, ConstantBound) and step.bound.value == 1.0


def _state_key(node: str, name: str) -> str:
    return re.sub(r"\W", "_", f"{node}__{name}")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; every submodule's own training flag is restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


_SHAPE_METHODS = {"size", "dim"}
_SHAPE_ATTRIBUTES = {"shape", "ndim", "dtype", "device"}


class _Tracer(fx.Tracer):
    """fx's default leaves (torch.nn modules) plus every module with a registered bound, so
    that a registered custom layer is bounded as a whole instead of traced through. Buffers are
    graph attributes (not values frozen at tracing), so constants follow them."""

    proxy_buffer_attributes = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return has_registered_bound(m) or super().is_leaf_module(m, module_qualified_name)


class _Root(nn.Module):
    """Holds a model that has a registered bound of its own: fx never treats the traced root
    as a leaf, so the model is traced as the one call ``model(x)`` of this wrapper."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _data_args(node: fx.Node, data: set[str]) -> list[fx.Node]:
    """The input-dependent arguments of ``node``, in order and with repetitions."""
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if n.name in data else None)
    return found


class NetworkBound(nn.Module):
    """Lipschitz bound of ``model`` on inputs of shape ``input_shape`` (no batch axis).

    Holds the persistent power-iteration vectors as buffers, so they travel with ``.to()`` and
    are saved by ``state_dict()``. ``training_bound()`` advances each vector by one step (the
    linear head's only when the total bound is asked for);
    ``certified_bound()`` computes sound float64 bounds in eval mode.
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.model = [model]  # a list, so the model is not registered as a submodule
        self.input_shape = tuple(input_shape)
        self.node_shapes: dict[str, tuple[int, ...]] = {}  # node -> shape of one example
        self.input_node = ""
        self.steps, self.output, self.head = self._trace(model)
        self._state_keys: dict[str, dict[str, str]] = {}  # node -> state name -> buffer name
        self._train_cache: tuple[tuple[torch.Tensor, ...], dict[str, BoundContext | None]] | None = None
        for step in self.steps:
            if step.bound is not None:
                step.bound.prepare(step.target)
                try:
                    step.bound.validate(step.target, self.context(step, "certify"))
                except UnboundedOperationError as error:
                    raise UnboundedOperationError(f"{step.description}: {error}") from None
                keys = self._state_keys.setdefault(step.node, {})
                for name, shape in step.bound.state_shapes(step.target, step.input_shape).items():
                    keys[name] = _state_key(step.node, name)
                    self.register_buffer(keys[name], torch.randn(shape))

    # -- tracing ------------------------------------------------------------------------------

    @staticmethod
    def trace_graph(model: nn.Module) -> fx.GraphModule:
        """The fx graph the bound walks (a copy of ``model`` traced the same way has the same
        node names, e.g. its float64 copy in :mod:`lmt.bounds.rounding`)."""
        if has_registered_bound(model):
            model = _Root(model)
        return fx.GraphModule(model, _Tracer().trace(model))

    def _trace(self, model: nn.Module) -> tuple[list[Step], str, str | None]:
        if has_registered_bound(model):
            model = _Root(model)
        graph_module = self.trace_graph(model)
        param = next(model.parameters(), None)
        example = torch.zeros(
            (1, *self.input_shape),
            dtype=param.dtype if param is not None else torch.float32,
            device=param.device if param is not None else None,
        )
        with eval_mode(model), torch.no_grad():  # no BatchNorm statistics updates
            ShapeProp(graph_module).propagate(example)
        data: set[str] = set()  # nodes whose value depends on the input's values
        fused: dict[str, Step] = {}  # second node of a fused pair -> the fused step
        steps: list[Step] = []
        output = ""
        for node in graph_module.graph.nodes:
            meta = node.meta.get("tensor_meta")
            if meta is not None and hasattr(meta, "shape"):
                self.node_shapes[node.name] = tuple(meta.shape[1:])
            if node.op == "placeholder":
                data.add(node.name)
                self.input_node = node.name
                continue
            if node.op == "get_attr":
                continue
            inputs = _data_args(node, data)
            if node.op == "output":
                output = inputs[0].name
                continue
            if not inputs or self._is_shape_query(node, inputs):
                continue  # a constant or a shape: does not depend on the input's values
            data.add(node.name)
            if node.name in fused:
                steps.append(fused.pop(node.name))
                continue
            pair = self._fusion(model, node, inputs)
            if pair is not None:
                fused[pair.node] = pair
                continue
            steps.append(self._make_step(model, node, inputs, data))
        head = self._find_head(steps, output)
        return steps, output, head

    @staticmethod
    def _is_shape_query(node: fx.Node, inputs: list[fx.Node]) -> bool:
        """``x.size()``, ``x.dim()``, ``x.shape`` …: values that do not depend on x's entries
        (arithmetic on them then has no input-dependent argument and is skipped too)."""
        if "tensor_meta" in node.meta:
            return False
        if node.op == "call_method" and node.target in _SHAPE_METHODS:
            return True
        return (
            node.op == "call_function" and node.target is builtins.getattr
            and node.args[1] in _SHAPE_ATTRIBUTES
        )

    def _fusion(self, model: nn.Module, node: fx.Node, inputs: list[fx.Node]) -> Step | None:
        """A fused step if ``node``'s module and that of its only user have a registered fusion."""
        if node.op != "call_module" or len(node.users) != 1 or len(inputs) != 1:
            return None
        (user,) = node.users
        if user.op != "call_module" or len(user.all_input_nodes) != 1 or len(user.args) != 1:
            return None
        first, second = model.get_submodule(node.target), model.get_submodule(user.target)
        bound = lookup_fusion(first, second)
        if bound is None:
            return None
        types = f"{type(first).__name__}+{type(second).__name__}"
        return Step(
            user.name, "layer",
            f"modules {node.target!r} + {user.target!r} ({types}, bounded as one operator)",
            (inputs[0].name,), (first, second), bound, self._shape(inputs[0]),
            f"{node.target}+{user.target}", types,
        )

    @staticmethod
    def _shape(node: fx.Node) -> tuple[int, ...]:
        return tuple(node.meta["tensor_meta"].shape[1:])

    def _make_step(self, model: nn.Module, node: fx.Node, inputs: list[fx.Node], data: set[str]) -> Step:
        names = tuple(n.name for n in inputs)
        if node.op == "call_module":
            target: Any = model.get_submodule(node.target)
            key, description = target, f"module {node.target!r} ({type(target).__name__})"
            layer, type_name = str(node.target), type(target).__name__
        elif node.op == "call_function":
            target = key = node.target
            name = getattr(key, "__name__", str(key))
            description = f"function {name!r} (node {node.name!r})"
            layer, type_name = node.name, name
        else:  # call_method
            target = key = node.target
            description = f"tensor method {key!r} (node {node.name!r})"
            layer, type_name = node.name, str(key)
        combiner = lookup_combiner(key)
        if combiner is not None:
            # A rounded combination is a sum or difference of two operands (Combiner.exact).
            if not combiner.exact and (len(node.args) > 2 or node.kwargs.get("alpha", 1) != 1):
                raise UnboundedOperationError(f"{description} with a scaling alpha is not supported")
            return Step(node.name, "combine", description, names, key, combiner=combiner, layer=layer,
                        type_name=type_name)
        if len(inputs) != 1:
            raise UnboundedOperationError(
                f"{description} takes {len(inputs)} input-dependent arguments and is no "
                "registered combination (add, sub, cat, stack)"
            )
        bound = lookup_bound(key, description)
        args, kwargs = fx.node.map_arg(
            (node.args, node.kwargs), lambda n: INPUT if n is inputs[0] else constant_argument(model, n, data)
        )
        return Step(
            node.name, "layer", description, names, target, bound, self._shape(inputs[0]),
            layer, type_name, tuple(args), dict(kwargs),
        )

    @staticmethod
    def _find_head(steps: list[Step], output: str) -> str | None:
        last = next((s for s in steps if s.node == output), None)
        if last is not None and isinstance(last.target, nn.Linear):
            return last.node
        return None

    # -- evaluation ---------------------------------------------------------------------------

    def _state(self, node: str) -> dict[str, torch.Tensor]:
        return {name: self._buffers[key] for name, key in self._state_keys.get(node, {}).items()}

    def context(
        self, step: Step, mode: str, settings: CertifySettings = CertifySettings(),
        state: dict[str, torch.Tensor] | None = None, updates: dict[str, torch.Tensor] | None = None,
        batch_variances: Mapping[nn.Module, torch.Tensor] | None = None,
    ) -> BoundContext:
        """What ``step``'s bound sees in ``mode``: in training its state is this module's
        buffers unless ``state`` is given; ``updates`` (functional training) receives the
        advanced state and ``batch_variances`` overrides the recorded BatchNorm variances."""
        if state is None:
            state = self._state(step.node) if mode == "train" else {}
        return BoundContext(mode, step.node, step.input_shape, settings, state, step.args, step.kwargs, updates,
                            batch_variances)

    def propagate(
        self, layer_bound: Callable[[Step], Any], upward: bool = False, stop_at_head: bool = False
    ) -> tuple[dict[str, Any], Any]:
        """Propagate bounds through the graph; ``layer_bound(step)`` gives each layer's factor
        (floats, or tensors in training; a factor or bound of exactly 1.0 is not multiplied).
        ``upward`` (float bounds): round products up and give combinations (sums, square roots)
        the rounding margin, so the result is an upper bound of the exact propagation.
        ``stop_at_head``: stop before the linear head (if any), whose factor is then not
        evaluated and whose node (the output) gets no bound.
        Returns the bound of every node and the body bound (the head's input)."""
        bounds: dict[str, Any] = {}
        body = None
        for step in self.steps:
            if step.kind == "combine":
                combined = step.combiner([bounds.get(name, 1.0) for name in step.inputs])
                bounds[step.node] = with_margin(combined) if upward else combined
                continue
            incoming = bounds.get(step.inputs[0], 1.0)
            if step.node == self.head:
                body = incoming
                if stop_at_head:  # the head is the output: nothing after it counts
                    break
            bounds[step.node] = _times(layer_bound(step), incoming, upward)
        return bounds, body

    def _training_contexts(self) -> dict[str, BoundContext | None]:
        """The train-mode context of every layer (None: a parameter-free factor of exactly 1,
        e.g. ReLU), built once and rebuilt when a state buffer is replaced (``.to()``)."""
        buffers = tuple(self._buffers.values())
        cached = self._train_cache
        if cached is None or len(cached[0]) != len(buffers) or any(
            a is not b for a, b in zip(cached[0], buffers)
        ):
            contexts = {
                step.node: None if _is_unit(step) else self.context(step, "train")
                for step in self.steps if step.kind == "layer"
            }
            self._train_cache = cached = (buffers, contexts)
        return cached[1]

    # torch.compile runs this eagerly: in torch 2.14 its compiled backward reads the
    # power-iteration vectors after their in-place update instead of û, so the weight gradients
    # come out silently wrong (the proposed fix: pytorch/pytorch#197039); eager costs 0.2 µs more per step.
    # functional_training_bound is the form to compile (lmt.compiled).
    @torch.compiler.disable
    def training_bound(self, need_total: bool = True) -> TrainingBound:
        """One power-iteration step per layer; the result is differentiable in the weights.
        Layer bounds must update their state in place (the contexts are reused).

        ``need_total=False`` (the Prop. 2 losses, which read only ``body`` and the head's
        weight): on a network with a linear head, the head's power-iteration step is skipped
        (its vector is not advanced) and ``total`` is None; without a head ``total`` is
        computed as usual."""
        contexts = self._training_contexts()
        return self._train(lambda step: contexts[step.node], need_total)

    def functional_training_bound(
        self, state: dict[str, torch.Tensor], need_total: bool = True,
        batch_variances: Mapping[nn.Module, torch.Tensor] | None = None,
    ) -> tuple[TrainingBound, dict[str, torch.Tensor]]:
        """:meth:`training_bound` without side effects, the form that torch.compile
        differentiates correctly (:mod:`lmt.compiled`): the power-iteration vectors are read
        from ``state`` (buffer name -> tensor, e.g. clones of :meth:`named_buffers`) and the
        advanced ones are returned (buffer name -> tensor) instead of written in place. Values,
        gradients and advanced vectors are those of :meth:`training_bound`, bit for bit.
        ``batch_variances`` (BatchNorm module -> variance; default: the recorded ones, as
        :meth:`batch_statistics`) are passed to the layer bounds, not through the module-level
        record: torch 2.14's compiler reads that record wrongly (two same-shaped BatchNorms
        got one variance)."""
        layers: list[tuple[dict[str, str], BoundContext]] = []
        if batch_variances is None:
            batch_variances = self.batch_statistics()

        def context(step: Step) -> BoundContext | None:
            if _is_unit(step):
                return None
            keys = self._state_keys.get(step.node, {})
            ctx = self.context(step, "train", state={name: state[key] for name, key in keys.items()}, updates={},
                               batch_variances=batch_variances)
            layers.append((keys, ctx))
            return ctx

        estimate = self._train(context, need_total)
        advanced = {keys[name]: value for keys, ctx in layers for name, value in ctx.updates.items()}
        return estimate, advanced

    def _train(self, context: Callable[[Step], BoundContext | None], need_total: bool) -> TrainingBound:
        """One training step of every layer's bound in ``context(step)`` (None: a factor of 1)."""

        def layer_bound(step: Step) -> Any:
            ctx = context(step)
            return 1.0 if ctx is None else step.bound.train(step.target, ctx)

        skip_head = not need_total and self.head is not None
        bounds, body = self.propagate(layer_bound, stop_at_head=skip_head)
        head = self._head_module()
        return TrainingBound(
            None if skip_head else torch.as_tensor(bounds[self.output]),
            body if body is None else torch.as_tensor(body),
            None if head is None else head.weight,
        )

    def batch_norms(self) -> list[nn.Module]:
        """The BatchNorm layers whose training bounds read the current batch's variance."""
        modules = []
        for step in self.steps:
            targets = step.target if isinstance(step.target, tuple) else (step.target,)
            modules += [t for t in targets if isinstance(t, nn.modules.batchnorm._BatchNorm)]
        return modules

    def batch_statistics(self) -> dict[nn.Module, torch.Tensor]:
        """The batch variances that :meth:`training_bound` reads now (recorded by the last
        training-mode forward pass): its inputs from the model's autograd graph, which a
        CUDA-graphed bound takes as arguments."""
        return recorded_batch_variances(self.batch_norms())

    def batch_statistics_as(self, variances: dict[nn.Module, torch.Tensor]) -> contextlib.AbstractContextManager:
        """Inside the block :meth:`training_bound` reads ``variances`` instead."""
        return batch_variances_as(variances)

    @torch.no_grad()
    def certified_bound(self, settings: CertifySettings = CertifySettings()) -> CertifiedBound:
        """Sound float64 upper bounds of the eval-mode network, with a per-layer record."""
        rows: list[dict[str, Any]] = []

        def layer_bound(step: Step) -> float:
            certified = step.bound.certify(step.target, self.context(step, "certify", settings))
            rows.append(
                {
                    "node": step.node,
                    "layer": step.layer,
                    "type": step.type_name,
                    "operation": step.description,
                    "input_shape": "x".join(map(str, step.input_shape)),
                    "bound": certified.value,
                    "method": certified.method,
                }
            )
            if certified.promised is not None:
                rows[-1]["promised"] = certified.promised
            return certified.value

        with eval_mode(self.model[0]):
            bounds, body = self.propagate(layer_bound, upward=True)
        head = self._head_module()
        return CertifiedBound(
            float(bounds.get(self.output, 1.0)),  # an empty network is the identity
            None if body is None else float(body),
            None if head is None else head.weight.detach().double().cpu().clone(),
            rows,
        )

    def _head_module(self) -> nn.Linear | None:
        if self.head is None:
            return None
        return next(s.target for s in self.steps if s.node == self.head)
