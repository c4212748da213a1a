"""A Python number as a persistent 0-dim tensor input of captured or compiled code."""

from __future__ import annotations

import torch


class ScalarInput:
    """``value`` in one 0-dim tensor of ``like``'s dtype and device, refilled only when the
    value changes. A CUDA graph or a compiled function reads it as an input (a number would be
    baked in, so every new c of a warm-up would recapture or recompile), and passing it costs no
    copy. The backward of a step reads the value of its forward, since the next fill comes with
    the next forward."""

    def __init__(self) -> None:
        self._tensor: torch.Tensor | None = None
        self._value: float | None = None

    def __call__(self, value: float, like: torch.Tensor) -> torch.Tensor:
        if self._tensor is None or self._tensor.device != like.device or self._tensor.dtype != like.dtype:
            self._tensor, self._value = torch.empty((), dtype=like.dtype, device=like.device), None
        if value != self._value:
            self._tensor.fill_(value)
            self._value = value
        return self._tensor
