"""Margins and certified L2 radii (Prop. 1 and Prop. 2), against the true label, sound in
floating point.

* Prop. 1: r = max(0, M) / (√2 · L_F), with M = z_y − max_{i≠y} z_i.
* Prop. 2: r = max(0, min_{i≠y} (z_y − z_i) / (L_G · ‖w_y − w_i‖)), for F = W·G(x) + b.

Both are one formula over pairwise Lipschitz bounds K[y, i] of z_y − z_i (Prop. 1: √2·L_F for
every pair). A misclassified point has a negative margin and radius 0.

A radius is a claim about the network as evaluated: :func:`certify_examples` computes the
margins with a float64 copy of the model and subtracts the rounding-error bounds of
:mod:`lmt.bounds.rounding` (float64 at x, float32 anywhere in the ball), so no float32 input
within the radius changes the float32 prediction, nor any input the exact network's:

    z32_y(x') − z32_i(x') ≥ d64_i − √2·(E64(x) + E32(x')) − K_yi·r,  E32(x') ≤ c(x) + b·r
    ⇒ r_i = (d64_i − √2·(E64(x) + c(x))) / (K_yi + √2·b).

The arithmetic of the formula itself is rounded towards zero by explicit relative margins.

Certificate kinds are registered by name in :data:`CERTIFICATES` (a
:class:`lmt.registry.Registry`): a kind is a function with the signature of
:func:`certify_examples` — the network's bounds, the model, examples and labels, the
:class:`~lmt.bounds.CertifySettings` (its parameters) — returning :class:`Certificates`. The
Lipschitz-margin certificate above is ``lipschitz_margin``. Randomized smoothing
(:mod:`lmt.smoothing`), a probabilistic certificate of another classifier (the smoothed one),
needs neither the network's bound nor its margins and returns other columns, so it is not in
this registry: it has its own settings (``certify.smoothing``), stage and rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from lmt.bounds import CertifiedBound, CertifySettings, NetworkBound
from lmt.bounds.rounding import FLOAT64_UNIT_ROUNDOFF, float64_forward, float64_model, logit_errors
from lmt.registry import Registry

# Relative margin on pairwise Lipschitz bounds computed in float64 (norms of weight
# differences, products of layer bounds): far above their rounding error.
PAIR_MARGIN = 1e-9
_U = FLOAT64_UNIT_ROUNDOFF


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y − max_{i≠y} z_i per example."""
    logits = logits.double()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.max(dim=1).values


def pairs_prop1(lipschitz: float, num_classes: int) -> torch.Tensor:
    """K[y, i] = √2·L_F for i ≠ y (Prop. 1), zero on the diagonal."""
    pairs = torch.full((num_classes, num_classes), math.sqrt(2) * lipschitz, dtype=torch.float64)
    return pairs.fill_diagonal_(0.0) * (1 + PAIR_MARGIN)


def pairwise_lipschitz(head_weight: torch.Tensor, body_bound: float) -> torch.Tensor:
    """K[y, i] = L_G · ‖w_y − w_i‖, the Lipschitz bound of z_y − z_i (Prop. 2; zero on the
    diagonal). The differences are formed explicitly (no ‖a‖² + ‖b‖² − 2ab cancellation)."""
    w = head_weight.double()
    return body_bound * (w[:, None, :] - w[None, :, :]).norm(dim=-1) * (1 + PAIR_MARGIN)


@dataclass(frozen=True)
class RoundingSlack:
    """What rounding costs each example's margins: ``margin`` (N,) is subtracted from every
    z_y − z_i, and ``coef`` is added to every pairwise bound (the float32 error's growth with r)."""

    margin: torch.Tensor
    coef: float = 0.0


def radii(
    logits: torch.Tensor, labels: torch.Tensor, pairs: torch.Tensor, slack: RoundingSlack | None = None,
    round_down: bool = True,
) -> torch.Tensor:
    """min over i ≠ y of max(0, (z_y − z_i − slack) / (K[y, i] + coef)), computed in float64;
    ``pairs`` is one (K, K) matrix or one per example, (N, K, K). Without ``slack`` the logits
    are taken as exact. ``round_down`` (a certificate): the arithmetic is rounded towards zero;
    otherwise plain float64 (the inequality chain's radii from measured lower bounds)."""
    logits = logits.double()
    labels = labels.to(logits.device)
    pairs = pairs.double().to(logits.device)
    pair = pairs[labels] if pairs.ndim == 2 else pairs[torch.arange(len(labels), device=logits.device), labels]
    diff = logits.gather(1, labels[:, None]) - logits  # z_y − z_i
    cost, coef = (0.0, 0.0) if slack is None else (slack.margin.to(logits).view(-1, 1), slack.coef)
    numerator, denominator = diff - cost, pair + coef
    if round_down:  # covers the rounding of d, of the subtraction and of the slack (a few ulps each)
        numerator = numerator - 4 * _U * (diff.abs() + cost)
        denominator = denominator * (1 + 4 * _U)
    # A pair with zero bound and no slack has a constant logit difference: it never flips if
    # positive, and is already lost otherwise.
    constant = torch.where(numerator > 0, float("inf"), 0.0).to(numerator)
    radius = numerator / denominator.clamp_min(1e-300)
    if round_down:
        radius = radius * (1 - 2 * _U)
    radius = torch.where(denominator > 0, radius, constant)
    radius = radius.scatter(1, labels[:, None], float("inf"))  # i = y does not constrain
    return radius.min(dim=1).values.clamp_min(0)


def radius_prop1(
    logits: torch.Tensor, labels: torch.Tensor, lipschitz: float, slack: RoundingSlack | None = None
) -> torch.Tensor:
    """Prop. 1 radius from the global bound L_F of the logit map."""
    return radii(logits, labels, pairs_prop1(lipschitz, logits.shape[1]), slack)


def radius_prop2(
    logits: torch.Tensor, labels: torch.Tensor, head_weight: torch.Tensor, body_bound: float,
    slack: RoundingSlack | None = None,
) -> torch.Tensor:
    """Prop. 2 radius: the smallest pairwise margin over its pairwise Lipschitz bound."""
    return radii(logits, labels, pairwise_lipschitz(head_weight, body_bound), slack)


@dataclass
class Certificates:
    """Per-example certificates of one model on one data split."""

    logits: torch.Tensor  # float64 (N, K)
    margin: torch.Tensor  # float64 margins z_y − max_{i≠y} z_i
    radius_prop1: torch.Tensor
    radius: torch.Tensor  # Prop. 2 where the network ends in a linear layer, else Prop. 1
    certificate: str  # "prop2" or "prop1"
    slack: RoundingSlack  # what rounding cost (margin units)
    radius_exact_arithmetic: torch.Tensor  # the same certificate without the rounding terms
    rounding: dict  # the bounds' parameters, for bounds.json


CertifyFunction = Callable[..., Certificates]
CERTIFICATES: Registry[CertifyFunction] = Registry("certificate kind")


@CERTIFICATES.register("lipschitz_margin", params=CertifySettings)
def certify_examples(
    network: NetworkBound, bound: CertifiedBound, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
    settings: CertifySettings = CertifySettings(), batch_size: int = 500,
) -> Certificates:
    """Margins from a float64 copy of ``model`` and radii that hold for the float32 network
    (and the exact one), for every example of ``x``."""
    activations = float64_forward(network, float64_model(model), x, batch_size)
    errors = logit_errors(network, bound, activations, settings)
    slack = RoundingSlack(math.sqrt(2) * (errors.float64 + errors.float32.const), math.sqrt(2) * errors.float32.coef)
    logits = activations.logits
    if bound.body is not None:
        pairs, kind = pairwise_lipschitz(bound.head_weight, bound.body), "prop2"
    else:
        pairs, kind = pairs_prop1(bound.total, logits.shape[1]), "prop1"
    radius = radii(logits, labels, pairs, slack)
    exact = radii(logits, labels, pairs)
    lost = (1 - radius / exact)[exact > 0]
    return Certificates(
        logits=logits,
        margin=margins(logits, labels),
        radius_prop1=radius_prop1(logits, labels, bound.total, slack),
        radius=radius,
        certificate=kind,
        slack=slack,
        radius_exact_arithmetic=exact,
        rounding={
            "float32_unit_roundoff": 2.0**-24,
            "float64_unit_roundoff": _U,
            "float32_error_coef": errors.float32.coef,
            "median_margin_slack": float(slack.margin.median()),
            "median_relative_radius_loss": float(lost.median()) if len(lost) else 0.0,
            "max_relative_radius_loss": float(lost.max()) if len(lost) else 0.0,
            "operations": errors.models,
        },
    )
