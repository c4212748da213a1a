"""How cheap can an LMT step on the W&K CNN get? Measured in one run (not a test).

The issue's target is LMT ≤ 1.3× a standard step; on the W&K CNN at batch 50 on a 2-core CPU
lmt-bench's step sits around it. This script splits the extra cost and bounds what any rewrite
could gain, timing in alternating blocks (as ``bench_training.py``):

* ``standard``: cross-entropy;
* ``LMT``: lmt-bench's LMT step (Prop. 2, clipped), as the workflow trains;
* ``hand-written``: the same loss written by hand for this one network: the three body layers'
  power-iteration steps (im2col products for the convolutions) as one autograd Function with
  explicit weight gradients, no graph walk, no registry, no check for a degenerate vector (which
  lmt-bench keeps: fail closed). A speed-of-light reference, not a way to train: before timing,
  its loss, weight gradients and advanced vectors are checked against lmt-bench's step;
* ``margin alone``: lmt-bench's margin and loss with the body bound fixed at 1 (no power
  iteration): what the loss costs without any bound.

If ``hand-written`` is not below the target either, the framework is not what holds the ratio.

The defaults (301 blocks of 10 steps, about a minute per thread count) are for a precise
median: a single block's ratio varies by about ±10 % on a shared VM, and with 41 blocks the
medians of repeated runs lay up to 0.05 apart, as large as the differences this script measures.

    python benchmarks/bench_wk_minimum.py [--batch 50] [--steps 10] [--repeats 301] [--threads 1 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds import NetworkBound
from lmt.losses import margin_logits
from lmt.methods import StepContext, create_method
from lmt.numerics import relative_difference
from lmt.provenance import print_and_record

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script, for the same steps and timer
from bench_training import (  # noqa: E402
    add_thread_counts_argument, at_thread_counts, make_step, median_ratio, seconds_per_step, setup,
)

MODEL = "wong_kolter_mnist"
CPU = torch.device("cpu")
VARIANT = "prop2_clipped"  # lmt-bench's default LMT loss (the official code's)
TOLERANCE = 1e-5  # of each tensor's largest entry: the two differ only in float summation order
Step = Callable[[], None]


class _BodyBound(torch.autograd.Function):
    """σ(conv₁)·σ(conv₂)·σ(fc₁), one power-iteration step each (the vectors advanced in place),
    with the weight gradients written out: ∂σ/∂M = (A û/σ)·unfold(û)ᵀ for a convolution as the
    matrix M times its unfolded input, (W û/σ)·ûᵀ for a linear layer."""

    @staticmethod
    def forward(ctx, conv1: torch.Tensor, conv2: torch.Tensor, fc1: torch.Tensor, vectors: list,
                geometry: list) -> torch.Tensor:
        saved, sigmas = [], []
        for weight, u, (spatial, kwargs) in zip((conv1, conv2), vectors, geometry):
            matrix = weight.reshape(weight.shape[0], -1)
            unfolded = F.unfold((u / torch.linalg.vector_norm(u).clamp_min(torch.finfo(u.dtype).tiny))[0], **kwargs)
            y = matrix @ unfolded
            sigmas.append(torch.linalg.vector_norm(y))
            u.copy_(F.fold(matrix.T @ y, spatial, **kwargs)[None])
            saved += [y, unfolded]
        u = vectors[2]
        u_hat = (u / torch.linalg.vector_norm(u).clamp_min(torch.finfo(u.dtype).tiny))[0]
        y = torch.mv(fc1, u_hat)
        sigmas.append(torch.linalg.vector_norm(y))
        u.copy_((y @ fc1)[None])
        saved += [y, u_hat]
        body = sigmas[0] * sigmas[1] * sigmas[2]
        ctx.save_for_backward(*saved, *sigmas, body)
        ctx.shapes = (conv1.shape, conv2.shape)
        return body

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        y1, unfolded1, y2, unfolded2, y3, u_hat3, s1, s2, s3, body = ctx.saved_tensors
        scale = grad * body  # ∂body/∂σ_l = body/σ_l, and ∂σ_l/∂(its matrix) carries 1/σ_l
        return (((scale / (s1 * s1)) * y1 @ unfolded1.T).view(ctx.shapes[0]),
                ((scale / (s2 * s2)) * y2 @ unfolded2.T).view(ctx.shapes[1]),
                torch.outer((scale / (s3 * s3)) * y3, u_hat3), None, None)


def _layers(model: nn.Module) -> tuple[list[nn.Conv2d], list[nn.Linear]]:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(convs) != 2 or len(linears) != 2:
        raise ValueError(f"the hand-written bound is for {MODEL} (2 convolutions, 2 linear layers)")
    return convs, linears


def hand_written_loss(model: nn.Module, vectors: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                      with_bound: bool = True) -> torch.Tensor:
    """The LMT loss of the W&K CNN by hand (``with_bound=False``: the body bound fixed at 1)."""
    convs, linears = _layers(model)
    logits = model(x)
    if with_bound:
        geometry = [(tuple(u.shape[2:]), {"kernel_size": c.kernel_size, "dilation": c.dilation,
                                          "padding": c.padding, "stride": c.stride}) for c, u in zip(convs, vectors)]
        body = _BodyBound.apply(convs[0].weight, convs[1].weight, linears[0].weight, vectors, geometry)
    else:
        body = torch.ones((), dtype=logits.dtype)
    return F.cross_entropy(margin_logits(logits, y, 1.0, VARIANT, body=body, head_weight=linears[1].weight), y)


def _vectors(bound: NetworkBound) -> list[torch.Tensor]:
    """The body layers' power-iteration vectors, in layer order (the head's, last, is not
    advanced by Prop. 2)."""
    return list(bound.buffers())[:3]


def hand_written_step(batch: int, with_bound: bool = True) -> Step:
    model, bound, x, y = setup(MODEL, CPU, batch)
    vectors = _vectors(bound)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        loss = hand_written_loss(model, vectors, x, y, with_bound)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def check_hand_written(batch: int, loss: Callable[..., torch.Tensor] = hand_written_loss) -> float:
    """Raise ValueError unless ``loss`` gives lmt-bench's LMT loss, weight gradients and advanced
    vectors on one batch (to :data:`TOLERANCE` of each tensor's largest entry); return the
    largest relative difference. The labels are the model's own predictions: the clipped margin
    of a misclassified example is 0, and with every example misclassified (likely at
    initialisation) the bound would get no gradient to check."""
    model, bound, x, _ = setup(MODEL, CPU, batch)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    vectors = [v.clone() for v in _vectors(bound)]
    results = []
    for compute in (lambda: create_method("lmt", {"c": 1.0}).loss(StepContext(model, bound, 0.0), x, y)[0],
                    lambda: loss(model, vectors, x, y)):
        model.zero_grad(set_to_none=True)
        value = compute()
        value.backward()
        results.append([value.detach()] + [p.grad.clone() for p in model.parameters()])
    names = ["the loss"] + [f"the gradient of {n}" for n, _ in model.named_parameters()]
    pairs = list(zip(names, results[1], results[0]))
    pairs += [(f"the advanced vector {i}", a, b) for i, (a, b) in enumerate(zip(vectors, _vectors(bound)))]
    worst = 0.0
    for name, got, want in pairs:
        difference = relative_difference(got, want)
        if not difference <= TOLERANCE:  # NaN (a non-finite entry) fails too
            raise ValueError(f"the hand-written step differs from lmt-bench's in {name} by {difference:.3g} "
                             f"of its largest entry (allowed {TOLERANCE:g})")
        worst = max(worst, difference)
    return worst


def print_timings(batch: int, steps: int, repeats: int) -> None:
    """Alternating blocks of every run; medians, and the median ratio to standard with quartiles."""
    runs: dict[str, Step] = {
        "standard": make_step(MODEL, "standard", {}, CPU, batch),
        "LMT": make_step(MODEL, "lmt", {"c": 1.0}, CPU, batch),
        "hand-written": hand_written_step(batch),
        "margin alone": hand_written_step(batch, with_bound=False),
    }
    for step in runs.values():
        for _ in range(max(3, steps // 10)):
            step()
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeats):
        for label, step in runs.items():
            times[label].append(seconds_per_step(step, CPU, steps))
    print(f"{MODEL} (batch {batch}): standard {statistics.median(times['standard']) * 1e3:.2f} ms/step")
    for label in [k for k in runs if k != "standard"]:
        print(f"{MODEL} (batch {batch}): {label} {statistics.median(times[label]) * 1e3:.2f} ms/step, ratio "
              f"{label}/standard = {median_ratio(times[label], times['standard'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=301, help="alternating blocks of --steps steps per run")
    add_thread_counts_argument(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the output to this Markdown file, with a provenance header")
    args = parser.parse_args()
    if min(args.batch, args.steps, args.repeats, *(args.threads or [1])) < 1:
        parser.error("--batch, --steps, --repeats and --threads must be at least 1")

    def report() -> None:
        print(f"device: cpu; torch {torch.__version__}; threads {torch.get_num_threads()}")
        worst = check_hand_written(args.batch)
        print(f"hand-written step checked against lmt-bench's: loss, weight gradients and advanced vectors "
              f"agree to {worst:.1g} of each tensor's largest entry")
        for _ in at_thread_counts(args.threads):
            print_timings(args.batch, args.steps, args.repeats)

    started = time.perf_counter()
    print_and_record(args.out, "How cheap can an LMT step on the W&K CNN get?", "cpu", report)
    if args.out is None:
        print(f"(took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
