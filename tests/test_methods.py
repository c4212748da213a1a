"""Every registered method trains and certifies soundly; baseline-specific properties hold."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from lmt import stage_config
from lmt.attacks import minimal_l2
from lmt.attacks.cw import CW
from lmt.bounds import CertifySettings
from lmt.certify import radius_prop2
from lmt.config import ConfigError, validate_config
from lmt.data import Dataset, Split
from lmt.methods import create_method, list_methods
from lmt.pipeline import certify_stage, train_stage
from lmt.train import TrainSettings, predict, train
from tests.readme import readme_code, without_leading_comments


@pytest.fixture(scope="module")
def small(mnist) -> Dataset:
    return Dataset("embedded_mnist", Split(mnist.train.x[:600], mnist.train.y[:600]), Split(mnist.test.x[:100], mnist.test.y[:100]))


def _certify_and_attack(trained, data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    bound = trained.bound.certified_bound(CertifySettings(n_iter=500, n_starts=4))
    logits = predict(trained.model, data.test.x)
    radii = radius_prop2(logits, data.test.y, bound.head_weight, bound.body)
    attack = minimal_l2(trained.model, data.test.x, data.test.y, CW(steps=30, binary_search_steps=5), progress=False)
    return radii, attack.distance


@pytest.mark.slow
@pytest.mark.parametrize("name", list_methods())
def test_every_registered_method_trains_and_certifies_soundly(name: str, small: Dataset, tmp_path) -> None:
    trained = train("wong_kolter_mnist", small, name, {}, TrainSettings(epochs=1, device="cpu"),
                    tmp_path / "m.pt", tmp_path / "m.csv", progress=False)
    radii, distances = _certify_and_attack(trained, small)
    assert (predict(trained.model, small.test.x).argmax(1) == small.test.y).float().mean() > 0.2, "learned nothing"
    violations = (radii > distances).nonzero().flatten().tolist()
    assert not violations, f"{name}: certified radius > attack distance on {violations}"


@pytest.mark.slow
def test_spectral_norm_regularization_lowers_spectral_norms(small: Dataset, tmp_path) -> None:
    norms = {}
    for name, params in [("standard", {}), ("spectral_norm_reg", {"lam": 1.0})]:
        trained = train("wong_kolter_mnist", small, name, params, TrainSettings(epochs=3, device="cpu"),
                        tmp_path / f"{name}.pt", tmp_path / f"{name}.csv", progress=False)
        norms[name] = [float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), 2))
                       for m in trained.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert all(r < s for r, s in zip(norms["spectral_norm_reg"], norms["standard"])), norms


def test_spectral_norm_reg_power_iteration_converges_to_sigma() -> None:
    method = create_method("spectral_norm_reg", {})
    model = torch.nn.Sequential(torch.nn.Linear(8, 5))
    for _ in range(100):
        penalty = method.penalty(model)
    sigma = torch.linalg.matrix_norm(model[0].weight.detach(), 2)
    assert float(penalty.detach()) == pytest.approx(float(sigma) ** 2, rel=1e-4)
    state = method.state_dict()
    other = create_method("spectral_norm_reg", {})
    other.load_state_dict(state)
    assert float(other.penalty(model).detach()) == pytest.approx(float(method.penalty(model).detach()))


@pytest.mark.slow
def test_parseval_keeps_weights_near_parseval_tight(small: Dataset, tmp_path) -> None:
    """The retraction drives W Wᵀ towards the identity; standard training does not."""

    def deviation(model: torch.nn.Module) -> list[float]:
        mats = [m.weight.detach().flatten(1) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        return [float((w @ w.T - torch.eye(len(w))).norm() / len(w) ** 0.5) for w in mats]

    results = {}
    for name, params in [("standard", {}), ("parseval", {"beta": 0.1})]:
        trained = train("wong_kolter_mnist", small, name, params, TrainSettings(epochs=3, device="cpu"),
                        tmp_path / f"{name}.pt", tmp_path / f"{name}.csv", progress=False)
        results[name] = deviation(trained.model)
    assert all(d < 0.2 for d in results["parseval"]), results
    assert all(p < s / 5 for p, s in zip(results["parseval"], results["standard"])), results


def test_parseval_residual_weights_stay_on_the_simplex_and_bound_soundly() -> None:
    from lmt_bench_baselines.parseval import ConvexWeight, project_to_simplex
    from lmt.bounds import NetworkBound
    from lmt.models import create_model

    projected = project_to_simplex(torch.tensor([0.9, 0.7]))
    assert float(projected.sum()) == pytest.approx(1.0) and (projected >= 0).all()
    assert project_to_simplex(torch.tensor([2.0, -1.0])).tolist() == [1.0, 0.0]
    method = create_method("parseval", {})
    model = method.prepare_model(create_model("wrn_16_4")).eval()
    assert sum(isinstance(m, ConvexWeight) for m in model.modules()) == 12
    bound = NetworkBound(model, (3, 32, 32)).certified_bound(CertifySettings(n_iter=20, n_starts=1))
    assert bound.total > 0


def test_weight_decay_sets_the_optimizer_groups() -> None:
    groups = create_method("weight_decay", {"weight_decay": 1e-3}).param_groups(torch.nn.Linear(2, 2), 0.0)
    assert groups[0]["weight_decay"] == 1e-3


def test_unknown_method_parameters_are_named() -> None:
    with pytest.raises(ConfigError, match=r"methods\.gloro.*epsilon"):
        validate_config({"methods": {"gloro": {"epsilon": 0.1}}})


TOY_METHOD = textwrap.dedent('''
    # Exactly the README's "Add a training method" example.
    from dataclasses import dataclass
    import torch.nn.functional as F
    from lmt.methods import Method, register_method
    from lmt.params import CheckedParams, param

    @register_method("my_method")
    class MyMethod(Method):
        """Cross-entropy plus a penalty on the network's Lipschitz bound."""

        @dataclass(frozen=True)
        class Params(CheckedParams):
            strength: float = param(0.1, "Weight of the Lipschitz-bound penalty.", ge=0)

        def loss(self, ctx, x, y):
            logits = ctx.model(x)
            return F.cross_entropy(logits, y) + self.params.strength * ctx.bound.training_bound().total, logits
''')


def test_readme_guide_toy_method_is_the_readmes() -> None:
    readme = readme_code("Add a training method")
    if readme is None:
        pytest.skip("README.md has no python block under '## Add a training method'")
    assert without_leading_comments(TOY_METHOD.lstrip("\n")) == without_leading_comments(readme)


@pytest.mark.slow
def test_readme_guide_toy_method_trains_and_certifies(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_lmt_plugin.py").write_text(TOY_METHOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    from lmt.methods import METHODS

    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))  # the toy method leaves with the test
    experiment = validate_config({
        "plugins": ["my_lmt_plugin"],
        "data": {"n_train": 500, "n_test_embedded": 200},
        "training": {"epochs": 1, "device": "cpu"},
        "methods": {"my_method": {"strength": 0.05}},
        "certify": {"n_iter": 200, "n_starts": 2},
    })["experiments"]["default"]
    train_stage(stage_config.train(experiment, "my_method", 0), str(tmp_path / "model.pt"), str(tmp_path / "log.csv"),
                progress=False)
    frame = certify_stage(stage_config.certify(experiment), str(tmp_path / "model.pt"), str(tmp_path / "certified.csv"),
                          str(tmp_path / "bounds.json"), str(tmp_path / "layer_bounds.csv"))
    assert len(frame) == 200 and (frame["certified_radius"] >= 0).all()
    with pytest.raises(ConfigError, match="strenght"):
        validate_config({"plugins": ["my_lmt_plugin"], "methods": {"my_method": {"strenght": 1}}})
    sys.modules.pop("my_lmt_plugin", None)


def test_missing_plugin_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="plugins.*no_such_module"):
        validate_config({"plugins": ["no_such_module"]})


def test_gaussian_noise_trains_on_fresh_noise_from_the_checkpointed_generator() -> None:
    """Cohen et al.'s base-classifier training: cross-entropy on x + σ·ε with a fresh ε at every
    call, drawn from torch's global generator (which checkpoints save, so a resumed run draws
    the same noise); σ must be positive."""
    from lmt.methods import StepContext
    from lmt.models import create_model
    from lmt.bounds import NetworkBound
    from lmt.params import ParamError

    torch.manual_seed(0)
    model = create_model("wong_kolter_mnist")
    ctx = StepContext(model, NetworkBound(model, (1, 28, 28)), 0.0)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    method = create_method("gaussian_noise", {"sigma": 0.5})
    torch.manual_seed(1)
    first, logits = method.loss(ctx, x, y)
    second, _ = method.loss(ctx, x, y)
    assert not torch.equal(first, second), "the noise must be fresh at every step"
    torch.manual_seed(1)
    again, logits_again = method.loss(ctx, x, y)
    assert torch.equal(first, again) and torch.equal(logits, logits_again)
    torch.manual_seed(1)
    noise = 0.5 * torch.randn_like(x)
    assert torch.equal(logits, model(x + noise))
    with pytest.raises(ParamError):
        create_method("gaussian_noise", {"sigma": 0.0})
