"""The inequality chain (A) ≤ (B) ≤ (C) ≤ (D) of §6.1 of the paper (notes §4.1), per example.

* (A) the certified radius: margins over certified *upper* bounds of the pairwise Lipschitz
  constants (Prop. 2);
* (B) margins over a *global* gradient-based lower bound of the pairwise Lipschitz constants:
  K_glob[i, j] = max over the whole test set and its noisy copies of ‖∇ₓ(F_i − F_j)(x)‖₂;
* (C) the same with K_loc, the maximum over the example's own batch only;
* (D) the smallest distance found by the attacks that were run.

Pairs, as in the official code (``analyze_inequality.py``): each bound is a matrix over class
pairs, and the radius is min_{i≠y} max(0, z_y − z_i) / K[y, i] with y the true label, the same
formula as Prop. 2 (:func:`lmt.certify.radii`, in plain float64: these are no certificates).
Pairwise, L_G·‖w_y − w_i‖ ≥ Lip(F_y − F_i) ≥ K_glob[y, i] ≥ K_loc[y, i], so (A) ≤ (B) ≤ (C)
holds per example whenever the certified bound is sound. (C) ≤ (D) need not hold: (B) and (C)
rest on lower bounds of Lipschitz constants (the paper says so).

Noise, as in the official code: for each batch, ``n_noise`` Gaussian draws normalised to unit
norm over the *whole batch tensor* (about 1/√B per example), not clipped to [0, 1]; the clean
batch counts as one more draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from lmt.certify import radii

CHAIN = {"A": "certified_radius", "B": "radius_global_grad", "C": "radius_local_grad", "D": "min_attack_distance"}
RATIOS = [("B", "A"), ("C", "B"), ("D", "C")]


def input_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """∂F_k/∂x per example, flattened: (N, K, D), in the model's dtype, on its device."""
    xin = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = model(xin)
        k = out.shape[1]
        eye = torch.eye(k, dtype=out.dtype, device=out.device)[:, None, :].expand(k, len(x), k)
        (grad,) = torch.autograd.grad(out, xin, grad_outputs=eye, is_grads_batched=True)
    return grad.transpose(0, 1).flatten(2)


def pairwise_gradient_norms(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """‖∇ₓ(F_i − F_j)(x_n)‖₂ for every example and class pair: (N, K, K), float64."""
    jac = input_jacobian(model, x).double()
    gram = jac @ jac.transpose(1, 2)  # (N, K, K): <∇F_i, ∇F_j>
    sq = gram.diagonal(dim1=1, dim2=2)
    return (sq[:, :, None] + sq[:, None, :] - 2 * gram).clamp_min(0).sqrt()


def batch_gradient_bound(
    model: nn.Module, x: torch.Tensor, n_noise: int, generator: torch.Generator
) -> torch.Tensor:
    """Max over the batch, the clean inputs and ``n_noise`` noisy copies of the pairwise
    gradient norms: a (K, K) lower bound of the pairwise Lipschitz constants."""
    best = pairwise_gradient_norms(model, x).amax(0)
    for _ in range(n_noise):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        noise = noise / noise.norm()
        best = torch.maximum(best, pairwise_gradient_norms(model, x + noise).amax(0))
    return best


@dataclass
class GradientBounds:
    """(B) and (C) per example, with the matrices they come from."""

    radius_global: torch.Tensor  # (N,) float64, (B)
    radius_local: torch.Tensor  # (N,) float64, (C)
    global_pairwise: torch.Tensor  # (K, K) float64: K_glob
    batch: torch.Tensor  # (N,) index of the batch whose K_loc each example uses


def gradient_bounds(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 50,
    n_noise: int = 100,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> GradientBounds:
    """(B) and (C) of the chain for every example of ``x`` (the whole test set for (B))."""
    if device is None:
        device = next(model.parameters()).device
    model = model.eval().to(device)
    generator = torch.Generator().manual_seed(seed)
    local, logits, batch = [], [], []
    starts = range(0, len(y), batch_size)
    for b, start in enumerate(tqdm(starts, desc="gradient bounds", disable=not progress, mininterval=2.0)):
        xb = x[start : start + batch_size].to(device)
        local.append(batch_gradient_bound(model, xb, n_noise, generator).cpu())
        with torch.no_grad():
            logits.append(model(xb).double().cpu())
        batch.append(torch.full((len(xb),), b))
    local_stack = torch.stack(local)  # (n_batches, K, K)
    batch_idx = torch.cat(batch)
    all_logits = torch.cat(logits)
    global_pairwise = local_stack.amax(0)
    return GradientBounds(
        radius_global=radii(all_logits, y, global_pairwise, round_down=False),
        radius_local=radii(all_logits, y, local_stack[batch_idx], round_down=False),
        global_pairwise=global_pairwise,
        batch=batch_idx,
    )


def per_example_ratios(examples: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each chain ratio, "(B)/(A)" etc., over the examples where both values are finite and
    positive."""
    out = {}
    for upper, lower in RATIOS:
        num = examples[CHAIN[upper]].to_numpy(dtype=float)
        den = examples[CHAIN[lower]].to_numpy(dtype=float)
        ok = np.isfinite(num) & np.isfinite(den) & (num > 0) & (den > 0)
        out[f"({upper})/({lower})"] = num[ok] / den[ok]
    return out


def chain_ratios(examples: pd.DataFrame) -> pd.DataFrame:
    """(B)/(A), (C)/(B), (D)/(C): median and mean over the examples where both values are
    finite and positive, with how many examples that is."""
    rows = []
    for name, ratio in per_example_ratios(examples).items():
        rows.append(
            {
                "ratio": name,
                "median": float(np.median(ratio)) if len(ratio) else float("nan"),
                "mean": float(ratio.mean()) if len(ratio) else float("nan"),
                "n_examples": len(ratio),
                "n_below_one": int((ratio < 1).sum()),
            }
        )
    return pd.DataFrame(rows)
