"""Where the LMT step's extra time goes, phase by phase. Measured in one run (not a test).

Standard and LMT single steps alternate (both see the same load), each step timed at its phase
boundaries: the model's forward pass, LMT's bound (``NetworkBound.training_bound``: one
power-iteration step per layer), the loss (the rest of the forward: the margin and the
cross-entropy), the backward pass and the optimizer step. Printed: the median of each phase,
and the median of whole steps (not the sum of the phase medians).

Then the bound alone: the same call repeated outside the step, so that the code and data it
touches stay in the caches. Inside the step it runs after the model's large kernels; the gap
between the two is what those kernels leave cold, a cost that no reduction of the bound's
arithmetic removes.

On CUDA every boundary synchronises the device, which serialises the step: there the phases
say where the work is, not how long an unsynchronised step takes (``bench_training.py``).

    python benchmarks/bench_phases.py [--device cpu] [--models wong_kolter_mnist:50] [--steps 2000] [--threads 1 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from lmt.bounds import NetworkBound
from lmt.device import choose_device, describe
from lmt.provenance import print_and_record

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script, for the same steps
from bench_training import RUNS, add_thread_counts_argument, at_thread_counts, make_step, sync_device  # noqa: E402

PHASES = ("model forward", "bound", "loss", "backward", "optimizer")
STEP = "whole step"


class PhaseClock:
    """Timestamps (ns) of one step's boundaries, and the phases they delimit; on CUDA each
    mark synchronises the device first. ``bound_call`` keeps the arguments of the last bound
    call, to repeat it alone."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.marks: dict[str, int] = {}
        self.bound_call: tuple[Callable, tuple, dict] | None = None

    def mark(self, name: str) -> None:
        sync_device(self.device)
        self.marks[name] = time.perf_counter_ns()

    def attach(self, model: nn.Module, bound: NetworkBound) -> None:
        """Marks around the model's forward pass and around every call of the training bound."""
        model.register_forward_pre_hook(lambda module, args: self.mark("model"))
        model.register_forward_hook(lambda module, args, output: self.mark("model end"))
        original = bound.training_bound

        def timed_bound(*args, **kwargs):
            self.bound_call = (original, args, kwargs)
            self.mark("bound")
            result = original(*args, **kwargs)
            self.mark("bound end")
            return result

        bound.training_bound = timed_bound  # shadows the method for this instance

    def phase(self, name: str) -> None:
        """make_step's callback: called before "forward", "backward" and "optimizer"."""
        self.mark(name)

    def phases(self) -> dict[str, float]:
        """Seconds of each of :data:`PHASES` and of the whole step, from the last step's marks."""
        m = self.marks
        model = m["model end"] - m["model"]
        bound = m["bound end"] - m["bound"] if "bound" in m else 0
        return {name: ns / 1e9 for name, ns in {
            "model forward": model,
            "bound": bound,
            "loss": m["backward"] - m["forward"] - model - bound,
            "backward": m["optimizer"] - m["backward"],
            "optimizer": m["end"] - m["optimizer"],
            STEP: m["end"] - m["forward"],
        }.items()}


def timed_step(model_name: str, run: str, device: torch.device, batch: int) -> tuple[Callable[[], dict[str, float]], PhaseClock]:
    """A step of ``run`` (bench_training's) that returns its phases in seconds."""
    clock = PhaseClock(device)
    step = make_step(model_name, run, dict(RUNS)[run], device, batch, instrument=clock.attach)

    def run_step() -> dict[str, float]:
        clock.marks.clear()
        step(clock.phase)
        clock.mark("end")
        return clock.phases()

    return run_step, clock


def bound_alone(clock: PhaseClock, repeats: int) -> float:
    """Median seconds of the step's bound call repeated on its own (it advances the vectors;
    a measurement, not training)."""
    if clock.bound_call is None:
        raise ValueError("the LMT step never called its training bound")
    bound, args, kwargs = clock.bound_call
    times = []
    for _ in range(max(3, repeats // 10) + repeats):
        sync_device(clock.device)
        start = time.perf_counter_ns()
        bound(*args, **kwargs)
        sync_device(clock.device)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times[-repeats:]) / 1e9


def print_phases(model_name: str, batch: int, device: torch.device, steps: int) -> None:
    """The per-phase table of alternating single steps, then the bound alone."""
    runs = {run: timed_step(model_name, run, device, batch) for run in ("standard", "lmt")}
    for step, _ in runs.values():
        for _ in range(max(3, steps // 10)):
            step()
    samples: dict[str, list[dict[str, float]]] = {run: [] for run in runs}
    for _ in range(steps):
        for run, (step, _) in runs.items():
            samples[run].append(step())
    medians = {run: {name: statistics.median(s[name] for s in samples[run]) for name in (*PHASES, STEP)}
               for run in runs}
    print(f"{model_name} (batch {batch}): µs per phase, medians of {steps} alternating single steps")
    print()
    print("| phase | standard | LMT | LMT − standard |")
    print("|---|---|---|---|")
    for name in (*PHASES, STEP):
        standard, lmt = medians["standard"][name] * 1e6, medians["lmt"][name] * 1e6
        print(f"| {name} | {standard:.0f} | {lmt:.0f} | {lmt - standard:+.0f} |")
    print()
    alone = bound_alone(runs["lmt"][1], steps)
    in_step = medians["lmt"]["bound"]
    print(f"{model_name} (batch {batch}): the bound alone, {steps} calls in a row: {alone * 1e6:.0f} µs; "
          f"in the step {in_step * 1e6:.0f} µs ({in_step / alone:.2f}× as long)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["wong_kolter_mnist:50"], help="model:batch pairs")
    parser.add_argument("--steps", type=int, default=2000, help="alternating single steps per run")
    add_thread_counts_argument(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the output to this Markdown file, with a provenance header")
    args = parser.parse_args()
    if min(args.steps, *(args.threads or [1])) < 1:
        parser.error("--steps and --threads must be at least 1")
    device = choose_device(args.device)

    def report() -> None:
        print(f"device: {describe(device)}; torch {torch.__version__}; threads {torch.get_num_threads()}")
        for _ in at_thread_counts(args.threads):
            for spec in args.models:
                name, batch = spec.split(":")
                print_phases(name, int(batch), device, args.steps)

    print_and_record(args.out, "The LMT step phase by phase", describe(device), report)


if __name__ == "__main__":
    main()
