"""Bounds of the 1-Lipschitz-by-construction layers (:mod:`lmt.models.lipschitz_layers`),
computed from the trained weights — a layer's promise is reported beside its bound, never used
as one.

* AOL, Cayley, SOC: the layer is an ordinary linear or convolutional operator with an
  effective weight (W·D, Q[:out, :in]); its certified bound is that operator's, by the engine's
  guaranteed methods: exact SVD (dense), the eigenvalues of the explicit Gram matrix or the
  deterministic FFT/Cor. 1/Frobenius bound (convolutions, :mod:`lmt.bounds.conv`).
* SOC convolution (Σ_{i<T} Lⁱ/i! of a skew-adjoint convolution L): the exact norm of the
  explicit operator for small inputs; otherwise 1 + Σ_{i≥T} ρⁱ/i! with ρ ≥ ‖L‖ the engine's
  deterministic convolution bound (exp(L) is orthogonal, the rest is the Taylor tail).
* SLL, CPL (x − W·T·relu(Wᵀx + b), T = diag(t) ⪰ 0): the Jacobian is I − W·T·S·Wᵀ with S
  diagonal in [0, 1], a symmetric matrix with eigenvalues in [1 − ‖T^½Wᵀ‖², 1], so its norm is
  at most max(1, s² − 1) with s ≥ ‖T^½ Wᵀ‖₂ the certified norm of the operator diag(√t)·Wᵀ
  (again exact SVD or the convolution bounds). The construction (Schur test for SLL,
  t = 2/‖W‖² for CPL) promises s² ≤ 2; the engine checks it with the actual t and W.

Training mode returns the promise (a constant: these layers need no power iteration to be
trained as 1-Lipschitz); certification never does. Each certificate carries ``promised``, which
the graph walker copies to the layer's row; :func:`lmt.soundness.check_promises` fails a run
whose certified bound exceeds a promise by more than ``PROMISE_RTOL``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds.conv import conv_rounding, deterministic_bound, explicit_operator_norm
from lmt.bounds.numerics import product_up, with_margin
from lmt.bounds.registry import BoundContext, LayerBound, LayerCertificate, Rounding, register_bound
from lmt.bounds.rounding import FLOAT32_UNIT_ROUNDOFF, absolute_matrix_norm, gamma, nonnegative_operator_bound
from lmt.bounds.windows import conv_axes
from lmt.models.lipschitz_layers import (
    AOLConv2d,
    AOLLinear,
    CayleyLinear,
    CPLConv2d,
    CPLLinear,
    ResidualLipschitzLayer,
    SLLConv2d,
    SLLLinear,
    SOCConv2d,
    SOCLinear,
    _ConvResidual,
    skew_series,
)

MAX_ROUNDING_TERMS = 40_000  # the residual rounding model assumes γ_terms(float32) ≪ 1


def _certified_matrix_norm(weight: torch.Tensor) -> tuple[float, str]:
    return with_margin(float(torch.linalg.matrix_norm(weight.detach().double().cpu(), ord=2))), "exact(svd)"


def _plain_conv(weight: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
                bias: torch.Tensor | None = None) -> nn.Conv2d:
    """An ``nn.Conv2d`` (float64, CPU) with the given weight: what the layer computes."""
    out_channels, in_channels, kh, kw = weight.shape
    conv = nn.Conv2d(in_channels, out_channels, (kh, kw), stride, padding, bias=bias is not None).double()
    with torch.no_grad():
        conv.weight.copy_(weight.detach().double().cpu())
        if bias is not None:
            conv.bias.copy_(bias.detach().double().cpu())
    return conv


def _certified_conv_norm(conv: nn.Conv2d, ctx: BoundContext) -> tuple[float, str]:
    """The engine's guaranteed convolution bound (whatever ``certify.conv_method`` says: a
    promise is checked with guaranteed bounds only)."""
    weight = conv.weight.detach()
    exact = explicit_operator_norm(lambda x: conv._conv_forward(x, weight, None), ctx.input_shape,
                                   weight.device, ctx.settings.explicit_max_dim)
    if exact is not None:
        return exact, "exact(eigvalsh of the explicit Gram matrix)"
    certificate = deterministic_bound(weight, conv_axes(conv, ctx.input_shape), conv.groups)
    return certificate.value, certificate.method


class _PromisedBound(LayerBound):
    def train(self, module: Any, ctx: BoundContext) -> torch.Tensor:
        return torch.tensor(float(module.promised_lipschitz))


@register_bound(AOLLinear, CayleyLinear, SOCLinear)
class EffectiveLinearBound(_PromisedBound):
    """‖W_eff‖₂ by exact SVD of the effective weight (float32 values, as evaluated)."""

    def certify(self, module: Any, ctx: BoundContext) -> LayerCertificate:
        value, method = _certified_matrix_norm(module.effective_weight(torch.float64).detach())
        return LayerCertificate(value, f"{method} of the effective weight", promised=module.promised_lipschitz)

    def rounding(self, module: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        """fl(W_eff x + b): a dot product of in_features terms plus the bias, and for AOL one
        more rounding per weight entry (the product W·d, exact in float64), covered by one more
        term and a gain of (1 + 1e-6)·‖|W_eff|‖ (Cayley and SOC weights are float32 values as
        computed: no extra term)."""
        bias = module.bias
        extra = isinstance(module, AOLLinear)
        return Rounding(module.in_features + (bias is not None) + extra,
                        absolute_matrix_norm(module.effective_weight(torch.float64)) * (1 + 1e-6),
                        0.0 if bias is None else float(bias.detach().double().norm()))


@register_bound(AOLConv2d)
class EffectiveConvBound(_PromisedBound):
    """The certified norm of the convolution with the effective (rescaled) kernel."""

    def _conv(self, module: AOLConv2d) -> nn.Conv2d:
        return _plain_conv(module.effective_weight(torch.float64), module.stride, module.padding, module.bias)

    def certify(self, module: Any, ctx: BoundContext) -> LayerCertificate:
        value, method = _certified_conv_norm(self._conv(module), ctx)
        return LayerCertificate(value, f"{method} of the effective kernel", promised=module.promised_lipschitz)

    def rounding(self, module: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        """The convolution's model, plus one rounding per kernel entry (K·d in float32): one
        more term and a gain × (1 + 1e-6)."""
        conv = conv_rounding(self._conv(module), ctx.input_shape)
        return Rounding(conv.terms + 1, conv.gain * (1 + 1e-6), conv.offset)


@register_bound(SLLLinear, SLLConv2d, CPLLinear, CPLConv2d)
class ResidualBound(_PromisedBound):
    """max(1, s² − 1) with s ≥ ‖diag(√t)·Wᵀ‖₂ certified from the weights (module doc)."""

    def _down(self, module: ResidualLipschitzLayer, scale: torch.Tensor | None = None,
              absolute: bool = False) -> nn.Module:
        """Wᵀ as a float64 ``nn.Linear``/``nn.Conv2d`` (optionally rows scaled, or |Wᵀ|)."""
        weight = module.weight.detach().double().cpu()
        if absolute:
            weight = weight.abs()
        if scale is not None:
            weight = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
        if isinstance(module, _ConvResidual):
            return _plain_conv(weight, (1, 1), (module.padding, module.padding))
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False).double()
        with torch.no_grad():
            linear.weight.copy_(weight)
        return linear

    def scaled_norm(self, module: ResidualLipschitzLayer, ctx: BoundContext) -> tuple[float, str]:
        """s ≥ ‖diag(√t)·Wᵀ‖₂ for the layer's float32 t."""
        with torch.no_grad():
            t = module.scaling().detach().double().cpu()
        if (t < 0).any():
            raise ValueError(f"{ctx.name}: negative scaling t; the residual bound needs t ≥ 0")
        down = self._down(module, t.sqrt())
        if isinstance(down, nn.Conv2d):
            return _certified_conv_norm(down, ctx)
        return _certified_matrix_norm(down.weight)

    def certify(self, module: Any, ctx: BoundContext) -> LayerCertificate:
        s, method = self.scaled_norm(module, ctx)
        squared = product_up(s, s)
        # 1 + the rounding margin when s² ≤ 2: the statement is exact, but references computed
        # in floating point land a few ulps either side of 1.
        value = with_margin(max(1.0, squared - 1.0))
        return LayerCertificate(
            value, f"residual: max(1, s^2 - 1), s = ||diag(sqrt(t)) W^T|| = {s:.9g} by {method}",
            promised=module.promised_lipschitz,
        )

    def rounding(self, module: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        """y = fl(x − fl(W·fl(t ⊙ relu(fl(Wᵀx + b))))): with a ≥ ‖|W|‖₂ (Schur test), τ = max t,
        β = ‖b‖ over the hidden output, k₁ and k₄ the dot-product lengths of Wᵀx + b and W·h,
        forward error analysis gives ‖error‖ ≤ γ_K·(‖x‖ + 2G·τ·a·(a‖x‖ + β)), K = k₁ + k₄ + 2,
        G = (1 + γ_K)³ ≥ the product of the three steps' (1 + γ) growth factors (float32 or
        finer; see the README's "1-Lipschitz layers")."""
        with torch.no_grad():
            tau = float(module.scaling().detach().double().abs().max())
        down = self._down(module, absolute=True)
        hidden = module.weight.shape[0]
        if isinstance(down, nn.Conv2d):
            absolute_kernel = down.weight.detach()
            a = nonnegative_operator_bound(lambda x: down._conv_forward(x, absolute_kernel, None), ctx.input_shape)
            kh, kw = down.kernel_size
            k1, k4 = module.channels * kh * kw + 1, hidden * kh * kw
            spatial = math.prod(ctx.input_shape[1:])
        else:
            a = absolute_matrix_norm(down.weight)
            k1, k4 = module.features + 1, hidden
            spatial = 1
        beta = float(module.bias.detach().double().norm()) * math.sqrt(spatial)
        terms = k1 + k4 + 2
        if terms > MAX_ROUNDING_TERMS:
            raise ValueError(f"{ctx.name}: {terms} rounding terms exceed the residual model's limit")
        growth = (1 + gamma(terms, FLOAT32_UNIT_ROUNDOFF)) ** 3 * (1 + 1e-9)
        return Rounding(terms, 1.0 + 2 * growth * tau * a * a, 2 * growth * tau * a * beta)


def taylor_tail(rho: float, terms: int) -> float:
    """An upper bound of Σ_{i≥terms} ρⁱ/i! (ρ ≥ 0): ρᵀ/T!·1/(1 − ρ/(T+1)) when ρ < T + 1 (the
    ratios of consecutive terms are at most ρ/(T+1)), else inf; with the rounding margin."""
    if rho == 0:
        return 0.0
    if rho >= terms + 1:
        return math.inf
    try:
        leading = math.exp(terms * math.log(rho) - math.lgamma(terms + 1))
    except OverflowError:
        return math.inf
    return with_margin(with_margin(leading) / (1 - rho / (terms + 1)))


def taylor_partial_sum(rho: float, terms: int) -> float:
    """Σ_{i<terms} ρⁱ/i! (the triangle inequality's bound of ‖Σ_{i<T} Lⁱ/i!‖), with margin."""
    total, term = 1.0, 1.0
    for i in range(1, terms):
        term = term * rho / i
        total += term
    return with_margin(with_margin(total))


@register_bound(SOCConv2d)
class SOCConvBound(_PromisedBound):
    """Σ_{i<T} Lⁱ/i! (T = ``module.terms``, the eval-mode series), L the skew-adjoint
    convolution with the layer's float32 skew kernel S, after pixel-unshuffle and channel
    padding, first ``out_channels`` channels kept (both of norm ≤ 1)."""

    @staticmethod
    def kernel(module: SOCConv2d) -> torch.Tensor:
        """S as float64 on the CPU, checked to be exactly skew (the tail bound relies on it)."""
        with torch.no_grad():
            kernel = module.skew_kernel(torch.float64).detach().cpu()
        if not torch.equal(kernel, -kernel.transpose(0, 1).flip(2, 3)):
            raise ValueError("SOCConv2d: the skew kernel is not exactly skew (S ≠ −flip(Sᵀ))")
        return kernel

    @staticmethod
    def inner_shape(module: SOCConv2d, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(channels, H, W) on which L acts."""
        _, h, w = input_shape
        return module.channels, h // module.stride, w // module.stride

    def skew_norm(self, module: SOCConv2d, kernel: torch.Tensor, ctx: BoundContext) -> tuple[float, str]:
        """ρ ≥ ‖L‖₂: the engine's deterministic convolution bound (FFT / Cor. 1 / Frobenius)."""
        conv = _plain_conv(kernel, (1, 1), (module.padding, module.padding))
        certificate = deterministic_bound(conv.weight.detach(), conv_axes(conv, self.inner_shape(module, ctx.input_shape)), 1)
        return certificate.value, certificate.method

    def certify(self, module: Any, ctx: BoundContext) -> LayerCertificate:
        kernel, terms = self.kernel(module), module.terms
        exact = explicit_operator_norm(
            lambda x: skew_series(x, kernel, terms, module.stride, module.channels, module.out_channels),
            ctx.input_shape, kernel.device, ctx.settings.explicit_max_dim)
        if exact is not None:
            return LayerCertificate(exact, f"exact(eigvalsh of the explicit Gram matrix of the {terms}-term series)",
                                    promised=module.promised_lipschitz)
        rho, method = self.skew_norm(module, kernel, ctx)
        tail = taylor_tail(rho, terms)
        value = min(with_margin(1.0 + tail), taylor_partial_sum(rho, terms))
        return LayerCertificate(
            value, f"taylor: min(1 + tail, partial sum), tail = sum_(i>={terms}) rho^i/i! = {tail:.3g}, "
                   f"rho = ||L|| <= {rho:.9g} by {method}",
            promised=module.promised_lipschitz,
        )

    def rounding(self, module: Any, ctx: BoundContext, lipschitz: float) -> Rounding:
        """Each term t̂_i = fl(fl(S ∗ t̂_{i−1})/i) errs from L·t̂_{i−1}/i by e_i, |e_i| ≤
        γ_{n+1}·|A||t̂_{i−1}|/i elementwise (n = c·k², the dot-product length; one more rounding
        for the division), so ‖e_i‖ ≤ γ_{n+1}·a·‖t̂_{i−1}‖/i with a ≥ ‖|A|‖₂ (Schur test on |S|).
        With ρ ≥ ‖L‖₂ (the deterministic bound) and α = ρ + γ_{n+1}·a: ‖t̂_i‖ ≤ αⁱ/i!·‖x‖, and by
        induction (δ_i = L·δ_{i−1}/i + e_i) ‖t̂_i − Lⁱx/i!‖ ≤ γ_{n+1}·a·α^{i−1}/(i−1)!·‖x‖;
        summed over i < T: ≤ γ_{n+1}·a·E·‖x‖, E = Σ_{i<T} αⁱ/i!. The ordered sum of the T terms
        and the bias adds ≤ γ_T·(E‖x‖ + β), β = ‖b‖ over the output. Together ≤
        γ_{n+1+T}·((a + 1)·E·‖x‖ + β) (γ at float32's unit roundoff in α: valid for float32 and
        float64). Pixel-unshuffle, channel padding and cropping are exact."""
        kernel, terms = self.kernel(module), module.terms
        shape = self.inner_shape(module, ctx.input_shape)
        absolute = kernel.abs()
        a = nonnegative_operator_bound(lambda x: F.conv2d(x, absolute, padding=module.padding), shape)
        rho, _ = self.skew_norm(module, kernel, ctx)
        n = module.channels * module.kernel_size ** 2
        alpha = (min(rho, a) + gamma(n + 1, FLOAT32_UNIT_ROUNDOFF) * a) * (1 + 1e-9)
        growth = taylor_partial_sum(alpha, terms)
        beta = 0.0
        if module.bias is not None:
            beta = float(module.bias.detach().double().norm()) * math.sqrt(shape[1] * shape[2])
        return Rounding(n + 1 + terms, (a + 1) * growth * (1 + 1e-9), beta)
