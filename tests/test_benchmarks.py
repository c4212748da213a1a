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


@pytest.mark.parametrize("mode", [["--count-ops"], ["--steps", "1", "--repeats", "1"]])
def test_out_writes_the_printed_output_under_a_provenance_header(bench_training, monkeypatch, capsys, tmp_path, mode) -> None:
    out = tmp_path / "results" / "bench.md"
    monkeypatch.setattr(sys, "argv", ["bench_training.py", *mode, "--device", "cpu", "--models", "wong_kolter_mnist:2",
                                      "--out", str(out)])
    bench_training.main()
    printed = capsys.readouterr().out
    text = out.read_text()
    header, body = text.split("\n\n", 1)[1].split("\n\n", 1)
    assert text.startswith("# ") and body == "## Results\n\n" + printed  # what was printed, under the header
    for field in ("git revision: ", "torch: " + torch.__version__, "device: cpu", "machine: ", "threads: ",
                  "command: `", "--out", "finished at: ", "wall time: "):
        assert field in header, field
    assert ("| wong_kolter_mnist, 2 | lmt |" in body) == (mode == ["--count-ops"])
    assert ("ms/step" in body) == (mode != ["--count-ops"])
    assert [p.name for p in out.parent.iterdir()] == ["bench.md"]  # no temporary file left


def test_threads_times_each_thread_count_in_one_run_with_the_spread(bench_training, monkeypatch, capsys) -> None:
    initial = torch.get_num_threads()
    monkeypatch.setattr(sys, "argv", ["bench_training.py", "--device", "cpu", "--models", "wong_kolter_mnist:2",
                                      "--steps", "1", "--repeats", "4", "--threads", "1", "2"])
    bench_training.main()
    out = capsys.readouterr().out
    sections = out.split("intra-op threads: ")[1:]
    assert [section.split("\n", 1)[0] for section in sections] == ["1", "2"]
    for section in sections:
        assert "wong_kolter_mnist (batch 2): standard " in section
        assert "(median of 4 alternating blocks, quartiles " in section
    assert torch.get_num_threads() == initial  # the process's setting is restored


def test_threads_refuses_a_count_below_one(bench_training, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_training.py", "--threads", "2", "0"])
    with pytest.raises(SystemExit):
        bench_training.main()
    assert "--threads: every thread count must be at least 1, got [2, 0]" in capsys.readouterr().err
