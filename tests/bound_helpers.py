"""Exact answers and attacks on Lipschitz bounds, shared by the bound tests."""

from __future__ import annotations

import copy
import math
import random
from typing import Callable

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
