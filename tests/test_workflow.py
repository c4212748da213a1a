"""The Snakemake workflow: plans the default DAG, rejects bad configs, runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lmt.paths import FIGURES, ExperimentPaths
from tests.conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"


def _snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=900,
    )


def test_dry_run_plans_the_default_dag(tmp_path) -> None:
    result = _snakemake("-n", "--configfile", str(REPO / "config/config.yaml"), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout + result.stderr
    # standard and LMT, 3 seeds each, 2 attacks per run; one experiment.
    planned = [
        ("train", 6), ("certify", 6), ("attack", 6 * 2), ("gradient_bounds", 6), ("merge_examples", 6),
        ("aggregate", 1), ("inequality_chain", 1), ("plot_accuracy_vs_radius", 1), ("bound_comparison", 1),
        ("plot_inequality_chain", 1), ("plot_certified_vs_attack", 1), ("plot_certified_perturbations", 1),
        ("gap", 1), ("published_comparison", 1),
    ]
    _assert_planned(out, planned)


def test_dry_run_plans_the_all_methods_dag(tmp_path) -> None:
    result = _snakemake("-n", "--configfile", str(REPO / "config/embedded_all.yaml"), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout + result.stderr
    # embedded_all: standard, cw_adv, lmt with 5 attacks each; proxy_wrn: 4 methods with 1 attack.
    planned = [
        ("train", 7), ("certify", 7), ("attack", 3 * 5 + 4), ("gradient_bounds", 7), ("merge_examples", 7),
        ("aggregate", 2), ("inequality_chain", 2), ("plot_accuracy_vs_radius", 2), ("bound_comparison", 2),
        ("plot_inequality_chain", 2), ("plot_certified_vs_attack", 2), ("plot_certified_perturbations", 2),
        ("gap", 2), ("published_comparison", 1),  # only the §6.1 experiment compares with published numbers
    ]
    _assert_planned(out, planned)


def _assert_planned(out: str, planned: list[tuple[str, int]]) -> None:
    for rule, count in planned:
        assert any(line.split() == [rule, str(count)] for line in out.splitlines()), f"{rule} x{count} not planned"


def test_paper_config_plans_the_paper_dag_alone(tmp_path) -> None:
    """--configfile replaces the embedded default (it is not merged into its experiments)."""
    result = _snakemake("-n", "--configfile", str(REPO / "config/paper.yaml"), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout + result.stderr
    # mnist_wk: 3 methods, svhn_wrn: 4, svhn_wrn_avg: 1; 3 seeds; 3 attacks per run.
    _assert_planned(out, [("train", 24), ("attack", 72), ("aggregate", 3), ("published_comparison", 1)])
    assert "results/mnist_wk/tables/table1.tex" in out
    assert "results/default/" not in out and "results/proxy_wrn/" not in out


def _dry_run_with_baselines(tmp_path: Path, config: str) -> str:
    """``snakemake -n`` of ``config`` (relative to the repository), its output; the subprocess
    imports this checkout's baselines/ (offset_ce), whatever checkout the environment was
    installed from."""
    import os

    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "lmt_bench_baselines").symlink_to(REPO / "baselines", target_is_directory=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim), str(REPO), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "-n", "--configfile", str(REPO / config),
         "--directory", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=900, env=env,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout + result.stderr


def test_modern_mnist_config_plans_lmt_gloro_and_the_one_lipschitz_networks(tmp_path) -> None:
    """config/modern_mnist.yaml: LMT and GloRo on the W&K CNN, offset cross-entropy and GloRo on
    each 1-Lipschitz network, and randomized smoothing of a Gaussian-noise-trained W&K CNN
    (7 experiments, 13 runs, 3 attacks each, one smoothing job)."""
    out = _dry_run_with_baselines(tmp_path, "config/modern_mnist.yaml")
    _assert_planned(out, [("train", 13), ("certify", 13), ("attack", 39), ("merge_examples", 13), ("aggregate", 7),
                          ("smoothing", 1),
                          ("published_comparison", 7)])  # GloRo's 62.8 % and BCP's LMT beside each
    assert "results/mnist_smoothing/runs/gaussian_noise/seed0/smoothing.csv" in out
    for experiment in ("mnist_lmt_gloro", "mnist_aol", "mnist_sll", "mnist_cpl", "mnist_soc", "mnist_cayley",
                       "mnist_smoothing"):
        assert f"results/{experiment}/tables/table1.tex" in out
    assert "results/mnist_aol/runs/offset_ce/seed0/model.pt" in out


def test_cifar10_config_plans_lmt_gloro_and_the_one_lipschitz_convnets(tmp_path) -> None:
    """config/cifar10.yaml: WRN-16-4 (weight decay, LMT, GloRo) and the AOL, SLL, CPL and SOC
    ConvNet-S (offset cross-entropy, GloRo), 3 seeds, 5 attacks each, at 36/72/108/255 /255."""
    out = _dry_run_with_baselines(tmp_path, "config/cifar10.yaml")
    _assert_planned(out, [("train", 33), ("certify", 33), ("attack", 165), ("aggregate", 5)])
    for experiment in ("cifar10_wrn", "cifar10_aol", "cifar10_sll", "cifar10_cpl", "cifar10_soc"):
        assert f"results/{experiment}/tables/table1.tex" in out
    assert "results/cifar10_sll/runs/gloro/seed2/model.pt" in out


def test_a_sweep_plans_one_run_per_value_and_the_tradeoff_outputs(tmp_path) -> None:
    """`lmt: {c: [1, 2, 4, 8]}`: four tagged LMT runs per seed, and the trade-off table and
    figure for the swept experiment only."""
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "seeds": [0, 1], "attack": {"attacks": {"deepfool": {}}},
        "experiments": {"swept": {"methods": {"standard": {}, "lmt": {"c": [1, 2, 4, 8]}}},
                        "plain": {"methods": {"lmt": {"c": 1.0}}}},
    }))
    result = _snakemake("-n", "--configfile", str(config), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout + result.stderr
    _assert_planned(out, [("train", 2 * 5 + 2), ("aggregate", 2), ("tradeoff", 1)])
    for c in (1, 2, 4, 8):
        assert f"results/swept/runs/lmt.c{c}/seed1/model.pt" in out
    assert "results/swept/figures/tradeoff.pdf" in out and "results/swept/tables/tradeoff.tex" in out
    assert "results/plain/figures/tradeoff" not in out and "results/plain/tables/tradeoff" not in out


def test_bad_config_stops_snakemake_naming_the_key(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"training": {"epochs": 0}}))
    result = _snakemake("-n", "--configfile", str(bad), "--directory", str(tmp_path))
    assert result.returncode != 0
    assert "training.epochs" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists(), "nothing may be written for a rejected config"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test config (.test/config/config.yaml) through every rule, then the HTML report
    as `make reproduce` builds it (with the report's stylesheet)."""
    tmp_path = tmp_path_factory.mktemp("tiny_run")
    result = _snakemake("--cores", "2", "--configfile", str(TEST_CONFIG), "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    built = _snakemake("--configfile", str(TEST_CONFIG), "--directory", str(tmp_path), "--report",
                       str(tmp_path / "report.html"), "--report-stylesheet", str(REPO / "workflow/report/report.css"))
    assert built.returncode == 0, built.stderr[-4000:]
    return tmp_path


@pytest.mark.slow
def test_tiny_workflow_runs_end_to_end_and_reruns_as_no_op(tiny_run: Path) -> None:
    tmp_path, cfg = tiny_run, str(TEST_CONFIG)
    root = tmp_path / "results" / "tiny"
    summary = pd.read_csv(root / "tables" / "summary.csv")
    assert set(summary["method"]) == {"standard", "lmt"}
    assert (root / "tables" / "summary.md").read_text().startswith("| method")
    for name in ("accuracy_vs_radius.png", "accuracy_vs_radius.pdf"):
        assert (root / "figures" / name).stat().st_size > 1000
    every = pd.read_csv(root / "runs" / "lmt" / "seed0" / "examples.csv")
    assert len(every) == 200 and every["attacked"].sum() == 40, "all certified, the first 40 attacked"
    assert summary.set_index("method").loc["lmt", ["n_examples", "n_attacked"]].tolist() == [200, 40]
    examples = every[every["attacked"]]
    assert every.loc[~every["attacked"], "min_attack_distance"].isna().all()
    for attack in ("cw", "deepfool", "pgd.fast"):
        assert (examples["certified_radius"] <= examples[f"{attack}_distance"]).all()
        assert (root / "runs" / "lmt" / "seed0" / f"attack_{attack}.provenance.json").exists()
    distances = examples[["cw_distance", "deepfool_distance", "pgd.fast_distance"]]
    assert (examples["min_attack_distance"] == distances.min(axis=1)).all()
    attacks = pd.read_csv(root / "tables" / "attacks.csv")
    assert set(attacks["attack"]) == {"cw", "deepfool", "pgd.fast", "all_attacks"}
    chain = pd.read_csv(root / "tables" / "inequality_chain.csv")
    assert set(chain["ratio"]) == {"(B)/(A)", "(C)/(B)", "(D)/(C)"} and len(chain) == 6
    assert (chain.loc[chain["ratio"] != "(D)/(C)", "median"] >= 1).all()
    assert not (root / "runs" / "lmt" / "seed0" / "resume.pt").exists()
    layer_bounds = pd.read_csv(root / "runs" / "lmt" / "seed0" / "layer_bounds.csv")
    assert {"certified", "method", "thm1_2", "cor1", "cisse", "peck", "frobenius"} <= set(layer_bounds.columns)
    for path in ExperimentPaths("tiny").outputs(published=True):
        assert (tmp_path / path).stat().st_size > 100, path
    table1 = pd.read_csv(root / "tables" / "table1.csv")
    assert {"cw_accuracy@1", "certified_accuracy@1"} <= set(table1.columns)
    assert "39.9" in (root / "tables" / "published.md").read_text()
    provenance = json.loads((root / "tables" / "table1.provenance.json").read_text())
    # Each record holds the settings its stage read (lmt.stage_config), e.g. the attack's budget.
    # (and with randomized smoothing on, its σ and α, which the summary's note states).
    assert provenance["config"] == {"report": {"radii": [0.5, 1.0, 1.58], "table1_attack": "cw"},
                                    "smoothing": {"alpha": 0.001, "sigma": 0.25}}
    assert provenance["git_revision"]
    attacked = json.loads((root / "runs" / "lmt" / "seed0" / "attack_cw.provenance.json").read_text())
    assert attacked["config"]["attack"]["budget"]["steps"] == 20 and attacked["config"]["attack"]["n_examples"] == 40
    _check_smoothing(root, examples, summary)
    _check_modern_methods(tmp_path / "results" / "tiny_modern")
    html = (tmp_path / "report.html").read_text()
    for name in FIGURES:
        assert f"{name}.png" in html, f"figure {name} missing from the HTML report"
    assert html.count("data:image/png") >= len(FIGURES), "every figure is embedded in the report"
    for name in ("table1", "summary", "published", "inequality_chain", "bound_comparison", "gap"):
        assert f"{name}.csv" in html, f"table {name} missing from the HTML report"
    again = _snakemake("--cores", "2", "--configfile", cfg, "--directory", str(tmp_path))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_the_report_reads_in_a_browser(tiny_run: Path, tmp_path: Path) -> None:
    """The tiny run's report in a headless Chromium (tests/browser/check_report.py): no
    JavaScript error, every figure opens from the menu, decoded and with its top visible, every
    caption renders. Skipped where Chromium, chromedriver or selenium is missing."""
    from tests.browser.check_report import browser_missing, check_report

    if reason := browser_missing():
        pytest.skip(reason)
    outcome = check_report(tiny_run / "report.html", tmp_path / "screenshots")
    assert outcome.ok, "\n".join(outcome.problems)
    assert len(outcome.figures_opened) == len(FIGURES), outcome.figures_opened
    assert {p.name for p in outcome.screenshots} >= {"landing.png", "figure.png", "caption.png", "table.png"}


def _check_modern_methods(root: Path) -> None:
    """The tiny config's second experiment: the methods that followed LMT (a 1-Lipschitz AOL
    network with the offset cross-entropy and GloRo, and randomized smoothing's Gaussian-noise
    base classifier) are trained, certified from their weights and attacked with C&W on the same
    examples, and every AOL layer's certified bound keeps its promise of 1."""
    summary = pd.read_csv(root / "tables" / "summary.csv")
    methods = {"offset_ce", "gloro", "gaussian_noise"}
    assert set(summary["method"]) == methods
    assert summary.set_index("method")["n_attacked"].eq(40).all()
    for method in methods:
        run = root / "runs" / method / "seed0"
        every = pd.read_csv(run / "examples.csv")
        assert len(every) == 200 and every["attacked"].sum() == 40
        attacked = every[every["attacked"]]
        assert attacked["cw_distance"].notna().all() and attacked["cw_success"].any()
        assert (attacked["min_attack_distance"] == attacked["cw_distance"]).all()
        assert (attacked["certified_radius"] <= attacked["cw_distance"]).all()
        assert {"rs_radius", "rs_abstain"} <= set(every.columns)
        layers = json.loads((run / "bounds.json").read_text())["layers"]
        promised = [layer for layer in layers if "promised" in layer]
        assert {layer["type"] for layer in promised} == {"AOLConv2d", "AOLLinear"}, promised
        assert all(layer["bound"] <= layer["promised"] * (1 + 1e-6) for layer in promised), promised
    for path in ExperimentPaths("tiny_modern").outputs(published=True):
        assert (root.parent.parent / path).stat().st_size > 100, path


def _check_smoothing(root: Path, examples: pd.DataFrame, summary: pd.DataFrame) -> None:
    """The tiny config turns randomized smoothing on (n0 = 20, n = 200): its columns are in the
    per-example table with their invariants, its budget in its provenance, its certified
    accuracy (labelled probabilistic) in the summary."""
    for column in ("rs_prediction", "rs_count", "rs_p_lower", "rs_radius", "rs_abstain"):
        assert column in examples, column
    assert examples["rs_p_lower"].between(0, 1).all() and (examples["rs_radius"] >= 0).all()
    abstain = examples["rs_abstain"].astype(bool)
    assert (examples.loc[abstain, "rs_radius"] == 0).all() and (examples.loc[~abstain, "rs_radius"] > 0).all()
    assert (abstain == (examples["rs_p_lower"] <= 0.5)).all() and examples["rs_count"].between(0, 200).all()
    assert (~abstain).sum() > 0, "the smoothed classifier certifies some examples"
    provenance = json.loads((root / "runs" / "lmt" / "seed0" / "smoothing.provenance.json").read_text())
    assert provenance["budget"] == {"sigma": 0.25, "n0": 20, "n": 200, "alpha": 0.001, "batch_size": 1000, "seed": 0}
    assert {"smoothed_accuracy", "smoothed_certified_accuracy@1"} <= set(summary.columns)
    assert summary["smoothed_certified_accuracy@0.5"].between(0, 1).all()
    shown = (root / "tables" / "summary.md").read_text()
    assert "RS certified acc. @0.5 (p ≥ 1−α) (%)" in shown and "1 − α = 0.999" in shown
