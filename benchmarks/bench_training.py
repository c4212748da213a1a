"""LMT training step vs standard training step, measured in one run (not a test).

For each model (W&K CNN at batch 50, WRN-16-4 at batch 128 by default) prints the seconds per
optimizer step of standard training and of LMT (Prop. 2, clipped; one power-iteration step per
layer and step) and their ratio. Inputs are random tensors of the model's input shape: the cost
of a step does not depend on the pixel values.

    python benchmarks/bench_training.py [--device auto|cpu|cuda] [--steps 50]
"""

from __future__ import annotations

import argparse
import time

import torch

from lmt.bounds import NetworkBound
from lmt.device import choose_device, describe
from lmt.methods import StepContext, create_method
from lmt.models import create_model, model_input_shape


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(model_name: str, run: str, params: dict, device: torch.device, batch: int, steps: int) -> float:
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

    for _ in range(max(3, steps // 10)):
        step()
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
    parser.add_argument("--models", nargs="+", default=["wong_kolter_mnist:50", "wrn_16_4:128"],
                        help="model:batch pairs")
    args = parser.parse_args()
    device = choose_device(args.device)
    print(f"device: {describe(device)}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    for spec in args.models:
        name, batch = spec.split(":")
        standard = seconds_per_step(name, "standard", {}, device, int(batch), args.steps)
        lmt = seconds_per_step(name, "lmt", {"c": 1.0}, device, int(batch), args.steps)
        print(f"{name} (batch {batch}): standard {standard * 1e3:.2f} ms/step, LMT {lmt * 1e3:.2f} ms/step, "
              f"ratio LMT/standard = {lmt / standard:.2f}")


if __name__ == "__main__":
    main()
