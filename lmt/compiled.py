"""LMT's margin (the bound's power-iteration step and the logit shift) through ``torch.compile``.

Inductor fuses the bound's many small operations (some 130 per W&K step) into a few kernels,
forward and backward. What it compiles is the side-effect-free bound step,
:meth:`~lmt.bounds.NetworkBound.functional_training_bound`: the power-iteration vectors go in
as clones and the advanced ones come out, and are copied into the bound's buffers after the
call. Compiling the in-place step instead gives silently wrong weight gradients in torch 2.14:
the compiled backward reads the vectors after their update (pytorch/pytorch#197039), which is
why :meth:`~lmt.bounds.NetworkBound.training_bound` always runs eagerly. The clones matter too:
the compiled backward may keep its inputs rather than û, and the copy into the buffers would
change them under it.

c goes in as a 0-dim tensor, refilled when it changes, so a warm-up of c compiles nothing new.
The values agree with the eager margin up to float rounding (fused kernels sum in another
order), so a compiled run is reproducible bit for bit by a compiled run, not by an eager one.

Trust, but verify: torch.compile has given wrong gradients here before, so the first call of
each input signature (the shapes a graph is specialised to) also runs the same side-effect-free
margin eagerly and compares the two: the shifted logits, the advanced vectors and the gradients
of a random projection of the logits with respect to the parameters, the logits and the
BatchNorm batch variances (:data:`RTOL` of each tensor's largest entry). On a mismatch, or if
compiling fails (no C++ compiler for Inductor on the CPU, say), the margin runs eagerly for the
rest of the run, with a warning that says why. The check has caught one such error: read from
the module-level record of BatchNorm batch variances, torch 2.14 compiled some of WRN-16-4's
same-shaped standalone BatchNorm bounds with another layer's variance (so γ's gradient went to
the wrong channel); the compiled step therefore passes the variances to the layer bounds
(``functional_training_bound(..., batch_variances=...)``), and WRN-16-4 compiles right.

Opt-in with ``LMT_COMPILE=1``: the first step compiles (tens of seconds on two cores; Inductor
caches the code on disk), on a 2-core CPU the gain is within run-to-run noise, on a GPU it is
unmeasured, and the published runs are eager.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Callable

import torch
from torch import nn

from lmt.bounds import NetworkBound
from lmt.losses import margin_logits
from lmt.numerics import relative_difference
from lmt.scalar_input import ScalarInput

ENV_VAR = "LMT_COMPILE"
BACKEND = "inductor"  # torch.compile's backend (tests use "aot_eager", which needs no C++ compiler)
RTOL = 1e-3  # of each tensor's largest entry: float rounding stays near 1e-6, the errors seen are of order 1

# (logits, labels, c, {BatchNorm: batch variance}) -> shifted logits
Margin = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict], torch.Tensor]


def compile_requested() -> bool:
    """``$LMT_COMPILE``: 1 compiles the margin, 0 or unset runs it eagerly."""
    value = os.environ.get(ENV_VAR, "0")
    if value not in ("0", "1"):
        raise ValueError(f"{ENV_VAR} must be 0 or 1, got {value!r}")
    return value == "1"


class CompiledMargin:
    """Calls the LMT margin of ``variant`` on ``bound`` compiled (module docstring); ``eager``
    is the in-place margin uncompiled, the fallback; ``parameters()`` the model's parameters,
    for the check. ``backend``: torch.compile's (default :data:`BACKEND`)."""

    def __init__(
        self, bound: NetworkBound, variant: str, eager: Margin, parameters: Callable[[], list[nn.Parameter]],
        backend: str | None = None,
    ) -> None:
        self.bound = bound
        self.variant = variant
        self.eager = eager
        self.parameters = parameters
        self.compiled = torch.compile(self._margin, backend=backend or BACKEND, dynamic=False)
        self.checked: set[tuple] = set()  # input signatures whose compiled margin matched the eager one
        self.failure: str | None = None  # why the margin fell back to eager, if it did
        self._c = ScalarInput()  # c as a 0-dim tensor input

    def _margin(
        self, logits: torch.Tensor, labels: torch.Tensor, c: torch.Tensor, state: dict[str, torch.Tensor],
        variances: dict[nn.Module, torch.Tensor],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The compiled function: the shifted logits and the advanced vectors, no side effects."""
        estimate, advanced = self.bound.functional_training_bound(
            state, need_total=self.variant == "prop1", batch_variances=variances)
        shifted = margin_logits(logits, labels, c, self.variant,
                                total=estimate.total, body=estimate.body, head_weight=estimate.head_weight)
        return shifted, advanced

    def __call__(
        self, logits: torch.Tensor, labels: torch.Tensor, c: float, variances: dict[nn.Module, torch.Tensor]
    ) -> torch.Tensor:
        """The shifted logits; the bound's vectors are advanced by one step."""
        c_tensor = self._c(c, logits)
        if self.failure is not None:
            return self.eager(logits, labels, c_tensor, variances)
        buffers = dict(self.bound.named_buffers())
        try:
            signature = (tuple(logits.shape), tuple(labels.shape), torch.is_grad_enabled(),
                         tuple(tuple(v.shape) for v in variances.values()))
            if signature not in self.checked:
                self._check(logits, labels, c_tensor, buffers, variances)
                self.checked.add(signature)
            state = {name: buffer.clone() for name, buffer in buffers.items()}
            shifted, advanced = self.compiled(logits, labels, c_tensor, state, variances)
        except Exception as error:  # noqa: BLE001 - a compiler failure or a mismatch: run eagerly, say why
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            self.failure = f"{type(error).__name__}: {message}"
            warnings.warn(f"{ENV_VAR}=1: the compiled LMT margin is not used ({self.failure}); it runs eagerly",
                          RuntimeWarning, stacklevel=2)
            return self.eager(logits, labels, c_tensor, variances)
        with torch.no_grad():
            for name, value in advanced.items():
                buffers[name].copy_(value)
        return shifted

    def _check(
        self, logits: torch.Tensor, labels: torch.Tensor, c: torch.Tensor, buffers: dict[str, torch.Tensor],
        variances: dict[nn.Module, torch.Tensor],
    ) -> None:
        """Raise :class:`CompileMismatch` unless the compiled margin's outputs and gradients
        match the eager side-effect-free margin's on the same inputs (detached copies of the
        logits and variances: the check's backward stays out of the model's graph)."""
        logits = logits.detach().requires_grad_(logits.requires_grad)
        variances = {m: v.detach().requires_grad_(v.requires_grad) for m, v in variances.items()}
        results = []
        for margin in (self.compiled, self._margin):
            state = {name: buffer.clone() for name, buffer in buffers.items()}
            results.append(margin(logits, labels, c, state, variances))
        (got, got_advanced), (want, want_advanced) = results
        _compare("the shifted logits", got, want)
        for name, value in want_advanced.items():
            _compare(f"the advanced vector {name}", got_advanced[name], value)
        if not (torch.is_grad_enabled() and want.requires_grad):
            return
        named = [(f"parameter {i}", p) for i, p in enumerate(self.parameters())] + [("the logits", logits)] + \
                [(f"batch variance {i}", v) for i, v in enumerate(variances.values())]
        named = [(name, t) for name, t in named if t.requires_grad]
        inputs = [t for _, t in named]
        projection = torch.randn(want.shape, generator=torch.Generator().manual_seed(0)).to(want)
        got_grads = torch.autograd.grad(got, inputs, projection, allow_unused=True, materialize_grads=True)
        want_grads = torch.autograd.grad(want, inputs, projection, allow_unused=True, materialize_grads=True)
        for (name, _), a, b in zip(named, got_grads, want_grads):
            _compare(f"the gradient of {name}", a, b)


class CompileMismatch(RuntimeError):
    """The compiled margin disagrees with the eager one."""


def _compare(what: str, got: torch.Tensor, want: torch.Tensor) -> None:
    """Raise :class:`CompileMismatch` unless ``got`` equals ``want`` to :data:`RTOL` of
    ``want``'s largest entry; a non-finite entry on either side, or another shape, is a mismatch (fail closed)."""
    difference = relative_difference(got, want)
    if math.isnan(difference):
        raise CompileMismatch(f"{what} differs from eager: a non-finite entry or another shape")
    if difference > RTOL:
        raise CompileMismatch(f"{what} differs from eager by {difference:.3g} of its largest entry")
