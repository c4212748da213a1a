"""LMT training step vs standard training step, measured in one run (not a test).

For each model (W&K CNN at batch 50, WRN-16-4 at batch 128 by default) prints the seconds per
optimizer step of standard training and of LMT (Prop. 2, clipped; one power-iteration step per
layer and step) and their ratio. Inputs are random tensors of the model's input shape: the cost
of a step does not depend on the pixel values.

    python benchmarks/bench_training.py [--device auto|cpu|cuda] [--steps 50] [--repeats 1]

On a shared machine, ``--repeats 5`` alternates standard and LMT blocks so that both see the
same load, and reports the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from lmt.bounds import NetworkBound
from lmt.device import choose_device, describe
from lmt.methods import StepContext, create_method
from lmt.models import create_model, model_input_shape


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model_name: str, run: str, params: dict, device: torch.device, batch: int) -> Callable[[], None]:
    """One optimizer step of ``run`` on a fresh model (seed 0) and a fixed random batch."""
    torch.manual_seed(0)
    shape = model_input_shape(model_name)
    model = create_model(model_name).to(device).train()
    bound = NetworkBound(model, shape).to(device)
    method = create_method(run, params)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        loss, _ = method.loss(StepContext(model, bound, 0.0), x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def seconds_per_step(step: Callable[[], None], device: torch.device, steps: int) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternating standard/LMT blocks of --steps steps; medians are reported")
    parser.add_argument("--models", nargs="+", default=["wong_kolter_mnist:50", "wrn_16_4:128"],
                        help="model:batch pairs")
    args = parser.parse_args()
    device = choose_device(args.device)
    print(f"device: {describe(device)}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    for spec in args.models:
        name, batch = spec.split(":")
        steps = {run: make_step(name, run, params, device, int(batch))
                 for run, params in (("standard", {}), ("lmt", {"c": 1.0}))}
        for step in steps.values():
            for _ in range(max(3, args.steps // 10)):
                step()
        times: dict[str, list[float]] = {run: [] for run in steps}
        for _ in range(args.repeats):
            for run, step in steps.items():
                times[run].append(seconds_per_step(step, device, args.steps))
        ratios = [lmt / standard for standard, lmt in zip(times["standard"], times["lmt"])]
        standard, lmt = statistics.median(times["standard"]), statistics.median(times["lmt"])
        print(f"{name} (batch {batch}): standard {standard * 1e3:.2f} ms/step, LMT {lmt * 1e3:.2f} ms/step, "
              f"ratio LMT/standard = {statistics.median(ratios):.2f}"
              + (f" (median of {args.repeats} alternating blocks)" if args.repeats > 1 else ""))


if __name__ == "__main__":
    main()
