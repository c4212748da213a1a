"""Exact answers and attacks on Lipschitz bounds, shared by the bound tests."""

from __future__ import annotations

import copy
import math
import random
from typing import Callable

import numpy as np
import torch
from torch import nn


def operator_matrix(layer: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """The explicit matrix of the bias-free layer (a float64 copy): its Jacobian."""
    layer = copy.deepcopy(layer).double()
    if getattr(layer, "bias", None) is not None:
        layer.bias.data.zero_()
    x = torch.zeros((1, *input_shape), dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v).flatten(), x)
    return jac.reshape(-1, math.prod(input_shape))


def exact_norm(layer: nn.Module, input_shape: tuple[int, ...]) -> float:
    return float(torch.linalg.matrix_norm(operator_matrix(layer, input_shape), ord=2))


def random_conv(rng: random.Random, mode: str) -> tuple[nn.Conv2d, tuple[int, int, int]] | None:
    """A random small Conv2d (kernel, stride, padding, dilation, groups) and an input shape on
    which PyTorch accepts it; None where the draw is invalid."""
    groups = rng.choice([1, 1, 2, 3])
    cin, cout = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    stride = (rng.randint(1, 3), rng.randint(1, 3))
    dilation = (rng.randint(1, 2), rng.randint(1, 2))
    h, w = rng.randint(3, 9), rng.randint(3, 9)
    padding = (rng.randint(0, 3), rng.randint(0, 3))
    if mode == "reflect":
        padding = (min(padding[0], h - 1), min(padding[1], w - 1))
    try:
        conv = nn.Conv2d(cin, cout, kernel, stride, padding, dilation, groups, bias=False, padding_mode=mode)
        conv(torch.zeros(1, cin, h, w))
    except RuntimeError:
        return None
    with torch.no_grad():  # heavier tails than the default init: less regular spectra
        conv.weight.copy_(torch.randn_like(conv.weight) * torch.rand_like(conv.weight) ** 2)
    return conv, (cin, h, w)


def conv_sweep(seed: int, mode: str, count: int) -> list[tuple[nn.Conv2d, tuple[int, int, int]]]:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    cases: list[tuple[nn.Conv2d, tuple[int, int, int]]] = []
    while len(cases) < count:
        case = random_conv(rng, mode)
        if case is not None:
            cases.append(case)
    return cases


def ascend_lipschitz_quotient(
    f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, steps: int = 60, lr: float = 0.05,
    radius: float = 1e-1,
) -> float:
    """Largest ‖f(x + δ) − f(x)‖/‖δ‖ and ‖J_f(x)ᵀ v‖-type gradient norm found by gradient
    ascent over x and δ from the batch of starts ``x0`` (per example; ``f`` maps a batch to a
    batch of vectors). Piecewise-linear networks have zero Hessians almost everywhere, so the
    ascent uses the difference quotient, which moves with both x and δ."""
    x = x0.clone().requires_grad_(True)
    delta = (torch.randn_like(x0) * radius).requires_grad_(True)
    optimizer = torch.optim.Adam([x, delta], lr=lr)
    best = 0.0
    for _ in range(steps):
        change = (f(x + delta) - f(x)).flatten(1).norm(dim=1)
        quotient = change / delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        best = max(best, float(quotient.detach().max()))
        optimizer.zero_grad()
        (-quotient.sum()).backward()
        optimizer.step()
    return best


def largest_gradient_norm(g: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    """max over the batch of ‖∇ₓ g(x)‖ for a scalar-per-example function g."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(g(x).sum(), x)
    return float(grad.flatten(1).norm(dim=1).max())


# -- explicit references for whole networks and single operations ------------------------------

# Largest explicit Jacobian (entries) whose SVD a reference computes; larger operators use
# Lanczos (ARPACK) on the map and its adjoint, converged to machine precision.
MAX_EXPLICIT_ENTRIES = 1 << 16


def jacobian(f: Callable[[torch.Tensor], torch.Tensor], input_shape: tuple[int, ...]) -> torch.Tensor:
    """The explicit Jacobian (outputs × inputs) of ``f`` at 0 for one float64 example of shape
    ``input_shape``: for an affine map, its matrix."""
    x = torch.zeros(1, *input_shape, dtype=torch.float64)
    return torch.func.jacrev(f)(x).detach().reshape(-1, math.prod(input_shape))


def spectral_norm(matrix: torch.Tensor) -> float:
    """‖matrix‖₂ (its largest singular value, by SVD); 0 for an empty matrix."""
    return float(torch.linalg.matrix_norm(matrix, ord=2)) if matrix.numel() else 0.0


def operator_norm(f: Callable[[torch.Tensor], torch.Tensor], input_shape: tuple[int, ...]) -> float:
    """‖A‖₂ of the affine map ``f`` (float64): the SVD of its explicit Jacobian when small;
    otherwise ‖A v‖/‖v‖ for Lanczos's top right singular vector v (ARPACK on AᵀA through ``f``
    and its vector–Jacobian product, tol=0: converged to machine precision), lowered by 1e-10
    relative so that the float64 rounding of the two norms cannot lift it above ‖A‖₂."""
    from scipy.sparse.linalg import LinearOperator, svds

    zero = torch.zeros(1, *input_shape, dtype=torch.float64)
    with torch.no_grad():
        offset = f(zero)
    n, m = math.prod(input_shape), offset.numel()
    if n * m <= MAX_EXPLICIT_ENTRIES or min(n, m) < 2:
        return spectral_norm(jacobian(f, input_shape))
    _, adjoint = torch.func.vjp(f, zero)

    def matvec(v):
        with torch.no_grad():
            x = torch.as_tensor(v.reshape(-1), dtype=torch.float64).view(1, *input_shape)
            return (f(x) - offset).flatten().numpy()

    def rmatvec(v):
        y = torch.as_tensor(v.reshape(-1), dtype=torch.float64).view(offset.shape)
        return adjoint(y)[0].flatten().detach().numpy()

    operator = LinearOperator((m, n), matvec=matvec, rmatvec=rmatvec, dtype=float)
    start = torch.Generator().manual_seed(0)
    v0 = (1 + torch.rand(min(m, n), generator=start, dtype=torch.float64)).numpy()
    _, _, vh = svds(operator, k=1, tol=0, v0=v0, return_singular_vectors="vh")
    v = vh[0]
    return float(np.linalg.norm(matvec(v)) / np.linalg.norm(v)) * (1 - 1e-10)
