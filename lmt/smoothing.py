"""Randomized smoothing: a probabilistic L2 certificate of the *smoothed* classifier.

Cohen, Rosenfeld and Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
ICML 2019 (arXiv:1902.02918), algorithm CERTIFY. The smoothed classifier of a base classifier f
is g(x) = argmax_c P(f(x + ε) = c), ε ~ N(0, σ²I). If the top class c_A has probability
p_A ≥ p̲_A > 1/2, then g(x + δ) = c_A for every ‖δ‖₂ < σ·Φ⁻¹(p̲_A) (their Theorem 1 with
p̲_B = 1 − p̲_A). CERTIFY estimates p̲_A by Monte Carlo, per example:

1. draw ``n0`` noisy copies x + ε and take the most frequent class ĉ of f (selection);
2. draw ``n`` fresh copies and count k = #{f(x + ε) = ĉ} (estimation);
3. p̲_A = the one-sided Clopper–Pearson lower bound at level 1 − α,
   ``scipy.stats.beta.ppf(alpha, k, n − k + 1)`` (0 for k = 0);
4. if p̲_A > 1/2: predict ĉ with radius σ·Φ⁻¹(p̲_A) (``scipy.stats.norm.ppf``); else abstain
   (radius 0).

The guarantee is probabilistic, per example: with probability at least 1 − α over the noise of
step 2, if CERTIFY returns ĉ with radius R then g predicts ĉ on the whole ball of radius R. It is
a statement about g, not about the base classifier f that the Lipschitz-margin certificate and
the attacks concern, so the two radii are not comparable (:mod:`lmt.soundness`).

Implementation choices:

* the base classifier is the float32 model as users evaluate it (eval mode); its prediction is
  the argmax of its logits (lowest index on ties); a NaN or infinite logit on any noisy copy is
  an error naming the examples (:class:`lmt.soundness.NonFiniteError`), never a count;
* noisy inputs are **not** clipped to the pixel box [0, 1], as in Cohen's code: the theorem
  needs x + ε with ε Gaussian, and clipping would replace the shift-invariant Gaussian by a
  distribution the Neyman–Pearson argument does not cover;
* the noise of example i comes from its own ``torch.Generator`` (CPU), seeded from
  (``seed``, example id) by :class:`numpy.random.SeedSequence` and drawn in blocks of
  ``NOISE_BLOCK`` copies (selection first, then estimation), so the noise of an example depends
  neither on the batch size, nor on the other examples, nor on the device (the counts can still
  differ across devices where the base classifier's float32 arithmetic does);
* p̲_A and the radius are computed in float64 (scipy); the comparison p̲_A > 1/2 too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import beta, norm
from torch import nn
from tqdm import tqdm

from lmt.params import CheckedParams, param

SHOWN_IDS = 50
# Noise is drawn in blocks of this many copies whatever the batch size: torch's CPU sampler
# produces other numbers for other tensor sizes, and a result must not depend on the batch size.
NOISE_BLOCK = 256


@dataclass(frozen=True)
class SmoothingSettings(CheckedParams):
    """Randomized smoothing (Cohen et al. 2019, CERTIFY): Gaussian noise level, sample counts,
    confidence, batch size and seed."""

    sigma: float = param(0.25, "Standard deviation σ of the Gaussian noise, in [0, 1] pixel units.", gt=0)
    n0: int = param(100, "Noisy samples per example that select the top class (Cohen: 100).", ge=1)
    n: int = param(1000, "Noisy samples per example that estimate its probability (Cohen: 100 000).", ge=1)
    alpha: float = param(0.001, "Failure probability α per example: each radius holds with probability ≥ 1 − α.",
                         gt=0, lt=0.5)
    batch_size: int = param(1000, "Noisy copies per forward pass.", ge=1)
    seed: int = param(0, "Seed of the noise (each example's generator is seeded from it and the example id).",
                      ge=0)


@dataclass
class SmoothedCertificates:
    """Per-example results of CERTIFY (float64 where a probability or a radius)."""

    prediction: torch.Tensor  # (N,) int64: ĉ, the top class of the selection samples
    count: torch.Tensor  # (N,) int64: k, how many of the n estimation samples f classified as ĉ
    p_lower: torch.Tensor  # (N,) float64: Clopper–Pearson lower bound of P(f(x + ε) = ĉ)
    radius: torch.Tensor  # (N,) float64: σ·Φ⁻¹(p_lower), 0 where abstained
    abstain: torch.Tensor  # (N,) bool: p_lower ≤ 1/2


def clopper_pearson_lower(k: np.ndarray | int, n: int, alpha: float) -> np.ndarray:
    """One-sided lower confidence bound at level 1 − ``alpha`` for a binomial proportion with
    ``k`` successes out of ``n`` (exact, Clopper–Pearson): the α-quantile of Beta(k, n − k + 1),
    0 where k = 0. Float64."""
    k = np.asarray(k, dtype=np.float64)
    if np.any((k < 0) | (k > n)) or n < 1:
        raise ValueError(f"need 0 ≤ k ≤ n and n ≥ 1, got k in [{k.min()}, {k.max()}], n = {n}")
    safe = np.where(k > 0, k, 1.0)  # beta.ppf needs a > 0; k = 0 gives 0 below
    return np.where(k > 0, beta.ppf(alpha, safe, n - k + 1), 0.0)


def smoothed_radius(p_lower: np.ndarray | float, sigma: float) -> np.ndarray:
    """Cohen's radius σ·Φ⁻¹(p) where p > 1/2, else 0 (abstain), in float64. A lower bound of
    p_A gives a certified radius; the exact p_A gives the exact radius of the smoothed classifier
    (for a linear base classifier, the distance to its decision boundary)."""
    p = np.asarray(p_lower, dtype=np.float64)
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"probabilities must lie in [0, 1], got {p[~((p >= 0) & (p <= 1))][:SHOWN_IDS]}")
    return np.where(p > 0.5, sigma * norm.ppf(np.where(p > 0.5, p, 0.75)), 0.0)


def example_generator(seed: int, example_id: int) -> torch.Generator:
    """The CPU generator of one example's noise, from (``seed``, ``example_id``)."""
    state = np.random.SeedSequence([int(seed), int(example_id)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _counts(model: nn.Module, x: torch.Tensor, num: int, sigma: float, generator: torch.Generator,
            batch_size: int, num_classes: int, device: torch.device) -> torch.Tensor | None:
    """Class counts of f over ``num`` noisy copies of the single example ``x``; None if a logit
    is not finite."""
    counts = torch.zeros(num_classes, dtype=torch.int64)
    pending = x.new_zeros((0, *x.shape))
    for start in range(0, num, NOISE_BLOCK):
        block = torch.randn((min(NOISE_BLOCK, num - start), *x.shape), generator=generator, dtype=x.dtype)
        pending = torch.cat([pending, block])
        last = start + NOISE_BLOCK >= num
        while len(pending) >= batch_size or (last and len(pending)):
            noise, pending = pending[:batch_size], pending[batch_size:]
            logits = model((x + sigma * noise).to(device))
            if not bool(torch.isfinite(logits).all()):
                return None
            counts += torch.bincount(logits.argmax(1).cpu(), minlength=num_classes)
    return counts


@torch.no_grad()
def certify_smoothed(
    model: nn.Module, x: torch.Tensor, settings: SmoothingSettings = SmoothingSettings(),
    example_ids: torch.Tensor | None = None, run_label: str = "model", progress: bool = False,
) -> SmoothedCertificates:
    """CERTIFY (Cohen et al. 2019) for every example of ``x`` (N, C, H, W) with the base
    classifier ``model`` (evaluated in eval mode on its own device). ``example_ids`` (default
    0..N−1) seed each example's noise. Raises :class:`lmt.soundness.NonFiniteError` naming the
    examples whose input or noisy logits are not finite."""
    from lmt.soundness import NonFiniteError

    if example_ids is None:
        example_ids = torch.arange(len(x))
    bad_inputs = (~torch.isfinite(x.flatten(1))).any(1).nonzero().flatten()
    if len(bad_inputs):
        ids = example_ids[bad_inputs].tolist()
        raise NonFiniteError(f"{run_label}: randomized smoothing: NaN or infinite inputs for {len(ids)} "
                             f"example(s); ids: {ids[:SHOWN_IDS]}")
    if len(x) == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return SmoothedCertificates(empty, empty.clone(), torch.zeros(0, dtype=torch.float64),
                                    torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.bool))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        num_classes = model(x[:1].to(device)).shape[1]
        selected, counted, broken = [], [], []
        for i in tqdm(range(len(x)), desc="smoothing", disable=not progress, mininterval=2.0):
            generator = example_generator(settings.seed, int(example_ids[i]))
            args = (settings.sigma, generator, settings.batch_size, num_classes, device)
            selection = _counts(model, x[i], settings.n0, *args)
            estimation = None if selection is None else _counts(model, x[i], settings.n, *args)
            if estimation is None:
                broken.append(int(example_ids[i]))
                continue
            top = int(selection.argmax())  # lowest index among ties
            selected.append(top)
            counted.append(int(estimation[top]))
    finally:
        model.train(was_training)
    if broken:
        raise NonFiniteError(f"{run_label}: randomized smoothing: the base classifier returned NaN or "
                             f"infinite logits on noisy copies of {len(broken)} example(s); ids: "
                             f"{broken[:SHOWN_IDS]}" + (f" (and {len(broken) - SHOWN_IDS} more)" if len(broken) > SHOWN_IDS else ""))
    count = np.asarray(counted, dtype=np.int64)
    p_lower = clopper_pearson_lower(count, settings.n, settings.alpha)
    radius = smoothed_radius(p_lower, settings.sigma)
    return SmoothedCertificates(
        prediction=torch.as_tensor(selected, dtype=torch.int64),
        count=torch.as_tensor(count),
        p_lower=torch.as_tensor(p_lower, dtype=torch.float64),
        radius=torch.as_tensor(radius, dtype=torch.float64),
        abstain=torch.as_tensor(~(p_lower > 0.5)),
    )
