"""The 1-Lipschitz layers: the engine's certified bound of each layer against the exact norm,
on random and on briefly trained weights, and the promise check of the soundness gate.

* Layers that are linear operators (AOL, Cayley, SOC): the certified bound must be ≥ the
  spectral norm of the explicit Jacobian (tolerance 0) and ≤ it·(1 + 1e-6) (the engine's
  methods are exact at these sizes).
* Residual layers (SLL, CPL): the Lipschitz constant is at most the largest ‖I − W·T·S·Wᵀ‖
  over activation patterns S; every pattern of the dense layers (2^hidden), S ∈ {0, I} and
  random patterns of the convolutional ones, and the Jacobians at random inputs, must stay ≤
  the certified bound (tolerance 0).
* Every layer keeps its promise: certified ≤ 1 + 1e-6. A layer that does not (SOC with two
  series terms, CPL with an unconverged power iteration) is named by the gate.
* The SOC convolution's Taylor-tail bound (inputs too large for the explicit operator) is ≥
  the explicit Jacobian's norm too, its float64 evaluation preserves norms up to the tail, and
  its float32 evaluation stays within its rounding model.
"""

from __future__ import annotations

import copy
import itertools
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds import CertifySettings, NetworkBound
from lmt.bounds.registry import BoundContext, lookup_bound
from lmt.models import lipschitz_layers as lip
from lmt.soundness import PROMISE_RTOL, SoundnessError, check_promises, check_soundness
from tests.bound_helpers import jacobian, spectral_norm

LINEAR = {
    "aol_linear": (lambda: lip.AOLLinear(6, 4), (6,)),
    "aol_linear_rows": (lambda: lip.AOLLinear(7, 3), (7,)),
    "aol_conv": (lambda: lip.AOLConv2d(3, 4, 3), (3, 6, 6)),
    "aol_conv_strided": (lambda: lip.AOLConv2d(2, 3, 4, stride=2, padding=1), (2, 6, 6)),
    "cayley": (lambda: lip.CayleyLinear(6, 4), (6,)),
    "soc": (lambda: lip.SOCLinear(5, 5, terms=16), (5,)),
    "soc_conv": (lambda: lip.SOCConv2d(3, 3, 3), (3, 5, 5)),
    "soc_conv_channels_up": (lambda: lip.SOCConv2d(2, 4, 3), (2, 5, 5)),
    "soc_conv_channels_down": (lambda: lip.SOCConv2d(4, 2, 5), (4, 5, 5)),
    "soc_conv_strided": (lambda: lip.SOCConv2d(2, 8, 3, stride=2), (2, 6, 6)),
}
RESIDUAL = {
    "sll_linear": (lambda: lip.SLLLinear(6, 5), (6,)),
    "sll_conv": (lambda: lip.SLLConv2d(2, 3), (2, 5, 5)),
    "cpl_linear": (lambda: lip.CPLLinear(6, 5), (6,)),
    "cpl_conv": (lambda: lip.CPLConv2d(2, (5, 5), 3), (2, 5, 5)),
}
RATIOS: dict[str, list[float]] = {}


def certificate(layer: nn.Module, shape: tuple[int, ...]):
    bound = lookup_bound(layer, "")
    with torch.no_grad():
        return bound.certify(layer, BoundContext("certify", "layer", shape, CertifySettings()))


def trained(layer: nn.Module, shape: tuple[int, ...], steps: int = 30, seed: int = 0) -> nn.Module:
    """The layer after ``steps`` Adam steps (lr 0.02) of a 3-class task on random data, as the
    first layer of layer → flatten → linear."""
    torch.manual_seed(seed)
    x, y = torch.randn(64, *shape), torch.randint(0, 3, (64,))
    model = nn.Sequential(layer, nn.Flatten(), nn.LazyLinear(3))
    model(x[:1])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return layer.eval()


def residual_reference(layer: lip.ResidualLipschitzLayer, shape: tuple[int, ...], seed: int = 0) -> float:
    """The largest ‖I − W·T·S·Wᵀ‖ over the patterns S described in the module docstring, and
    over the Jacobians of the float64 layer at random inputs."""
    layer = copy.deepcopy(layer).double().eval()
    with torch.no_grad():
        t = layer.scaling().double()
    gen = torch.Generator().manual_seed(seed)
    probe = layer.down(torch.zeros(1, *shape, dtype=torch.float64), layer.weight)
    hidden = probe.shape[1:]
    if math.prod(hidden) <= 10:
        patterns = [torch.tensor(p, dtype=torch.float64).view(1, *hidden)
                    for p in itertools.product([0.0, 1.0], repeat=math.prod(hidden))]
    else:
        patterns = [torch.zeros(1, *hidden, dtype=torch.float64), torch.ones(1, *hidden, dtype=torch.float64)]
        patterns += [(torch.rand(1, *hidden, generator=gen, dtype=torch.float64) < 0.5).double() for _ in range(20)]
    best = 0.0
    for s in patterns:
        def f(x: torch.Tensor, s: torch.Tensor = s) -> torch.Tensor:
            h = layer.down(x, layer.weight) * s
            return x - layer.up(h * t.view(layer.hidden_shape(h)), layer.weight)
        best = max(best, spectral_norm(jacobian(f, shape)))
    for _ in range(10):
        x0 = 3 * torch.randn(1, *shape, generator=gen, dtype=torch.float64)
        best = max(best, spectral_norm(jacobian(lambda v: layer(v + x0), shape)))
    return best


def _exact(layer: nn.Module, shape: tuple[int, ...]) -> float:
    layer64 = copy.deepcopy(layer).double().eval()
    with torch.no_grad():
        return spectral_norm(jacobian(lambda v: layer64(v), shape))


@pytest.mark.parametrize("weights", ["random", "trained"])
@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_layer_certified_against_its_exact_norm(name: str, weights: str) -> None:
    build, shape = LINEAR[name]
    torch.manual_seed(1)
    layer = build().eval() if weights == "random" else trained(build(), shape)
    certified = certificate(layer, shape)
    exact = _exact(layer, shape)
    RATIOS.setdefault(name, []).append(certified.value / exact)
    print(f"{name} ({weights}): certified {certified.value!r}, exact {exact!r}, ratio {certified.value / exact!r}")
    assert certified.value >= exact, f"certified {certified.value!r} below the exact {exact!r}"
    assert certified.value <= exact * (1 + 1e-6)
    assert certified.promised == 1.0 and certified.value <= 1 + PROMISE_RTOL


@pytest.mark.parametrize("weights", ["random", "trained"])
@pytest.mark.parametrize("name", sorted(RESIDUAL))
def test_residual_layer_certified_against_every_activation_pattern(name: str, weights: str) -> None:
    build, shape = RESIDUAL[name]
    torch.manual_seed(1)
    layer = build().eval() if weights == "random" else trained(build(), shape)
    with torch.no_grad():
        layer.bias.normal_()  # activation patterns other than all-on at the random inputs
    certified = certificate(layer, shape)
    reference = residual_reference(layer, shape)
    print(f"{name} ({weights}): certified {certified.value!r}, reference {reference!r} ({certified.method})")
    assert certified.value >= reference, f"certified {certified.value!r} below {reference!r}"
    assert certified.promised == 1.0 and certified.value <= 1 + PROMISE_RTOL


def test_aol_rescaling_is_the_papers_formula() -> None:
    """d_i = (Σ_j |WᵀW|_ij)^(-1/2), against an explicit loop; the conv version's AᵀA row sums,
    from the explicit operator matrix, never exceed the kernel-autocorrelation ones."""
    torch.manual_seed(0)
    layer = lip.AOLLinear(4, 5)
    w = layer.weight.detach().double()
    d = [1 / math.sqrt(sum(abs(float(w[:, i] @ w[:, j])) for j in range(4))) for i in range(4)]
    torch.testing.assert_close(layer.scaling().double(), torch.tensor(d, dtype=torch.float64), rtol=1e-7, atol=0)
    conv = lip.AOLConv2d(2, 3, 3)
    kernel = conv.weight.detach().double()
    a = jacobian(lambda x: F.conv2d(x, kernel, padding=1), (2, 5, 5))
    gram_rows = (a.T @ a).abs().sum(1).view(2, 25).max(1).values
    bound_rows = conv.scaling().double() ** -2
    assert (gram_rows <= bound_rows * (1 + 1e-6)).all()


def test_cpl_power_iteration_normalizer_and_too_few_soc_terms_break_the_promise() -> None:
    """A CPL layer whose power-iteration estimate has not converged and a SOC layer with two
    Taylor terms are certified above 1; the gate names them."""
    torch.manual_seed(0)
    soc = lip.SOCLinear(6, 6, terms=2)
    with torch.no_grad():
        soc.weight.mul_(3)
    cpl = lip.CPLLinear(6, 6, normalizer="power_iteration", warmup_iterations=0)
    model = nn.Sequential(soc, cpl, lip.AOLLinear(6, 3)).eval()
    bound = NetworkBound(model, (6,)).certified_bound()
    promises = {p["type"]: p for p in bound.promises()}
    assert set(promises) == {"SOCLinear", "CPLLinear", "AOLLinear"}
    assert promises["SOCLinear"]["excess"] > 0.1 and promises["CPLLinear"]["excess"] > PROMISE_RTOL
    assert promises["AOLLinear"]["excess"] <= PROMISE_RTOL
    rows = {row["type"]: row for row in bound.layers}
    assert rows["SOCLinear"]["promised"] == 1.0 and rows["SOCLinear"]["bound"] > 1.1
    with pytest.raises(SoundnessError, match=r"(?s)2 layer\(s\) certified above.*0 \(SOCLinear\).*1 \(CPLLinear\)"):
        check_promises(bound.promises(), "run x")
    # The certificate itself uses the certified bounds, so it stays sound: the product bound
    # dominates the network's Jacobian at random inputs.
    model64 = copy.deepcopy(model).double()
    for seed in range(5):
        x0 = torch.randn(1, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert spectral_norm(jacobian(lambda v: model64(v + x0), (6,))) <= bound.total
    # ... and enough terms keep the promise.
    good = nn.Sequential(lip.SOCLinear(6, 6, terms=30), lip.CPLLinear(6, 6)).eval()
    check_promises(NetworkBound(good, (6,)).certified_bound().promises(), "run y")


TAIL = CertifySettings(explicit_max_dim=0)  # never the explicit operator: the Taylor-tail bound


@pytest.mark.parametrize("weights", ["random", "trained"])
@pytest.mark.parametrize("name", [n for n in sorted(LINEAR) if n.startswith("soc_conv")])
def test_soc_conv_taylor_tail_bound_against_its_exact_norm(name: str, weights: str) -> None:
    """1 + Σ_{i≥T} ρⁱ/i! (ρ the deterministic bound of ‖L‖) is ≥ the SVD of the explicit
    Jacobian (tolerance 0) and keeps the promise (≤ 1 + 1e-6) with the default 12 terms."""
    build, shape = LINEAR[name]
    torch.manual_seed(2)
    layer = build().eval() if weights == "random" else trained(build(), shape)
    bound = lookup_bound(layer, "")
    with torch.no_grad():
        certified = bound.certify(layer, BoundContext("certify", "layer", shape, TAIL))
    exact = _exact(layer, shape)
    print(f"{name} ({weights}): tail bound {certified.value!r}, exact {exact!r} ({certified.method})")
    assert certified.method.startswith("taylor")
    assert certified.value >= exact, f"certified {certified.value!r} below the exact {exact!r}"
    assert certified.promised == 1.0 and certified.value <= 1 + PROMISE_RTOL


def test_taylor_tail_bounds_the_series_remainder() -> None:
    """taylor_tail(ρ, T) ≥ Σ_{i≥T} ρⁱ/i! summed exactly (rationals, 80 terms past T; the rest
    is far below the margin), within 2 % of it where the layers use it (ρ ≤ 0.7, T ≥ 6), inf
    where its geometric bound does not apply (ρ ≥ T + 1); taylor_partial_sum ≥ the partial sum."""
    from fractions import Fraction

    from lmt.bounds.lipschitz import taylor_partial_sum, taylor_tail

    for rho in (0.0, 0.1, 0.7, 1.5, 3.0):
        for terms in (1, 2, 6, 12, 16):
            r = Fraction(rho)
            exact = sum(r**i / math.factorial(i) for i in range(terms, terms + 80))
            tail = taylor_tail(rho, terms)
            if rho >= terms + 1:
                assert tail == math.inf
                continue
            assert Fraction(tail) >= exact
            if rho <= 0.7 and terms >= 6:
                assert tail <= float(exact) * 1.02
            partial = sum(r**i / math.factorial(i) for i in range(terms))
            assert Fraction(taylor_partial_sum(rho, terms)) >= partial


def test_soc_conv_is_skew_orthogonal_up_to_the_tail() -> None:
    """S = −flip(Sᵀ) exactly, so L = conv(S) is skew-adjoint on the zero-padded domain
    (⟨Lx, y⟩ = −⟨x, Ly⟩); the float64 layer changes norms by at most the tail bound plus its
    float64 rounding model, for 12 and for 6 (training) terms."""
    from lmt.bounds.lipschitz import SOCConvBound, taylor_tail
    from lmt.bounds.rounding import FLOAT64_UNIT_ROUNDOFF, gamma

    torch.manual_seed(3)
    shape = (4, 7, 7)
    layer = lip.SOCConv2d(4, 4, 5, bias=False).double().eval()
    kernel = layer.skew_kernel()
    assert torch.equal(kernel, -kernel.transpose(0, 1).flip(2, 3))
    x, y = torch.randn(2, 1, *shape, dtype=torch.float64)
    lx, ly = (F.conv2d(v, kernel, padding=2) for v in (x, y))
    assert abs(float((lx * y).sum() + (x * ly).sum())) <= 1e-12 * float(lx.norm() * y.norm())
    bound = SOCConvBound()
    ctx = BoundContext("certify", "layer", shape, TAIL)
    rho, _ = bound.skew_norm(layer, SOCConvBound.kernel(layer), ctx)
    assert rho <= layer.correction * (1 + 1e-6)
    xs = torch.randn(32, *shape, dtype=torch.float64)
    for terms in (12, 6):
        layer.terms = terms
        rounding = bound.rounding(layer, ctx, 1.0)
        allowed = taylor_tail(rho, terms) + gamma(rounding.terms, FLOAT64_UNIT_ROUNDOFF) * rounding.gain
        with torch.no_grad():
            ratios = layer(xs).flatten(1).norm(dim=1) / xs.flatten(1).norm(dim=1)
        deviation = float((ratios - 1).abs().max())
        print(f"{terms} terms: max |‖y‖/‖x‖ − 1| = {deviation:.3g}, allowed {allowed:.3g}")
        assert deviation <= allowed


def test_soc_conv_sums_train_terms_in_training_and_terms_in_eval() -> None:
    """Training mode: ``train_terms`` terms (cheap, uncertified); eval mode (what is certified):
    ``terms``; both are the series of the same skew kernel."""
    torch.manual_seed(6)
    layer = lip.SOCConv2d(3, 3, 3, bias=False, terms=12, train_terms=6).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        kernel = layer.skew_kernel()
        for mode, terms in ((True, 6), (False, 12)):
            expected = lip.skew_series(x, kernel, terms, 1, 3, 3)
            torch.testing.assert_close(layer.train(mode)(x), expected, rtol=0, atol=0)
        assert not torch.equal(layer.train()(x), layer.eval()(x))


def test_soc_conv_float32_evaluation_within_its_rounding_model() -> None:
    """‖fl32(layer(x)) − layer(x)‖ ≤ γ_K(u32)·(gain·‖x‖ + offset) (plus the float64 reference's
    own γ_K(u64) share), with a random bias."""
    from lmt.bounds.rounding import FLOAT32_UNIT_ROUNDOFF, FLOAT64_UNIT_ROUNDOFF, gamma

    torch.manual_seed(4)
    shape = (8, 9, 9)
    layer = lip.SOCConv2d(8, 8, 3).eval()
    with torch.no_grad():
        layer.bias.normal_()
    rounding = lookup_bound(layer, "").rounding(layer, BoundContext("certify", "layer", shape, TAIL), 1.0)
    twin = copy.deepcopy(layer).double()
    xs = 5 * torch.randn(16, *shape)
    with torch.no_grad():
        error = (layer(xs).double() - twin(xs.double())).flatten(1).norm(dim=1)
    norms = xs.double().flatten(1).norm(dim=1)
    model = (rounding.gain * norms + rounding.offset)
    allowed = (gamma(rounding.terms, FLOAT32_UNIT_ROUNDOFF) + gamma(rounding.terms, FLOAT64_UNIT_ROUNDOFF)) * model
    print(f"float32 error / rounding model: max {float((error / allowed).max()):.3g}")
    assert (error <= allowed).all()


def test_soc_conv_with_too_few_terms_breaks_its_promise() -> None:
    """Two Taylor terms (I + L) of a 5×5 skew convolution: ‖I + L‖ = (1 + ‖L‖²)^½ > 1. Both the
    exact and the tail bound are above the promise, the gate names the layer, and the network's
    certified bound still dominates its Jacobian."""
    torch.manual_seed(5)
    shape = (4, 6, 6)
    soc = lip.SOCConv2d(4, 4, 5, terms=2)
    model = nn.Sequential(soc, nn.Flatten(), lip.AOLLinear(4 * 36, 3)).eval()
    for settings in (CertifySettings(), TAIL):
        bound = NetworkBound(model, shape).certified_bound(settings)
        promises = {p["type"]: p for p in bound.promises()}
        print(f"{settings.explicit_max_dim}: SOCConv2d certified {promises['SOCConv2d']['certified']!r}")
        assert promises["SOCConv2d"]["excess"] > 0.01 and promises["AOLLinear"]["excess"] <= PROMISE_RTOL
        with pytest.raises(SoundnessError, match=r"(?s)1 layer\(s\) certified above.*0 \(SOCConv2d\)"):
            check_promises(bound.promises(), "run x")
        assert _exact(model, shape) <= bound.total
    exact = _exact(soc, shape)
    assert exact > 1.01
    # ... and the default 12 terms keep it.
    soc.terms = 12
    check_promises(NetworkBound(model, shape).certified_bound(TAIL).promises(), "run y")


def test_the_gate_fails_a_run_whose_promise_is_broken() -> None:
    frame = pd.DataFrame({"example_id": [0, 1], "margin": [1.0, 2.0], "lipschitz_bound": [1.5, 1.5],
                          "certified_radius": [0.1, 0.2], "promise_excess": [0.25, 0.25]})
    with pytest.raises(SoundnessError, match=r"exceeds the constant its construction promises by 0\.25"):
        check_soundness(frame, "run z")
    check_soundness(frame.assign(promise_excess=-0.5), "run z")
    check_soundness(frame.assign(promise_excess=5e-7), "run z")


def test_float32_and_float64_models_use_the_same_factors() -> None:
    """The rescalings are computed in float64 and rounded once to float32, whatever the
    evaluation dtype: the float64 copy of the certificate evaluates the same network."""
    torch.manual_seed(0)
    for layer in [lip.AOLConv2d(2, 3, 3), lip.SLLConv2d(2, 3), lip.CPLConv2d(2, (5, 5)), lip.CayleyLinear(4, 4),
                  lip.SOCConv2d(3, 3)]:
        twin = copy.deepcopy(layer).double()
        if isinstance(layer, lip.SOCConv2d):
            torch.testing.assert_close(layer.skew_kernel(torch.float64), twin.skew_kernel(torch.float64),
                                       rtol=0, atol=0)
        elif hasattr(layer, "effective_weight"):
            torch.testing.assert_close(layer.effective_weight(torch.float64), twin.effective_weight(torch.float64),
                                       rtol=0, atol=0)
        else:
            torch.testing.assert_close(layer.scaling(), twin.scaling(), rtol=0, atol=0)


def test_offset_cross_entropy_is_aols_loss() -> None:
    from lmt.methods import StepContext, create_method
    from lmt.models import create_model

    torch.manual_seed(0)
    model = create_model("cayley_mlp")
    network = NetworkBound(model, (1, 28, 28))
    method = create_method("offset_ce", {"eps": 0.5, "temperature": 0.25})
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    loss, logits = method.loss(StepContext(model, network, 0.0), x, y)
    assert float(network.training_bound().total) == 1.0  # the promise, in training
    shifted = logits - math.sqrt(2) * 0.5 * F.one_hot(y, 10)
    torch.testing.assert_close(loss, 0.25 * F.cross_entropy(shifted / 0.25, y))
    loss.backward()
    gloro = create_method("gloro", {"eps": 0.3})
    loss, _ = gloro.loss(StepContext(model, network, 0.0), x, y)  # Prop. 1 pairs without a head
    assert torch.isfinite(loss)


def test_offset_cross_entropy_defaults_are_1_lipschitz_layers_compared_s() -> None:
    """Their CIFAR-10 runs set LipCrossEntropyLoss(margin=0.3993, temperature=0.25): the margin
    √2·ε at ε = 2·36/255 (baselines/offset_ce.py cites the files)."""
    from lmt.methods import create_method

    params = create_method("offset_ce", {}).params
    assert round(math.sqrt(2) * params.eps, 4) == 0.3993 and params.temperature == 0.25
