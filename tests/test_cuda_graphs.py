"""The CUDA-graphed LMT margin's bookkeeping, on the CPU (tests/test_cuda.py runs the real
graphs on a GPU): warm-up runs leave the power-iteration vectors as they were, one capture per
input signature, a fresh one after the parameters move, an eager fallback with a warning when
a capture fails, and the BatchNorm batch variances taken as inputs.

The capture here is a stand-in for :func:`torch.cuda.make_graphed_callables` that does what it
does to the state (four forward and backward runs on the sample inputs) and returns the
module, which then runs eagerly: everything but the graphs themselves."""

from __future__ import annotations

import copy
import unittest.mock
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmt.bounds import NetworkBound
from lmt.cuda_graphs import ENV_VAR, MAX_GRAPHS, GraphedMargin, cuda_graphs_requested
from lmt.methods import StepContext, create_method

SHAPE = (1, 6, 6)


def _network() -> tuple[nn.Module, NetworkBound]:
    """Conv + BatchNorm (bounded as one operator, reading the batch variance) + a linear head."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 36, 4)).train()
    return model, NetworkBound(model, SHAPE)


def _warming_capture(samples: list[tuple]) -> object:
    """Records the sample inputs and runs the margin four times on them with gradients, as the
    real capture's warm-up and capture runs do; the 'graph' is the module itself."""
    def capture(module: nn.Module, sample: tuple) -> nn.Module:
        assert all(t.grad_fn is None for t in sample), "sample inputs must not carry autograd history"
        samples.append(sample)
        for _ in range(4):
            out = module(*sample)
            inputs = [t for t in (*sample, *module.parameters()) if t.requires_grad]
            torch.autograd.grad(out, inputs, torch.ones_like(out), allow_unused=True)
        return module
    return capture


class _Run:
    """A model, its bound and an optimizer; steps with the eager margin or a GraphedMargin."""

    def __init__(self, model: nn.Module, bound: NetworkBound, capture: object = None) -> None:
        self.model, self.bound = model, bound
        self.method = create_method("lmt", {"c": 0.5})
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        self.graphed = None if capture is None else GraphedMargin(
            lambda logits, labels, c, variances: self.method.margin(bound, logits, labels, c, variances),
            parameters=lambda: list(model.parameters()), state=lambda: list(bound.buffers()), capture=capture,
        )

    def step(self, x: torch.Tensor, y: torch.Tensor, c: float = 0.5, detach_variances: bool = False) -> torch.Tensor:
        logits = self.model(x)
        if self.graphed is None:
            shifted = self.method.margin(self.bound, logits, y, torch.tensor(c))
        else:
            variances = self.bound.batch_statistics()
            if detach_variances:
                variances = {module: v.detach() for module, v in variances.items()}
            shifted = self.graphed(logits, y, c, variances)
        self.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(shifted, y).backward()
        self.optimizer.step()
        return shifted.detach().clone()

    def state(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in [*self.model.state_dict().values(), *self.bound.state_dict().values()]]


def _pair(capture: object) -> tuple[_Run, _Run]:
    model, bound = _network()
    twin_model = copy.deepcopy(model)
    twin_bound = NetworkBound(twin_model, SHAPE)
    twin_bound.load_state_dict(bound.state_dict())
    return _Run(model, bound), _Run(twin_model, twin_bound, capture)


def _batch(n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=generator), torch.randint(0, 4, (n,), generator=generator)


def _assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_graphed_steps_equal_eager_steps_bitwise_and_warmups_leave_no_trace() -> None:
    samples: list[tuple] = []
    eager, graphed = _pair(_warming_capture(samples))
    x, y = _batch(8)
    for _ in range(3):
        _assert_same([eager.step(x, y)], [graphed.step(x, y)])
    _assert_same(eager.state(), graphed.state())  # weights, BatchNorm statistics, vectors
    assert len(samples) == 1  # one capture for the one signature
    logits, labels, c, variance = samples[0]  # the BatchNorm batch variance is a graph input
    assert logits.requires_grad and variance.requires_grad and variance.shape == (3,)


def test_the_batch_variance_input_carries_the_gradient_to_earlier_layers() -> None:
    """The part of the LMT gradient that goes through the batch statistics reaches the conv's
    kernel only through the variance input: detached, the kernel's update differs."""
    eager, graphed = _pair(_warming_capture([]))
    _, detached = _pair(_warming_capture([]))
    x, y = _batch(8)
    eager.step(x, y)
    graphed.step(x, y)
    detached.step(x, y, detach_variances=True)
    assert torch.equal(graphed.model[0].weight, eager.model[0].weight)
    assert not torch.equal(detached.model[0].weight, eager.model[0].weight)


def test_one_capture_per_signature_and_a_fresh_one_after_the_parameters_move() -> None:
    samples: list[tuple] = []
    eager, graphed = _pair(_warming_capture(samples))
    for n in (8, 8, 5, 8, 5):  # a full batch and a smaller last batch
        x, y = _batch(n, seed=n)
        _assert_same([eager.step(x, y)], [graphed.step(x, y)])
    assert [s[0].shape[0] for s in samples] == [8, 5]
    for parameter in graphed.model.parameters():  # new storage: the graphs read stale memory
        parameter.data = parameter.data.clone()
    graphed.step(*_batch(8))
    assert len(samples) == 3 and len(graphed.graphed.graphs) == 1


def test_c_changes_without_a_recapture() -> None:
    samples: list[tuple] = []
    eager, graphed = _pair(_warming_capture(samples))
    x, y = _batch(8)
    for c in (0.1, 0.1, 0.7, 2.0):
        _assert_same([eager.step(x, y, c)], [graphed.step(x, y, c)])
    assert len(samples) == 1


def test_a_failed_capture_falls_back_to_the_eager_margin_with_a_warning() -> None:
    def failing(module: nn.Module, sample: tuple) -> nn.Module:
        module(*sample)  # advances the vectors, as a capture would before failing
        with unittest.mock.patch("lmt.losses.clip_factor", side_effect=RuntimeError("operation not permitted when stream is capturing")):
            module(*sample)

    eager, graphed = _pair(failing)
    x, y = _batch(8)
    with pytest.warns(RuntimeWarning, match=r"capture failed at lmt/losses.py:\d+ \(margin_logits\) .*not permitted.*runs eagerly"):
        _assert_same([eager.step(x, y)], [graphed.step(x, y)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second attempt, no second warning
        _assert_same([eager.step(x, y)], [graphed.step(x, y)])
    _assert_same(eager.state(), graphed.state())


def test_too_many_shapes_run_eagerly_with_a_warning() -> None:
    samples: list[tuple] = []
    eager, graphed = _pair(_warming_capture(samples))
    for n in range(2, 2 + MAX_GRAPHS):
        eager.step(*_batch(n))
        graphed.step(*_batch(n))
    with pytest.warns(RuntimeWarning, match=f"more than {MAX_GRAPHS} input shapes"):
        _assert_same([eager.step(*_batch(20))], [graphed.step(*_batch(20))])
    assert len(samples) == MAX_GRAPHS
    _assert_same(eager.state(), graphed.state())


def test_without_gradients_the_margin_runs_eagerly_and_captures_nothing() -> None:
    samples: list[tuple] = []
    eager, graphed = _pair(_warming_capture(samples))
    x, y = _batch(8)
    with torch.no_grad():
        expected = eager.method.margin(eager.bound, eager.model(x), y, torch.tensor(0.5))
        got = graphed.graphed(graphed.model(x), y, 0.5, graphed.bound.batch_statistics())
    _assert_same([expected], [got])
    _assert_same(eager.state(), graphed.state())
    assert samples == []


def test_batch_statistics_as_substitutes_and_restores() -> None:
    model, bound = _network()
    model(_batch(8)[0])
    recorded = bound.batch_statistics()
    (module, variance), = recorded.items()
    leaf = variance.detach().clone().requires_grad_()
    with bound.batch_statistics_as({module: leaf}):
        bound.training_bound(need_total=False).body.backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
    assert bound.batch_statistics()[module] is variance


@pytest.mark.parametrize("value, expected", [(None, False), ("0", False), ("1", True)])
def test_the_environment_switch(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool) -> None:
    if value is None:
        monkeypatch.delenv(ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(ENV_VAR, value)
    assert cuda_graphs_requested() is expected
    assert create_method("lmt", {}).cuda_graphs is expected


def test_a_bad_environment_switch_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "yes")
    with pytest.raises(ValueError, match=f"{ENV_VAR} must be 0 or 1, got 'yes'"):
        create_method("lmt", {})


@pytest.mark.parametrize("requested", [False, True])
def test_the_training_provenance_says_whether_the_margin_was_graphed(
    tmp_path, monkeypatch: pytest.MonkeyPatch, requested: bool
) -> None:
    """With LMT_CUDA_GRAPHS=1 the train stage's provenance counts the captured graphs and the
    signatures that ran eagerly (none of either on the CPU); without it, it says nothing."""
    from tests.train_helpers import train_lmt_once

    monkeypatch.setenv(ENV_VAR, "1" if requested else "0")
    provenance, info = train_lmt_once(tmp_path)
    expected = {"cuda_graphs": {"graphs": 0, "eager": 0}}
    if requested:
        assert info["method_run"] == expected and provenance["method_run"] == expected
    else:
        assert "method_run" not in info and "method_run" not in provenance


def test_run_record_counts_graphs_and_eager_signatures() -> None:
    model, bound = _network()
    method = create_method("lmt", {"c": 0.5})
    assert method.run_record() == {}
    method.cuda_graphs = True
    assert method.run_record() == {"cuda_graphs": {"graphs": 0, "eager": 0}}
    graphed = method.graphed_margin(StepContext(model, bound, 0.0))
    graphed.capture = _warming_capture([])
    x, y = _batch(8)
    graphed(model(x), y, 0.5, bound.batch_statistics())
    graphed.capture = lambda module, sample: (_ for _ in ()).throw(RuntimeError("no"))
    with pytest.warns(RuntimeWarning, match="capture failed"):
        graphed(model(x[:5]), y[:5], 0.5, bound.batch_statistics())
    assert method.run_record() == {"cuda_graphs": {"graphs": 1, "eager": 1}}
