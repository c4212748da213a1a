"""The harness's invariant: certified radius ≤ attack distance, per example, on trained models;
and the soundness gate that enforces it in the workflow."""

from __future__ import annotations

import pytest
import torch

from lmt.inequality_chain import gradient_bounds
from lmt.attacks import create_attack, list_attacks, minimal_l2
from lmt.attacks.cw import CW
from lmt.certify import Certificates, certify_examples
from lmt.train import TrainedModel, predict


def _certify(trained: TrainedModel, x: torch.Tensor, y: torch.Tensor) -> Certificates:
    """As the workflow certifies: float64 margins minus the rounding bound."""
    return certify_examples(trained.bound, trained.bound.certified_bound(), trained.model, x, y)


@pytest.mark.slow
@pytest.mark.parametrize("run", ["standard", "lmt"])
def test_certified_radius_never_exceeds_cw_distance(run: str, trained_models, mnist) -> None:
    trained = trained_models[run]
    x, y = mnist.test.x[:200], mnist.test.y[:200]
    certificates = _certify(trained, x, y)
    logits = predict(trained.model, x)
    r2, r1 = certificates.radius, certificates.radius_prop1
    result = minimal_l2(trained.model, x, y, CW(), batch_size=200, progress=False)
    found = result.success
    assert found.float().mean() > 0.5, "the attack should find most adversarial examples"
    assert (r1 <= r2 + 1e-12).all(), "Prop. 2 is never looser than Prop. 1"
    violations = (r2 > result.distance).nonzero().flatten().tolist()
    assert not violations, f"certified radius > C&W distance on examples {violations}"
    misclassified = logits.argmax(1) != y
    assert (result.distance[misclassified] == 0).all() and (r2[misclassified] == 0).all()
    assert torch.isinf(result.distance[~found]).all(), "attack failures are recorded as +inf"


@pytest.mark.slow
@pytest.mark.parametrize("run", ["standard", "lmt"])
def test_every_attack_and_the_gradient_bounds_respect_the_certificate(run: str, trained_models, mnist) -> None:
    """(A) ≤ (D) for every registered attack at its default budget, and (A) ≤ (B) ≤ (C)."""
    trained = trained_models[run]
    x, y = mnist.test.x[:100], mnist.test.y[:100]
    r2 = _certify(trained, x, y).radius
    for name in list_attacks():
        if name == "cw":
            continue  # above, on more examples
        torch.manual_seed(0)
        result = minimal_l2(trained.model, x, y, create_attack(name), batch_size=100, progress=False)
        assert result.success.float().mean() > 0.9, f"{name} should fool most examples"
        violations = (r2 > result.distance).nonzero().flatten().tolist()
        assert not violations, f"certified radius > {name} distance on examples {violations}"
    chain = gradient_bounds(trained.model, x, y, batch_size=50, n_noise=3, progress=False)
    assert (r2 <= chain.radius_global * (1 + 1e-4)).all()
    assert (chain.radius_global <= chain.radius_local).all()


@pytest.mark.slow
def test_lmt_enlarges_certified_radii(trained_models, mnist) -> None:
    radii = {}
    for run, trained in trained_models.items():
        radii[run] = _certify(trained, mnist.test.x, mnist.test.y).radius
    assert radii["lmt"].median() > 2 * radii["standard"].median()


def test_attack_success_is_checked_by_our_own_forward_pass() -> None:
    """A model that is constant cannot be fooled: every distance is +inf, never a bogus number."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([1.0, 0.0]))
    x = torch.rand(5, 1, 2, 2)
    result = minimal_l2(model, x, torch.zeros(5, dtype=torch.long), CW(steps=5, binary_search_steps=2), progress=False)
    assert torch.isinf(result.distance).all() and not result.success.any()


# --- The soundness gate (lmt.soundness, the merge stage and its Snakemake rule) ---------------


def _run_tables(tmp_path, cw, deepfool, radius=(0.1, 0.5, 0.2, 0.9), grad=None, **columns) -> tuple[str, str, dict[str, str]]:
    """Hand-written inputs of the merge stage for four examples (``columns`` override any
    certified or gradient column)."""
    import pandas as pd

    n = len(radius)
    certified = pd.DataFrame({
        "example_id": range(n), "label": [0] * n, "prediction": [0] * n, "margin": [1.0] * n,
        "lipschitz_bound": [2.0] * n, "body_bound": [1.0] * n, "rounding_slack": [1e-6] * n,
        "radius_prop1": [0.0] * n, "certified_radius": list(radius),
        "radius_without_rounding": [r * 1.001 for r in radius], "certificate": ["prop2"] * n,
    })
    grad = [2 * r + 0.1 for r in radius] if grad is None else grad
    gradient = pd.DataFrame({"example_id": range(n), "radius_global_grad": grad,
                             "radius_local_grad": [g + 0.1 for g in grad], "chain_batch": [0] * n})
    for name, values in columns.items():
        (certified if name in certified else gradient)[name] = values
    paths = {"certified": tmp_path / "certified.csv", "gradient": tmp_path / "gradient_bounds.csv"}
    certified.to_csv(paths["certified"], index=False)
    gradient.to_csv(paths["gradient"], index=False)
    attacks = {}
    for label, dist in (("cw", cw), ("deepfool", deepfool)):
        attacks[label] = str(tmp_path / f"attack_{label}.csv")
        pd.DataFrame({"example_id": range(n), f"{label}_distance": dist,
                      f"{label}_success": [d != float("inf") for d in dist]}).to_csv(attacks[label], index=False)
    return str(paths["certified"]), str(paths["gradient"]), attacks


def test_merge_writes_one_column_pair_per_attack_and_the_smallest_distance(tmp_path) -> None:
    import pandas as pd

    from lmt.pipeline import merge_stage

    inf = float("inf")
    certified, gradient, attacks = _run_tables(tmp_path, [0.3, 0.7, inf, 1.0], [0.2, 0.8, inf, 1.2])
    merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0")
    frame = pd.read_csv(tmp_path / "examples.csv", keep_default_na=False)
    for column in ("cw_distance", "cw_success", "deepfool_distance", "deepfool_success", "min_attack_distance",
                   "radius_global_grad", "radius_local_grad"):
        assert column in frame
    assert frame["min_attack_distance"].tolist() == [0.2, 0.7, inf, 1.0]
    assert frame["min_attack"].tolist() == ["deepfool", "cw", "", "cw"]


def test_gate_names_the_run_the_examples_and_the_numbers(tmp_path) -> None:
    from lmt.pipeline import merge_stage
    from lmt.soundness import SoundnessError

    inf = float("inf")
    # example 1: radius 0.5 > DeepFool 0.4375; example 3: radius 0.9 > C&W 0.8125
    certified, gradient, attacks = _run_tables(tmp_path, [0.3, 0.7, inf, 0.8125], [0.2, 0.4375, inf, 1.2])
    with pytest.raises(SoundnessError) as err:
        merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed3")
    message = str(err.value)
    assert "exp/lmt/seed3" in message and "2 example(s)" in message and "ids: [1, 3]" in message
    for number in ("0.4375", "0.8125", "0.5", "0.9"):
        assert number in message
    assert not (tmp_path / "examples.csv").exists(), "nothing is written past a failed gate"


def test_gate_catches_a_certified_bound_below_a_gradient_norm_and_nan(tmp_path) -> None:
    from lmt.pipeline import merge_stage
    from lmt.soundness import SoundnessError

    certified, gradient, attacks = _run_tables(
        tmp_path, [1.0] * 4, [1.0] * 4, radius=(0.1, 0.5, 0.2, 0.3), grad=[0.2, 0.25, 0.3, 0.3]
    )
    with pytest.raises(SoundnessError, match=r"(?s)gradient norm.*ids: \[1\]"):
        merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0")
    certified, gradient, attacks = _run_tables(tmp_path, [1.0, float("nan"), 1.0, 1.0], [1.0] * 4)
    with pytest.raises(SoundnessError, match=r"(?s)NaN.*ids: \[1\]"):
        merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0")


def test_gate_fails_the_snakemake_rule(tmp_path) -> None:
    """The merge_examples rule on hand-written inputs: the job fails and its log names the
    run, the example ids and the numbers."""
    import os
    import subprocess
    import sys

    import yaml

    from tests.conftest import REPO

    run = tmp_path / "results" / "gate" / "runs" / "standard" / "seed0"
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(b"")  # never read: only merge_examples may run
    _run_tables(run, [0.3, 0.7, 0.15, 1.0], [0.2, 0.8, 0.25, 1.2])
    past = 1_000_000_000
    os.utime(run / "model.pt", (past, past))
    config = tmp_path / "gate.yaml"
    config.write_text(yaml.safe_dump({
        "experiment": "gate", "methods": {"standard": {}},
        "attack": {"attacks": {"cw": {}, "deepfool": {}}},
    }))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
         "--directory", str(tmp_path), "--cores", "1", "--allowed-rules", "merge_examples",
         "--rerun-triggers", "mtime", "--show-failed-logs", str(run.relative_to(tmp_path) / "examples.csv")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    log = (tmp_path / "results" / "gate" / "logs" / "merge_examples" / "standard_seed0.log").read_text()
    assert "gate/standard/seed0" in log and "ids: [2]" in log and "0.15" in log and "0.2" in log
    assert not (run / "examples.csv").exists()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("column", ["margin", "lipschitz_bound", "body_bound", "rounding_slack", "radius_prop1",
                                    "certified_radius", "radius_without_rounding", "radius_global_grad",
                                    "radius_local_grad"])
@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_gate_fails_closed_on_a_non_finite_number(tmp_path, column: str, value: float) -> None:
    """NaN or ±inf in a bound, a margin or any radius: an error naming the run, the column and
    the example id — never a radius. Every attack fails here (+inf), so nothing else objects.
    The exceptions, +inf in radius_without_rounding and in the gradient-based radii, have their
    own tests below."""
    from lmt.pipeline import merge_stage
    from lmt.soundness import SoundnessError

    if value == INF and column in ("radius_without_rounding", "radius_global_grad", "radius_local_grad"):
        pytest.skip("an exact answer there (the test_gate_passes_an_infinite_* tests below)")

    certified, gradient, attacks = _run_tables(tmp_path, [INF] * 4, [INF] * 4, **{column: [1.0, 1.0, value, 1.0]})
    with pytest.raises(SoundnessError, match=rf"(?s)exp/lmt/seed0.*'{column}'.*ids: \[2\]"):
        merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0")
    assert not (tmp_path / "examples.csv").exists()


def test_gate_passes_an_infinite_radius_without_rounding(tmp_path) -> None:
    """+inf in radius_without_rounding is exact where an example's pair bounds are all 0 (a
    constant logit difference never flips: a collapsed network whose head rows are equal), and
    is not a certificate, so it passes into examples.csv as +inf; the certified radius beside it
    must still be finite (the parametrized test above)."""
    import pandas as pd

    from lmt.pipeline import merge_stage

    certified, gradient, attacks = _run_tables(tmp_path, [INF] * 4, [INF] * 4,
                                               radius_without_rounding=[0.2, 0.6, INF, 1.0])
    merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0")
    merged = pd.read_csv(tmp_path / "examples.csv")
    assert merged["radius_without_rounding"].tolist() == [0.2, 0.6, INF, 1.0]


def test_gate_passes_infinite_gradient_radii_of_a_constant_network(tmp_path) -> None:
    """(B) and (C) are margin / (largest measured gradient norm): a collapsed, constant network
    has every gradient norm exactly 0, so an example with a positive margin gets +inf, which is
    exact (the full-MNIST unclipped LMT run at c = 2.5 produced 126 such examples and the gate
    refused them). +inf passes into examples.csv; NaN and -inf still fail (parametrized test)."""
    import pandas as pd

    from lmt.pipeline import merge_stage

    certified, gradient, attacks = _run_tables(tmp_path, [INF] * 4, [INF] * 4, grad=[0.3, 1.1, INF, 1.9])
    merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0")
    merged = pd.read_csv(tmp_path / "examples.csv")
    assert merged["radius_global_grad"].tolist() == [0.3, 1.1, INF, 1.9]
    assert merged["radius_local_grad"].tolist()[2] == INF


def test_gate_allows_failed_attacks_but_not_nan_distances(tmp_path) -> None:
    from lmt.pipeline import merge_stage
    from lmt.soundness import SoundnessError

    certified, gradient, attacks = _run_tables(tmp_path, [INF] * 4, [0.3, INF, INF, 1.0])
    merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0")
    certified, gradient, attacks = _run_tables(tmp_path, [INF] * 4, [0.3, NAN, INF, 1.0])
    with pytest.raises(SoundnessError, match=r"(?s)'deepfool_distance'.*ids: \[1\]"):
        merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed1")


def test_merge_keeps_every_certified_example_when_only_a_prefix_is_attacked(tmp_path) -> None:
    """attack.n_examples = 2 of 4: every example keeps its certificate (certified accuracy uses
    all of them); the other two are marked not attacked, with NaN distances and chain columns,
    and the gate accepts that NaN there — but not on an attacked example."""
    import pandas as pd

    from lmt.pipeline import merge_stage
    from lmt.soundness import SoundnessError

    certified, gradient, attacks = _run_tables(tmp_path, [0.3, 0.7, INF, 1.0], [0.2, 0.8, INF, 1.2])
    for path in (*attacks.values(), gradient):
        pd.read_csv(path).head(2).to_csv(path, index=False)
    merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0")
    frame = pd.read_csv(tmp_path / "examples.csv")
    assert frame["example_id"].tolist() == [0, 1, 2, 3]
    assert frame["attacked"].tolist() == [True, True, False, False]
    assert frame["min_attack_distance"].tolist()[:2] == [0.2, 0.7]
    assert frame[["min_attack_distance", "cw_distance", "radius_global_grad"]].iloc[2:].isna().all().all()

    pd.DataFrame({"example_id": [0, 1], "cw_distance": [0.3, NAN], "cw_success": [True, False]}).to_csv(
        attacks["cw"], index=False)
    with pytest.raises(SoundnessError, match=r"(?s)'cw_distance'.*ids: \[1\]"):
        merge_stage(certified, gradient, attacks, str(tmp_path / "examples2.csv"), "exp/lmt/seed0")


def test_gate_ignores_the_body_bound_of_prop1_certificates(tmp_path) -> None:
    """A network without a linear head has no L_G: its empty body_bound is not an error."""
    from lmt.pipeline import merge_stage

    certified, gradient, attacks = _run_tables(tmp_path, [INF] * 4, [INF] * 4, body_bound=[NAN] * 4,
                                               certificate=["prop1"] * 4)
    merge_stage(certified, gradient, attacks, str(tmp_path / "examples.csv"), "exp/lmt/seed0")


# --- The certify stage fails closed --------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """A 1-epoch LMT model on 200 digits and the certify stage's settings (20 test digits)."""
    from lmt import stage_config
    from lmt.config import validate_config
    from lmt.pipeline import train_stage

    experiment = validate_config({
        "data": {"n_train": 200, "n_test_embedded": 20}, "training": {"epochs": 1},
        "methods": {"lmt": {"c": 1.0}},
    })["experiments"]["default"]
    out = tmp_path_factory.mktemp("tiny_run")
    train_stage(stage_config.train(experiment, "lmt", 0), str(out / "model.pt"), str(out / "log.csv"), progress=False)
    return out / "model.pt", stage_config.certify(experiment)


def _broken_model(tmp_path, model_path, edit) -> str:
    from lmt.checkpoint import MODEL, load_checkpoint, save_checkpoint

    state = load_checkpoint(model_path, MODEL)
    edit(state)
    path = tmp_path / "model.pt"
    save_checkpoint(path, MODEL, state)
    return str(path)


def _certify_stage(settings, model_path, out):
    """The certify stage on ``model_path``, its files in ``out``."""
    from lmt.pipeline import certify_stage

    files = (str(out / name) for name in ("certified.csv", "bounds.json", "layer_bounds.csv"))
    return certify_stage(settings, str(model_path), *files)


def test_certify_stage_writes_float_sound_radii(tmp_path, tiny_run) -> None:
    import json

    import pandas as pd

    model_path, settings = tiny_run
    frame = _certify_stage(settings, model_path, tmp_path)
    assert (frame["certified_radius"] <= frame["radius_without_rounding"]).all()
    assert (frame["rounding_slack"] > 0).all()
    assert pd.read_csv(tmp_path / "certified.csv")["certified_radius"].tolist() == frame["certified_radius"].tolist()
    rounding = json.loads((tmp_path / "bounds.json").read_text())["rounding"]
    assert 0 <= rounding["median_relative_radius_loss"] <= 1
    provenance = json.loads((tmp_path / "bounds.json").read_text())["provenance"]
    assert provenance["float_settings"]["cudnn_conv_fp32_precision"] == "ieee"
    assert provenance["device_selection"]["device"] == provenance["device"].split(" (")[0]  # how it was chosen
    assert "certified" in pd.read_csv(tmp_path / "layer_bounds.csv").columns  # where it was told, not derived


def test_certify_stage_names_a_missing_model_and_missing_settings(tmp_path, tiny_run) -> None:
    from lmt.checkpoint import CheckpointError

    _, settings = tiny_run
    missing = tmp_path / "runs" / "lmt" / "seed0" / "model.pt"
    with pytest.raises(CheckpointError, match=r"runs/lmt/seed0/model\.pt: no such checkpoint file"):
        _certify_stage(settings, missing, tmp_path)
    incomplete = {key: value for key, value in settings.items() if key != "device"}
    with pytest.raises(ValueError, match=r"model\.pt.*lack \['device'\]"):
        _certify_stage(incomplete, missing, tmp_path)


def test_certify_stage_rejects_a_model_with_nan_weights(tmp_path, tiny_run) -> None:
    from lmt.soundness import NonFiniteError

    model_path, settings = tiny_run

    def poison(state):
        state["model"]["5.weight"][3, 7] = float("nan")

    broken = _broken_model(tmp_path, model_path, poison)
    with pytest.raises(NonFiniteError, match=r"lmt \(seed 0\).*'5\.weight'"):
        _certify_stage(settings, broken, tmp_path)
    assert not (tmp_path / "certified.csv").exists() and not (tmp_path / "bounds.json").exists()


def test_certify_stage_rejects_an_infinite_bound_naming_the_layer(tmp_path, tiny_run, monkeypatch) -> None:
    from lmt.bounds.layers import LinearBound
    from lmt.bounds.registry import LayerCertificate
    from lmt.soundness import NonFiniteError

    model_path, settings = tiny_run
    monkeypatch.setattr(LinearBound, "certify", lambda self, module, ctx: LayerCertificate(float("inf"), "broken"))
    with pytest.raises(NonFiniteError, match=r"(?s)lmt \(seed 0\).*L_F.*inf.*5 \(Linear\)"):
        _certify_stage(settings, model_path, tmp_path)
    assert not (tmp_path / "certified.csv").exists()


def test_certify_stage_rejects_nan_logits_naming_the_examples(tmp_path, tiny_run, monkeypatch) -> None:
    """A NaN margin (here: logits of examples 2 and 5 forced to NaN) is an error naming the
    column and the example ids, not a radius of +inf or 0."""
    from lmt.bounds import rounding
    from lmt.soundness import NonFiniteError

    model_path, settings = tiny_run
    original = rounding.float64_forward

    def nan_forward(*args, **kwargs):
        activations = original(*args, **kwargs)
        activations.logits[[2, 5]] = float("nan")
        return activations

    monkeypatch.setattr("lmt.certify.float64_forward", nan_forward)
    with pytest.raises(NonFiniteError, match=r"(?s)lmt \(seed 0\).*'margin'.*ids: \[2, 5\]"):
        _certify_stage(settings, model_path, tmp_path)
    assert not (tmp_path / "certified.csv").exists()
