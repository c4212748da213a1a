"""Convolution bounds against the explicit operator matrix: seeded sweeps over shapes, strides,
paddings (zeros, circular, reflect, replicate), dilations and groups."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds import CertifySettings, NetworkBound
from lmt.bounds.batchnorm import ConvBatchNormBound
from lmt.bounds.layers import LinearBound
from lmt.bounds import conv as conv_module
from lmt.bounds.registry import BoundContext
from lmt.bounds.conv import (
    Conv2dBound, comparison_bounds, conv_map, deterministic_bound, explicit_operator_norm,
)
from lmt.bounds.conv_spectrum import circular_spectrum_bound
from lmt.bounds.windows import Axis, conv_axes
from tests.bound_helpers import conv_sweep, exact_norm, operator_matrix, random_conv

MODES = ["zeros", "circular", "reflect", "replicate"]


@pytest.mark.parametrize("mode", MODES)
def test_deterministic_bound_dominates_exact_norm(mode: str) -> None:
    """The certificate's conv bound is never below the largest singular value of the explicit
    matrix, for 40 random layers per padding mode."""
    ratios = []
    for conv, shape in conv_sweep(seed=MODES.index(mode), mode=mode, count=40):
        exact = exact_norm(conv, shape)
        certified = deterministic_bound(conv.weight, conv_axes(conv, shape), conv.groups)
        spectral = circular_spectrum_bound(conv.weight, conv_axes(conv, shape), conv.groups)
        assert certified.value >= exact * (1 - 1e-12), (conv, shape, exact, certified)
        assert spectral.value >= exact * (1 - 1e-12), (conv, shape, exact, spectral)
        assert certified.value <= spectral.value
        if spectral.exact:
            assert spectral.value == pytest.approx(exact, rel=1e-8)
        ratios.append(certified.value / exact)
    assert min(ratios) < 1 + 1e-6, "no layer of the sweep was bounded exactly"


CIRCULAR_EXACT = [
    # (in, out, kernel, stride, padding, dilation, groups, H, W): every output read once
    (2, 3, 3, 1, 1, 1, 1, 6, 7),
    (3, 2, 5, 1, 2, 1, 1, 5, 5),  # kernel as wide as the input
    (2, 4, 3, 2, 1, 1, 2, 8, 6),  # stride 2, even input, groups
    (1, 2, 3, 1, 2, 2, 1, 7, 4),  # dilation
    (3, 3, 4, 2, 1, 1, 3, 8, 8),  # even kernel, depthwise
    (2, 2, 3, 3, 1, 1, 1, 9, 6),  # stride 3
    (2, 3, 3, 1, 1, 1, 1, 2, 2),  # kernel wider than the input: taps fold
]


@pytest.mark.parametrize("case", CIRCULAR_EXACT, ids=lambda c: "conv{}-{}k{}s{}p{}d{}g{}_{}x{}".format(*c))
def test_circular_padding_bound_is_exact(case: tuple[int, ...]) -> None:
    cin, cout, k, s, p, d, g, h, w = case
    conv = nn.Conv2d(cin, cout, k, s, p, d, g, bias=False, padding_mode="circular")
    shape = (cin, h, w)
    spectral = circular_spectrum_bound(conv.weight, conv_axes(conv, shape), g)
    assert spectral.exact
    assert spectral.value == pytest.approx(exact_norm(conv, shape), rel=1e-8)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_same_padding_with_even_kernel() -> None:
    """'same' padding pads asymmetrically; the bound follows PyTorch's choice."""
    conv = nn.Conv2d(2, 3, (4, 2), padding="same", dilation=(1, 3), bias=False)
    shape = (2, 7, 9)
    exact = exact_norm(conv, shape)
    certified = deterministic_bound(conv.weight, conv_axes(conv, shape), 1).value
    assert exact <= certified <= exact * 1.5
    assert comparison_bounds(conv.weight, conv_axes(conv, shape), 1)["frobenius"] == pytest.approx(
        float(operator_matrix(conv, shape).norm()), rel=1e-9
    )


CONV_CASES = [
    # (in, out, kernel, stride, padding, dilation, groups, H, W)
    (1, 4, 3, 1, 0, 1, 1, 8, 8),
    (2, 3, 3, 1, 1, 1, 1, 7, 9),
    (3, 5, 4, 2, 1, 1, 1, 10, 10),  # the W&K layer shape (stride 2, pad 1, even input)
    (2, 4, 3, 2, 1, 1, 1, 8, 8),  # the WRN down-sampling conv: official code lost a row here
    (4, 2, 1, 2, 0, 1, 1, 8, 8),  # 1×1 stride-2 shortcut
    (2, 2, 3, 1, 2, 2, 1, 9, 9),  # dilation
    (4, 6, 3, 1, 1, 1, 2, 6, 6),  # groups
]
CASE_ID = "conv{}-{}k{}s{}p{}d{}g{}_{}x{}".format


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: CASE_ID(*c))
def test_comparison_bounds_chain(case: tuple[int, ...]) -> None:
    """exact ≤ Thm 1/2 ≤ Cor. 1 ≤ Cisse ≤ …; Peck ≥ Cor. 1; Frobenius = ‖A‖_F exactly; the
    power-iteration certificate is within 1e-3 of the exact norm."""
    cin, cout, k, s, p, d, g, h, w = case
    conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=False)
    shape = (cin, h, w)
    exact = exact_norm(conv, shape)
    network = NetworkBound(nn.Sequential(conv), shape)
    settings = CertifySettings(n_iter=2000, n_starts=8, conv_method="power_iteration")
    power = network.certified_bound(settings)
    assert exact * (1 - 1e-12) <= power.total <= exact * (1 + 1e-3)
    assert power.layers[0]["method"].startswith("power_iteration")
    row = network.steps[0]
    values = row.bound.compare(row.target, network.context(row, "certify", settings))
    assert values["estimate"] <= exact * (1 + 1e-12), "the power iteration's lower bound"
    assert values["thm1_2"] >= exact * (1 - 1e-12)
    assert values["thm1_2"] <= values["cor1"] * (1 + 1e-6) <= values["cisse"] * (1 + 1e-6)
    assert values["cor1"] <= values["peck"] * (1 + 1e-12)
    assert values["frobenius"] == pytest.approx(float(operator_matrix(conv, shape).norm()), rel=1e-9)


@pytest.mark.parametrize("mode", MODES)
def test_cor1_and_frobenius_are_sound_for_every_padding_mode(mode: str) -> None:
    for conv, shape in conv_sweep(seed=10 + MODES.index(mode), mode=mode, count=25):
        values = comparison_bounds(conv.weight, conv_axes(conv, shape), conv.groups)
        matrix = operator_matrix(conv, shape)
        exact = float(torch.linalg.matrix_norm(matrix, ord=2))
        assert values["cor1"] >= exact * (1 - 1e-12)
        assert values["peck"] >= values["cor1"] * (1 - 1e-12)
        assert values["frobenius"] == pytest.approx(float(matrix.norm()), rel=1e-9)
        axes = conv_axes(conv, shape)
        if mode == "zeros" or axes[0].overlap * axes[1].overlap <= math.prod(conv.kernel_size):
            assert values["cor1"] <= values["cisse"] * (1 + 1e-12)


@pytest.mark.parametrize("size,kernel,stride,pad", [(28, 4, 2, 1), (14, 4, 2, 1), (32, 3, 1, 1), (32, 3, 2, 1), (8, 1, 2, 0), (5, 5, 1, 0), (7, 3, 3, 0)])
def test_overlap_count_matches_the_official_formula(size: int, kernel: int, stride: int, pad: int) -> None:
    """Without dilation, n per axis is ⌈min(k, H + 2p − k + 1)/s⌉ (notes §2.3)."""
    axis = Axis(size, kernel, stride, 1, pad, pad)
    assert axis.overlap == math.ceil(min(kernel, size + 2 * pad - kernel + 1) / stride)


def test_overlap_count_with_dilation_counts_the_taps_that_hit() -> None:
    """Stride 2 and dilation 2: every tap of a window reads the same parity, so a pixel is read
    by up to k windows — the dilation-free formula would say ⌈k/2⌉."""
    assert Axis(20, 3, 2, 2, 2, 2).overlap == 3
    assert Axis(20, 3, 2, 1, 1, 1).overlap == 2


@pytest.mark.parametrize("mode", MODES)
def test_small_layers_are_certified_exactly_from_the_explicit_gram_matrix(mode: str) -> None:
    """Input or output with at most ``explicit_max_dim`` entries: AᵀA or AAᵀ, whichever is
    smaller, gives the exact norm."""
    for conv, shape in conv_sweep(seed=20 + MODES.index(mode), mode=mode, count=10):
        exact = exact_norm(conv, shape)
        value = explicit_operator_norm(conv_map(conv, conv.weight.detach().double()), shape, torch.device("cpu"))
        assert value == pytest.approx(exact, rel=1e-8) and value >= exact * (1 - 1e-12)


def test_deterministic_bound_is_the_default_and_says_so() -> None:
    small = NetworkBound(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)), (3, 8, 8)).certified_bound()
    assert small.layers[0]["method"].startswith("exact(eigvalsh")
    large = NetworkBound(nn.Sequential(nn.Conv2d(17, 17, 3, padding=1)), (17, 16, 16)).certified_bound()
    assert large.layers[0]["method"].startswith("fft(") and "deterministic" in large.layers[0]["method"]
    assert explicit_operator_norm(lambda x: x, (17, 16, 16), torch.device("cpu")) is None
    off = NetworkBound(nn.Sequential(nn.Conv2d(3, 4, 3)), (3, 8, 8)).certified_bound(CertifySettings(explicit_max_dim=0))
    assert off.layers[0]["method"].startswith(("fft(", "cor1(", "frobenius("))
    with pytest.raises(ValueError, match="conv_method"):
        CertifySettings(conv_method="svd")


TRAINING_PATHS = [("zeros", "im2col"), ("zeros", "conv2d_input"), ("circular", ""),
                  ("reflect", ""), ("replicate", "")]


@pytest.mark.parametrize(("mode", "path"), TRAINING_PATHS, ids=lambda v: v or "autograd")
def test_training_adjoint_is_the_transpose_of_the_operator_matrix(
    mode: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The power-iteration update uses an explicit adjoint for zero padding (im2col's fold for
    single-group layers up to IM2COL_MAX_ENTRIES, conv2d_input otherwise): the map and the
    adjoint must equal A and Aᵀ of the explicit operator matrix, strided layers on even inputs
    included (the official transposed convolution lost a row and a column there)."""
    if path == "conv2d_input":
        monkeypatch.setattr(conv_module, "IM2COL_MAX_ENTRIES", 0)
    im2col_calls = []
    im2col_maps = conv_module.im2col_maps
    monkeypatch.setattr(conv_module, "im2col_maps", lambda *a: im2col_calls.append(a) or im2col_maps(*a))
    rng = random.Random(7)
    checked = single_group = 0
    while checked < 25:
        drawn = random_conv(rng, mode)
        if drawn is None:
            continue
        conv, shape = drawn
        conv = conv.double()
        matrix = operator_matrix(conv, shape)
        u = torch.randn((1, *shape), dtype=torch.float64)
        ctx = BoundContext("train", "conv", shape, state={"u": u})
        forward, adjoint = Conv2dBound().training_maps(conv, ctx)
        y = torch.randn((1, matrix.shape[0]), dtype=torch.float64)
        out_shape = forward(u).shape
        torch.testing.assert_close(forward(u).flatten(), matrix @ u.flatten())
        torch.testing.assert_close(adjoint(y.view(out_shape)).flatten(), matrix.T @ y.flatten())
        if path == "im2col" and conv.groups == 1:  # its maps also take batches (the others: u's)
            two = torch.randn((2, *shape), dtype=torch.float64)
            y_two = torch.randn((2, matrix.shape[0]), dtype=torch.float64)
            torch.testing.assert_close(forward(two).flatten(1), two.flatten(1) @ matrix.T)
            torch.testing.assert_close(adjoint(y_two.view(2, *out_shape[1:])).flatten(1), y_two @ matrix)
        checked += 1
        single_group += conv.groups == 1
    assert len(im2col_calls) == (single_group if path == "im2col" else 0)
    assert path != "im2col" or single_group >= 5


@pytest.mark.parametrize("path", ["im2col", "conv2d_input"])
def test_linear_and_conv_batchnorm_training_adjoints_are_transposes(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "conv2d_input":
        monkeypatch.setattr(conv_module, "IM2COL_MAX_ENTRIES", 0)
    linear = nn.Linear(7, 5).double()
    u = torch.randn(1, 7, dtype=torch.float64)
    forward, adjoint = LinearBound().training_maps(linear, BoundContext("train", "fc", (7,), state={"u": u}))
    y = torch.randn(1, 5, dtype=torch.float64)
    torch.testing.assert_close(adjoint(y), y @ linear.weight.detach())
    for x in (u, torch.randn(3, 7, dtype=torch.float64), torch.randn(1, 4, 7, dtype=torch.float64)):
        torch.testing.assert_close(forward(x), F.linear(x, linear.weight.detach()))
    conv, bn = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False).double(), nn.BatchNorm2d(3).double()
    bn.eval()
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(-2.0, 2.0)
    shape = (2, 6, 6)
    matrix = operator_matrix(nn.Sequential(conv, bn), shape)
    u = torch.randn((1, *shape), dtype=torch.float64)
    ctx = BoundContext("train", "conv_bn", shape, state={"u": u})
    forward, adjoint = ConvBatchNormBound().training_maps((conv, bn), ctx)
    y = torch.randn(1, matrix.shape[0], dtype=torch.float64)
    torch.testing.assert_close(forward(u).flatten(), matrix @ u.flatten())
    torch.testing.assert_close(adjoint(y.view(1, 3, 3, 3)).flatten(), matrix.T @ y.flatten())


@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 9, 7)])
def test_im2col_training_step_matches_the_convolution(shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """The im2col and conv2d_input paths of a train-mode Conv+BN step agree: sigma, the next
    vector and the gradients in the kernel, γ and (through the batch variance) the input."""
    results = []
    for limit in (conv_module.IM2COL_MAX_ENTRIES, 0):
        monkeypatch.setattr(conv_module, "IM2COL_MAX_ENTRIES", limit)
        torch.manual_seed(3)
        conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=False)
        bn = nn.BatchNorm2d(5).train()
        nn.init.uniform_(bn.weight, -2.0, 2.0)
        bound = NetworkBound(nn.Sequential(conv, bn), shape)
        x = torch.randn(4, *shape, requires_grad=True)
        bound.model[0](x)
        sigma = bound.training_bound().total
        sigma.backward()
        u = next(iter(bound.buffers())).clone()
        results.append((sigma.detach(), u, conv.weight.grad, bn.weight.grad, x.grad))
    for fast, reference in zip(*results):
        torch.testing.assert_close(fast, reference)


@pytest.mark.parametrize(("conv", "shape"), [
    (nn.Conv2d(16, 32, 4, stride=2, padding=1), (16, 14, 14)),  # stride 2 on an even input
    (nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2), (4, 11, 12)),
    (nn.Conv2d(3, 5, (3, 2), stride=(1, 2), padding=(1, 0)), (3, 7, 9)),
])
def test_the_certify_power_iteration_with_the_explicit_adjoint_is_autograds_bitwise(conv, shape) -> None:
    """conv2d_input is the kernel autograd's vector–Jacobian product calls, so the comparison
    bounds (thm1_2, estimate) are unchanged, bit for bit, while A is not re-run for Aᵀ."""
    from lmt.bounds.conv import Conv2dBound
    from lmt.bounds.power_iteration import certified_operator_norm

    torch.manual_seed(0)
    conv = conv.double()
    settings = CertifySettings(n_iter=200, n_starts=6, seed=3)
    ctx = BoundContext("certify", "conv", shape, settings=settings)
    bound = Conv2dBound()
    adjoint = bound.certify_adjoint(conv, ctx)
    assert adjoint is not None
    with_autograd = certified_operator_norm(bound.linear_map(conv, ctx, detach=True), shape, 200, 6, 3,
                                            torch.device("cpu"))
    assert bound.power_iteration(conv, ctx) == with_autograd
    circular = nn.Conv2d(3, 5, 3, padding=1, padding_mode="circular").double()
    assert bound.certify_adjoint(circular, BoundContext("certify", "conv", (3, 6, 6), settings=settings)) is None
