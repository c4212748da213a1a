"""Certification and attack cost vs inference, measured in one run on one device (not a test).

On the embedded test split (an untrained W&K CNN, seed 0: the costs do not depend on the
weights; the share of the radius given up to rounding does, and is large for an untrained
network's small margins) prints, kept apart because they scale differently:

- the **one-time** cost of a certificate: tracing the network and its certification-mode
  Lipschitz bound (paid once per model, whatever the number of examples);
- the **per-example** cost of float-sound radii (a float64 forward pass recording activation
  norms, the rounding-error bounds and the radius formula, lmt.certify.certify_examples) against
  float32 inference per example, and their ratio;
- C&W at the paper's budget per example, against certification per example, and for
  ``--attack-examples`` examples against the whole certificate (bound + radii).

Per-set times are medians of ``--repeats`` runs. Training-step costs:
benchmarks/bench_training.py.

    python benchmarks/bench_pipeline.py [--device auto|cpu|cuda] [--attack-examples 20] [--repeats 3] [--out PATH]

``--out PATH`` also writes what is printed to a Markdown file, under a provenance header (git
revision, torch, device, CPU, threads, command line, date, wall time), atomically.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from lmt.attacks import minimal_l2
from lmt.attacks.cw import CW
from lmt.bounds import CertifySettings, NetworkBound
from lmt.certify import certify_examples
from lmt.data import embedded_mnist
from lmt.device import choose_device, describe
from lmt.models import create_model
from lmt.provenance import print_and_record


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(work: Callable[[], object], device: torch.device) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    result = work()
    _sync(device)
    return time.perf_counter() - start, result


def median_seconds(work: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, object]:
    runs = [timed(work, device) for _ in range(repeats)]
    return statistics.median(seconds for seconds, _ in runs), runs[-1][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--attack-examples", type=int, default=20, help="examples attacked by C&W (0: no attack)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of inference and of the radii; medians reported")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the output to this Markdown file, with a provenance header")
    args = parser.parse_args()
    device = choose_device(args.device)
    print_and_record(args.out, "Certification and attack cost vs inference", describe(device),
                     lambda: report(args, device))


def report(args: argparse.Namespace, device: torch.device) -> None:
    """Print the one-time, per-example and attack costs that ``args`` ask for."""
    print(f"device: {describe(device)}; torch {torch.__version__}; threads {torch.get_num_threads()}")

    torch.manual_seed(0)
    data = embedded_mnist()
    model = create_model("wong_kolter_mnist").to(device).eval()
    x, y = data.test.x.to(device), data.test.y.to(device)
    n = len(y)

    def infer() -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    infer()  # warm-up
    inference, _ = median_seconds(infer, device, args.repeats)

    trace, network = timed(lambda: NetworkBound(model, (1, 28, 28)).to(device), device)
    bound_s, bound = timed(lambda: network.certified_bound(CertifySettings()), device)
    one_time = trace + bound_s
    certify, certificates = median_seconds(lambda: certify_examples(network, bound, model, x, y), device, args.repeats)

    per_certify, per_inference = certify / n, inference / n
    print(f"W&K CNN (untrained, seed 0), {n} embedded MNIST test examples (medians of {args.repeats} runs)")
    print(f"one-time: certified bound {one_time:.3f} s (tracing {trace:.3f} s, certification-mode bound "
          f"{bound_s:.3f} s), paid once per model")
    print(f"per example: float-sound radii {per_certify * 1e3:.4f} ms, float32 inference {per_inference * 1e3:.4f} ms: "
          f"ratio {per_certify / per_inference:.1f} (median radius given up to rounding: "
          f"{certificates.rounding['median_relative_radius_loss']:.2%})")
    print(f"all {n} examples: bound + radii {one_time + certify:.3f} s = one-time {one_time:.3f} s + "
          f"{n} x {per_certify * 1e3:.4f} ms")

    m = min(args.attack_examples, n)
    if m > 0:
        attack, _ = timed(lambda: minimal_l2(model, x[:m], y[:m], CW(), batch_size=m, device=device, progress=False), device)
        per_attack = attack / m
        print(f"C&W (paper budget, 9 x 100 steps) on {m} examples: {per_attack * 1e3:.1f} ms per example = "
              f"{per_attack / per_certify:.0f} x the radii per example; for {m} examples C&W {attack:.2f} s vs "
              f"bound + radii {one_time + per_certify * m:.3f} s (ratio {attack / (one_time + per_certify * m):.1f})")


if __name__ == "__main__":
    main()
