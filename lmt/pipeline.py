"""The stages of one run as functions from files to files: train, certify, attack (one per
configured attack), gradient bounds (the inequality chain), merge (with the soundness gate).
The experiment-level tables and figures are in :mod:`lmt.report.stages`. The Snakemake scripts
and the ``lmt-bench`` CLI are thin adapters over these. Each stage takes the subset of the
experiment's settings that it reads (:mod:`lmt.stage_config`), not the whole experiment, then
its files, named as its rule names them (:func:`lmt.script_support.run_stage` passes them by
name); :class:`lmt.paths.RunPaths` says where they are.

Every output is written atomically, with a provenance record beside it or inside it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from lmt import attacks, certify, inequality_chain
from lmt.bounds import CertifySettings, compare_bounds, comparison_frame
from lmt.device import describe
from lmt.io import write_csv, write_json
from lmt.paths import provenance_path
from lmt.provenance import record
from lmt.run import load_run, prepare_stage
from lmt.soundness import check_soundness, require_finite, require_finite_bound, require_finite_parameters
from lmt.stage_config import StageConfig
from lmt.train import TrainSettings, predict, train


def train_stage(
    config: StageConfig, model: str, train_log: str, resume: str | None = None, provenance: str | None = None,
    progress: bool = True,
) -> None:
    """Train the run that ``config`` (:func:`lmt.stage_config.train`) names: its method, seed.
    Writes ``model`` and ``train_log``, checkpoints every epoch to ``resume`` (if given), and
    records provenance in ``provenance`` (default: beside the model)."""
    started = time.perf_counter()
    dataset = prepare_stage(config)
    training = dict(config["training"], lr_milestones=tuple(config["training"]["lr_milestones"]))
    settings = TrainSettings(**training, seed=config["seed"])
    trained = train(
        config["model"], dataset, config["method"], config["method_params"], settings,
        model, train_log, resume_path=resume, progress=progress,
    )
    extra = {"method_run": trained.info["method_run"]} if "method_run" in trained.info else {}
    write_json(provenance or provenance_path(model),
               record(config, trained.info["device"], time.perf_counter() - started, **extra))
    if resume is not None:
        # The finished model supersedes the epoch checkpoint; a forced rerun starts afresh.
        Path(resume).unlink(missing_ok=True)


def certify_stage(config: StageConfig, model: str, examples: str, bounds: str, layer_bounds: str) -> pd.DataFrame:
    """Per-example margins and certified radii (Prop. 1 and Prop. 2) on the test split, sound
    for the float32 network (lmt.certify), to ``examples``; the bound, its layers and settings
    to ``bounds``; the per-layer bound comparison of Fig. 3 to ``layer_bounds``. Anything
    non-finite is an error, never a radius."""
    started = time.perf_counter()
    run = load_run(config, model)
    require_finite_parameters(run.model, run.label)
    settings = CertifySettings(**config["certify"])
    bound = run.bound.certified_bound(settings)
    require_finite_bound(bound.total, bound.body, bound.layers, run.label)
    comparison = compare_bounds(run.bound, settings, certified=bound)
    test = run.dataset.test
    certificates = certify.certify_examples(run.bound, bound, run.model, test.x, test.y, settings)
    frame = pd.DataFrame(
        {
            "example_id": np.arange(len(test.y)),
            "label": test.y.numpy(),
            "prediction": predict(run.model, test.x).argmax(1).numpy(),  # float32, as users see it
            "margin": certificates.margin.numpy(),  # float64
            "lipschitz_bound": bound.total,
            "body_bound": bound.body,
            "rounding_slack": certificates.slack.margin.numpy(),
            "radius_prop1": certificates.radius_prop1.numpy(),
            "certified_radius": certificates.radius.numpy(),
            "radius_without_rounding": certificates.radius_exact_arithmetic.numpy(),
            "certificate": certificates.certificate,
        }
    )
    promises = bound.promises()
    if promises:  # 1-Lipschitz layers: the gate compares their certified bounds with the promise
        frame["promise_excess"] = max(p["excess"] for p in promises)
    require_finite(frame, run.label)
    write_csv(examples, frame)
    write_csv(layer_bounds, comparison_frame(comparison))
    write_json(
        bounds,
        {
            "lipschitz_bound": bound.total,
            "body_bound": bound.body,
            "certificate": certificates.certificate,
            "settings": vars(settings),
            "layers": bound.layers,
            "promises": promises,
            "rounding": certificates.rounding,
            "comparison": comparison.network_dict(),
            "provenance": record(config, describe(run.device), time.perf_counter() - started),
        },
    )
    return frame


def smoothing_stage(
    config: StageConfig, model: str, examples: str, provenance: str | None = None, progress: bool = True
) -> pd.DataFrame:
    """Randomized smoothing (:mod:`lmt.smoothing`, Cohen et al. 2019 CERTIFY) of every test
    example, with the settings of ``config`` (:func:`lmt.stage_config.smoothing`), to
    ``examples``: ``rs_prediction``, ``rs_count``, ``rs_p_lower``, ``rs_radius``, ``rs_abstain``;
    the budget (σ, n0, n, α, seed) and the guarantee to ``provenance`` (default: beside it).
    Anything non-finite, or a broken invariant, is an error naming the examples."""
    from lmt.params import check_params
    from lmt.smoothing import SmoothingSettings, certify_smoothed
    from lmt.soundness import NonFiniteError, smoothing_problems

    started = time.perf_counter()
    run = load_run(config, model)
    require_finite_parameters(run.model, run.label)
    settings = check_params(SmoothingSettings, config["smoothing"], "randomized smoothing")
    test = run.dataset.test
    ids = torch.arange(len(test.y))
    result = certify_smoothed(run.model, test.x, settings, ids, run.label, progress)
    frame = pd.DataFrame(
        {
            "example_id": ids.numpy(),
            "rs_prediction": result.prediction.numpy(),
            "rs_count": result.count.numpy(),
            "rs_p_lower": result.p_lower.numpy(),
            "rs_radius": result.radius.numpy(),
            "rs_abstain": result.abstain.numpy(),
        }
    )
    problems = smoothing_problems(frame)
    if problems:
        raise NonFiniteError(f"{run.label}: randomized smoothing produced invalid numbers.\n" + "\n".join(problems))
    write_csv(examples, frame)
    write_json(
        provenance or provenance_path(examples),
        record(
            config, describe(run.device), time.perf_counter() - started,
            budget=vars(settings), n_examples=len(frame),
            guarantee=(f"Cohen et al. 2019 CERTIFY: for each example, with probability >= 1 - alpha = "
                       f"{1 - settings.alpha:g} over the noise, the smoothed classifier (Gaussian noise, "
                       f"sigma = {settings.sigma:g}) predicts rs_prediction within L2 radius rs_radius; "
                       "a statement about the smoothed classifier, not the network itself"),
        ),
    )
    return frame


def attack_stage(
    config: StageConfig, model: str, examples: str, provenance: str | None = None, progress: bool = True
) -> pd.DataFrame:
    """Per-example minimal distances of the attack that ``config`` (:func:`lmt.stage_config.attack`)
    names, on the first ``attack.n_examples`` test examples, to ``examples``: columns
    ``<label>_distance``, ``<label>_success``; provenance to ``provenance`` (default: beside it)."""
    started = time.perf_counter()
    run = load_run(config, model)
    spec = config["attack"]
    attack_label = spec["name"]
    attack = attacks.create_attack(attack_label, spec["budget"])
    test = run.dataset.test
    n = spec["n_examples"] or len(test)
    torch.manual_seed(spec["seed"])
    result = attacks.minimal_l2(run.model, test.x[:n], test.y[:n], attack, spec["batch_size"], run.device, progress)
    frame = pd.DataFrame(
        {
            "example_id": np.arange(n),
            f"{attack_label}_distance": result.distance.numpy(),
            f"{attack_label}_success": result.success.numpy(),
        }
    )
    write_csv(examples, frame)
    write_json(
        provenance or provenance_path(examples),
        record(config, describe(run.device), time.perf_counter() - started, budget=result.budget, n_examples=n),
    )
    return frame


def gradient_bounds_stage(
    config: StageConfig, model: str, examples: str, bounds: str, progress: bool = True
) -> pd.DataFrame:
    """(B) and (C) of the inequality chain (lmt.inequality_chain) for the first
    ``chain.n_examples`` test examples (all where null: the attacked ones, since only they have
    (D)) to ``examples``; the pairwise gradient bounds behind them to ``bounds``."""
    started = time.perf_counter()
    run = load_run(config, model)
    settings = config["chain"]
    test = run.dataset.test
    n = settings.get("n_examples") or len(test)
    chain = inequality_chain.gradient_bounds(
        run.model, test.x[:n], test.y[:n], settings["batch_size"], settings["n_noise"], settings["seed"], run.device,
        progress,
    )
    frame = pd.DataFrame(
        {
            "example_id": np.arange(n),
            "radius_global_grad": chain.radius_global.numpy(),
            "radius_local_grad": chain.radius_local.numpy(),
            "chain_batch": chain.batch.numpy(),
        }
    )
    write_csv(examples, frame)
    write_json(
        bounds,
        {
            "global_pairwise_gradient_bound": chain.global_pairwise.tolist(),
            "settings": settings,
            "pairs": "K[i][j] = max over test set and noise of ||grad_x (F_i - F_j)||; radius = "
                     "min over i != y of max(0, z_y - z_i) / K[y][i] (official code's choice)",
            "provenance": record(config, describe(run.device), time.perf_counter() - started),
        },
    )
    return frame


def merge_stage(
    certified_csv: str, gradient_csv: str | None, attack_csvs: Mapping[str, str], out_csv: str, run_label: str,
    smoothing_csv: str | None = None,
) -> pd.DataFrame:
    """One tidy per-example table on every certified example: certificates, the chain's (B)
    and (C), the randomized-smoothing columns ``rs_*`` where ``smoothing_csv`` is given, one
    ``<attack>_distance``/``_success`` pair per attack, ``min_attack_distance`` (D) and
    ``min_attack``, and ``attacked``; then the soundness gate
    (:func:`lmt.soundness.check_soundness`).

    Every attack must cover the same examples (the first ``attack.n_examples``); the others are
    certified but not attacked (``attacked`` false, NaN attack and gradient columns), so
    certified accuracies use every test example and attack accuracies the attacked ones."""
    frame = pd.read_csv(certified_csv)
    if gradient_csv is not None:
        frame = frame.merge(pd.read_csv(gradient_csv), on="example_id", how="left", validate="one_to_one")
    if smoothing_csv is not None:
        smoothed = pd.read_csv(smoothing_csv)
        uncovered = sorted(set(frame["example_id"]) - set(smoothed["example_id"]))
        if uncovered:
            raise ValueError(f"{run_label}: {smoothing_csv} has no randomized-smoothing result for examples "
                             f"{uncovered[:50]}")
        frame = frame.merge(smoothed, on="example_id", how="left", validate="one_to_one")
    ids: set | None = None
    for label, path in attack_csvs.items():
        attacked = pd.read_csv(path)
        expected = [f"{label}_distance", f"{label}_success"]
        if list(attacked.columns) != ["example_id", *expected]:
            raise ValueError(f"{run_label}: {path} has columns {list(attacked.columns)}, expected example_id + {expected}")
        if ids is None:
            ids = set(attacked["example_id"])
        elif set(attacked["example_id"]) != ids:
            raise ValueError(f"{run_label}: attack {label!r} covers other examples than {next(iter(attack_csvs))!r}")
        missing = set(attacked["example_id"]) - set(frame["example_id"])
        if missing:
            raise ValueError(f"{run_label}: attack {label!r} has examples without a certificate: {sorted(missing)}")
        frame = frame.merge(attacked, on="example_id", how="left", validate="one_to_one")
    labels = list(attack_csvs)
    if labels:
        frame["attacked"] = frame["example_id"].isin(ids)
        distances = frame[[f"{label}_distance" for label in labels]].to_numpy(dtype=float)
        frame["min_attack_distance"] = distances.min(axis=1)  # NaN propagates to the gate
        closest = np.asarray(labels)[np.nan_to_num(distances, nan=np.inf).argmin(axis=1)]
        frame["min_attack"] = np.where(np.isfinite(frame["min_attack_distance"]), closest, "")
    check_soundness(frame, run_label)
    write_csv(out_csv, frame)
    return frame
