"""L2 PGD made a minimal-distance attack by a per-example bisection over epsilon."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from lmt.attacks.base import Attack
from lmt.attacks.foolbox_import import ep, fb
from lmt.attacks.registry import ATTACKS
from lmt.params import param


class _PerExampleL2PGD(fb.attacks.L2PGD):
    """Foolbox's L2 PGD with one epsilon per example (an ``(N, 1, …)`` tensor), and optionally
    the logit-margin loss max_{i≠y} z_i − z_y instead of cross-entropy.

    ``run`` only multiplies by epsilon (step size, random start) except in ``project``, which
    needs the epsilons as a flat ``(N,)`` vector to match the per-example norms.
    """

    def __init__(self, *, loss: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loss = loss

    def get_loss_fn(self, model: Any, labels: ep.Tensor) -> Callable[[ep.Tensor], ep.Tensor]:
        if self.loss == "crossentropy":
            return super().get_loss_fn(model, labels)

        def margin(inputs: ep.Tensor) -> ep.Tensor:
            logits, y = model(inputs).raw, labels.raw  # torch tensors: autograd sees through
            true = logits.gather(1, y[:, None]).squeeze(1)
            others = logits.scatter(1, y[:, None], float("-inf")).amax(1)
            return ep.astensor((others - true).sum())

        return margin

    def project(self, x: ep.Tensor, x0: ep.Tensor, epsilon: ep.Tensor) -> ep.Tensor:
        delta = x - x0
        norms = ep.maximum(delta.flatten(start=1).norms.l2(axis=-1), 1e-12)
        factor = ep.minimum(1, epsilon.flatten() / norms)
        return x0 + delta * factor.reshape((-1,) + (1,) * (x.ndim - 1))


@ATTACKS.register("pgd")
@dataclass(frozen=True)
class PGD(Attack):
    """L2 PGD (Foolbox L2PGD, fixed epsilon) made a minimal-distance attack by a per-example
    bisection over epsilon: double epsilon from initial_epsilon until the example is fooled
    (at most expansion_steps times), then bisect search_steps times.

    Each example has its own bracket (the largest epsilon that failed, the smallest that
    succeeded). Each epsilon costs ``steps`` PGD iterations with step ``rel_stepsize·epsilon``
    on ``loss``. The closest verified adversarial example is kept.
    """

    steps: int = param(20, "PGD iterations per epsilon.", ge=1)
    rel_stepsize: float = param(0.1, "Step size relative to epsilon.", gt=0)
    random_start: bool = param(True, "Start from a uniform point of the epsilon ball.")
    loss: str = param(
        "margin", "PGD's loss: the logit margin max_{i≠y} z_i − z_y (heads for the nearest class) or "
        "cross-entropy (Foolbox's).", choices=("margin", "crossentropy"),
    )
    initial_epsilon: float = param(1.0, "First epsilon tried.", gt=0)
    expansion_steps: int = param(4, "Doublings of epsilon for examples not yet fooled.", ge=0)
    search_steps: int = param(8, "Bisection steps per example.", ge=0)

    def perturb(self, fmodel: fb.PyTorchModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pgd = _PerExampleL2PGD(
            loss=self.loss, rel_stepsize=self.rel_stepsize, steps=self.steps, random_start=self.random_start
        )
        lo = torch.zeros(len(y), dtype=x.dtype, device=x.device)  # largest epsilon that failed
        hi = torch.full_like(lo, float("inf"))  # smallest epsilon that succeeded
        best = x.clone()  # not adversarial: the caller records +inf where nothing was found
        best_norm = torch.full_like(lo, float("inf"))

        def attempt(idx: torch.Tensor, eps: torch.Tensor) -> None:
            """PGD at per-example ``eps`` on the examples ``idx``; update the brackets."""
            xs, ys = x[idx], y[idx]
            adv = pgd.run(fmodel, xs, ys, epsilon=ep.astensor(eps.view((-1,) + (1,) * (x.ndim - 1))))
            with torch.no_grad():
                fooled = fmodel(adv).argmax(1) != ys
                norm = (adv - xs).flatten(1).norm(dim=1)
            better = fooled & (norm < best_norm[idx])
            best[idx[better]] = adv[better]
            best_norm[idx[better]] = norm[better]
            hi[idx[fooled]] = torch.minimum(hi[idx[fooled]], eps[fooled])
            lo[idx[~fooled]] = torch.maximum(lo[idx[~fooled]], eps[~fooled])

        everyone = torch.arange(len(y), device=x.device)
        eps = torch.full_like(lo, self.initial_epsilon)
        for _ in range(self.expansion_steps + 1):
            idx = everyone[torch.isinf(hi)]
            if len(idx) == 0:
                break
            attempt(idx, eps[idx])
            eps = 2 * eps
        for _ in range(self.search_steps):
            idx = everyone[torch.isfinite(hi)]
            if len(idx) == 0:
                break
            attempt(idx, (lo[idx] + hi[idx]) / 2)
        return best
