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


def _lmt_steps(
    model_name: str, batch: int, graphs: bool, steps: int = 5, compiled: bool = False
) -> tuple[list[torch.Tensor], object]:
    """``steps`` LMT steps (SGD with momentum) on a fixed CUDA batch; the state after them."""
    from lmt.methods import StepContext, create_method
    from lmt.models import model_input_shape

    torch.manual_seed(0)
    shape = model_input_shape(model_name)
    model = create_model(model_name).cuda().train()
    bound = NetworkBound(model, shape).cuda()
    method = create_method("lmt", {"c": 1.0})
    method.cuda_graphs, method.compile = graphs, compiled
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.rand(batch, *shape, device="cuda"), torch.randint(0, 10, (batch,), device="cuda")
    for step in range(steps):
        n = batch if step % 2 == 0 else batch - 3  # a full and a smaller batch: two graphs
        loss, _ = method.loss(StepContext(model, bound, 0.0), x[:n], y[:n])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    state = [t.detach().cpu().clone() for t in [*model.state_dict().values(), *bound.state_dict().values()]]
    return state, method


@pytest.mark.parametrize("model_name, batch", [("wong_kolter_mnist", 50), ("wrn_16_4", 16)])
def test_cuda_graphed_margin_trains_as_the_eager_one(model_name: str, batch: int) -> None:
    """W&K (no BatchNorm) and WRN-16-4 (batch variances as graph inputs): both captures
    succeed (a fallback warns, and warnings are errors here) and five steps of a full and a
    smaller batch end where the eager margin's do."""
    import warnings

    eager, _ = _lmt_steps(model_name, batch, graphs=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        graphed, method = _lmt_steps(model_name, batch, graphs=True)
    assert method.run_record() == {"cuda_graphs": {"graphs": 2, "eager": 0}}
    for a, b in zip(eager, graphed):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
@pytest.mark.parametrize("model_name, batch, atol", [("wong_kolter_mnist", 50, 1e-6), ("wrn_16_4", 16, 1e-4)])
def test_cuda_compiled_margin_trains_as_the_eager_one(model_name: str, batch: int, atol: float) -> None:
    """LMT_COMPILE on CUDA (W&K, and WRN-16-4 with its BatchNorm batch variances): the compiled
    margin passes its check for both batch shapes and five steps end where the eager margin's
    do, to float rounding (WRN-16-4 on the CPU with Inductor: within 1e-5 after five steps)."""
    eager, _ = _lmt_steps(model_name, batch, graphs=False)
    compiled, method = _lmt_steps(model_name, batch, graphs=False, compiled=True)
    assert method.run_record() == {"compile": {"compiled": True, "failure": None}}
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=atol)


def test_cuda_graphed_training_resumes_bitwise(mnist, tmp_path, monkeypatch) -> None:
    """With LMT_CUDA_GRAPHS=1, one epoch plus a resumed second equals two straight epochs."""
    import dataclasses

    from lmt.checkpoint import RESUME, load_checkpoint, save_checkpoint

    monkeypatch.setenv("LMT_CUDA_GRAPHS", "1")
    small = Dataset("embedded_mnist", Split(mnist.train.x[:230], mnist.train.y[:230]), Split(mnist.test.x[:20], mnist.test.y[:20]))
    settings = TrainSettings(epochs=2, batch_size=50, device="cuda", seed=4)
    full, part = tmp_path / "full", tmp_path / "part"
    for out in (full, part):
        out.mkdir()
    train("wong_kolter_mnist", small, "lmt", {"c": 1.0}, settings, full / "m.pt", full / "m.csv", progress=False)
    resume = part / "resume.pt"
    train("wong_kolter_mnist", small, "lmt", {"c": 1.0}, dataclasses.replace(settings, epochs=1), part / "m.pt",
          part / "m.csv", resume_path=resume, progress=False)
    state = load_checkpoint(resume, RESUME)
    state["identity"]["settings"]["epochs"] = 2  # as if the 2-epoch run had been killed after epoch 1
    save_checkpoint(resume, RESUME, {k: v for k, v in state.items() if k not in ("format", "version")})
    train("wong_kolter_mnist", small, "lmt", {"c": 1.0}, settings, part / "m.pt", part / "m.csv", resume_path=resume, progress=False)
    a, b = load_trained(full / "m.pt", "cpu"), load_trained(part / "m.pt", "cpu")
    for trained in (a, b):  # 50 and the last 30 of 230 examples: two graphs, no eager fallback
        assert trained.info["method_run"] == {"cuda_graphs": {"graphs": 2, "eager": 0}}
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x, y)
