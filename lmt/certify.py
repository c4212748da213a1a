"""Margins and certified L2 radii (Prop. 1 and Prop. 2), against the true label.

* Prop. 1: r = max(0, M) / (√2 · L_F), with M = z_y − max_{i≠y} z_i.
* Prop. 2: r = max(0, min_{i≠y} (z_y − z_i) / (L_G · ‖w_y − w_i‖)), for F = W·G(x) + b.

A misclassified point has a negative margin and radius 0. All arithmetic is float64.
"""

from __future__ import annotations

import math

import torch


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y − max_{i≠y} z_i per example."""
    logits = logits.double()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.max(dim=1).values


def radius_prop1(logits: torch.Tensor, labels: torch.Tensor, lipschitz: float) -> torch.Tensor:
    """Prop. 1 radius from the global bound L_F of the logit map."""
    return margins(logits, labels).clamp_min(0) / (math.sqrt(2) * lipschitz)


def pairwise_lipschitz(head_weight: torch.Tensor, body_bound: float) -> torch.Tensor:
    """K[y, i] = L_G · ‖w_y − w_i‖, the Lipschitz bound of z_y − z_i (zero on the diagonal)."""
    w = head_weight.double()
    return body_bound * torch.cdist(w, w)


def radius_prop2(
    logits: torch.Tensor, labels: torch.Tensor, head_weight: torch.Tensor, body_bound: float
) -> torch.Tensor:
    """Prop. 2 radius: the smallest pairwise margin over its pairwise Lipschitz bound."""
    logits = logits.double()
    pair = pairwise_lipschitz(head_weight.to(logits.device), body_bound)[labels.to(logits.device)]  # (N, K): K[y, i]
    diff = logits.gather(1, labels[:, None]) - logits  # z_y − z_i
    # A pair with zero Lipschitz bound has a constant logit difference: it never flips if
    # positive, and is already lost otherwise.
    constant = torch.where(diff > 0, float("inf"), 0.0).to(diff)
    radius = torch.where(pair > 0, diff / pair.clamp_min(1e-300), constant)
    radius = radius.scatter(1, labels[:, None], float("inf"))  # i = y does not constrain
    return radius.min(dim=1).values.clamp_min(0)

