"""Certificates are sound for the network as it is evaluated in floating point.

* On float32 affine models (2-D and 784-D) and the 2-D ReLU net of test_exact_distances, no
  certified radius exceeds the exact minimal adversarial distance, with tolerance 0; the radius
  given up to the rounding term is printed (median relative).
* Radii from float32 logits alone (what the harness did before) do exceed it on the same
  models, so these tests can fail.
* The rounding-error bound dominates the error actually observed when the network is
  evaluated in float16 (unit roundoff 2⁻¹¹, where rounding errors are large enough to see),
  for networks with every kind of operation the default models use.
* Reported numbers are computed with TF32 off, and the provenance says so.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from lmt.bounds import NetworkBound
from lmt.bounds.rounding import float64_forward, float64_model, gamma, logit_errors
from lmt.certify import certify_examples, radius_prop2
from lmt.numerics import relative_difference
from lmt.data import Dataset
from lmt.models import create_model
from tests.test_exact_distances import _linear, _problem, _relu_net, exact_distance

FLOAT16_UNIT_ROUNDOFF = 2.0**-11


def _affine_exact(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """min over i ≠ y of (z_y − z_i)/‖w_y − w_i‖ for the exact affine map with the model's
    float32 parameters, the dot products summed exactly (float32·float32 products are exact in
    float64, math.fsum rounds the sum once): far more accurate than any certificate's slack."""
    linear = model[-1]
    w = linear.weight.detach().double().numpy()
    b = linear.bias.detach().double().numpy()
    xs = x.flatten(1).double().numpy()
    out = []
    for xi, yi in zip(xs, y.tolist()):
        z = np.array([math.fsum(np.concatenate([wk * xi, [bk]])) for wk, bk in zip(w, b)])
        ratios = [(z[yi] - z[i]) / np.linalg.norm(w[yi] - w[i]) for i in range(len(z)) if i != yi]
        out.append(max(0.0, min(ratios)))
    return torch.tensor(out, dtype=torch.float64)


def _affine_784(mnist: Dataset) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    with torch.no_grad():
        model[1].weight.mul_(0.3)
    x = mnist.test.x[:300]
    y = model(x).argmax(1)  # certify every example against its float32 prediction
    return model, x, y


def _certify(model: nn.Module, x: torch.Tensor, y: torch.Tensor, shape: tuple[int, ...]):
    network = NetworkBound(model, shape)
    return certify_examples(network, network.certified_bound(), model, x, y)


def _loss(radius: torch.Tensor, without: torch.Tensor) -> float:
    positive = without > 0
    return float((1 - radius[positive] / without[positive]).median())


@pytest.mark.parametrize("kind", ["2d", "784d"])
def test_float32_affine_certificates_never_exceed_the_exact_distance(kind: str, mnist: Dataset) -> None:
    if kind == "2d":
        model = _linear()
        x, y, free, _ = _problem(model)
        shape = (2,)
    else:
        model, x, y = _affine_784(mnist)
        free, shape = _affine_exact(model, x, y), (1, 28, 28)
    certificates = _certify(model, x, y, shape)
    excess = (certificates.radius - free).max()
    assert excess <= 0, f"a certificate exceeds the exact distance by {excess:.3g}"
    assert (certificates.radius_prop1 <= certificates.radius).all()
    loss = _loss(certificates.radius, certificates.radius_exact_arithmetic)
    print(f"{kind} affine: median relative radius given up to rounding {loss:.2e}")
    assert 0 < loss < 0.05  # the rounding term costs something, and little


@pytest.mark.parametrize("kind", ["2d", "784d"])
def test_radii_from_float32_logits_alone_overstate_the_exact_distance(kind: str, mnist: Dataset) -> None:
    """The failure the float64 margins and the rounding term prevent: without them, certified
    radii exceed the exact distance on these very models."""
    if kind == "2d":
        model = _linear()
        x, y, free, _ = _problem(model)
    else:
        model, x, y = _affine_784(mnist)
        free = _affine_exact(model, x, y)
    with torch.no_grad():
        logits = model(x).double()
    head = model[-1].weight.detach()
    naive = radius_prop2(logits, y, head, 1.0)
    assert (naive > free).any(), "float32 logits should overstate some distances here"


def test_relu_net_certificates_never_exceed_the_exact_distance() -> None:
    model = _relu_net()
    x, y, free, _ = _problem(model)
    certificates = _certify(model, x, y, (2,))
    assert (certificates.radius <= free).all()
    assert (certificates.radius[:4] == 0).all() and (certificates.radius[4:] > 0).all()
    loss = _loss(certificates.radius, certificates.radius_exact_arithmetic)
    print(f"2-D ReLU net: median relative radius given up to rounding {loss:.2e}")
    # The oracle's own check: the exact distance is what the piecewise analysis says.
    assert free[5] == pytest.approx(exact_distance(model, x[5].double().numpy(), int(y[5]), box=False))


def test_a_collapsed_head_certifies_finitely_and_passes_the_gate(mnist: Dataset) -> None:
    """Equal head rows (what the unclipped LMT loss drove a full-MNIST run to at c = 2.5): every
    logit difference is the constant b_y − b_i, so every pair bound is exactly 0. In exact
    arithmetic the prediction never flips (+inf where the margin is positive, 0 where it is not);
    the certificate pays for rounding, so it stays finite, and the certify stage's gate passes
    the frame instead of refusing a collapsed but valid network."""
    import pandas as pd

    from lmt.soundness import require_finite

    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
    with torch.no_grad():
        model[3].weight.copy_(model[3].weight[:1].expand(10, -1))
        model[3].bias.copy_(torch.linspace(-0.5, 0.4, 10))  # class 9 wins everywhere
    x, y = mnist.test.x[:50], mnist.test.y[:50]
    certificates = _certify(model, x, y, (1, 28, 28))
    winners = y == 9
    assert winners.any() and (~winners).any()
    exact, radius = certificates.radius_exact_arithmetic, certificates.radius
    assert torch.isinf(exact[winners]).all() and (exact[~winners] == 0).all()
    assert torch.isfinite(radius).all() and (radius[winners] > 0).all() and (radius[~winners] == 0).all()
    require_finite(pd.DataFrame({"example_id": range(len(y)), "certified_radius": radius.numpy(),
                                 "radius_without_rounding": exact.numpy()}), "collapsed")


class _Residual(nn.Module):
    """Conv + BN, ReLU, a residual sum, average pooling, concatenation, tanh, sigmoid and a head:
    every kind of step the rounding analysis distinguishes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.pool = nn.AvgPool2d(4)
        self.fc = nn.Linear(2 * 4 * 7 * 7, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        h = self.pool(h + self.conv2(h))
        h = torch.cat([torch.tanh(h), torch.sigmoid(h)], dim=1).flatten(1)
        return self.head(torch.relu(self.fc(h)))


def _with_statistics(model: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.3, 2.0)
                module.weight.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.5, 0.5)
    return model.eval()


def _small_wong_kolter() -> nn.Sequential:
    """The W&K CNN's layer kinds with a smaller first fully connected layer: float16's
    γ_k = k·u/(1 − k·u) is useless for k ≥ 2¹⁰ terms (the W&K FC layer has 1 568)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 7 * 7, 50), nn.ReLU(), nn.Linear(50, 10),
    )


@pytest.mark.parametrize("name", ["small_wong_kolter", "lenet_mnist", "residual"])
def test_rounding_bound_dominates_the_observed_float16_error(name: str, mnist: Dataset) -> None:
    """Evaluate the network in float16 (its parameters rounded to float16 define the exact
    network): every example's observed logit error ‖F̂16(x) − F(x)‖ stays below the bound the
    analysis gives at unit roundoff 2⁻¹¹. These are torch's real CPU kernels (which accumulate
    in float32, so they are far inside the bound); tests/test_rounding_models.py checks the
    models sharply against emulated worst-case arithmetic."""
    torch.manual_seed(0)
    builders = {"residual": _Residual, "small_wong_kolter": _small_wong_kolter}
    model = builders[name]() if name in builders else create_model(name)
    model = _with_statistics(model)
    exact = copy.deepcopy(model).half().float().eval()  # float16-representable parameters
    x = mnist.test.x[:64].half().float()
    network = NetworkBound(exact, (1, 28, 28))
    bound = network.certified_bound()
    activations = float64_forward(network, float64_model(exact), x)
    errors = logit_errors(network, bound, activations, unit_roundoff=FLOAT16_UNIT_ROUNDOFF)
    with torch.no_grad():
        observed = (copy.deepcopy(exact).half()(x.half()).double() - activations.logits).norm(dim=1)
    allowed = errors.float32.const + errors.float64
    assert (observed <= allowed).all(), f"observed {observed.max():.3g} > bound {allowed.min():.3g}"
    ratio = float((allowed / observed.clamp_min(1e-30)).median())
    print(f"{name}: float16 error bound / observed error, median {ratio:.3g}")


def test_gamma() -> None:
    assert gamma(0, 2.0**-24) == 0.0
    assert gamma(1, 2.0**-24) == pytest.approx(2.0**-24, rel=1e-7)
    with pytest.raises(ValueError):
        gamma(2**23, 2.0**-24)


def test_reported_numbers_are_computed_without_tf32() -> None:
    from lmt.numerics import float_settings, strict_float32
    from lmt.provenance import record

    strict_float32()
    settings = record({}, "cpu", 0.0)["float_settings"]
    assert settings == float_settings()
    assert settings["cuda_matmul_fp32_precision"] == "ieee"
    assert settings["cudnn_conv_fp32_precision"] == "ieee"


def test_relative_difference_is_relative_to_the_largest_entry_and_fails_closed() -> None:
    want = torch.tensor([4.0, -2.0])
    assert relative_difference(torch.tensor([4.0, -1.0]), want) == 0.25
    assert relative_difference(torch.zeros(2), torch.zeros(2)) == 0.0
    assert relative_difference(torch.tensor([0.0, 1e-30]), torch.zeros(2)) == math.inf
    assert relative_difference(torch.zeros(0, 3), torch.zeros(0, 3)) == 0.0
    assert math.isnan(relative_difference(torch.tensor([4.0]), want))  # a shape that broadcasts is no match
    for bad in (float("nan"), float("inf")):
        assert math.isnan(relative_difference(torch.tensor([4.0, bad]), want))
        assert math.isnan(relative_difference(want, torch.tensor([bad, -2.0])))
