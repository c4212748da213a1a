"""Certification and attack cost vs inference, measured in one run on one device (not a test).

Prints, on the embedded test split (W&K CNN): the one-time certification-mode bound; the
per-example cost of float-sound radii (a float64 forward pass recording activation norms, the
rounding-error bounds and the radius formula, lmt.certify.certify_examples) against float32
inference; C&W seconds per 100 examples at the paper's budget. Training-step costs:
benchmarks/bench_training.py.

    python benchmarks/bench_pipeline.py [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

from lmt.attacks import minimal_l2
from lmt.attacks.cw import CW
from lmt.bounds import CertifySettings, NetworkBound
from lmt.certify import certify_examples
from lmt.data import embedded_mnist
from lmt.device import choose_device, describe
from lmt.models import create_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--attack-examples", type=int, default=200)
    args = parser.parse_args()
    device = choose_device(args.device)
    print(f"device: {describe(device)}; torch {torch.__version__}; threads {torch.get_num_threads()}")

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
    network = NetworkBound(model, (1, 28, 28)).to(device)
    bound = network.certified_bound(CertifySettings())
    _sync(device)
    one_time = time.perf_counter() - start
    start = time.perf_counter()
    certificates = certify_examples(network, bound, model, x, y)
    _sync(device)
    per_set = time.perf_counter() - start
    print(f"one-time certified bound: {one_time:.2f} s")
    print(f"float-sound radii of {len(y)} test examples: {per_set:.3f} s, float32 inference "
          f"{inference * 1e3:.2f} ms: ratio {per_set / inference:.1f} per example "
          f"(median radius given up to rounding: {certificates.rounding['median_relative_radius_loss']:.2%})")
    certification = one_time + per_set

    n = args.attack_examples
    start = time.perf_counter()
    minimal_l2(model, x[:n], y[:n], CW(), batch_size=n, device=device, progress=False)
    _sync(device)
    attack = time.perf_counter() - start
    print(f"C&W (paper budget, 9 x 100 steps): {attack / n * 100:.2f} s per 100 examples; "
          f"attack/certification time for {n} examples = {attack / certification:.1f}")


if __name__ == "__main__":
    main()
