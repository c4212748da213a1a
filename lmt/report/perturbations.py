"""Fig. 5 of the paper: test images beside perturbations of their certified size.

For each shown example the perturbation is the certified radius r times the normalised
gradient direction that most decreases the margin (a locally worst direction), clipped to the
[0, 1] pixel box (which only shortens it). By the certificate no perturbation of norm ≤ r
changes the prediction; the figure re-checks that for the one shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def margin_descent_perturbation(model: nn.Module, x: torch.Tensor, y: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """x + δ with ‖δ‖ ≤ radius along −∇(z_y − z_runner-up), clipped to [0, 1]."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    runner_up = logits.scatter(1, y[:, None], float("-inf")).argmax(1)
    margin = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, runner_up[:, None]).squeeze(1)
    (grad,) = torch.autograd.grad(margin.sum(), x)
    direction = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
    scale = radius.to(x).view(-1, *[1] * (x.dim() - 1))
    return (x - scale * direction).clamp(0, 1).detach()


def _show(ax: plt.Axes, image: np.ndarray, title: str, cmap: str | None = None) -> None:
    if cmap is not None:  # a signed perturbation, centred on zero
        limit = float(np.abs(image).max()) or 1.0
        ax.imshow(image[0], cmap=cmap, vmin=-limit, vmax=limit)
    elif image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1))
    ax.set_title(title, fontsize=8)
    ax.axis("off")


@dataclass
class PerturbationPanel:
    """What one method's block of Fig. 5 shows: its model and the chosen test examples."""

    method: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    radii: torch.Tensor


def certified_perturbation_figure(panels: Sequence[PerturbationPanel], title: str = "") -> plt.Figure:
    """Per method, a block headed by its name with three rows: image, perturbation
    (contrast-stretched), perturbed image with its prediction. A perturbed image that changes
    the prediction contradicts the certificate and is an error."""
    n = max(len(p.y) for p in panels)
    fig = plt.figure(figsize=(1.3 * n, 4.4 * len(panels) + (0.3 if title else 0.0)), layout="constrained")
    blocks = fig.subfigures(len(panels), 1, squeeze=False)[:, 0]
    for block, panel in zip(blocks, panels):
        model = panel.model.eval()
        device = next(model.parameters()).device
        x, y = panel.x.to(device), panel.y.to(device)
        perturbed = margin_descent_perturbation(model, x, y, panel.radii)
        with torch.no_grad():
            predicted = model(perturbed).argmax(1)
        flipped = (predicted != y).nonzero().flatten().tolist()
        if flipped:
            raise AssertionError(
                f"{panel.method}: a perturbation within the certified radius changed the prediction "
                f"of shown examples {flipped}: the certificate is unsound"
            )
        block.suptitle(panel.method, fontsize=10, fontweight="bold")
        rows = block.subplots(3, n, squeeze=False)
        for i in range(n):
            if i >= len(y):
                for ax in rows[:, i]:
                    ax.axis("off")
                continue
            delta = (perturbed[i] - x[i]).cpu().numpy()
            size = float(np.linalg.norm(delta))
            _show(rows[0, i], x[i].cpu().numpy(), f"label {int(y[i])}, r = {float(panel.radii[i]):.3g}")
            _show(rows[1, i], delta.mean(0, keepdims=True), f"‖δ‖ = {size:.3g}", cmap="RdBu")
            _show(rows[2, i], perturbed[i].cpu().numpy(), f"predicted {int(predicted[i])}")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
