"""Operator norms of bias-free linear maps by power iteration on AᵀA.

The adjoint Aᵀ comes from autograd (a vector–Jacobian product of the linear map), so it is
exact for any stride, padding or dilation: the official code's transposed convolution lost a
row and a column for stride-2 convolutions on even inputs (notes §5.4, bug 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

LinearMap = Callable[[torch.Tensor], torch.Tensor]  # batch-first, bias-free


def _normalize(x: torch.Tensor) -> torch.Tensor:
    norms = x.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
    return x / norms.view(-1, *([1] * (x.dim() - 1)))


def gram_apply(linear_map: LinearMap, x: torch.Tensor) -> torch.Tensor:
    """AᵀA x, with Aᵀ as the vector–Jacobian product of the (linear) map."""
    y, vjp = torch.func.vjp(linear_map, x)
    return vjp(y)[0]


def autograd_adjoint(linear_map: LinearMap, x_like: torch.Tensor) -> LinearMap:
    """Aᵀ by a vector–Jacobian product: exact for any linear map, at the price of a forward
    pass (used where a layer has no cheaper explicit adjoint)."""

    def adjoint(y: torch.Tensor) -> torch.Tensor:
        _, vjp = torch.func.vjp(linear_map, torch.zeros_like(x_like))
        return vjp(y)[0]

    return adjoint


def training_step(
    linear_map: LinearMap, adjoint: LinearMap, u: torch.Tensor, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One persistent power-iteration step.

    Returns ``(sigma, u_next)``: ``sigma = ‖A û‖`` with û = u/‖u‖ is differentiable in the
    weights (a lower estimate of σ_max that tightens as u converges); ``u_next = Aᵀ(A û)``
    reuses A û and is computed without gradients (notes §7: never from the loss gradient,
    which can vanish). ``adjoint`` must not track gradients. A degenerate ``u_next`` (zero or
    non-finite) is replaced by a vector of ones without a host synchronisation. ``u_next`` is
    written to ``out`` if given (which may be ``u`` itself: only û is kept for the backward).
    """
    u_hat = u / torch.linalg.vector_norm(u).clamp_min(torch.finfo(u.dtype).tiny)  # batch size 1
    y = linear_map(u_hat)
    sigma = torch.linalg.vector_norm(y)
    with torch.no_grad():
        u_next = adjoint(y.detach())
        u_next = torch.where(_healthy(u_next), u_next, _one(u_next), out=out)
    return sigma, u_next


def _healthy(x: torch.Tensor) -> torch.Tensor:
    """0-dim bool: x is nonzero and finite, in three operations and no host synchronisation.
    s = max|x| (the ∞-norm propagates NaN) is healthy iff 0 < s < inf iff s/s == 1: IEEE
    division gives exactly 1 for every finite nonzero s (subnormals included) and NaN for
    0/0, inf/inf and NaN."""
    largest = torch.linalg.vector_norm(x, math.inf)
    return torch.eq(largest / largest, _one(largest))


_ONES: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _one(like: torch.Tensor) -> torch.Tensor:
    """1 as a 0-dim tensor of ``like``'s dtype and device, built once (a Python number would
    be converted to a tensor at every call)."""
    if torch.compiler.is_compiling():  # a constant of the compiled graph, no cache to guard on
        return torch.ones((), dtype=like.dtype, device=like.device)
    key = (like.dtype, like.device)
    if key not in _ONES:
        _ONES[key] = torch.ones((), dtype=like.dtype, device=like.device)
    return _ONES[key]


@dataclass(frozen=True)
class PowerIteration:
    """``lower``: max over starts of sqrt(‖AᵀA x‖) for unit x, a guaranteed lower bound of
    σ_max; ``upper``: with the Thm 2 error term, an upper bound with high probability."""

    lower: float
    upper: float


def certified_operator_norm(
    linear_map: LinearMap,
    input_shape: tuple[int, ...],
    n_iter: int,
    n_starts: int,
    seed: int,
    device: torch.device,
    adjoint: LinearMap | None = None,
) -> PowerIteration:
    """Power iteration in float64 from ``n_starts`` Gaussian starts plus the error term of the
    official code (the paper's Thm 2, after Friedman): an upper bound with high probability.
    ``adjoint``: an explicit Aᵀ for a batch of ``n_starts`` (cheaper than autograd's
    vector–Jacobian product, which re-runs A at every iteration); default: autograd's.

    With λ_k the last estimate of σ², Δ = λ_k − λ_{k−1}, d the input dimension and
    f = |Δ|·d, the bound is sqrt(max over starts of λ_k + (f + sqrt(f·(4λ_k + f)))/2).
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn((n_starts, *input_shape), generator=generator, dtype=torch.float64)
    x = _normalize(x.to(device))
    lam_prev = torch.zeros(n_starts, dtype=torch.float64, device=device)
    lam = lam_prev
    with torch.no_grad():
        for _ in range(n_iter):
            y = gram_apply(linear_map, x) if adjoint is None else adjoint(linear_map(x))
            lam_prev, lam = lam, y.flatten(1).norm(dim=1)
            x = _normalize(y)
    dim = math.prod(input_shape)
    f = (lam - lam_prev).abs() * dim
    err = (f + torch.sqrt(f * (4 * lam + f))) / 2
    return PowerIteration(float(torch.sqrt(lam.max())), float(torch.sqrt((lam + err).max())))
