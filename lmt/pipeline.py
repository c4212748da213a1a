"""The stages of one run as functions from files to files: train, certify, attack, merge,
aggregate, plot. The Snakemake scripts and the ``lmt-bench`` CLI are thin adapters over these.

Every output is written atomically, with a provenance record beside it (``*.provenance.json``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lmt import attacks, certify
from lmt.bounds import CertifySettings, compare_bounds, comparison_frame
from lmt.data import load_dataset
from lmt.device import choose_device, describe
from lmt.io import atomic_path, write_csv, write_json
from lmt.provenance import record
from lmt.report.figures import plot_accuracy_vs_radius
from lmt.report.tables import metrics_table, summary_markdown, summary_table
from lmt.train import TrainSettings, load_trained, predict, train


class SoundnessError(AssertionError):
    """A certified radius exceeds the distance of an adversarial example that was found."""


def _provenance_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".provenance.json")


def train_stage(
    config: dict[str, Any], run_name: str, seed: int, model_path: str, log_path: str,
    resume_path: str | None = None, progress: bool = True,
) -> None:
    started = time.perf_counter()
    dataset = load_dataset(config["data"])
    training = config["training"]
    settings = TrainSettings(
        epochs=training["epochs"], batch_size=training["batch_size"], optimizer=training["optimizer"],
        lr=training["lr"], device=training["device"], seed=seed,
    )
    trained = train(
        config["model"], dataset, run_name, config["methods"][run_name], settings,
        model_path, log_path, resume_path=resume_path, progress=progress,
    )
    write_json(
        _provenance_path(model_path),
        record(config, trained.info["device"], time.perf_counter() - started, run=run_name, seed=seed),
    )
    if resume_path is not None:
        # The finished model supersedes the epoch checkpoint; a forced rerun starts afresh.
        Path(resume_path).unlink(missing_ok=True)


def certify_stage(config: dict[str, Any], model_path: str, out_csv: str, bounds_json: str) -> pd.DataFrame:
    """Per-example margins and certified radii (Prop. 1 and Prop. 2) on the test split; the
    per-layer bound comparison of Fig. 3 goes to ``layer_bounds.csv`` beside ``bounds_json``."""
    started = time.perf_counter()
    device = choose_device(config["training"]["device"])
    dataset = load_dataset(config["data"])
    trained = load_trained(model_path, device)
    settings = CertifySettings(**config["certify"])
    bound = trained.bound.certified_bound(settings)
    comparison = compare_bounds(trained.bound, settings, certified=bound)
    logits = predict(trained.model, dataset.test.x)
    labels = dataset.test.y
    frame = pd.DataFrame(
        {
            "example_id": np.arange(len(labels)),
            "label": labels.numpy(),
            "prediction": logits.argmax(1).numpy(),
            "margin": certify.margins(logits, labels).numpy(),
            "lipschitz_bound": bound.total,
            "body_bound": bound.body,
            "radius_prop1": certify.radius_prop1(logits, labels, bound.total).numpy(),
        }
    )
    if bound.body is not None:
        frame["certified_radius"] = certify.radius_prop2(
            logits, labels, bound.head_weight, bound.body
        ).numpy()
        frame["certificate"] = "prop2"
    else:
        frame["certified_radius"] = frame["radius_prop1"]
        frame["certificate"] = "prop1"
    write_csv(out_csv, frame)
    write_csv(Path(bounds_json).with_name("layer_bounds.csv"), comparison_frame(comparison))
    write_json(
        bounds_json,
        {
            "lipschitz_bound": bound.total,
            "body_bound": bound.body,
            "certificate": frame["certificate"].iloc[0],
            "settings": vars(settings),
            "layers": bound.layers,
            "comparison": comparison.network_dict(),
            "provenance": record(config, describe(device), time.perf_counter() - started),
        },
    )
    return frame


def attack_stage(config: dict[str, Any], model_path: str, out_csv: str, progress: bool = True) -> pd.DataFrame:
    """Per-example C&W minimal distances on the first ``attack.n_examples`` test examples."""
    started = time.perf_counter()
    device = choose_device(config["training"]["device"])
    dataset = load_dataset(config["data"])
    trained = load_trained(model_path, device)
    spec = dict(config["attack"])
    n = spec.pop("n_examples") or len(dataset.test)
    batch_size = spec.pop("batch_size")
    budget = attacks.CWBudget(**spec)
    result = attacks.minimal_l2(
        trained.model, dataset.test.x[:n], dataset.test.y[:n], budget, batch_size, device, progress
    )
    frame = pd.DataFrame(
        {
            "example_id": np.arange(n),
            "cw_distance": result.distance.numpy(),
            "cw_success": result.success.numpy(),
        }
    )
    write_csv(out_csv, frame)
    write_json(
        _provenance_path(out_csv),
        record(config, describe(device), time.perf_counter() - started, attack="cw", budget=result.budget),
    )
    return frame


def merge_stage(certified_csv: str, attack_csv: str, out_csv: str, run_label: str) -> pd.DataFrame:
    """Join certificates and attack distances on the attacked examples; enforce r ≤ distance."""
    certified = pd.read_csv(certified_csv)
    attacked = pd.read_csv(attack_csv)
    frame = certified.merge(attacked, on="example_id", how="inner", validate="one_to_one")
    violations = frame[frame["certified_radius"] > frame["cw_distance"]]
    if len(violations):
        shown = violations[["example_id", "certified_radius", "cw_distance"]].head(20)
        raise SoundnessError(
            f"{run_label}: {len(violations)} example(s) have a certified radius larger than the "
            f"C&W distance, so the certificate is unsound:\n{shown.to_string(index=False)}"
        )
    write_csv(out_csv, frame)
    return frame


def _runs(paths: Sequence[str], labels: Sequence[tuple[str, int]]) -> list[tuple[str, int, pd.DataFrame]]:
    return [(method, seed, pd.read_csv(path)) for path, (method, seed) in zip(paths, labels)]


def aggregate_stage(
    example_paths: Sequence[str], labels: Sequence[tuple[str, int]], radii: Sequence[float],
    metrics_csv: str, summary_csv: str, summary_md: str,
) -> pd.DataFrame:
    metrics = metrics_table(_runs(example_paths, labels), radii)
    summary = summary_table(metrics)
    write_csv(metrics_csv, metrics)
    write_csv(summary_csv, summary)
    with atomic_path(summary_md) as tmp:
        tmp.write_text(summary_markdown(summary))
    return summary


def plot_stage(
    example_paths: Sequence[str], labels: Sequence[tuple[str, int]], outputs: Sequence[str],
    radii: Sequence[float], title: str = "",
) -> None:
    """The accuracy-vs-radius figure over [0, 1.5 × the largest tabulated radius]."""
    fig = plot_accuracy_vs_radius(_runs(example_paths, labels), 1.5 * max(radii), title)
    for out in outputs:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=Path(out).suffix.lstrip("."), dpi=150)
