"""Bounds of layers that are linear maps (up to a bias): operator norm by power iteration.

Training mode takes one persistent power-iteration step per call (differentiable in the
parameters); certification mode runs the float64 multi-start power iteration with the Thm 2
error term unless a subclass has something better (an SVD, a deterministic FFT bound).
"""

from __future__ import annotations

from typing import Any

import torch

from lmt.bounds.power_iteration import (
    LinearMap,
    PowerIteration,
    autograd_adjoint,
    certified_operator_norm,
    training_step,
)
from lmt.bounds.registry import BoundContext, LayerCertificate, LayerBound


def power_iteration_method(ctx: BoundContext) -> str:
    s = ctx.settings
    return (
        f"power_iteration(float64, {s.n_iter} it x {s.n_starts} starts, Thm 2 error term; "
        "upper bound w.h.p.)"
    )


class LinearOperatorBound(LayerBound):
    """Operator norm of a layer's bias-free linear map, with a persistent vector ``u``."""

    def linear_map(self, module: Any, ctx: BoundContext, detach: bool) -> LinearMap:
        """The bias-free map: differentiable in the parameters unless ``detach``; in certify
        mode float64 with eval-mode statistics."""
        raise NotImplementedError

    def training_maps(self, module: Any, ctx: BoundContext) -> tuple[LinearMap, LinearMap]:
        """(A differentiable in the parameters, Aᵀ detached) for one training step. The
        default adjoint is autograd's; layers override this with an explicit, cheaper Aᵀ."""
        return (
            self.linear_map(module, ctx, detach=False),
            autograd_adjoint(self.linear_map(module, ctx, detach=True), ctx.state["u"]),
        )

    def state_shapes(self, module: Any, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {"u": (1, *input_shape)}

    def train(self, module: Any, ctx: BoundContext) -> torch.Tensor:
        forward, adjoint = self.training_maps(module, ctx)
        u = ctx.state["u"]
        if ctx.updates is not None:  # functional: u stays, u_next is returned
            sigma, ctx.updates["u"] = training_step(forward, adjoint, u)
            return sigma
        sigma, _ = training_step(forward, adjoint, u, out=u)  # u_next written in place
        return sigma

    def certify_adjoint(self, module: Any, ctx: BoundContext) -> LinearMap | None:
        """An explicit Aᵀ (float64, detached) for the certification power iteration's batch of
        ``n_starts`` vectors, or None for autograd's vector–Jacobian product."""
        return None

    def power_iteration(self, module: Any, ctx: BoundContext) -> PowerIteration:
        """The certification-mode power iteration (float64, Thm 2 error term)."""
        s = ctx.settings
        return certified_operator_norm(
            self.linear_map(module, ctx, detach=True), ctx.input_shape, s.n_iter, s.n_starts,
            s.seed, self.device(module), adjoint=self.certify_adjoint(module, ctx),
        )

    def device(self, module: Any) -> torch.device:
        return next(iter(self.parameters(module))).device

    def parameters(self, module: Any) -> list[torch.Tensor]:
        return list(module.parameters())

    def certify(self, module: Any, ctx: BoundContext) -> LayerCertificate:
        return LayerCertificate(self.power_iteration(module, ctx).upper, power_iteration_method(ctx))
