"""Checkpoints are read without running code from them; every unusable file is a CheckpointError
naming it and the remedy; an unusable resume.pt is set aside and training restarts from epoch 0,
while a good one still resumes bitwise (CPU)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
from pathlib import Path
from typing import Callable

import pytest
import torch

from lmt.checkpoint import (
    FORMAT_VERSION, MODEL, RESUME, CheckpointError, CheckpointWarning, load_checkpoint, save_checkpoint, set_aside,
)
from lmt.data import Dataset, Split
from lmt.train import TrainSettings, load_trained, train

SETTINGS = TrainSettings(epochs=1, batch_size=50, device="cpu", seed=3)


@pytest.fixture(scope="module")
def tiny(mnist) -> Dataset:
    return Dataset("embedded_mnist", Split(mnist.train.x[:100], mnist.train.y[:100]), Split(mnist.test.x[:20], mnist.test.y[:20]))


def _train(tiny: Dataset, out: Path, resume: Path | None = None, settings: TrainSettings = SETTINGS,
           method: str = "lmt", params: dict | None = None) -> None:
    params = {"c": 1.0} if params is None else params
    train("wong_kolter_mnist", tiny, method, params, settings, out / "model.pt", out / "log.csv", resume_path=resume, progress=False)


@pytest.fixture(scope="module")
def good(tiny: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a good model.pt and resume.pt of a 1-epoch run."""
    out = tmp_path_factory.mktemp("good")
    _train(tiny, out, out / "resume.pt")
    return out


class _Mkdir:
    """Unpickling this creates a directory: a stand-in for arbitrary code in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _state(good: Path) -> dict:
    return torch.load(good, weights_only=True)


# Writers of unusable checkpoint files from a good one, by what is wrong with them.
BAD: dict[str, Callable[[Path, Path], object]] = {
    "truncated": lambda good, p: p.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
    "random bytes": lambda good, p: p.write_bytes(bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).tolist())),
    "empty": lambda good, p: p.write_bytes(b""),
    "foreign torch file": lambda good, p: torch.save({"foo": 1}, p),
    "not a dict": lambda good, p: torch.save(torch.zeros(3), p),
    "unversioned": lambda good, p: torch.save({k: v for k, v in _state(good).items() if k not in ("format", "version")}, p),
    "unknown version": lambda good, p: torch.save({**_state(good), "version": FORMAT_VERSION + 98}, p),
    "other kind": lambda good, p: torch.save({**_state(good), "format": "lmt-bench something else"}, p),
    "missing key": lambda good, p: torch.save({k: v for k, v in _state(good).items() if k != "bound"}, p),
    "malicious": lambda good, p: torch.save(_Mkdir(p.with_name("pwned")), p),
}


def _misshapen(good: Path, p: Path) -> None:
    state = _state(good)
    torch.save({**state, "model": {k: v[..., :1] for k, v in state["model"].items()}}, p)


@pytest.mark.parametrize("case", [*BAD, "misshapen tensors", "directory", "missing"])
def test_unusable_model_checkpoint_is_a_clear_error(good: Path, tmp_path: Path, case: str) -> None:
    path = tmp_path / "model.pt"
    writers = {**BAD, "misshapen tensors": _misshapen, "directory": lambda good, p: p.mkdir(), "missing": lambda good, p: None}
    writers[case](good / "model.pt", path)
    with pytest.raises(CheckpointError) as caught:
        load_trained(path)
    message = str(caught.value)
    assert str(path) in message and "rerun the workflow" in message and "weights_only=False" not in message
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("container", ["torch zip", "raw pickle"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path, container: str) -> None:
    path, marker = tmp_path / "model.pt", tmp_path / "pwned"
    if container == "torch zip":
        torch.save({"format": MODEL.format, "version": FORMAT_VERSION, "info": _Mkdir(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_Mkdir(marker), protocol=2))  # torch.load's protocol
    with pytest.raises(CheckpointError, match="not a readable checkpoint.*mkdir"):
        load_trained(path)
    assert not marker.exists()
    with contextlib.suppress(Exception):  # the control: the payload is live
        torch.load(path, weights_only=False)
    assert marker.exists()


def test_save_refuses_values_the_safe_loader_would_refuse(tmp_path: Path) -> None:
    from collections import Counter

    with pytest.raises(TypeError, match=r"checkpoint\['info'\]\['x'\] is a collections.Counter"):
        save_checkpoint(tmp_path / "m.pt", MODEL, {"info": {"x": Counter()}, "model": {}, "bound": {}})
    with pytest.raises(ValueError, match="lacks"):
        save_checkpoint(tmp_path / "m.pt", MODEL, {"info": {}, "model": {}})
    assert not (tmp_path / "m.pt").exists()


def test_good_checkpoints_load_with_their_format(good: Path) -> None:
    for name, kind in (("model.pt", MODEL), ("resume.pt", RESUME)):
        state = load_checkpoint(good / name, kind)
        assert state["format"] == kind.format and state["version"] == FORMAT_VERSION


def _model_tensors(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path, MODEL)
    return {f"{part}.{k}": v for part in ("model", "bound") for k, v in state[part].items()}


def _assert_same_model(a: Path, b: Path) -> None:
    ta, tb = _model_tensors(a), _model_tensors(b)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.parametrize("case", ["truncated", "empty", "foreign torch file", "unknown version", "missing key", "malicious"])
def test_unusable_resume_is_set_aside_and_training_restarts(good: Path, tiny: Dataset, tmp_path: Path, case: str) -> None:
    resume, marker = tmp_path / "resume.pt", tmp_path / "pwned"
    BAD[case](good / "resume.pt", resume)
    bad_bytes = resume.read_bytes()
    (tmp_path / "resume.pt.corrupt").write_bytes(b"an earlier one")
    with pytest.warns(CheckpointWarning) as warned:
        _train(tiny, tmp_path, resume)
    aside = tmp_path / "resume.pt.corrupt.1"
    message = str(warned[0].message)
    assert str(resume) in message and str(aside) in message and "epoch 0" in message
    assert aside.read_bytes() == bad_bytes and (tmp_path / "resume.pt.corrupt").read_bytes() == b"an earlier one"
    assert not marker.exists()
    _assert_same_model(tmp_path / "model.pt", good / "model.pt")  # trained from scratch, as the good run
    assert load_checkpoint(resume, RESUME)["epoch"] == 1  # a fresh, usable epoch checkpoint


def test_set_aside_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "resume.pt"
    for expected in ("resume.pt.corrupt", "resume.pt.corrupt.1", "resume.pt.corrupt.2"):
        path.write_text(expected)
        assert set_aside(path) == tmp_path / expected
    assert [(tmp_path / name).read_text() for name in ("resume.pt.corrupt", "resume.pt.corrupt.1")] == ["resume.pt.corrupt", "resume.pt.corrupt.1"]


def test_good_resume_with_method_and_scheduler_state_is_bitwise(tiny: Dataset, tmp_path: Path) -> None:
    """spectral_norm_reg keeps power-iteration vectors; SGD milestones keep a Counter in the
    scheduler: both survive the weights-only round trip."""
    settings = TrainSettings(epochs=2, batch_size=50, device="cpu", seed=5, optimizer="sgd", lr=0.05, lr_milestones=(1,), lr_gamma=0.5)
    full, part = tmp_path / "full", tmp_path / "part"
    _train(tiny, full, settings=settings, method="spectral_norm_reg", params={})
    resume = part / "resume.pt"
    _train(tiny, part, resume, settings=dataclasses.replace(settings, epochs=1), method="spectral_norm_reg", params={})
    state = load_checkpoint(resume, RESUME)
    assert state["method"], "the method's state is checkpointed"
    state["identity"]["settings"]["epochs"] = 2  # as if the 2-epoch run had been killed after epoch 1
    save_checkpoint(resume, RESUME, {k: v for k, v in state.items() if k not in ("format", "version")})
    _train(tiny, part, resume, settings=settings, method="spectral_norm_reg", params={})
    _assert_same_model(part / "model.pt", full / "model.pt")
    assert load_checkpoint(resume, RESUME)["scheduler"]["_last_lr"] == [0.025]
