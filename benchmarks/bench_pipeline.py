"""Measured ratios of the pipeline's costs, in one run on one device (not a test).

Prints: time per optimizer step of LMT vs standard training; certification-mode bound and
certified radii vs plain inference on the test split; C&W seconds per 100 examples.

    python benchmarks/bench_pipeline.py [--device auto|cpu|cuda] [--steps 200]
"""

from __future__ import annotations

import argparse
import time

import torch

from lmt.attacks import CWBudget, minimal_l2
from lmt.bounds import CertifySettings, NetworkBound
from lmt.certify import radius_prop2
from lmt.data import embedded_mnist
from lmt.device import choose_device, describe
from lmt.methods import StepContext, create_method
from lmt.models import create_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(run: str, params: dict, device: torch.device, steps: int, batch_size: int) -> float:
    """Seconds per optimizer step (after warm-up) of ``run`` on the W&K CNN."""
    data = embedded_mnist()
    torch.manual_seed(0)
    model = create_model("wong_kolter_mnist").to(device)
    bound = NetworkBound(model, (1, 28, 28)).to(device)
    method = create_method(run, params)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_all, y_all = data.train.x.to(device), data.train.y.to(device)

    def step(i: int) -> None:
        idx = torch.arange(i * batch_size, (i + 1) * batch_size, device=device) % len(y_all)
        ctx = StepContext(model, bound, 0.0)
        loss, _ = method.loss(ctx, x_all[idx], y_all[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(20):
        step(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--attack-examples", type=int, default=200)
    args = parser.parse_args()
    device = choose_device(args.device)
    print(f"device: {describe(device)}; torch {torch.__version__}; threads {torch.get_num_threads()}")

    standard = time_steps("standard", {}, device, args.steps, args.batch_size)
    lmt = time_steps("lmt", {"c": 1.0}, device, args.steps, args.batch_size)
    print(f"training step (W&K CNN, batch {args.batch_size}): standard {standard * 1e3:.2f} ms, "
          f"LMT {lmt * 1e3:.2f} ms, ratio LMT/standard = {lmt / standard:.2f}")

    data = embedded_mnist()
    model = create_model("wong_kolter_mnist").to(device).eval()
    x, y = data.test.x.to(device), data.test.y.to(device)
    with torch.no_grad():
        model(x)
        _sync(device)
        start = time.perf_counter()
        logits = model(x)
        _sync(device)
    inference = time.perf_counter() - start
    start = time.perf_counter()
    bound = NetworkBound(model, (1, 28, 28)).to(device).certified_bound(CertifySettings())
    radius_prop2(logits.cpu(), y.cpu(), bound.head_weight.cpu(), bound.body)
    _sync(device)
    certification = time.perf_counter() - start
    print(f"certification of {len(y)} test examples: bound + radii {certification:.2f} s "
          f"(5000 it x 16 starts), inference {inference * 1e3:.2f} ms, ratio {certification / inference:.0f}")

    n = args.attack_examples
    start = time.perf_counter()
    minimal_l2(model, x[:n], y[:n], CWBudget(), batch_size=n, device=device, progress=False)
    _sync(device)
    attack = time.perf_counter() - start
    print(f"C&W (paper budget, 9 x 100 steps): {attack / n * 100:.2f} s per 100 examples; "
          f"attack/certification time for {n} examples = {attack / certification:.1f}")


if __name__ == "__main__":
    main()
