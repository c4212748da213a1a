"""The results tree is public (README, scripts that read it): lmt.paths must keep every name."""

from __future__ import annotations

from lmt.paths import ExperimentPaths, RunPaths, provenance_path


def test_run_files_keep_their_names() -> None:
    run = RunPaths.of("default", "lmt", 0)
    d = "results/default/runs/lmt/seed0"
    assert (run.model, run.resume, run.train_log) == (f"{d}/model.pt", f"{d}/resume.pt", f"{d}/train_log.csv")
    assert (run.certified, run.bounds, run.layer_bounds) == (f"{d}/certified.csv", f"{d}/bounds.json", f"{d}/layer_bounds.csv")
    assert (run.gradient_bounds_csv, run.gradient_bounds_json) == (f"{d}/gradient_bounds.csv", f"{d}/gradient_bounds.json")
    assert (run.attack("pgd.fast"), run.examples) == (f"{d}/attack_pgd.fast.csv", f"{d}/examples.csv")
    assert (run.smoothing, provenance_path(run.smoothing)) == (f"{d}/smoothing.csv", f"{d}/smoothing.provenance.json")
    assert provenance_path(run.model) == f"{d}/model.provenance.json"
    assert provenance_path(run.attack("pgd.fast")) == f"{d}/attack_pgd.fast.provenance.json"
    assert run.label == "default/lmt/seed0"
    assert run.log("attack", "cw") == "results/default/logs/attack/lmt_seed0_cw.log"
    assert run.benchmark("train") == "results/default/benchmarks/train/lmt_seed0.tsv"


def test_placeholders_are_the_rules_wildcards() -> None:
    run = RunPaths.placeholders()
    assert run.model == "results/{experiment}/runs/{method}/seed{seed}/model.pt"
    assert run.attack("{attack}") == "results/{experiment}/runs/{method}/seed{seed}/attack_{attack}.csv"
    assert run.log("attack", "{attack}") == "results/{experiment}/logs/attack/{method}_seed{seed}_{attack}.log"


def test_experiment_files_keep_their_names() -> None:
    paths = ExperimentPaths("default")
    assert paths.table("summary").stem == "results/default/tables/summary"
    assert paths.metrics == "results/default/tables/metrics.csv"
    assert paths.figure("bound_comparison").files == {
        "png": "results/default/figures/bound_comparison.png", "pdf": "results/default/figures/bound_comparison.pdf"}
    assert paths.log("aggregate") == "results/default/logs/aggregate.log"
    outputs = paths.outputs(published=True)
    assert "results/default/tables/published.tex" in outputs and len(outputs) == 7 * 3 + 6 * 2  # gap included
    assert {"results/default/tables/gap.md", "results/default/figures/gap.png"} <= set(outputs)
    assert "results/default/tables/published.csv" not in paths.outputs(published=False)
    assert paths.run("lmt", 1) == RunPaths.of("default", "lmt", 1)


def test_the_tradeoff_outputs_are_listed_only_for_an_experiment_with_a_sweep() -> None:
    paths = ExperimentPaths("default")
    plain, swept = paths.outputs(published=False), paths.outputs(published=False, swept=True)
    added = {"results/default/tables/tradeoff.csv", "results/default/tables/tradeoff.md",
             "results/default/tables/tradeoff.tex", "results/default/figures/tradeoff.png",
             "results/default/figures/tradeoff.pdf"}
    assert not added & set(plain) and set(swept) - set(plain) == added
