"""Attack cost and strength at the configured budgets (not a test).

For each attack of the config's ``attack.attacks``: seconds per 100 examples, success rate, and
its median distance relative to C&W with 1 000 Adam steps (the reference) on the same
examples, for W&K CNNs trained briefly on the embedded MNIST data (or loaded checkpoints).

    python benchmarks/bench_attacks.py [--config config/config.yaml] [--examples 100]
        [--methods standard lmt] [--epochs 5] [--model standard=path/to/model.pt] [--threads 1]

Medians are over the correctly classified examples (misclassified ones have distance 0 for
every attack); "median ratio" is the median over those examples of distance / reference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lmt.attacks import create_attack, minimal_l2
from lmt.config import load_config
from lmt.data import load_dataset
from lmt.device import choose_device, describe
from lmt.train import TrainSettings, load_trained, predict, train

REFERENCE = ("cw.1000", {"steps": 1000})


def _model(method: str, params: dict, config: dict, dataset, epochs: int, paths: dict[str, str], device):
    if method in paths:
        return load_trained(paths[method], device).model
    out = Path(tempfile.mkdtemp(prefix="bench_attacks_"))
    settings = TrainSettings(epochs=epochs, seed=0, device=str(device))
    return train(config["model"], dataset, method, params, settings, out / "model.pt", out / "log.csv", progress=False).model


def _timed(model, x, y, label: str, params: dict, batch_size: int, device) -> tuple[torch.Tensor, float, float]:
    torch.manual_seed(0)
    start = time.perf_counter()
    result = minimal_l2(model, x, y, create_attack(label, params), batch_size, device, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return result.distance, seconds / len(y) * 100, float(result.success.double().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=["standard", "lmt"])
    parser.add_argument("--epochs", type=int, default=5, help="training epochs when no checkpoint is given")
    parser.add_argument("--model", action="append", default=[], help="METHOD=PATH of a model.pt to load")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (Snakemake jobs use 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    device = choose_device(config["training"]["device"])
    dataset = load_dataset(config["data"])
    paths = dict(item.split("=", 1) for item in args.model)
    x, y = dataset.test.x[: args.examples], dataset.test.y[: args.examples]
    batch_size = config["attack"]["batch_size"]
    print(f"device {describe(device)}, torch threads {torch.get_num_threads()}, {len(y)} test examples, "
          f"reference {REFERENCE[0]} {REFERENCE[1]}")
    for method in args.methods:
        model = _model(method, config["methods"].get(method, {}), config, dataset, args.epochs, paths, device).eval()
        correct = predict(model, x).argmax(1) == y
        ref, ref_time, ref_success = _timed(model, x, y, *REFERENCE, batch_size, device)
        ref_median = ref[correct].median()
        print(f"\n{method}: clean accuracy on these examples {correct.double().mean():.3f}; "
              f"{REFERENCE[0]}: {ref_time:.2f} s/100, success {ref_success:.3f}, median {ref_median:.3f}")
        print(f"{'attack':>10} {'s/100 ex':>9} {'success':>8} {'median':>8} {'/ ref':>7} {'median ratio':>13}")
        for label, params in config["attack"]["attacks"].items():
            dist, per100, success = _timed(model, x, y, label, params, batch_size, device)
            both = correct & torch.isfinite(dist) & torch.isfinite(ref) & (ref > 0)
            median = dist[correct].median()
            ratio = (dist[both] / ref[both]).median()
            print(f"{label:>10} {per100:9.2f} {success:8.3f} {median:8.3f} {median / ref_median:7.3f} {ratio:13.3f}")


if __name__ == "__main__":
    main()
