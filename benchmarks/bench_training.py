"""LMT training step vs standard training step, measured in one run (not a test).

For each model (W&K CNN at batch 50, WRN-16-4 at batch 128 by default) prints the seconds per
optimizer step of standard training and of LMT (Prop. 2, clipped; one power-iteration step per
layer and step) and their ratio; on CUDA also LMT with its margin as CUDA graphs
(:mod:`lmt.cuda_graphs`) and its ratio. Inputs are random tensors of the model's input shape: the cost
of a step does not depend on the pixel values.

    python benchmarks/bench_training.py [--device auto|cpu|cuda] [--steps 50] [--repeats 1]
    python benchmarks/bench_training.py --count-ops [--device cpu]

``--out PATH`` also writes what is printed to a Markdown file, under a provenance header (git
revision, torch, device, CPU, threads, command line, date, wall time), atomically.

On a shared machine, ``--repeats 5`` alternates standard and LMT blocks so that both see the
same load, and reports the medians, with the quartiles of the per-block ratios.

``--threads 1 2`` measures at each of these intra-op thread counts in turn, in the same run (the
workflow's jobs run with one thread each; a single job on a whole machine takes all cores).

``--compiled`` also times LMT with its margin through torch.compile (:mod:`lmt.compiled`, as
``LMT_COMPILE=1`` runs it; the compile time, paid before the timing, is printed, and a margin
that fell back to eager is said so).

``--floor`` also times LMT with its bound under ``torch.no_grad()``: the same forward work
without the bound's autograd recording and backward, so a floor for any rewrite of the bound's
gradient (the gradients are wrong: a measurement, not a way to train).

``--count-ops`` times nothing: it counts the ATen operations that one optimizer step dispatches
(a TorchDispatchMode sees every operation below autograd: forward with the loss and, for LMT,
the bound; backward; the optimizer), per phase, and how many are views (no kernel) and distinct.
On a GPU each non-view operation is roughly one kernel launch, so where steps are small the
count is a proxy for the launch overhead that a loaded CPU cannot time reliably. The counts do
not depend on the machine's load, and steps after the first few are identical.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from lmt.bounds import NetworkBound
from lmt.device import choose_device, describe
from lmt.methods import Method, StepContext, create_method
from lmt.models import create_model, model_input_shape
from lmt.provenance import print_and_record


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


RUNS = (("standard", {}), ("lmt", {"c": 1.0}))
PHASES = ("forward", "backward", "optimizer")
GRAPHED = "lmt_graphed"  # LMT with its margin as CUDA graphs (lmt.cuda_graphs): timed on CUDA only
COMPILED = "lmt_compiled"  # --compiled: LMT with its margin through torch.compile (lmt.compiled)
FLOOR = "lmt_floor"  # --floor: LMT with its bound under no_grad (a measurement, not a way to train)
FLOOR_KEY = ("floor: LMT's bound under no_grad, the same forward work without the bound's backward: "
             "no rewrite of the bound's gradient can make the LMT step cheaper than this (its gradients are wrong)")
TITLES = {"lmt": "LMT", GRAPHED: "LMT with CUDA graphs", COMPILED: "LMT compiled", FLOOR: "floor"}


def runs_for(device: torch.device, floor: bool = False, compiled: bool = False) -> list[tuple[str, str, dict]]:
    """(label, method, params) of the runs to compare on ``device``."""
    runs = [(run, run, params) for run, params in RUNS]
    if device.type == "cuda":
        runs.append((GRAPHED, "lmt", {"c": 1.0}))
    if compiled:
        runs.append((COMPILED, "lmt", {"c": 1.0}))
    if floor:
        runs.append((FLOOR, "lmt", {"c": 1.0}))
    return runs


def setup(model_name: str, device: torch.device, batch: int) -> tuple[nn.Module, NetworkBound, torch.Tensor, torch.Tensor]:
    """Seed 0, then a fresh model in training mode, its bound, and a fixed random batch (inputs
    of the model's shape, labels in 0..9): every timed run starts from the same."""
    torch.manual_seed(0)
    shape = model_input_shape(model_name)
    model = create_model(model_name).to(device).train()
    bound = NetworkBound(model, shape).to(device)
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    return model, bound, x, y


def make_step(
    model_name: str, run: str, params: dict, device: torch.device, batch: int, cuda_graphs: bool = False,
    floor: bool = False, compiled: bool = False, instrument: Callable[[nn.Module, NetworkBound], None] | None = None,
) -> Callable[..., Method]:
    """One optimizer step of ``run`` on the model and batch of :func:`setup`; the
    step calls ``phase(name)`` before each of :data:`PHASES` if given. ``cuda_graphs``: LMT's
    margin as CUDA graphs and ``compiled`` through torch.compile (else eager, whatever
    ``$LMT_CUDA_GRAPHS`` and ``$LMT_COMPILE`` say); ``floor``: the network bound under
    ``torch.no_grad()`` (see ``--floor``); ``instrument(model, bound)`` is called once before
    the first step (``bench_phases.py`` attaches its clocks). The step returns the method (its
    run record)."""
    model, bound, x, y = setup(model_name, device, batch)
    if instrument is not None:
        instrument(model, bound)
    method = create_method(run, params)
    if hasattr(method, "cuda_graphs"):
        method.cuda_graphs, method.compile = cuda_graphs, compiled
    if floor:
        bound.training_bound = torch.no_grad()(bound.training_bound)  # shadows the method
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step(phase: Callable[[str], None] = lambda name: None) -> Method:
        phase("forward")
        loss, _ = method.loss(StepContext(model, bound, 0.0), x, y)
        optimizer.zero_grad(set_to_none=True)
        phase("backward")
        loss.backward()
        phase("optimizer")
        optimizer.step()
        return method

    return step


@dataclass
class OpCounts:
    """ATen operations dispatched by one step: per phase, views, distinct overloads."""

    per_phase: Counter = field(default_factory=Counter)
    views: int = 0
    ops: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.per_phase.values())

    @property
    def distinct(self) -> int:
        return len(self.ops)

    def key(self) -> tuple:
        return (tuple(sorted(self.per_phase.items())), self.views, tuple(sorted(self.ops.items())))


class _CountOps(TorchDispatchMode):
    """Counts every ATen operation dispatched while active (in the phase last named)."""

    def __init__(self, counts: OpCounts) -> None:
        super().__init__()
        self.counts = counts
        self.phase = PHASES[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts.per_phase[self.phase] += 1
        self.counts.ops[str(func)] += 1
        if func.is_view:
            self.counts.views += 1
        return func(*args, **(kwargs or {}))


def count_step_ops(step: Callable[..., Method], warmup: int = 2) -> OpCounts:
    """The operations of one step of ``step`` after ``warmup`` steps (first-step setup aside)."""
    for _ in range(warmup):
        step()
    counts = OpCounts()
    with _CountOps(counts) as mode:
        def phase(name: str) -> None:
            mode.phase = name
        step(phase)
    return counts


def print_op_counts(specs: list[str], device: torch.device) -> None:
    """The table of ``--count-ops``: one row per model and run, then LMT ÷ standard."""
    print("ATen operations dispatched per optimizer step (after 2 warm-up steps; views do not launch kernels)")
    print()
    print("| model, batch | run | forward + loss | backward | optimizer | total | of which views | distinct ops |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for spec in specs:
        name, batch = spec.split(":")
        counts = {label: count_step_ops(make_step(name, run, params, device, int(batch), label == GRAPHED))
                  for label, run, params in runs_for(device)}
        for run, c in counts.items():
            print(f"| {name}, {batch} | {run} | " + " | ".join(str(c.per_phase[p]) for p in PHASES)
                  + f" | {c.total} | {c.views} | {c.distinct} |")
        standard = counts["standard"]
        for label in [k for k in counts if k != "standard"]:
            lmt = counts[label]
            ratios.append(f"{name}: {_title(label)}/standard = {lmt.total / standard.total:.2f} operations, "
                          f"{(lmt.total - lmt.views) / (standard.total - standard.views):.2f} non-view operations "
                          f"(+{lmt.total - standard.total} per step)")
    print()
    for line in ratios:
        print(line)


def seconds_per_step(step: Callable[[], None], device: torch.device, steps: int) -> float:
    sync_device(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync_device(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternating standard/LMT blocks of --steps steps; medians are reported")
    parser.add_argument("--models", nargs="+", default=["wong_kolter_mnist:50", "wrn_16_4:128"],
                        help="model:batch pairs")
    add_thread_counts_argument(parser)
    parser.add_argument("--compiled", action="store_true",
                        help="also time LMT with its margin through torch.compile (LMT_COMPILE=1)")
    parser.add_argument("--floor", action="store_true",
                        help="also time LMT with its bound under no_grad: a floor for the bound's gradient")
    parser.add_argument("--count-ops", action="store_true",
                        help="count the ATen operations of one step instead of timing steps")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the output to this Markdown file, with a provenance header")
    args = parser.parse_args()
    if (args.floor or args.compiled) and args.count_ops:
        parser.error("--floor and --compiled time steps; they do not combine with --count-ops")
    if args.threads is not None and min(args.threads) < 1:
        parser.error(f"--threads: every thread count must be at least 1, got {args.threads}")
    device = choose_device(args.device)
    title = "ATen operations per training step" if args.count_ops else "Training step time, LMT vs standard"
    print_and_record(args.out, title, describe(device), lambda: report(args, device))


def report(args: argparse.Namespace, device: torch.device) -> None:
    """Print the op-count table or the timings that ``args`` ask for."""
    print(f"device: {describe(device)}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    if args.count_ops:
        print_op_counts(args.models, device)
        return
    if args.floor:
        print(FLOOR_KEY)
    for _ in at_thread_counts(args.threads, announce=args.threads is not None):
        for spec in args.models:
            name, batch = spec.split(":")
            print_timings(name, int(batch), device, args.steps, args.repeats, args.floor, args.compiled)


def add_thread_counts_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N [N ...]``, the counts that :func:`at_thread_counts` runs at."""
    parser.add_argument("--threads", nargs="+", type=int, default=None,
                        help="intra-op thread counts to time at, one after another (default: torch's)")


def at_thread_counts(counts: list[int] | None, announce: bool = True) -> Iterator[int]:
    """Set torch's intra-op thread count to each of ``counts`` in turn (None: keep the current
    one) and yield it, printing "intra-op threads: N" if ``announce``; restored afterwards."""
    initial = torch.get_num_threads()
    try:
        for threads in counts or [initial]:
            torch.set_num_threads(threads)
            if announce:
                print(f"intra-op threads: {threads}")
            yield threads
    finally:
        torch.set_num_threads(initial)


def _title(label: str) -> str:
    return TITLES.get(label, label)


def print_timings(
    name: str, batch: int, device: torch.device, steps: int, repeats: int, floor: bool = False,
    compiled: bool = False,
) -> None:
    """Seconds per step of standard and LMT training (on CUDA also LMT with CUDA graphs; with
    ``compiled`` and ``floor`` also those runs), in ``repeats`` alternating blocks of ``steps``
    steps after a warm-up; medians and the median ratio, with its quartiles from 4 blocks on."""
    runs = {label: make_step(name, run, params, device, batch, label == GRAPHED, label == FLOOR, label == COMPILED)
            for label, run, params in runs_for(device, floor, compiled)}
    for label, step in runs.items():
        start = time.perf_counter()
        for _ in range(max(3, steps // 10)):
            method = step()
        if label == COMPILED:
            record = method.run_record()["compile"]
            state = "compiled" if record["compiled"] else f"fell back to eager: {record['failure']}"
            print(f"{name} (batch {batch}): LMT compiled: {state}; compiling and the warm-up steps took "
                  f"{time.perf_counter() - start:.1f} s, before the timing")
    times: dict[str, list[float]] = {run: [] for run in runs}
    for _ in range(repeats):
        for run, step in runs.items():
            times[run].append(seconds_per_step(step, device, steps))
    standard = statistics.median(times["standard"])
    for label in [k for k in runs if k != "standard"]:
        print(f"{name} (batch {batch}): standard {standard * 1e3:.2f} ms/step, {_title(label)} "
              f"{statistics.median(times[label]) * 1e3:.2f} ms/step, ratio {_title(label)}/standard = "
              + median_ratio(times[label], times["standard"]))


def median_ratio(times: list[float], base: list[float]) -> str:
    """The median of the per-block ratios ``times / base`` of alternating blocks, with how many
    and, from 4 blocks on, their quartiles."""
    ratios = [t / b for b, t in zip(base, times)]
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}"
    spread = ""
    if len(ratios) >= 4:
        low, _, high = statistics.quantiles(ratios, n=4)
        spread = f", quartiles {low:.2f}–{high:.2f}"
    return f"{statistics.median(ratios):.2f} (median of {len(ratios)} alternating blocks{spread})"


if __name__ == "__main__":
    main()
