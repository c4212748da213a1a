"""The LMT margin through torch.compile (lmt.compiled, opt-in with LMT_COMPILE=1): the
side-effect-free bound step it compiles, the compiled steps against eager ones, the check that
sends a wrong compiled margin back to eager, and the switch."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import lmt.compiled as compiled_module
from lmt.bounds import NetworkBound
from lmt.compiled import CompiledMargin, compile_requested
from lmt.methods import StepContext, create_method
from lmt.models import create_model, model_input_shape

pytestmark = pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")

SHAPES = {"wong_kolter_mnist": (1, 28, 28), "wrn_16_4": (3, 16, 16)}


def _setup(name: str = "wong_kolter_mnist", n: int = 8, compile: bool = False):
    """A fresh model (seed 0), its bound, an LMT method and a batch it classifies correctly
    (so the clipped margin reaches every layer)."""
    shape = SHAPES[name]
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = create_model(name).train()
    bound = NetworkBound(model, shape)
    method = create_method("lmt", {"c": 1.0, "c_start": 0.1, "warmup_epochs": 1.0})
    method.compile = compile
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, bound, method, x, y


def _train(model, bound, method, x, y, steps: int, first_epoch: float = 0.0) -> list[torch.Tensor]:
    """``steps`` SGD steps (c rising with the epoch); the losses."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    losses = []
    for i in range(steps):
        loss, _ = method.loss(StepContext(model, bound, first_epoch + 0.1 * i), x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return losses


@pytest.mark.parametrize("name", ["wong_kolter_mnist", "wrn_16_4"])
def test_the_functional_training_bound_equals_the_in_place_one_bitwise(name: str) -> None:
    """Same values, gradients and advanced vectors as training_bound, and no buffer written."""
    model, bound, _, x, _ = _setup(name)
    twin = NetworkBound(model, SHAPES[name])
    twin.load_state_dict(bound.state_dict())
    model(x)  # records the BatchNorm batch statistics
    for need_total in (True, False):
        before = {k: v.clone() for k, v in twin.state_dict().items()}
        state = {k: v.clone() for k, v in twin.named_buffers()}
        got, advanced = twin.functional_training_bound(state, need_total)
        assert all(torch.equal(v, before[k]) for k, v in twin.state_dict().items())
        want = bound.training_bound(need_total)
        assert torch.equal(got.body, want.body)
        assert (got.total is None) == (want.total is None) and (got.total is None or torch.equal(got.total, want.total))
        assert set(advanced) == {k for k in before if not torch.equal(bound.state_dict()[k], before[k])}
        for key, value in advanced.items():
            assert torch.equal(value, bound.state_dict()[key]), key
        grads = [torch.autograd.grad(t.body, list(model.parameters()), allow_unused=True, retain_graph=True)
                 for t in (got, want)]
        for a, b in zip(*grads):
            assert (a is None and b is None) or torch.equal(a, b)
        twin.load_state_dict(bound.state_dict())


def _assert_compiled_trains_as_eager(name: str, steps: int, n: int = 8) -> None:
    """``steps`` steps (c warming up) eagerly and compiled from the same start: the compiled
    margin never falls back (its warning is an error here), the run record says it ran
    compiled, and losses, parameters and vectors agree to float rounding (fused kernels sum in
    another order)."""
    runs = []
    for compile in (False, True):
        model, bound, method, x, y = _setup(name, n=n, compile=compile)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            losses = _train(model, bound, method, x, y, steps=steps)
        runs.append((losses, [p.detach() for p in model.parameters()], bound.state_dict(), method.run_record()))
    (eager_losses, eager_params, eager_state, eager_record), (losses, params, state, record) = runs
    assert eager_record == {} and record == {"compile": {"compiled": True, "failure": None}}
    torch.testing.assert_close(losses, eager_losses, rtol=1e-5, atol=0)
    for a, b in zip(params, eager_params):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    for key in eager_state:
        torch.testing.assert_close(state[key], eager_state[key], rtol=1e-4, atol=1e-6)


def test_compiled_lmt_steps_match_eager_ones() -> None:
    """Inductor, the default, on the W&K CNN: four steps agree with eager ones."""
    _assert_compiled_trains_as_eager("wong_kolter_mnist", steps=4)


def test_a_compiled_wrn_margin_reads_each_batchnorms_own_variance(monkeypatch) -> None:
    """WRN-16-4 has standalone BatchNorm bounds of the same shape (e.g. blocks.1.bn_in and
    blocks.2.bn_in). Read from the module-level record of batch variances, torch 2.14 compiled
    some of them with another layer's variance, so the check sent the margin back to eager; the
    variances passed to the layer bounds compile right: two steps (aot_eager standing in for
    Inductor) agree with eager ones."""
    monkeypatch.setattr(compiled_module, "BACKEND", "aot_eager")
    _assert_compiled_trains_as_eager("wrn_16_4", steps=2, n=4)


def test_a_compiled_run_resumes_bitwise(monkeypatch) -> None:
    """Two compiled steps equal one, a reload into fresh objects (a new process's compile) and
    one more, bit for bit."""
    monkeypatch.setattr(compiled_module, "BACKEND", "aot_eager")
    model, bound, method, x, y = _setup(compile=True)
    _train(model, bound, method, x, y, steps=2)
    straight = [p.detach().clone() for p in model.parameters()] + [b.clone() for b in bound.buffers()]

    model, bound, method, x, y = _setup(compile=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    loss, _ = method.loss(StepContext(model, bound, 0.0), x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    saved = ({k: v.clone() for k, v in model.state_dict().items()}, optimizer.state_dict(), bound.state_dict())
    model2, bound2, method2, _, _ = _setup(compile=True)
    model2.load_state_dict(saved[0])
    bound2.load_state_dict(saved[2])
    optimizer2 = torch.optim.SGD(model2.parameters(), lr=1e-2, momentum=0.9)
    optimizer2.load_state_dict(saved[1])
    loss, _ = method2.loss(StepContext(model2, bound2, 0.1), x, y)
    optimizer2.zero_grad(set_to_none=True)
    loss.backward()
    optimizer2.step()
    resumed = [p.detach() for p in model2.parameters()] + list(bound2.buffers())
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed))
    assert method2.run_record()["compile"]["compiled"] is True


def _wrong_margin(cm: CompiledMargin):
    """A 'compiled' margin whose gradient misses the bound's (the failure torch.compile had)."""
    def margin(logits, labels, c, state, variances):
        shifted, advanced = cm._margin(logits, labels, c, state, variances)
        body_free = cm._margin(logits, labels, c, {k: v.clone() for k, v in state.items()}, variances)[0]
        return shifted.detach() + (body_free - body_free.detach()) * 0 + (logits - logits.detach()), advanced
    return margin


@pytest.mark.parametrize("failure", ["mismatch", "error"])
def test_a_wrong_or_failing_compiled_margin_runs_eagerly_with_a_warning(failure: str, monkeypatch) -> None:
    """The check catches a compiled margin with a wrong gradient, and a compile error is
    caught too: the step and every later one run eagerly (bit for bit the eager run), the
    warning and the run record say why."""
    monkeypatch.setattr(compiled_module, "BACKEND", "aot_eager")
    model, bound, method, x, y = _setup()
    eager_losses = _train(model, bound, method, x, y, steps=2)
    eager = [p.detach() for p in model.parameters()] + list(bound.buffers())

    model, bound, method, x, y = _setup(compile=True)
    cm = method.compiled_margin(StepContext(model, bound, 0.0))
    if failure == "mismatch":
        cm.compiled = _wrong_margin(cm)
        reason = "CompileMismatch: the gradient of parameter 0 differs from eager"
    else:
        def broken(*args):
            raise RuntimeError("no C++ compiler\nmore lines")
        cm.compiled = broken
        reason = "RuntimeError: no C++ compiler"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = _train(model, bound, method, x, y, steps=2)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and reason in messages[0] and "it runs eagerly" in messages[0]
    assert method.run_record()["compile"]["compiled"] is False
    assert method.run_record()["compile"]["failure"].startswith(reason)
    assert all(torch.equal(a, b) for a, b in zip(losses, eager_losses))
    assert all(torch.equal(a, b) for a, b in zip([p.detach() for p in model.parameters()] + list(bound.buffers()), eager))


def test_the_check_compares_what_it_says(monkeypatch) -> None:
    """A correct compiled margin passes the check once per input signature (a smaller batch
    is checked again); c changing does not count as a new signature."""
    monkeypatch.setattr(compiled_module, "BACKEND", "aot_eager")
    model, bound, method, x, y = _setup(compile=True)
    cm = method.compiled_margin(StepContext(model, bound, 0.0))
    checks = []
    original = cm._check
    monkeypatch.setattr(cm, "_check", lambda *a: checks.append(a[0].shape) or original(*a))
    _train(model, bound, method, x, y, steps=3)
    _train(model, bound, method, x[:5], y[:5], steps=1)
    assert [tuple(s) for s in checks] == [(8, 10), (5, 10)]
    assert method.run_record()["compile"] == {"compiled": True, "failure": None}


def test_compare_allows_rounding_and_catches_errors_and_non_finite() -> None:
    want = torch.tensor([1.0, -2.0, 0.5])
    compiled_module._compare("x", want + 1e-6, want)
    for got in (want + torch.tensor([0.0, 0.01, 0.0]), torch.tensor([1.0, float("nan"), 0.5]),
                torch.tensor([1.0, float("inf"), 0.5])):
        with pytest.raises(compiled_module.CompileMismatch, match="x differs from eager"):
            compiled_module._compare("x", got, want)


def test_the_switch_and_its_errors(monkeypatch) -> None:
    monkeypatch.delenv("LMT_COMPILE", raising=False)
    assert compile_requested() is False
    monkeypatch.setenv("LMT_COMPILE", "1")
    assert compile_requested() is True and create_method("lmt", {"c": 1.0}).compile is True
    monkeypatch.setenv("LMT_COMPILE", "yes")
    with pytest.raises(ValueError, match="LMT_COMPILE must be 0 or 1, got 'yes'"):
        compile_requested()
    monkeypatch.setenv("LMT_COMPILE", "1")
    monkeypatch.setenv("LMT_CUDA_GRAPHS", "1")
    with pytest.raises(ValueError, match="LMT_CUDA_GRAPHS=1 and LMT_COMPILE=1 exclude each other"):
        create_method("lmt", {"c": 1.0})


def test_the_training_provenance_says_the_margin_ran_compiled(tmp_path, monkeypatch) -> None:
    """Through the workflow's train stage with LMT_COMPILE=1: the provenance and the checkpoint
    say the margin ran compiled (aot_eager standing in for Inductor), and the run trains."""
    from tests.train_helpers import train_lmt_once

    monkeypatch.setattr(compiled_module, "BACKEND", "aot_eager")
    monkeypatch.setenv("LMT_COMPILE", "1")
    provenance, info = train_lmt_once(tmp_path)
    expected = {"compile": {"compiled": True, "failure": None}}
    assert provenance["method_run"] == expected and info["method_run"] == expected
