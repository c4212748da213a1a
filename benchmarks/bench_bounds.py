"""Certification-mode bound of WRN-16-4 (3×32×32): deterministic FFT bound vs the official
code's float64 power iteration (5 000 iterations × 128 starts, Thm 2 error term). Not a test.

Prints both network bounds, their relative difference, both times and their ratio, and the
network bound from the power iteration's guaranteed per-layer lower estimates (how close the
deterministic bound is to the true operator norms). ``--iters``/``--starts`` shrink the power
iteration for a quick CPU run; its time is then also extrapolated linearly to 5 000 × 128.

    python benchmarks/bench_bounds.py [--device auto|cpu|cuda] [--iters 5000] [--starts 128]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from lmt.bounds import CertifySettings, NetworkBound
from lmt.bounds.graph import Step, eval_mode
from lmt.bounds.linear_operator import LinearOperatorBound
from lmt.device import choose_device, describe
from lmt.models import create_model

OFFICIAL_ITERS, OFFICIAL_STARTS = 5000, 128


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(device: torch.device) -> NetworkBound:
    """WRN-16-4 in eval mode, with BatchNorm statistics from a few batches of random images."""
    torch.manual_seed(0)
    model = create_model("wrn_16_4").to(device)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
        model.train()
        for _ in range(4):
            model(torch.rand(64, 3, 32, 32, device=device))
    model.eval()
    return NetworkBound(model, (3, 32, 32)).to(device)


def power_iteration_bounds(network: NetworkBound, settings: CertifySettings) -> tuple[float, float]:
    """Network bounds from the power iteration: (Thm 2 upper bounds — what
    ``conv_method="power_iteration"`` certifies —, guaranteed lower estimates)."""
    runs: dict[str, Any] = {}

    def factor(step: Step, which: str) -> float:
        ctx = network.context(step, "certify", settings)
        if isinstance(step.bound, LinearOperatorBound) and step.bound.__class__.__name__ != "LinearBound":
            if step.node not in runs:
                runs[step.node] = step.bound.power_iteration(step.target, ctx)
            return getattr(runs[step.node], which)
        return step.bound.certify(step.target, ctx).value

    with eval_mode(network.model[0]), torch.no_grad():
        upper = network.propagate(lambda s: factor(s, "upper"))[0][network.output]
        lower = network.propagate(lambda s: factor(s, "lower"))[0][network.output]
    return float(upper), float(lower)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iters", type=int, default=OFFICIAL_ITERS)
    parser.add_argument("--starts", type=int, default=OFFICIAL_STARTS)
    args = parser.parse_args()
    device = choose_device(args.device)
    network = build(device)
    print(f"device: {describe(device)}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    _sync(device)
    start = time.perf_counter()
    deterministic = network.certified_bound(CertifySettings(conv_method="fft"))
    _sync(device)
    t_fft = time.perf_counter() - start

    settings = CertifySettings(n_iter=args.iters, n_starts=args.starts, conv_method="power_iteration")
    _sync(device)
    start = time.perf_counter()
    upper, lower = power_iteration_bounds(network, settings)
    _sync(device)
    t_power = time.perf_counter() - start

    print(f"deterministic (FFT) bound L_F      : {deterministic.total:.6g}   in {t_fft:.2f} s")
    print(f"power iteration {args.iters} it x {args.starts} starts, Thm 2 bound: {upper:.6g}   in {t_power:.2f} s")
    print(f"  (from its guaranteed lower estimates: {lower:.6g})")
    print(f"relative difference FFT / power iteration - 1: {deterministic.total / upper - 1:+.3%}")
    print(f"FFT above the lower estimates by             : {deterministic.total / lower - 1:+.3%}")
    print(f"time ratio power iteration / FFT: {t_power / t_fft:.1f}x")
    scale = (OFFICIAL_ITERS * OFFICIAL_STARTS) / (args.iters * args.starts)
    if scale != 1:
        print(
            f"extrapolated to {OFFICIAL_ITERS} it x {OFFICIAL_STARTS} starts (linear in it x starts): "
            f"{t_power * scale:.0f} s, {t_power * scale / t_fft:.0f}x the FFT bound"
        )


if __name__ == "__main__":
    main()
