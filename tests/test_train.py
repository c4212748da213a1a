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
    state = torch.load(resume, weights_only=False)
    state["identity"]["settings"]["epochs"] = 3  # ... as if it had been the 3-epoch run
    torch.save(state, resume)
    train("wong_kolter_mnist", small, "lmt", {"c": 1.0}, settings, tmp_path / "resumed.pt", tmp_path / "resumed.csv", resume_path=resume, progress=False)
    full, resumed = torch.load(tmp_path / "full.pt", weights_only=False), torch.load(tmp_path / "resumed.pt", weights_only=False)
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
