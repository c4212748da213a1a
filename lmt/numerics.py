"""Floating-point settings of every computation whose numbers are reported.

Certified radii hold for the network evaluated in IEEE float32 (lmt.certify), so reported
numbers must come from float32 arithmetic: TF32 (10-bit-mantissa products on NVIDIA GPUs,
which torch enables for cuDNN convolutions by default) is switched off with torch's
``fp32_precision`` API. The settings in force are recorded in every provenance record.
"""

from __future__ import annotations

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
