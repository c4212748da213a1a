"""Sliding windows along one axis: which input index each tap of each window reads.

Convolutions and pooling layers are separable in their two spatial axes, so every bound that
depends on the window geometry (overlap counts of Cor. 1 and Thm 3, the Frobenius norm of the
full operator, the padding operator's norm) is computed from one :class:`Axis` per dimension.
The source indices come from ``F.pad`` itself, so they follow PyTorch's padding semantics.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a sliding-window operator (tap ``a`` of window ``i`` reads padded
    position ``stride·i + dilation·a``)."""

    size: int  # input length
    kernel: int
    stride: int = 1
    dilation: int = 1
    pad_left: int = 0
    pad_right: int = 0
    mode: str = "zeros"  # how the padded positions are filled
    out: int | None = None  # number of windows; None: PyTorch's floor formula

    def __post_init__(self) -> None:
        if self.mode not in PADDING_MODES:
            raise ValueError(f"unknown padding mode {self.mode!r}")

    @property
    def n_out(self) -> int:
        if self.out is not None:
            return self.out
        span = self.dilation * (self.kernel - 1) + 1
        return (self.size + self.pad_left + self.pad_right - span) // self.stride + 1

    @cached_property
    def padded_source(self) -> np.ndarray:
        """Input index read at each padded position (−1: a zero of zero padding)."""
        index = torch.arange(1, self.size + 1, dtype=torch.float64).view(1, 1, 1, -1)
        pad = (self.pad_left, self.pad_right, 0, 0)
        if self.mode == "zeros":
            padded = F.pad(index, pad)
        else:
            padded = F.pad(index, pad, mode=self.mode)
        return padded.flatten().long().numpy() - 1

    @cached_property
    def taps(self) -> np.ndarray:
        """(n_out, kernel) input index read by tap ``a`` of window ``i`` (−1: zero padding, or a
        position past the padded input, as in ceil-mode pooling)."""
        pos = self.stride * np.arange(self.n_out)[:, None] + self.dilation * np.arange(self.kernel)
        src = self.padded_source
        inside = pos < len(src)
        return np.where(inside, src[np.minimum(pos, len(src) - 1)], -1)

    @cached_property
    def reads(self) -> np.ndarray:
        """How many (window, tap) pairs read each input index."""
        taps = self.taps[self.taps >= 0]
        return np.bincount(taps, minlength=self.size)

    @property
    def overlap(self) -> int:
        """n of Cor. 1 / Thm 3 along this axis: the largest number of (window, tap) pairs that
        read one input index (a window reading an index twice counts twice)."""
        return int(self.reads.max(initial=0))

    @property
    def windows_per_index(self) -> int:
        """The largest number of windows containing one input index (max pooling's n)."""
        counts = np.zeros(self.size, dtype=np.int64)
        for row in self.taps:
            idx = np.unique(row[row >= 0])
            counts[idx] += 1
        return int(counts.max(initial=0))

    @cached_property
    def tap_gram(self) -> np.ndarray:
        """S[a, b] = #{windows i: taps a and b read the same input index}; gives the Frobenius
        norm of the full operator: ‖A‖_F² = Σ_{o,c} tr(w_ocᵀ S_h w_oc S_w)."""
        taps = self.taps
        same = (taps[:, :, None] == taps[:, None, :]) & (taps[:, :, None] >= 0)
        return same.sum(axis=0).astype(np.float64)

    @property
    def padding_multiplicity(self) -> int:
        """Largest number of padded positions that copy one input index (‖pad‖² on this axis)."""
        src = self.padded_source
        return int(np.bincount(src[src >= 0], minlength=self.size).max(initial=0))


def conv_axes(module: torch.nn.Conv2d, input_shape: tuple[int, ...]) -> tuple[Axis, Axis]:
    """The two spatial axes of a Conv2d on inputs of shape (C, H, W)."""
    # (left_w, right_w, top_h, bottom_h), computed by PyTorch for int, 'same' and 'valid' padding.
    pad = module._reversed_padding_repeated_twice
    mode = module.padding_mode
    return tuple(  # type: ignore[return-value]
        Axis(input_shape[1 + d], module.kernel_size[d], module.stride[d], module.dilation[d],
             pad[2 * (1 - d)], pad[2 * (1 - d) + 1], mode)
        for d in (0, 1)
    )
