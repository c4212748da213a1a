"""LMT's margin (the bound's power-iteration step and the logit shift) replayed as CUDA graphs.

On a GPU a small LMT step is launch-bound: the bound and the margin add some 130 small
kernels (W&K) to a standard step's 80, each a few microseconds of launch for almost no work.
Captured with :func:`torch.cuda.make_graphed_callables`, the margin's forward and its backward
become one graph replay each, plus the copies of the fresh inputs into the graph's buffers.

The graph's inputs: the logits, the labels, c (a 0-dim tensor, so a warm-up of c needs no
recapture) and the BatchNorm batch variances that the training bound reads (its inputs from
the model's autograd graph, through which its gradient reaches the earlier layers). Its
parameters are the model's; each replay updates the power-iteration vectors in place.

One graph per input signature (shapes, dtypes, the storages of the parameters and vectors): a
smaller last batch gets its own, a moved or reloaded model a fresh capture. A capture's
warm-up runs advance the power-iteration vectors, so they are saved before and restored
after: a graphed run takes the same power-iteration steps as an eager one. If a capture fails
(an operation that synchronises with the host, say), the margin runs eagerly, with a warning.

The gradients a replay returns live in the graph's memory, and autograd may keep one as a
parameter's ``.grad``: the training loop must drop gradients with ``zero_grad(set_to_none=True)``
(as :func:`lmt.train.train_epoch` does), since zeroing in place and accumulating would add a
gradient to itself. Without gradients (``torch.no_grad()``) the margin runs eagerly.

Opt-in with ``LMT_CUDA_GRAPHS=1`` until a GPU run has measured it and checked it against the
eager path (``benchmarks/gpu_check.sh``); the CPU path never uses it.
"""

from __future__ import annotations

import os
import traceback
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from lmt.scalar_input import ScalarInput

ENV_VAR = "LMT_CUDA_GRAPHS"
MAX_GRAPHS = 4  # per storage signature: the full batch, a smaller last batch, a few more

# (logits, labels, c, {BatchNorm: batch variance}) -> shifted logits
Margin = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict], torch.Tensor]
Capture = Callable[[nn.Module, tuple], Callable[..., torch.Tensor]]


def cuda_graphs_requested() -> bool:
    """``$LMT_CUDA_GRAPHS``: 1 graphs the margin on CUDA, 0 or unset runs it eagerly."""
    value = os.environ.get(ENV_VAR, "0")
    if value not in ("0", "1"):
        raise ValueError(f"{ENV_VAR} must be 0 or 1, got {value!r}")
    return value == "1"


def make_graphed(module: nn.Module, sample_args: tuple) -> Callable[..., torch.Tensor]:
    """PyTorch's capture: forward and backward graphs behind one autograd node (parameters
    the margin does not use, such as biases, get no gradient from it)."""
    return torch.cuda.make_graphed_callables(module, sample_args, allow_unused_input=True)


class _MarginModule(nn.Module):
    """The margin as a module whose parameters are the model's: the graph's gradient outputs.
    The variances arrive as positional tensors (a graph takes only tensors), in ``order``."""

    def __init__(self, margin: Margin, parameters: Sequence[nn.Parameter], order: Sequence[nn.Module]) -> None:
        super().__init__()
        self.margin = margin
        self.order = list(order)  # a plain list: the BatchNorm layers are not submodules here
        for i, parameter in enumerate(parameters):
            self.register_parameter(f"p{i}", parameter)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, c: torch.Tensor, *variances: torch.Tensor) -> torch.Tensor:
        return self.margin(logits, labels, c, dict(zip(self.order, variances)))


def _where(error: BaseException) -> str:
    """' at FILE:LINE (function)' of the innermost frame of this package in the error's
    traceback (the operation a capture could not take), or ''."""
    package = Path(__file__).resolve().parent
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve().is_relative_to(package)]
    if not frames:
        return ""
    frame = frames[-1]
    return f" at {Path(frame.filename).resolve().relative_to(package.parent)}:{frame.lineno} ({frame.name})"


def _static_copy(x: torch.Tensor) -> torch.Tensor:
    """A leaf with x's values and requires_grad: a graph's sample input must not carry x's
    autograd history (the capture would differentiate through the model)."""
    return x.detach().clone().requires_grad_(x.requires_grad)


class GraphedMargin:
    """Calls ``margin`` through CUDA graphs, one per input signature (module docstring).

    ``parameters()`` and ``state()`` give the model's parameters and the bound's
    power-iteration vectors now; ``capture`` is :func:`make_graphed` (a test passes another)."""

    def __init__(
        self,
        margin: Margin,
        parameters: Callable[[], Sequence[nn.Parameter]],
        state: Callable[[], Sequence[torch.Tensor]],
        capture: Capture = make_graphed,
    ) -> None:
        self.margin = margin
        self.parameters = parameters
        self.state = state
        self.capture = capture
        self.graphs: dict[tuple, Callable[..., torch.Tensor] | None] = {}  # None: runs eagerly
        self._storages: tuple = ()
        self._c = ScalarInput()  # c as a 0-dim tensor input

    def __call__(
        self, logits: torch.Tensor, labels: torch.Tensor, c: float, variances: dict[nn.Module, torch.Tensor]
    ) -> torch.Tensor:
        """The shifted logits, by the graph of this signature (captured at its first call)."""
        parameters, state = list(self.parameters()), list(self.state())
        storages = tuple(t.data_ptr() for t in parameters + state)
        if storages != self._storages:  # moved or reloaded: every graph reads stale memory
            self.graphs.clear()
            self._storages = storages
        c_tensor = self._c(c, logits)
        if not (torch.is_grad_enabled() and logits.requires_grad):  # nothing to differentiate: no graph
            return self.margin(logits, labels, c_tensor, variances)
        key = self._signature(logits, labels, variances)
        if key not in self.graphs:
            self.graphs[key] = self._capture(logits, labels, c_tensor, variances, parameters, state)
        graphed = self.graphs[key]
        if graphed is None:
            return self.margin(logits, labels, c_tensor, variances)
        return graphed(logits, labels, c_tensor, *variances.values())

    @staticmethod
    def _signature(logits: torch.Tensor, labels: torch.Tensor, variances: dict[nn.Module, torch.Tensor]) -> tuple:
        def describe(x: torch.Tensor) -> tuple:
            return tuple(x.shape), x.dtype, x.device, x.requires_grad
        return (describe(logits), describe(labels), tuple((id(m), describe(v)) for m, v in variances.items()))

    def _capture(
        self, logits: torch.Tensor, labels: torch.Tensor, c: torch.Tensor,
        variances: dict[nn.Module, torch.Tensor], parameters: list[nn.Parameter], state: list[torch.Tensor],
    ) -> Callable[..., torch.Tensor] | None:
        """A graphed margin for this signature, or None (eager) past :data:`MAX_GRAPHS` or if
        the capture fails; the power-iteration vectors are as before either way."""
        if len(self.graphs) >= MAX_GRAPHS:
            warnings.warn(f"LMT CUDA graphs: more than {MAX_GRAPHS} input shapes; this one runs eagerly",
                          RuntimeWarning, stacklevel=3)
            return None
        saved = [t.detach().clone() for t in state]
        module = _MarginModule(self.margin, parameters, list(variances))
        sample = (_static_copy(logits), labels.clone(), c, *(_static_copy(v) for v in variances.values()))
        try:
            graphed = self.capture(module, sample)
        except Exception as error:  # noqa: BLE001 - the eager margin still works (or raises the real error)
            warnings.warn(f"LMT CUDA graphs: capture failed{_where(error)} ({type(error).__name__}: {error}); "
                          "the margin runs eagerly", RuntimeWarning, stacklevel=3)
            graphed = None
        finally:
            with torch.no_grad():
                for tensor, value in zip(state, saved):
                    tensor.copy_(value)
        return graphed
