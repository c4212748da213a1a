"""Training: deterministic on CPU, and a resumed run ends where an uninterrupted one does.

Bitwise equality is promised on the CPU only (cuDNN kernels may be nondeterministic)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lmt.data import Dataset, Split
from lmt.train import TrainSettings, load_trained, train


@pytest.fixture(scope="module")
def small(mnist) -> Dataset:
    return Dataset("embedded_mnist", Split(mnist.train.x[:500], mnist.train.y[:500]), Split(mnist.test.x[:100], mnist.test.y[:100]))


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_after_interruption_gives_identical_checkpoint(small: Dataset, tmp_path) -> None:
    settings = TrainSettings(epochs=3, seed=7, batch_size=50, device="cpu")
    train("wong_kolter_mnist", small, "lmt", {"c": 1.0}, settings, tmp_path / "full.pt", tmp_path / "full.csv", progress=False)
    # "Crash" after epoch 2: a run with fewer epochs leaves its epoch checkpoint behind ...
    resume = tmp_path / "resume.pt"
    first = TrainSettings(epochs=2, seed=7, batch_size=50, device="cpu")
    train("wong_kolter_mnist", small, "lmt", {"c": 1.0}, first, tmp_path / "partial.pt", tmp_path / "p.csv", resume_path=resume, progress=False)
    state = torch.load(resume, weights_only=True)
    state["identity"]["settings"]["epochs"] = 3  # ... as if it had been the 3-epoch run
    torch.save(state, resume)
    train("wong_kolter_mnist", small, "lmt", {"c": 1.0}, settings, tmp_path / "resumed.pt", tmp_path / "resumed.csv", resume_path=resume, progress=False)
    full, resumed = torch.load(tmp_path / "full.pt", weights_only=True), torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert _states_equal(full["model"], resumed["model"])
    assert _states_equal(full["bound"], resumed["bound"])
    assert len(pd.read_csv(tmp_path / "resumed.csv")) == 3


@pytest.mark.slow
def test_checkpoint_from_other_settings_is_not_resumed(small: Dataset, tmp_path, capsys) -> None:
    resume = tmp_path / "resume.pt"
    train("wong_kolter_mnist", small, "standard", {}, TrainSettings(epochs=1, seed=1), tmp_path / "a.pt", tmp_path / "a.csv", resume_path=resume, progress=False)
    train("wong_kolter_mnist", small, "lmt", {"c": 1.0}, TrainSettings(epochs=1, seed=1), tmp_path / "b.pt", tmp_path / "b.csv", resume_path=resume, progress=False)
    assert "belongs to other settings" in capsys.readouterr().out


@pytest.mark.slow
def test_trained_model_reloads_with_its_bound_state(small: Dataset, tmp_path) -> None:
    trained = train("wong_kolter_mnist", small, "lmt", {"c": 1.0}, TrainSettings(epochs=1), tmp_path / "m.pt", tmp_path / "m.csv", progress=False)
    loaded = load_trained(tmp_path / "m.pt")
    assert loaded.info["method"] == "lmt" and loaded.info["method_params"]["c"] == 1.0
    assert _states_equal(loaded.bound.state_dict(), trained.bound.cpu().state_dict())
    x = small.test.x[:4]
    torch.testing.assert_close(loaded.model(x), trained.model.cpu().eval()(x))


def test_lmt_c_warms_up_linearly_per_iteration() -> None:
    from lmt.methods import create_method

    lmt = create_method("lmt", {"c": 1e-2, "c_start": 1e-5, "warmup_epochs": 5})
    assert lmt.c_at(0.0) == pytest.approx(1e-5)
    assert lmt.c_at(2.5) == pytest.approx(1e-5 + (1e-2 - 1e-5) / 2)
    assert lmt.c_at(5.0) == lmt.c_at(80.0) == pytest.approx(1e-2)
    assert create_method("lmt", {"c": 1.0}).c_at(0.0) == 1.0
    with pytest.raises(ValueError, match="c_start"):
        create_method("lmt", {"c": 1.0, "warmup_epochs": 5})


def test_gloro_eps_warms_up_linearly_and_the_loss_uses_the_warmed_up_eps() -> None:
    """GloRo's own training ramps ε; at fractional epoch e the loss is that of the fixed-ε
    method at eps_at(e)."""
    from lmt.bounds import NetworkBound
    from lmt.methods import StepContext, create_method
    from lmt.models import create_model

    gloro = create_method("gloro", {"eps": 1.58, "eps_start": 0.0, "warmup_epochs": 4})
    assert gloro.eps_at(0.0) == 0.0 and gloro.eps_at(1.0) == pytest.approx(0.395)
    assert gloro.eps_at(4.0) == gloro.eps_at(9.0) == 1.58
    assert gloro.log_values(StepContext(None, None, 2.0)) == {"eps": pytest.approx(0.79)}
    torch.manual_seed(0)
    model = create_model("wong_kolter_mnist")
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    losses = []
    for epoch in (0.0, 1.0, 6.0):
        fixed = create_method("gloro", {"eps": gloro.eps_at(epoch)})
        pair = []
        for method in (gloro, fixed):
            torch.manual_seed(1)  # the same power-iteration start vectors
            pair.append(method.loss(StepContext(model, NetworkBound(model, (1, 28, 28)), epoch), x, y)[0])
        assert torch.equal(pair[0], pair[1])
        losses.append(pair[0].item())
    assert losses[0] < losses[1] < losses[2]  # a larger ε pushes harder


@pytest.mark.slow
def test_sgd_schedule_and_log_columns(small: Dataset, tmp_path) -> None:
    settings = TrainSettings(
        epochs=3, optimizer="sgd", lr=0.1, nesterov=True, lr_milestones=(1, 2), lr_gamma=0.5,
        weight_decay=5e-4, device="cpu",
    )
    train("wong_kolter_mnist", small, "lmt", {"c": 0.1, "c_start": 0.0, "warmup_epochs": 2}, settings,
          tmp_path / "m.pt", tmp_path / "m.csv", progress=False)
    log = pd.read_csv(tmp_path / "m.csv")
    assert log["lr"].tolist() == pytest.approx([0.1, 0.05, 0.025])
    assert log["c"].tolist() == pytest.approx([0.05, 0.1, 0.1])
    for column in ("loss", "train_accuracy", "test_accuracy", "lipschitz_estimate", "examples_per_s"):
        assert column in log
