"""Floating-point soundness: how far a network evaluated in floating point can be from the
exact (real-arithmetic) network with the same parameters, per example.

A certified radius is a claim about the network as it is evaluated: in float32 by attacks and
users, in float64 by the certificate. Both differ from the exact network F by rounding. This
module bounds both differences by standard forward error analysis (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., §3.1). Each operation's own error is given by its
rounding model (:class:`lmt.bounds.registry.Rounding`: ‖fl(op(x̂)) − op(x̂)‖₂ ≤
γ_k·(gain·‖x̂‖₂ + offset), γ_k = k·u/(1 − k·u)); errors already present propagate through the
exact operation with its certified Lipschitz bound L. For a layer with input error E_in:

    E_out ≤ L·E_in + γ_k·(gain·‖x̂_in‖ + offset),

for a sum or difference (of two branches, or of a branch and a constant; a combiner that is not
``exact`` is binary, :class:`lmt.bounds.registry.Combiner`) E_out ≤ E_a + E_b + γ_1·‖â + b̂‖,
and an exact one (concatenation, stacking) adds no error of its own.

*Float64, at the test point x* (:func:`float64_errors`): ‖x̂_in‖ is the float64 activation
itself, measured during the float64 forward pass, so the bound is a posteriori and tight.

*Float32, anywhere in the ball ‖x' − x‖ ≤ r* (:func:`float32_errors`): the float32 activation at
x' is bounded by the exact one plus its error, and the exact one by the measured float64 value
at x (plus its error) plus P·r, P the certified Lipschitz bound from the input to that node:
‖x̂_in(x')‖ ≤ ‖x̂64_in(x)‖ + E64_in(x) + P_in·r + E_in(x'). Every bound is then affine in r,
E32(x') ≤ const(x) + coef·r, which keeps the radius a closed form (lmt.certify).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import fx, nn

from lmt.bounds.registry import CertifySettings, Rounding

if TYPE_CHECKING:
    from lmt.bounds.graph import CertifiedBound, NetworkBound

FLOAT32_UNIT_ROUNDOFF = 2.0**-24
FLOAT64_UNIT_ROUNDOFF = 2.0**-53


def gamma(terms: int, unit_roundoff: float) -> float:
    """γ_k = k·u / (1 − k·u): the relative error bound of k successive roundings."""
    ku = terms * unit_roundoff
    if ku >= 0.5:
        raise ValueError(f"{terms} roundings at unit roundoff {unit_roundoff:g}: no useful error bound")
    return ku / (1 - ku)


@dataclass(frozen=True)
class Affine:
    """const + coef·r: ``const`` per example (a tensor) or a number, ``coef`` a number ≥ 0."""

    const: Any = 0.0
    coef: float = 0.0

    def __add__(self, other: "Affine") -> "Affine":
        return Affine(self.const + other.const, self.coef + other.coef)

    def scale(self, factor: float) -> "Affine":
        return Affine(self.const * factor, self.coef * factor)

    def shift(self, constant: Any) -> "Affine":
        return Affine(self.const + constant, self.coef)

    def at(self, r: Any) -> Any:
        return self.const + self.coef * r

    @staticmethod
    def quadrature(parts: list["Affine"]) -> "Affine":
        """An affine upper bound of sqrt(Σ pᵢ(r)²) (Minkowski's inequality)."""
        return Affine(sum(p.const**2 for p in parts) ** 0.5, math.hypot(*(p.coef for p in parts)))


@dataclass(frozen=True)
class Activations:
    """What the float64 forward pass measured: the logits and the L2 norm (per example) of
    every node the bound walks, the input included."""

    logits: torch.Tensor  # (N, K) float64
    norms: dict[str, torch.Tensor]  # node -> (N,) float64, before the norm's own rounding margin


class _NormRecorder(fx.Interpreter):
    def __init__(self, module: fx.GraphModule, wanted: set[str]) -> None:
        super().__init__(module)
        self.wanted = wanted
        self.norms: dict[str, torch.Tensor] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if n.name in self.wanted:
            self.norms[n.name] = out.detach().flatten(1).norm(dim=1).cpu()
        return out


def float64_model(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` in eval mode (its parameters convert exactly)."""
    return copy.deepcopy(model).double().eval()


@torch.no_grad()
def float64_forward(
    network: "NetworkBound", model64: nn.Module, x: torch.Tensor, batch_size: int = 500
) -> Activations:
    """Float64 logits of ``x`` and the norm of every node the bound walks, per example."""
    graph = network.trace_graph(model64)
    wanted = {name for step in network.steps for name in (step.node, *step.inputs)}
    device = next(model64.parameters()).device
    logits, norms = [], []
    for start in range(0, len(x), batch_size):
        recorder = _NormRecorder(graph, wanted)
        logits.append(recorder.run(x[start : start + batch_size].to(device).double()).cpu())
        norms.append(recorder.norms)
    return Activations(torch.cat(logits), {k: torch.cat([n[k] for n in norms]) for k in norms[0]})


def _measured(activations: Activations, node: str, numel: int) -> torch.Tensor:
    """A bound on the norm of the computed float64 activation: the measured norm of ``numel``
    entries, widened by its own rounding (a sum of squares and a square root)."""
    return activations.norms[node] * (1 + gamma(numel + 2, FLOAT64_UNIT_ROUNDOFF))


@dataclass(frozen=True)
class FloatErrors:
    """Per-example bounds on ‖F̂(·) − F(·)‖₂ of the logits: float64 at the test point x
    (``float64``), and float32 anywhere in the ball of radius r around x
    (``float32.const + float32.coef·r``)."""

    float64: torch.Tensor  # (N,)
    float32: Affine  # const (N,), coef float
    models: list[dict[str, Any]]  # per operation: node, terms, gain, offset (the provenance)


class _Walk:
    """The state both propagations share: layer factors, prefix bounds, rounding models."""

    def __init__(self, network: "NetworkBound", certified: "CertifiedBound", settings: CertifySettings) -> None:
        from lmt.bounds.graph import eval_mode

        self.network = network
        self.factor = {row["node"]: row["bound"] for row in certified.layers}
        self.prefix, _ = network.propagate(lambda step: self.factor[step.node])
        self.models: dict[str, Rounding] = {}
        with eval_mode(network.model[0]), torch.no_grad():
            for step in network.steps:
                if step.kind == "layer":
                    ctx = network.context(step, "certify", settings)
                    self.models[step.node] = step.bound.rounding(step.target, ctx, self.factor[step.node])

    def numel_of(self, node: str) -> int:
        """Entries of one example at ``node``."""
        return math.prod(self.network.node_shapes[node])

    def prefix_of(self, node: str) -> float:
        return self.prefix.get(node, 1.0)  # the input: 1

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"node": node, "terms": m.terms, "gain": m.gain, "offset": m.offset}
            for node, m in self.models.items()
        ]


def float64_errors(walk: _Walk, activations: Activations, input_node: str) -> dict[str, torch.Tensor]:
    """A posteriori float64 error bound per node at the test points themselves."""
    u = FLOAT64_UNIT_ROUNDOFF
    error: dict[str, torch.Tensor] = {}
    zero = torch.zeros_like(activations.norms[input_node])
    for step in walk.network.steps:
        e_in = [error.get(name, zero) for name in step.inputs]
        if step.kind == "combine":
            if step.combiner.exact:  # concatenation, stacking: copies
                error[step.node] = sum(e**2 for e in e_in) ** 0.5
            else:  # fl(â + b̂) = (â + b̂)(1 + δ): u·|â + b̂| ≤ γ_1·|computed sum|
                computed = _measured(activations, step.node, walk.numel_of(step.node))
                error[step.node] = sum(e_in) + gamma(1, u) * computed
            continue
        model = walk.models[step.node]
        computed_in = _measured(activations, step.inputs[0], walk.numel_of(step.inputs[0]))
        local = gamma(model.terms, u) * (model.gain * computed_in + model.offset) if model.terms else 0.0
        error[step.node] = walk.factor[step.node] * e_in[0] + local
    return error


def float32_errors(
    walk: _Walk, activations: Activations, error64: dict[str, torch.Tensor], input_node: str,
    unit_roundoff: float = FLOAT32_UNIT_ROUNDOFF,
) -> dict[str, Affine]:
    """Float32 error bound per node, affine in the radius r of the ball around each x (any
    other format with ``unit_roundoff``, e.g. float16's 2⁻¹¹ in the tests)."""
    u = unit_roundoff
    zero = torch.zeros_like(activations.norms[input_node])

    def exact(node: str, numel: int) -> Affine:  # ‖x_node(x')‖ ≤ measured + E64 + P·r
        measured = _measured(activations, node, numel)
        return Affine(measured + error64.get(node, zero), walk.prefix_of(node))

    error: dict[str, Affine] = {}
    for step in walk.network.steps:
        e_in = [error.get(name, Affine(zero)) for name in step.inputs]
        if step.kind == "combine":
            if step.combiner.exact:  # concatenation, stacking: copies
                error[step.node] = Affine.quadrature(e_in)
            else:  # u·|â + b̂|, with |â + b̂| ≤ ‖x_out(x')‖ + Σ E_in
                total = sum(e_in, Affine(zero))
                computed = exact(step.node, walk.numel_of(step.node)) + total
                error[step.node] = total + computed.scale(gamma(1, u))
            continue
        model = walk.models[step.node]
        error[step.node] = e_in[0].scale(walk.factor[step.node])
        if model.terms:
            computed_in = exact(step.inputs[0], walk.numel_of(step.inputs[0])) + e_in[0]
            local = computed_in.scale(model.gain).shift(model.offset).scale(gamma(model.terms, u))
            error[step.node] = error[step.node] + local
    return error


def logit_errors(
    network: "NetworkBound", certified: "CertifiedBound", activations: Activations,
    settings: CertifySettings = CertifySettings(), unit_roundoff: float = FLOAT32_UNIT_ROUNDOFF,
) -> FloatErrors:
    """Float64 (at x) and float32 (in the ball around x; or the format of ``unit_roundoff``)
    error bounds of the logits."""
    walk = _Walk(network, certified, settings)
    input_node = network.input_node
    e64 = float64_errors(walk, activations, input_node)
    e32 = float32_errors(walk, activations, e64, input_node, unit_roundoff)
    zero = torch.zeros_like(activations.norms[input_node])
    return FloatErrors(e64.get(network.output, zero), e32.get(network.output, Affine(zero)), walk.rows())


def nonnegative_operator_bound(linear_map: Any, input_shape: tuple[int, ...]) -> float:
    """Schur test for a linear map with non-negative entries (e.g. a convolution with |W|):
    ‖A‖₂ ≤ sqrt(max row sum · max column sum), both read off A·1 and Aᵀ·1 (float64)."""
    ones = torch.ones(1, *input_shape, dtype=torch.float64)
    rows, vjp = torch.func.vjp(linear_map, ones)
    (cols,) = vjp(torch.ones_like(rows))
    return math.sqrt(max(float(rows.max()), 0.0) * max(float(cols.max()), 0.0)) * (1 + 1e-9)


def absolute_matrix_norm(weight: torch.Tensor) -> float:
    """An upper bound of ‖|W|‖₂ for a matrix: the smaller of its SVD (with a relative margin
    for float64 rounding) and the Schur test."""
    w = weight.detach().double().abs().cpu()
    svd = float(torch.linalg.matrix_norm(w, ord=2)) * (1 + 1e-6)
    schur = math.sqrt(float(w.sum(1).max()) * float(w.sum(0).max())) * (1 + 1e-9)
    return min(svd, schur)
