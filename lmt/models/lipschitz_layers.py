"""1-Lipschitz-by-construction layers (written for this harness from the papers' equations).

* :class:`AOLLinear`, :class:`AOLConv2d` — almost-orthogonal layers (Prach & Lampert, ECCV 2022):
  W ↦ W·D, d_i = (Σ_j |WᵀW|_ij)^(-1/2); for a convolution |WᵀW| is the kernel's
  autocorrelation over the input channels and all offsets.
* :class:`SLLLinear`, :class:`SLLConv2d` — SDP-based Lipschitz layers (Araujo et al., ICLR 2023):
  x − W·diag(t)·σ(Wᵀx + b), t_i = 2 / Σ_j |WᵀW|_ij·q_j/q_i, q = exp(q̃) learnt.
* :class:`CPLLinear`, :class:`CPLConv2d` — convex potential layers (Meunier et al., ICML 2022):
  x − (2/N²)·W·σ(Wᵀx + b) with N ≥ ‖W‖₂: by default a guaranteed, differentiable bound (SVD,
  or the FFT circular-spectrum bound of the convolution); ``normalizer="power_iteration"``
  keeps the paper's persistent power-iteration estimate (one step per training forward) times
  (1 + ``CPL_MARGIN``) — an estimate from below, so whether it covers ‖W‖₂² is *checked* by
  the bound engine.
* :class:`CayleyLinear` — orthogonal by the Cayley transform (Trockman & Kolter, ICLR 2021):
  Q = (I + A)⁻¹(I − A) of a skew-symmetric A, W = Q[:out, :in].
* :class:`SOCLinear` — dense skew-orthogonal layer (Singla & Feizi, ICML 2021): exp(A) by its
  Taylor series with ``terms`` terms; orthogonal only up to the truncation error, which the
  engine measures (too few terms break the promise, and the soundness gate says so).
* :class:`SOCConv2d` — skew-orthogonal convolution (Singla & Feizi, ICML 2021): the truncated
  exponential Σ_{i<terms} Lⁱx/i! of a skew-adjoint convolution L = conv(K) − conv_transpose(K),
  rescaled by a guaranteed bound of its norm; orthogonal up to the truncation error (measured
  by the engine, as for SOCLinear).

Every layer declares ``promised_lipschitz`` (1). None of these promises is used by a
certificate: the bound engine (:mod:`lmt.bounds.lipschitz`) computes each layer's bound from its
weights, and a bound above the promise is reported (``bounds.json``) and fails the soundness
gate.

**Floating point.** The data-dependent factors (D, t, Q) are computed from the parameters in
float64 and rounded once to float32 (:func:`_rounded`), in every evaluation dtype. The float32
network, its float64 copy (margins) and the bound engine therefore use the same factor values:
the network the certificate speaks about is the one with those float32 factors. This rests on
float64 arithmetic being deterministic for the same inputs on one machine (the rounding to
float32 hides last-bit differences except at exact ties).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

CPL_MARGIN = 1e-3  # CPL divides by (1 + CPL_MARGIN)·(power-iteration estimate of ‖W‖₂)²


def _rounded(value: torch.Tensor) -> torch.Tensor:
    """A factor computed in float64, rounded once to float32 (then used in the input's dtype)."""
    return value.float()


def _safe_rsqrt(s: torch.Tensor) -> torch.Tensor:
    """s^(-1/2), 0 where s == 0 (a dead column: its weights are 0, so any factor is sound)."""
    return torch.where(s > 0, s.clamp_min(torch.finfo(s.dtype).tiny).rsqrt(), torch.zeros_like(s))


def _safe_reciprocal(s: torch.Tensor) -> torch.Tensor:
    return torch.where(s > 0, 1.0 / s.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(s))


def conv_gram_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """The kernel of A·Aᵀ for the stride-1 convolution A with ``kernel`` (out, in, kh, kw) on
    an unbounded domain: (out, out, 2kh−1, 2kw−1), entry [i, j, δ] = Σ_{c,u} K[i,c,u+δ]·K[j,c,u].
    On a zero-padded finite domain the Gram matrix's entries are sums of subsets of these terms,
    so Σ |row| of the finite Gram matrix is at most Σ |this kernel's row| (the Schur test holds)."""
    kh, kw = kernel.shape[-2:]
    return F.conv2d(kernel, kernel, padding=(kh - 1, kw - 1))


class LipschitzLayer(nn.Module):
    """A layer whose construction promises a Lipschitz constant (``promised_lipschitz``).

    In eval mode the factors computed from the parameters (:meth:`cached`) are kept until a
    parameter or buffer changes (new storage, or an in-place update: ``load_state_dict``, an
    optimizer step); in training mode they are recomputed, differentiably, on every call."""

    promised_lipschitz: float = 1.0

    def cached(self, name: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if self.training:
            return compute()
        tensors = [*self.parameters(recurse=False), *self.buffers(recurse=False)]
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)
        cache = self.__dict__.setdefault("_factor_cache", {})
        hit = cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        with torch.no_grad():
            value = compute()
        cache[name] = (key, value)
        return value


# -- AOL ------------------------------------------------------------------------------------------

class AOLLinear(LipschitzLayer):
    """y = W·D·x + b, d_i = (Σ_j |WᵀW|_ij)^(-1/2) (Prach & Lampert 2022, Thm 1): ‖W D‖₂ ≤ 1.
    With fewer outputs than inputs the rows are rescaled instead, D·W with d from |WWᵀ|
    (‖D W‖₂ = ‖Wᵀ D‖₂ ≤ 1 by the same theorem): a Gram matrix of the smaller side."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.orthogonal_(self.weight)  # AOL's recommended initialisation
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @property
    def rows(self) -> bool:
        """Rescale rows (D·W) rather than columns (W·D)."""
        return self.out_features < self.in_features

    def scaling(self) -> torch.Tensor:
        """d (in_features, or out_features where :attr:`rows`), float32."""
        return self.cached("scaling", self._scaling)

    def _scaling(self) -> torch.Tensor:
        w = self.weight.double()
        gram = w @ w.T if self.rows else w.T @ w
        return _rounded(_safe_rsqrt(gram.abs().sum(1)))

    def effective_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """W·D (or D·W) in ``dtype`` (default the parameters'): exact in float64 (a product of
        two float32 numbers), one rounding per entry in float32."""
        dtype = dtype or self.weight.dtype
        d = self.scaling().to(dtype)
        return self.weight.to(dtype) * (d[:, None] if self.rows else d[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.effective_weight(x.dtype), bias)


class AOLConv2d(LipschitzLayer):
    """A zero-padded convolution with its input channels rescaled by d_i = (Σ_{j,δ}
    |P_ij(δ)|)^(-1/2), P the autocorrelation of the kernel over its output channels (the
    kernel of AᵀA; Prach & Lampert 2022, Thm 2). A stride only subsamples the output (a
    1-Lipschitz map), so the promise holds for any stride."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = (kernel_size, kernel_size), (stride, stride)
        p = kernel_size // 2 if padding is None else padding
        self.padding = (p, p)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_normal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def scaling(self) -> torch.Tensor:
        """d (in_channels,), float32."""
        return self.cached("scaling", self._scaling)

    def _scaling(self) -> torch.Tensor:
        k = self.weight.double().transpose(0, 1)  # (in, out, kh, kw): AᵀA acts on input channels
        return _rounded(_safe_rsqrt(conv_gram_kernel(k).abs().sum((1, 2, 3))))

    def effective_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """K·D in ``dtype`` (as :meth:`AOLLinear.effective_weight`)."""
        dtype = dtype or self.weight.dtype
        return self.weight.to(dtype) * self.scaling().to(dtype)[None, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.conv2d(x, self.effective_weight(x.dtype), bias, self.stride, self.padding)


# -- residual layers: x − W diag(t) σ(Wᵀx + b) ---------------------------------------------------

class ResidualLipschitzLayer(LipschitzLayer):
    """x − W·diag(t)·relu(Wᵀx + b) with Wᵀ a linear map (``down``) and W its exact adjoint
    (``up``); subclasses give t (float32, one entry per hidden unit or channel). With
    T = diag(t) ⪰ 0 and ReLU's slopes in [0, 1], the Jacobian is I − W·T·S·Wᵀ (S diagonal in
    [0, 1]), whose norm is at most max(1, ‖T^½ Wᵀ‖₂² − 1): 1 whenever ‖T^½ Wᵀ‖₂² ≤ 2."""

    weight: nn.Parameter
    bias: nn.Parameter

    def __init__(self) -> None:
        super().__init__()
        self.activation = nn.ReLU()  # a module, so tests can linearise the layer

    def scaling(self) -> torch.Tensor:
        raise NotImplementedError

    def down(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def up(self, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def hidden_shape(self, h: torch.Tensor) -> tuple[int, ...]:
        return (1, -1) + (1,) * (h.dim() - 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(x.dtype)
        h = self.activation(self.down(x, weight) + self.bias.to(x.dtype).view(self.hidden_shape(x)))
        h = h * self.scaling().to(x.dtype).view(self.hidden_shape(h))
        return x - self.up(h, weight)


class _LinearResidual(ResidualLipschitzLayer):
    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.features, self.hidden = features, hidden
        self.weight = nn.Parameter(torch.empty(hidden, features))  # Wᵀ, as an nn.Linear weight
        nn.init.xavier_normal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(hidden))

    def down(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight)

    def up(self, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.linear(h, weight.T)


class _ConvResidual(ResidualLipschitzLayer):
    """Stride 1, odd kernel, zero padding k//2: the transposed convolution with the same
    padding is the exact adjoint and keeps the input's size."""

    def __init__(self, channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.channels, self.hidden, self.kernel_size = channels, hidden, kernel_size
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.empty(hidden, channels, kernel_size, kernel_size))
        nn.init.xavier_normal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(hidden))

    def down(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight, padding=self.padding)

    def up(self, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(h, weight, padding=self.padding)


def _sll_scaling(gram: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """t_i = 2 / Σ_j |G_ij|·q_j/q_i (Araujo et al. 2023, Thm 3), ``gram`` summed over its
    trailing (offset) axes; float64 in, float32 out."""
    q = q_log.double().exp()
    extra = tuple(range(2, gram.dim()))
    absolute = gram.abs().sum(extra) if extra else gram.abs()
    return _rounded(2.0 * _safe_reciprocal((absolute * q[None, :]).sum(1) / q))


class SLLLinear(_LinearResidual):
    """x − 2·W·diag(1/τ)·relu(Wᵀx + b), τ_i = Σ_j |WᵀW|_ij·q_j/q_i (Araujo et al. 2023)."""

    def __init__(self, features: int, hidden: int | None = None) -> None:
        super().__init__(features, hidden or features)
        self.q = nn.Parameter(torch.zeros(self.hidden))  # log q

    def scaling(self) -> torch.Tensor:
        return self.cached("scaling", lambda: _sll_scaling(self.weight.double() @ self.weight.double().T, self.q))


class SLLConv2d(_ConvResidual):
    """The convolutional SLL: WᵀW is the kernel's autocorrelation over the input channels."""

    def __init__(self, channels: int, hidden: int | None = None, kernel_size: int = 3) -> None:
        super().__init__(channels, hidden or channels, kernel_size)
        self.q = nn.Parameter(torch.zeros(self.hidden))

    def scaling(self) -> torch.Tensor:
        return self.cached("scaling", lambda: _sll_scaling(conv_gram_kernel(self.weight.double()), self.q))


class _CPL:
    """t = 2/N² for every hidden unit, N ≥ ‖W‖₂ by default (``normalizer="bound"``): the exact
    ‖W‖₂ by SVD for the dense layer, the circular-spectrum (FFT) bound of the zero-padded
    convolution (Sedghi et al. 2019; the domain padded to H + k//2, as in
    :mod:`lmt.bounds.conv_spectrum`) for the convolutional one — both differentiable.
    ``normalizer="power_iteration"`` is Meunier et al.'s original: a persistent power-iteration
    vector (one step per training forward, none in eval mode) and N² = (1 + ``CPL_MARGIN``)·
    estimate²; an estimate approaches ‖W‖₂ from below, so this promise may fail, and the engine
    then says so."""

    u: torch.Tensor
    weight: nn.Parameter
    normalizer: str

    def _init_normalizer(self, normalizer: str, shape: tuple[int, ...], warmup_iterations: int) -> None:
        if normalizer not in ("bound", "power_iteration"):
            raise ValueError(f"normalizer must be 'bound' or 'power_iteration', got {normalizer!r}")
        self.normalizer = normalizer
        if normalizer == "power_iteration":
            self.register_buffer("u", torch.randn(shape))
            self._power_step(warmup_iterations)

    def _power_step(self: ResidualLipschitzLayer, steps: int = 1) -> None:  # type: ignore[misc]
        with torch.no_grad():
            w = self.weight.detach().double()
            u = self.u.double()
            for _ in range(steps):
                v = self.up(self.down(u, w), w)
                u = v / v.norm().clamp_min(1e-30)
            self.u.copy_(u.to(self.u.dtype))

    def norm_bound_sq(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scaling(self: ResidualLipschitzLayer) -> torch.Tensor:  # type: ignore[misc]
        return self.cached("scaling", self._scaling)

    def _scaling(self: ResidualLipschitzLayer) -> torch.Tensor:  # type: ignore[misc]
        w = self.weight.double()
        if self.normalizer == "bound":
            t = 2.0 / self.norm_bound_sq(w)
        else:
            if self.training and torch.is_grad_enabled():
                self._power_step()
            u = self.u.double()
            u = u / u.norm().clamp_min(1e-30)
            estimate_sq = self.down(u, w).pow(2).sum()  # ‖Wᵀu‖² ≤ ‖W‖², differentiable in W
            t = 2.0 / ((1 + CPL_MARGIN) * estimate_sq)
        return _rounded(t.expand(self.hidden))


class CPLLinear(_CPL, _LinearResidual):
    """x − (2/‖W‖₂²)·W·relu(Wᵀx + b) (Meunier et al. 2022)."""

    def __init__(self, features: int, hidden: int | None = None, normalizer: str = "bound",
                 warmup_iterations: int = 100) -> None:
        _LinearResidual.__init__(self, features, hidden or features)
        self._init_normalizer(normalizer, (1, features), warmup_iterations)

    def norm_bound_sq(self, w: torch.Tensor) -> torch.Tensor:
        return torch.linalg.matrix_norm(w, ord=2).pow(2)


class CPLConv2d(_CPL, _ConvResidual):
    """The convolutional CPL on inputs of spatial size ``input_size``."""

    def __init__(self, channels: int, input_size: tuple[int, int], hidden: int | None = None,
                 kernel_size: int = 3, normalizer: str = "bound", warmup_iterations: int = 100) -> None:
        _ConvResidual.__init__(self, channels, hidden or channels, kernel_size)
        self.input_size = tuple(input_size)
        self._init_normalizer(normalizer, (1, channels, *input_size), warmup_iterations)

    def norm_bound_sq(self, w: torch.Tensor) -> torch.Tensor:
        """max over frequencies of σ_max(K̂(ω))², K̂ the DFT of the kernel on the circular
        domain of size H + k//2 (per axis) that dominates the zero-padded convolution."""
        n = [size + self.padding for size in self.input_size]
        spectrum = torch.fft.fft2(w, s=n)  # (hidden, channels, N_h, N_w)
        mats = spectrum.permute(2, 3, 0, 1)  # (N_h, N_w, hidden, channels)
        return torch.linalg.matrix_norm(mats, ord=2).max().pow(2)


# -- orthogonal dense layers ----------------------------------------------------------------------

class _SkewParametrised(LipschitzLayer):
    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        n = max(in_features, out_features)
        self.weight = nn.Parameter(torch.randn(n, n) / math.sqrt(n))  # A = weight − weightᵀ
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def orthogonal(self, skew: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def effective_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Q[:out, :in], computed in float64 and rounded once to float32 (in every dtype)."""
        return self.cached("weight", self._effective).to(dtype or self.weight.dtype)

    def _effective(self) -> torch.Tensor:
        w = self.weight.double()
        q = self.orthogonal(w - w.T)
        return _rounded(q[: self.out_features, : self.in_features])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.effective_weight(x.dtype), bias)


class CayleyLinear(_SkewParametrised):
    """W = Q[:out, :in], Q = (I + A)⁻¹(I − A) orthogonal for skew-symmetric A (Trockman &
    Kolter 2021); a submatrix of an orthogonal matrix has norm ≤ 1."""

    def orthogonal(self, skew: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(skew.shape[0], dtype=skew.dtype, device=skew.device)
        return torch.linalg.solve(eye + skew, eye - skew)


class SOCLinear(_SkewParametrised):
    """W = (Σ_{k<terms} Aᵏ/k!)[:out, :in], the truncated exponential of a skew-symmetric A
    (dense skew-orthogonal layer, Singla & Feizi 2021): orthogonal up to the truncation error,
    which grows with ‖A‖ and shrinks with ``terms``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, terms: int = 12) -> None:
        super().__init__(in_features, out_features, bias)
        self.terms = terms

    def orthogonal(self, skew: torch.Tensor) -> torch.Tensor:
        term = torch.eye(skew.shape[0], dtype=skew.dtype, device=skew.device)
        total = term
        for k in range(1, self.terms):
            term = term @ skew / k
            total = total + term
        return total


# -- orthogonal convolution -----------------------------------------------------------------------

def skew_conv_norm_bound(kernel: torch.Tensor) -> torch.Tensor:
    """A guaranteed bound of ‖A‖₂ for the stride-1 convolution A with the square ``kernel``
    (c, c, k, k), zero-padded by k//2, on every input size: (max_i Σ_{j,δ} |(AAᵀ)_ij(δ)|)^½
    (Schur test on the Gram kernel, :func:`conv_gram_kernel`; differentiable, no input size)."""
    return conv_gram_kernel(kernel).abs().sum((1, 2, 3)).max().sqrt()


def skew_series(x: torch.Tensor, kernel: torch.Tensor, terms: int, stride: int, channels: int,
                out_channels: int) -> torch.Tensor:
    """Σ_{i<terms} Lⁱx/i! (no bias), L the zero-padded stride-1 convolution with the skew
    ``kernel``, after an invertible downsampling (pixel-unshuffle by ``stride``) and zero
    channel padding to ``channels``; the first ``out_channels`` channels of the result. Each
    term is fl(fl(conv(previous)) / i); the sum is accumulated in order (the rounding model of
    :class:`lmt.bounds.lipschitz.SOCConvBound` assumes exactly this)."""
    if stride > 1:
        x = F.pixel_unshuffle(x, stride)
    if x.shape[1] < channels:
        x = F.pad(x, (0, 0, 0, 0, 0, channels - x.shape[1]))
    padding = kernel.shape[-1] // 2
    term = total = x
    for i in range(1, terms):
        term = F.conv2d(term, kernel, padding=padding) / i
        total = total + term
    return total[:, :out_channels]


class SOCConv2d(LipschitzLayer):
    """Skew-orthogonal convolution (Singla & Feizi, ICML 2021): y = Σ_{i<terms} Lⁱx/i! + b, the
    truncated exponential of a skew-adjoint convolution L (exp(L) is orthogonal).

    L's kernel is S = s·(K − flip(Kᵀ)) (output and input channels swapped, spatial flip), the
    kernel of conv(K) − conv_transpose(K): with stride 1, an odd kernel and zero padding k//2 the
    transposed convolution is the exact adjoint, so L = −Lᵀ on the finite zero-padded domain.
    s = ``correction`` / (a guaranteed bound of ‖conv(K − flip(Kᵀ))‖, :func:`skew_conv_norm_bound`),
    so ‖L‖ ≤ ``correction`` and the series converges fast (Singla & Feizi divide by power-
    iteration estimates instead, correction 0.7). S is computed in float64 and rounded once to
    float32 (exactly skew still: rounding is sign-symmetric), in every evaluation dtype.

    ``terms`` terms (powers 0 … terms − 1) in eval mode (certified), ``train_terms`` in training
    (Singla & Feizi's code: powers 0…12 in evaluation, 0…5 in training);
    the truncation error is what keeps the layer from being exactly orthogonal, and the engine
    measures it (too few terms break the promise). Channels: zero-padded when in < out, the
    first ``out_channels`` kept when in > out; ``stride`` > 1 is an invertible downsampling
    (pixel-unshuffle, channels × stride²) before the layer."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 bias: bool = True, terms: int = 12, train_terms: int = 6, correction: float = 0.7) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if terms < 1 or train_terms < 1:
            raise ValueError(f"terms and train_terms must be ≥ 1, got {terms} and {train_terms}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, kernel_size // 2
        self.terms, self.train_terms, self.correction = terms, train_terms, correction
        self.channels = max(in_channels * stride * stride, out_channels)
        self.weight = nn.Parameter(torch.empty(self.channels, self.channels, kernel_size, kernel_size))
        nn.init.kaiming_normal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def skew_kernel(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """S (channels, channels, k, k): float32 values, in ``dtype`` (default the parameters')."""
        return self.cached("skew", self._skew).to(dtype or self.weight.dtype)

    def _skew(self) -> torch.Tensor:
        w = self.weight.double()
        skew = w - w.transpose(0, 1).flip(2, 3)
        return _rounded(skew * (self.correction * _safe_reciprocal(skew_conv_norm_bound(skew))))

    def series_terms(self) -> int:
        return self.train_terms if self.training else self.terms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = skew_series(x, self.skew_kernel(x.dtype), self.series_terms(), self.stride, self.channels,
                        self.out_channels)
        return y if self.bias is None else y + self.bias.to(x.dtype).view(1, -1, 1, 1)
