"""The benchmark scripts run and print what they should (no timing is asserted: a shared CI
machine times nothing reliably). ``bench_training.py --count-ops`` counts are exact."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_training():
    return _load("bench_training")


def test_op_counts_are_positive_deterministic_and_lmt_adds_operations(bench_training) -> None:
    cpu = torch.device("cpu")
    counts = {}
    for run, params in bench_training.RUNS:
        step = bench_training.make_step("wong_kolter_mnist", run, params, cpu, 2)
        first = bench_training.count_step_ops(step)
        again = bench_training.count_step_ops(step, warmup=0)
        fresh = bench_training.count_step_ops(bench_training.make_step("wong_kolter_mnist", run, params, cpu, 2))
        assert first.key() == again.key() == fresh.key()  # the same operations every step
        assert all(first.per_phase[phase] > 0 for phase in bench_training.PHASES)
        assert 0 < first.views < first.total and 0 < first.distinct < first.total
        assert "aten.convolution.default" in first.ops
        counts[run] = first
    standard, lmt = counts["standard"], counts["lmt"]
    assert lmt.per_phase["forward"] > standard.per_phase["forward"]  # the bound's power iterations
    assert lmt.per_phase["backward"] > standard.per_phase["backward"]
    assert lmt.per_phase["optimizer"] == standard.per_phase["optimizer"]  # same parameters, same SGD
    assert lmt.distinct > standard.distinct and set(standard.ops) <= set(lmt.ops)


def test_count_ops_prints_the_table(bench_training, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_training.py", "--count-ops", "--device", "cpu", "--models", "wong_kolter_mnist:2"])
    bench_training.main()
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| wong_kolter_mnist, 2 |")]
    assert [row.split(" | ")[1] for row in rows] == ["standard", "lmt"]
    assert "wong_kolter_mnist: LMT/standard = " in out and "ms/step" not in out
