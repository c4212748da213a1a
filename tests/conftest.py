"""Shared fixtures: the embedded data and two briefly trained models (standard and LMT)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from lmt.data import Dataset, embedded_mnist
from lmt.train import TrainedModel, TrainSettings, train

REPO = Path(__file__).resolve().parents[1]
BASELINES = "lmt_bench_baselines"  # the installed name of baselines/ (pyproject.toml)


def _bind_baselines_to_this_checkout() -> None:
    """Tests exercise this checkout: where ``lmt_bench_baselines`` is not installed from it (an
    environment installed from another checkout, or before the package had this name, with this
    checkout on PYTHONPATH), import this checkout's ``baselines/`` under that name, so the
    entry point and the tests' imports find it. Where it is installed from here, nothing is
    done and the entry-point discovery itself is what registers the baselines."""
    here = REPO / "baselines"
    spec = importlib.util.find_spec(BASELINES)
    if spec is not None and [Path(p).resolve() for p in spec.submodule_search_locations or []] == [here]:
        return
    spec = importlib.util.spec_from_file_location(BASELINES, here / "__init__.py", submodule_search_locations=[str(here)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[BASELINES] = module
    spec.loader.exec_module(module)


_bind_baselines_to_this_checkout()

# One thread: the tests' tensors are small, and on a 2-core CI machine (or beside other jobs)
# two threads per process make attacks many times slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    return embedded_mnist()


@pytest.fixture(scope="session")
def trained_models(mnist: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainedModel]:
    """Standard and LMT (c = 1) W&K CNNs after 3 epochs: enough for non-trivial certificates."""
    out = tmp_path_factory.mktemp("trained")
    models = {}
    for run, params in [("standard", {}), ("lmt", {"c": 1.0})]:
        models[run] = train(
            "wong_kolter_mnist", mnist, run, params, TrainSettings(epochs=3, seed=0),
            out / f"{run}.pt", out / f"{run}.csv", progress=False,
        )
    return models


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
