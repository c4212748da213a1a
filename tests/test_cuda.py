"""CUDA paths (skipped without a GPU): same bounds as on the CPU, training and attacks run."""

from __future__ import annotations

import pytest
import torch

from lmt.attacks import minimal_l2
from lmt.attacks.cw import CW
from lmt.bounds import CertifySettings, NetworkBound
from lmt.certify import radius_prop2
from lmt.data import Dataset, Split
from lmt.models import create_model
from lmt.train import TrainSettings, load_trained, predict, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_certified_bound_on_cuda_matches_cpu() -> None:
    model = create_model("wong_kolter_mnist")
    settings = CertifySettings(n_iter=2000, n_starts=8)
    cpu = NetworkBound(model, (1, 28, 28)).certified_bound(settings)
    model.cuda()
    gpu = NetworkBound(model, (1, 28, 28)).cuda().certified_bound(settings)
    assert gpu.total == pytest.approx(cpu.total, rel=1e-6)


def test_train_certify_attack_on_cuda(mnist, tmp_path) -> None:
    small = Dataset("embedded_mnist", Split(mnist.train.x[:1000], mnist.train.y[:1000]), Split(mnist.test.x[:100], mnist.test.y[:100]))
    train("wong_kolter_mnist", small, "lmt", {"c": 1.0}, TrainSettings(epochs=2, device="cuda"), tmp_path / "m.pt", tmp_path / "m.csv", progress=False)
    trained = load_trained(tmp_path / "m.pt", "cuda")
    assert next(trained.model.parameters()).is_cuda
    bound = trained.bound.certified_bound()
    logits = predict(trained.model, small.test.x)
    radii = radius_prop2(logits, small.test.y, bound.head_weight, bound.body)
    result = minimal_l2(trained.model, small.test.x, small.test.y, CW(), device="cuda", progress=False)
    assert (radii <= result.distance).all()
