"""Floating-point settings of every computation whose numbers are reported.

Certified radii hold for the network evaluated in IEEE float32 (lmt.certify), so reported
numbers must come from float32 arithmetic: TF32 (10-bit-mantissa products on NVIDIA GPUs,
which torch enables for cuDNN convolutions by default) is switched off with torch's
``fp32_precision`` API. The settings in force are recorded in every provenance record.

Also how far apart two computations of one tensor are (:func:`relative_difference`), for the
checks that compare a rewritten computation with the reference one.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def strict_float32() -> None:
    """IEEE float32 matmuls, convolutions and RNNs on every backend (no TF32)."""
    torch.backends.fp32_precision = "ieee"
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cudnn.rnn.fp32_precision = "ieee"


def float_settings() -> dict[str, Any]:
    """The floating-point settings in force, for provenance records."""
    return {
        "fp32_precision": torch.backends.fp32_precision,
        "cuda_matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision,
        "cudnn_conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision,
        "cudnn_rnn_fp32_precision": torch.backends.cudnn.rnn.fp32_precision,
        "cuda_matmul_allow_fp16_reduced_precision_reduction":
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
        "certificate_arithmetic": "float64 margins minus float64 and float32 rounding-error bounds",
    }


def relative_difference(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got − want| ÷ max |want|: 0 where both are zero (or empty), inf where only ``want``
    is zero, NaN where the shapes differ or either has a non-finite entry (so
    ``not difference <= tolerance`` fails closed)."""
    if got.shape != want.shape or not (torch.isfinite(got).all() and torch.isfinite(want).all()):
        return math.nan
    if want.numel() == 0:
        return 0.0
    error, scale = float((got - want).abs().max()), float(want.abs().max())
    if scale > 0:
        return error / scale
    return 0.0 if error == 0 else math.inf
