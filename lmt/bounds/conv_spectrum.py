"""Deterministic upper bound of a convolution's operator norm from the spectrum of a circular
convolution (Sedghi, Gupta and Long, ICLR 2019), extended to stride, dilation, groups and
every PyTorch padding mode.

A circular convolution on an N-periodic domain is block-diagonalised by the 2-D DFT: its
singular values are those of the small matrices K̂(ω) (C_out × C_in), one per frequency.
With stride s and s | N it is still exact: split the input into its s_h·s_w polyphase
components (a permutation), and the strided convolution becomes a stride-1 circular convolution
on the (N/s)-periodic domain with C_in·s_h·s_w input channels. Dilation only moves taps, and
taps that land on the same phase and offset add up (folding), so kernels wider than the domain
are handled too. Groups make K̂(ω) block-diagonal: the norm is the largest over groups.

Each padding mode is reduced to that circular operator (per axis; see :func:`axis_embedding`):

* ``circular``: the layer reads x[(s·i + d·a − p) mod H], a circular convolution on H whose
  outputs are selected (with repetitions when there are more outputs than periods):
  ‖A‖ ≤ √m·‖C_H‖, m the largest repetition count; exact when every output appears once.
* ``zeros``: embed x into an N-periodic signal with zeros around it; for N large enough no
  tap wraps onto the signal, so A = R·C_N·E with E an isometric embedding and R a restriction
  (‖R‖ ≤ 1): ‖A‖ ≤ ‖C_N‖. Not exact (the zero-padded operator is a compression of C_N), but
  tight for large inputs.
* ``reflect``/``replicate``: A = V·P with P the padding operator (it copies pixels; ‖P‖ =
  √(largest copy count)) and V a convolution without padding: ‖A‖ ≤ ‖P‖·‖V‖.

The values are computed in float64; a relative margin of ``ROUNDING_MARGIN`` covers rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lmt.bounds.numerics import ROUNDING_MARGIN
from lmt.bounds.windows import Axis


@dataclass(frozen=True)
class Embedding:
    """The circular operator that dominates one axis of a convolution."""

    period: int  # N: the circular domain
    stride: int  # s' dividing N: stride of the circular convolution
    offset: int  # input shift: the layer reads circular index (s'·j + d·a − offset) mod N
    factor: float  # ‖A‖ ≤ factor·‖C‖ along this axis
    exact: bool  # ‖A‖ = ‖C‖ along this axis (a bijection onto the circular outputs)


def _roundup(n: int, k: int) -> int:
    return -(-n // k) * k


def axis_embedding(axis: Axis) -> Embedding:
    """Choose the circular domain that bounds this axis (see the module docstring)."""
    s, out = axis.stride, axis.n_out
    if axis.mode == "circular":
        h = axis.size
        stride = s if h % s == 0 else 1
        # Output i is circular output (s·i mod h) / stride of the stride-s' convolution.
        hits = torch.bincount(torch.tensor([(s * i) % h // stride for i in range(out)]))
        repeat = int(hits.max())
        exact = repeat == 1 and out == h // stride
        return Embedding(h, stride, axis.pad_left, math.sqrt(repeat), exact)
    if axis.mode == "zeros":
        last = s * (out - 1) + axis.dilation * (axis.kernel - 1)  # last padded position read
        period = _roundup(max(axis.pad_left + axis.size, last - axis.pad_left + 1, s * out), s)
        return Embedding(period, s, axis.pad_left, 1.0, False)
    # reflect / replicate: ‖A‖ ≤ ‖P‖·‖conv without padding on the padded length‖.
    padded = Axis(axis.size + axis.pad_left + axis.pad_right, axis.kernel, s, axis.dilation)
    inner = axis_embedding(padded)
    return Embedding(
        inner.period, inner.stride, inner.offset,
        inner.factor * math.sqrt(axis.padding_multiplicity), False,
    )


def _axis_dft(kernel: int, dilation: int, emb: Embedding, device: torch.device) -> torch.Tensor:
    """E[ω, r, a]: tap a reads phase r at offset q; E = [phase(a) = r]·exp(2πi·ω·q/M)."""
    m = emb.period // emb.stride
    shift = dilation * torch.arange(kernel, device=device) - emb.offset
    phase = torch.remainder(shift, emb.stride)
    q = torch.div(shift - phase, emb.stride, rounding_mode="floor")
    omega = torch.arange(m, device=device, dtype=torch.float64)
    angle = 2 * math.pi * omega[:, None] * q.to(torch.float64)[None, :] / m  # (M, k)
    dft = torch.polar(torch.ones_like(angle), angle)
    onehot = (phase[None, :] == torch.arange(emb.stride, device=device)[:, None]).to(dft.dtype)
    return dft[:, None, :] * onehot[None, :, :]  # (M, s', k)


@dataclass(frozen=True)
class SpectralBound:
    value: float
    exact: bool
    description: str


def largest_singular_values(mats: torch.Tensor) -> torch.Tensor:
    """σ_max of each matrix of a batch: an SVD for small matrices, else the largest eigenvalue
    of the smaller Gram matrix (both backward stable; faster for wide channels)."""
    rows, cols = mats.shape[-2:]
    if min(rows, cols) < 96:
        return torch.linalg.svdvals(mats)[..., 0]
    gram = mats @ mats.mH if rows <= cols else mats.mH @ mats
    return torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0).sqrt()


def circular_spectrum_bound(
    weight: torch.Tensor, axes: tuple[Axis, Axis], groups: int = 1
) -> SpectralBound:
    """Guaranteed upper bound of the operator norm of the convolution with ``weight``
    (C_out, C_in/groups, kh, kw) along ``axes``, from per-frequency SVDs."""
    weight = weight.detach().to(torch.float64)
    emb = [axis_embedding(a) for a in axes]
    e_h = _axis_dft(axes[0].kernel, axes[0].dilation, emb[0], weight.device)
    e_w = _axis_dft(axes[1].kernel, axes[1].dilation, emb[1], weight.device)
    # A real kernel has K̂(−ω) = conj(K̂(ω)), with the same singular values: half of the
    # frequencies of one axis suffice.
    e_w = e_w[: e_w.shape[0] // 2 + 1]
    c_out, c_in = weight.shape[:2]
    per_group = c_out // groups
    # Frequencies per chunk, so that one chunk of K̂ stays below ~2^22 complex entries.
    chunk = max(1, 2**22 // (e_w.shape[0] * per_group * c_in * emb[0].stride * emb[1].stride))
    best = 0.0
    for g in range(groups):
        w = weight[g * per_group : (g + 1) * per_group].to(torch.complex128)
        for start in range(0, e_h.shape[0], chunk):
            # K̂[u, v, o, (c, r, t)] = Σ_ab w[o, c, a, b]·E_h[u, r, a]·E_w[v, t, b]
            spectrum = torch.einsum("ocab,ura,vtb->uvocrt", w, e_h[start : start + chunk], e_w)
            mats = spectrum.reshape(*spectrum.shape[:3], -1)
            best = max(best, float(largest_singular_values(mats).max()))
    value = best * emb[0].factor * emb[1].factor * (1 + ROUNDING_MARGIN)
    exact = emb[0].exact and emb[1].exact
    grid = "x".join(f"{e.period // e.stride}" for e in emb)
    strides = "x".join(str(e.stride) for e in emb)
    kind = "exact" if exact else "upper bound"
    description = (
        f"fft(circular spectrum, {grid} frequencies, polyphase stride {strides}, "
        f"{axes[0].mode} padding; {kind}, deterministic)"
    )
    return SpectralBound(value, exact, description)
