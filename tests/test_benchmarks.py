"""The benchmark scripts run and print what they should (no timing is asserted: a shared CI
machine times nothing reliably). ``bench_training.py --count-ops`` counts are exact."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from lmt.methods import create_method
from lmt.models import model_input_shape

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


def test_cuda_adds_the_graphed_lmt_run_and_the_flag_reaches_the_method(bench_training, monkeypatch) -> None:
    """On CUDA the LMT step is also timed with its margin as CUDA graphs; elsewhere it is not,
    and a timed run's graphs are what its label says, whatever $LMT_CUDA_GRAPHS is."""
    labels = [label for label, _, _ in bench_training.runs_for(torch.device("cuda"))]
    assert labels == ["standard", "lmt", bench_training.GRAPHED]
    assert [label for label, _, _ in bench_training.runs_for(torch.device("cpu"))] == ["standard", "lmt"]
    created = []
    original = bench_training.create_method
    monkeypatch.setattr(bench_training, "create_method", lambda *a: created.append(original(*a)) or created[-1])
    monkeypatch.setenv("LMT_CUDA_GRAPHS", "1")
    monkeypatch.setenv("LMT_COMPILE", "0")
    bench_training.make_step("wong_kolter_mnist", "lmt", {"c": 1.0}, torch.device("cpu"), 2)
    bench_training.make_step("wong_kolter_mnist", "lmt", {"c": 1.0}, torch.device("cpu"), 2, cuda_graphs=True)
    assert [m.cuda_graphs for m in created] == [False, True]
    monkeypatch.setenv("LMT_CUDA_GRAPHS", "0")
    monkeypatch.setenv("LMT_COMPILE", "1")
    bench_training.make_step("wong_kolter_mnist", "lmt", {"c": 1.0}, torch.device("cpu"), 2)
    bench_training.make_step("wong_kolter_mnist", "lmt", {"c": 1.0}, torch.device("cpu"), 2, compiled=True)
    assert [m.compile for m in created[2:]] == [False, True]


def test_floor_adds_a_run_on_every_device(bench_training) -> None:
    for device in ("cpu", "cuda"):
        labels = [label for label, _, _ in bench_training.runs_for(torch.device(device), floor=True)]
        assert labels[:2] == ["standard", "lmt"] and labels[-1] == bench_training.FLOOR


def test_the_floor_keeps_the_loss_and_drops_the_bound_gradient(bench_training, monkeypatch) -> None:
    """The floor run computes LMT's loss bit for bit and steps every power iteration, but no
    gradient reaches the body's weights through the bound (the margin's head-weight distances
    keep theirs)."""
    from lmt.methods import StepContext

    shape = model_input_shape("wong_kolter_mnist")
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(1))
    steps = []
    monkeypatch.setattr(bench_training, "StepContext", lambda *a: steps.append(StepContext(*a)) or steps[-1])
    results = []
    for floor in (False, True):
        step = bench_training.make_step("wong_kolter_mnist", "lmt", {"c": 1.0}, torch.device("cpu"), 4, floor=floor)
        step()  # makes the StepContext of this run
        model, bound = steps[-1].model, steps[-1].bound
        with torch.no_grad():
            y = model(x).argmax(1)  # classified correctly: the clipped margin is not 0
        loss, _ = create_method("lmt", {"c": 1.0}).loss(steps[-1], x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        results.append((loss.detach(), {name: p.grad for name, p in model.named_parameters()}, bound.state_dict()))
    (loss, grads, state), (floor_loss, floor_grads, floor_state) = results
    assert torch.equal(loss, floor_loss)
    assert all(torch.equal(state[k], floor_state[k]) for k in state)
    conv = next(name for name in grads if name.endswith("weight"))
    assert not torch.equal(grads[conv], floor_grads[conv])


def test_floor_times_the_floor_and_prints_what_it_is(bench_training, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_training.py", "--device", "cpu", "--models", "wong_kolter_mnist:2",
                                      "--steps", "1", "--repeats", "1", "--floor"])
    bench_training.main()
    out = capsys.readouterr().out
    assert bench_training.FLOOR_KEY in out
    assert "ratio LMT/standard = " in out and "ratio floor/standard = " in out


@pytest.mark.parametrize("flag", ["--floor", "--compiled"])
def test_timing_runs_do_not_combine_with_count_ops(bench_training, monkeypatch, capsys, flag) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_training.py", flag, "--count-ops"])
    with pytest.raises(SystemExit):
        bench_training.main()
    assert "--floor and --compiled time steps; they do not combine with --count-ops" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
def test_compiled_times_lmt_through_torch_compile_and_says_it_compiled(bench_training, monkeypatch, capsys) -> None:
    """aot_eager stands in for Inductor here (no C++ compile in a unit test)."""
    import lmt.compiled

    monkeypatch.setattr(lmt.compiled, "BACKEND", "aot_eager")
    assert [label for label, _, _ in bench_training.runs_for(torch.device("cpu"), compiled=True)][-1] == "lmt_compiled"
    monkeypatch.setattr(sys, "argv", ["bench_training.py", "--device", "cpu", "--models", "wong_kolter_mnist:2",
                                      "--steps", "1", "--repeats", "1", "--compiled"])
    bench_training.main()
    out = capsys.readouterr().out
    assert "wong_kolter_mnist (batch 2): LMT compiled: compiled; compiling and the warm-up steps took " in out
    assert "ratio LMT compiled/standard = " in out


def _run_gpu_check(tmp_path: Path, failing: str = "", wheels: bool = False) -> tuple[int, list[str]]:
    """gpu_check.sh with PYTHON set to a stub that logs its arguments (and fails on ``failing``)."""
    import subprocess

    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "calls.log"
    stub = tmp_path / "python"
    stub.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n'
                    + (f'case "$*" in *{failing}*) exit 3;; esac\n' if failing else "") + "exit 0\n")
    stub.chmod(0o755)
    script = BENCHMARKS / "gpu_check.sh"
    wheel_dir = tmp_path / "wheels"
    if wheels:
        wheel_dir.mkdir()
        (wheel_dir / "foolbox-3.3.4-py3-none-any.whl").write_text("")
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(stub), "DEVICE": "cuda", "OUT": str(tmp_path / "out"),
           "STEPS": "3", "REPEATS": "2", "PHASE_STEPS": "4", "WHEELS": str(wheel_dir)}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, log.read_text().splitlines()


def test_gpu_check_runs_every_part_on_the_device_into_out(tmp_path) -> None:
    status, calls = _run_gpu_check(tmp_path)
    assert status == 0
    out = tmp_path / "out"
    assert calls == [
        f"benchmarks/bench_training.py --device cuda --models wong_kolter_mnist:50 wrn_16_4:128 --compiled --steps 3 --repeats 2 --out {out}/training_steps_cuda.md",
        f"benchmarks/bench_phases.py --device cuda --models wong_kolter_mnist:50 wrn_16_4:128 --steps 4 --out {out}/phases_cuda.md",
        f"benchmarks/bench_training.py --device cuda --count-ops --out {out}/training_ops_cuda.md",
        f"benchmarks/bench_pipeline.py --device cuda --out {out}/pipeline_cuda.md",
        f"-m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/test_gpu_slots.py --junitxml {out}/pytest_gpu.xml",
    ]


def test_gpu_check_goes_on_past_a_failing_part_and_then_fails(tmp_path) -> None:
    status, calls = _run_gpu_check(tmp_path, failing="--count-ops")
    assert status == 1 and len(calls) == 5


def test_gpu_check_installs_carried_wheels_and_the_project_first(tmp_path) -> None:
    status, calls = _run_gpu_check(tmp_path, wheels=True)
    assert status == 0 and len(calls) == 6
    assert calls[0] == (f"-m pip install --quiet --upgrade --no-index --no-deps --no-build-isolation --no-compile --target "
                        f"/tmp/site {tmp_path}/wheels/foolbox-3.3.4-py3-none-any.whl .")
    status, calls = _run_gpu_check(tmp_path / "again", failing="pip install", wheels=True)
    assert status == 1 and len(calls) == 1  # nothing runs without its packages


@pytest.fixture(scope="module")
def bench_wk_minimum():
    return _load("bench_wk_minimum")


def test_the_hand_written_wk_step_is_lmt_benchs_step(bench_wk_minimum) -> None:
    assert bench_wk_minimum.check_hand_written(4) <= bench_wk_minimum.TOLERANCE


@pytest.mark.parametrize(("wrong", "where"), [("scaled", "the loss"), ("nan", "the loss"),
                                             ("no bound", "the gradient of 0.weight")])
def test_the_check_refuses_a_hand_written_step_that_differs(bench_wk_minimum, wrong, where) -> None:
    def loss(model, vectors, x, y):
        if wrong == "no bound":  # the margin alone: the clipped loss's value does not depend on the
            # bound (c saturates), so only the gradients tell
            return bench_wk_minimum.hand_written_loss(model, vectors, x, y, with_bound=False)
        value = bench_wk_minimum.hand_written_loss(model, vectors, x, y)
        return value * (1 + 1e-4) if wrong == "scaled" else value * float("nan")

    with pytest.raises(ValueError, match=f"the hand-written step differs from lmt-bench's in {where} by "):
        bench_wk_minimum.check_hand_written(4, loss)


def test_wk_minimum_times_every_run_and_records_it(bench_wk_minimum, monkeypatch, capsys, tmp_path) -> None:
    out = tmp_path / "minimum.md"
    monkeypatch.setattr(sys, "argv", ["bench_wk_minimum.py", "--batch", "2", "--steps", "1", "--repeats", "4",
                                      "--threads", "1", "--out", str(out)])
    bench_wk_minimum.main()
    printed = capsys.readouterr().out
    assert "hand-written step checked against lmt-bench's" in printed
    for label in ("LMT", "hand-written", "margin alone"):
        assert f"ratio {label}/standard = " in printed
    assert printed.count("(median of 4 alternating blocks, quartiles ") == 3
    text = out.read_text()
    assert text.startswith("# How cheap can an LMT step on the W&K CNN get?") and "- git revision: " in text
    assert printed.strip() in text


def test_wk_minimum_refuses_counts_below_one(bench_wk_minimum, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_wk_minimum.py", "--repeats", "0"])
    with pytest.raises(SystemExit):
        bench_wk_minimum.main()
    assert "--batch, --steps, --repeats and --threads must be at least 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def bench_phases():
    return _load("bench_phases")


def test_phases_of_a_step_add_up_to_the_whole_step(bench_phases) -> None:
    step, clock = bench_phases.timed_step("wong_kolter_mnist", "lmt", torch.device("cpu"), 2)
    phases = step()
    assert set(phases) == {*bench_phases.PHASES, bench_phases.STEP}
    assert all(seconds > 0 for seconds in phases.values())  # every boundary was marked, in order
    assert sum(phases[name] for name in bench_phases.PHASES) == pytest.approx(phases[bench_phases.STEP], rel=1e-9)
    assert bench_phases.bound_alone(clock, 2) > 0


def test_a_standard_step_has_no_bound_to_time_alone(bench_phases) -> None:
    step, clock = bench_phases.timed_step("wong_kolter_mnist", "standard", torch.device("cpu"), 2)
    assert step()["bound"] == 0
    with pytest.raises(ValueError, match="never called its training bound"):
        bench_phases.bound_alone(clock, 2)


def test_phases_prints_every_phase_and_records_it(bench_phases, monkeypatch, capsys, tmp_path) -> None:
    out = tmp_path / "phases.md"
    monkeypatch.setattr(sys, "argv", ["bench_phases.py", "--models", "wong_kolter_mnist:2", "--steps", "3",
                                      "--threads", "1", "--out", str(out)])
    bench_phases.main()
    printed = capsys.readouterr().out
    for name in (*bench_phases.PHASES, bench_phases.STEP):
        assert f"| {name} | " in printed
    assert "the bound alone, 3 calls in a row: " in printed
    text = out.read_text()
    assert text.startswith("# The LMT step phase by phase") and "- git revision: " in text
    assert printed.strip() in text


def test_phases_refuses_counts_below_one(bench_phases, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_phases.py", "--steps", "0"])
    with pytest.raises(SystemExit):
        bench_phases.main()
    assert "--steps and --threads must be at least 1" in capsys.readouterr().err
