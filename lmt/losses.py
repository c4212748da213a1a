"""The LMT margin losses: cross-entropy on logits shifted by the Lipschitz margin (notes §3).

Variants:

* ``prop1``: add √2·c·L_F to every non-target logit (the paper's Algorithm 1);
* ``prop2``: add c·L_G·‖w_i − w_y‖ to each non-target logit i (pairwise, Prop. 2);
* ``prop2_clipped`` (the official code's ``lmt-fc`` mode, used in all its experiments): the
  Prop. 2 addition scaled by a per-example factor f = min_i clip(m_i / l_i, 0, 1), detached, so
  a misclassified point gets plain cross-entropy and an uncertified one is pushed to a tie.
  c saturates: where every m_j < l_j the shift l_i·min_j(m_j/l_j) does not depend on c, so once
  no training example reaches its shifted margin a larger c changes nothing.

Gradients flow through the Lipschitz bound into the weights in every variant.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

VARIANTS = ("prop1", "prop2", "prop2_clipped")


def prop1_margin(logits: torch.Tensor, labels: torch.Tensor, c: float | torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """Additive logit shift √2·c·L_F on every non-target class."""
    shift = math.sqrt(2) * c * total
    not_target = 1.0 - F.one_hot(labels, logits.shape[1]).to(logits)
    return shift * not_target


def prop2_margin(
    labels: torch.Tensor, c: float | torch.Tensor, body: torch.Tensor, head_weight: torch.Tensor
) -> torch.Tensor:
    """Additive logit shift l_i = c·L_G·‖w_i − w_y‖ (zero for the target class).

    The K×K table of ‖w_i − w_j‖ is computed once and its rows picked by label: the same
    elementwise values as the N×K×D differences, at K/N of the cost. ``torch.cdist`` without
    the matrix-product shortcut (which would cancel inexactly) has a zero, finite gradient at
    a zero distance (a plain sqrt of the squared norm has an infinite derivative there). Off
    the diagonal a distance is at least 1e-12 (equal rows of W: a tie then reads as not
    certified in :func:`clip_factor`); the diagonal is exactly 0."""
    k = head_weight.shape[0]
    norms = torch.cdist(head_weight, head_weight, compute_mode="donot_use_mm_for_euclid_dist")
    norms = norms.clamp_min(1e-12) * _off_diagonal(k, norms.dtype, norms.device)
    return norms[labels] * (c * body)


@functools.lru_cache(maxsize=16)
def _off_diagonal(k: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """1 − I_k (constant, so built once)."""
    return 1.0 - torch.eye(k, dtype=dtype, device=device)


def clip_factor(logits: torch.Tensor, labels: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """f = min_i f_i with f_i = 0 if m_i < 0 else min(1, m_i / l_i); detached (official code).

    Computed as clamp(m_i / l_i, 0, 1) in place, with the NaN of 0/0 read as 1: a zero shift
    (l_i = 0: the target class, or c·L_G = 0) gives 1 unless m_i < 0 (m_i / 0 = −inf → 0)."""
    with torch.no_grad():
        m = logits.gather(1, labels[:, None]) - logits  # m_i = z_y − z_i
        ratio = (m / shift).clamp_(0.0, 1.0).nan_to_num_(nan=1.0)
        return ratio.amin(dim=1, keepdim=True)


def margin_logits(
    logits: torch.Tensor,
    labels: torch.Tensor,
    c: float | torch.Tensor,
    variant: str,
    total: torch.Tensor | None = None,
    body: torch.Tensor | None = None,
    head_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The logits shifted by the Lipschitz margin of ``variant`` (``c`` a number or a 0-dim
    tensor: a CUDA graph takes it as an input, so a warm-up of c needs no recapture)."""
    if variant == "prop1":
        if total is None:
            raise ValueError("the prop1 LMT loss needs the network bound L_F")
        shift = prop1_margin(logits, labels, c, total)
    elif variant in ("prop2", "prop2_clipped"):
        if body is None or head_weight is None:
            raise ValueError(
                f"the {variant} LMT loss needs a network that ends in a linear layer (Prop. 2)"
            )
        shift = prop2_margin(labels, c, body, head_weight)
        if variant == "prop2_clipped":
            shift = shift * clip_factor(logits, labels, shift)
    else:
        raise ValueError(f"unknown LMT loss variant {variant!r}; choose one of {VARIANTS}")
    return logits + shift


def lmt_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    c: float,
    variant: str,
    total: torch.Tensor | None = None,
    body: torch.Tensor | None = None,
    head_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of the margin-shifted logits."""
    return F.cross_entropy(margin_logits(logits, labels, c, variant, total, body, head_weight), labels)
