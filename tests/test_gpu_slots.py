"""One job per GPU: the file-lock slot allocator (lmt.gpu_slots) and choose_device on fake
multi-GPU machines (torch.cuda monkeypatched), in threads and in separate processes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from lmt import device as lmt_device
from lmt import gpu_slots
from lmt.provenance import record

REPO = Path(__file__).resolve().parents[1]

# A process that claims a slot among COUNT GPUs, reports its index and holds it until STOP
# exists (or until it is killed).
HOLDER = """
import sys, time
from pathlib import Path
from lmt import gpu_slots
slot = gpu_slots.claim(int(sys.argv[1]), directory=Path(sys.argv[2]), poll_s=0.05)
print(slot.index, flush=True)
stop = Path(sys.argv[3])
while not stop.exists():
    time.sleep(0.02)
"""


def _holder(count: int, locks: Path, stop: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(count), str(locks), str(stop)],
        stdout=subprocess.PIPE, text=True, env=env,
    )


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("LMT_JOBS_PER_GPU", raising=False)
    monkeypatch.setenv("LMT_GPU_LOCK_DIR", str(tmp_path / "locks"))
    lmt_device.release()
    monkeypatch.setattr(lmt_device, "_selection", None)
    yield
    lmt_device.release()


def _fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> list[int]:
    """torch.cuda with ``count`` fake devices; returns the list of set_device calls."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: current.append(index))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current[-1] if current else 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: f"Fake GPU {getattr(d, 'index', d)}")
    return current


def test_concurrent_threads_get_distinct_slots(tmp_path: Path) -> None:
    slots, errors = [], []

    def take() -> None:
        try:
            slots.append(gpu_slots.claim(4, directory=tmp_path, poll_s=0.01))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert sorted(s.index for s in slots) == [0, 1, 2, 3]
    assert len({s.path for s in slots}) == 4
    assert all(f"pid {os.getpid()}" in s.path.read_text() for s in slots)
    for s in slots:
        s.release()


def test_a_released_slot_is_reused(tmp_path: Path) -> None:
    a, b, c = (gpu_slots.claim(3, directory=tmp_path) for _ in range(3))
    assert (a.index, b.index, c.index) == (0, 1, 2)
    b.release()
    assert not b.held
    again = gpu_slots.claim(3, directory=tmp_path)
    assert again.index == 1
    for s in (a, c, again):
        s.release()
    assert gpu_slots.claim(3, directory=tmp_path).index == 0


def test_waits_with_a_log_line_when_all_slots_are_taken(tmp_path: Path) -> None:
    held = [gpu_slots.claim(2, directory=tmp_path) for _ in range(2)]
    log = io.StringIO()
    sleeps = []

    def sleep(seconds: float) -> None:  # the other job finishes while we wait
        sleeps.append(seconds)
        if len(sleeps) == 3:
            held[1].release()

    slot = gpu_slots.claim(2, directory=tmp_path, poll_s=0.5, log=log, sleep=sleep)
    assert slot.index == 1 and sleeps == [0.5] * 3
    lines = log.getvalue().splitlines()
    assert len(lines) == 2  # announced once, not once per poll
    assert "all 2 GPU slots" in lines[0] and "waiting" in lines[0] and f"pid {os.getpid()}" in lines[0]
    assert "GPU 1 is free" in lines[1]


def test_processes_get_distinct_slots_and_a_dead_holder_releases_its_slot(tmp_path: Path) -> None:
    locks, stop = tmp_path / "locks", tmp_path / "stop"
    holders = [_holder(3, locks, stop) for _ in range(3)]
    try:
        indices = [int(p.stdout.readline()) for p in holders]
        assert sorted(indices) == [0, 1, 2]
        # all taken: a claim in this process waits until a holder dies
        victim = holders[0]
        log = io.StringIO()
        killed = []

        def sleep(seconds: float) -> None:
            if not killed:
                victim.kill()  # SIGKILL: no cleanup code runs; the kernel drops the lock
                victim.wait(10)
                killed.append(True)
            time.sleep(0.01)

        slot = gpu_slots.claim(3, directory=locks, log=log, sleep=sleep)
        assert killed and "waiting" in log.getvalue()
        assert slot.index == indices[0]  # the dead holder's slot, the others still held
        slot.release()
    finally:
        stop.touch()
        for p in holders:
            p.wait(10)
            p.stdout.close()
    # every holder gone: all slots free again, first one first
    assert gpu_slots.claim(3, directory=locks).index == 0


def test_a_holder_that_exits_normally_frees_its_slot(tmp_path: Path) -> None:
    locks, stop = tmp_path / "locks", tmp_path / "stop"
    stop.touch()  # claims, prints, exits at once
    p = _holder(2, locks, stop)
    assert int(p.stdout.readline()) == 0
    p.wait(10)
    p.stdout.close()
    assert gpu_slots.claim(2, directory=locks).index == 0


def test_slots_follow_cuda_visible_devices_and_jobs_per_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    monkeypatch.setenv("LMT_JOBS_PER_GPU", "2")
    slots = [gpu_slots.claim(2, directory=tmp_path) for _ in range(4)]
    assert [(s.index, s.gpu_id, s.slot) for s in slots] == [(0, "2", 0), (1, "5", 0), (0, "2", 1), (1, "5", 1)]
    assert "gpu5-slot1" in slots[3].path.name
    monkeypatch.setenv("LMT_JOBS_PER_GPU", "0")
    with pytest.raises(ValueError, match="LMT_JOBS_PER_GPU"):
        gpu_slots.jobs_per_gpu()


def test_choose_device_claims_a_gpu_per_process_and_records_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    current = _fake_gpus(monkeypatch, 4)
    other = gpu_slots.claim(4)  # another job holds GPU 0
    device = lmt_device.choose_device("auto")
    assert device == torch.device("cuda", 1) and current == [1]
    assert lmt_device.choose_device("cuda") == device  # the same process keeps its slot
    chosen = lmt_device.selection()
    assert chosen["index"] == 1 and chosen["name"] == "Fake GPU 1" and chosen["gpu_id"] == "1"
    assert chosen["requested"] == "cuda" and chosen["visible_gpus"] == 4
    assert Path(chosen["lock"]).parent == tmp_path / "locks"
    provenance = json.loads(json.dumps(record({}, lmt_device.describe(device), 0.0)))
    assert provenance["device"] == "cuda:1 (Fake GPU 1)"
    assert provenance["device_selection"]["index"] == 1
    assert record({}, "cpu", 0.0)["device_selection"] is None  # a table stage in the same process
    lmt_device.release()
    other.release()
    assert lmt_device.choose_device("auto") == torch.device("cuda", 0)


def test_named_device_single_gpu_slurm_and_cpu_claim_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    current = _fake_gpus(monkeypatch, 4)
    assert lmt_device.choose_device("cuda:2") == torch.device("cuda", 2)
    assert lmt_device.selection()["how"] == "as requested" and not locks.exists()

    current = _fake_gpus(monkeypatch, 1)
    assert lmt_device.choose_device("auto") == torch.device("cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # SLURM narrowed the job to one GPU
    assert lmt_device.choose_device("cuda") == torch.device("cuda")
    chosen = lmt_device.selection()
    assert chosen["how"] == "the only visible GPU" and chosen["cuda_visible_devices"] == "3" and chosen["index"] == 0
    assert current == [] and not locks.exists()

    _fake_gpus(monkeypatch, 0)
    assert lmt_device.choose_device("auto") == torch.device("cpu")
    assert lmt_device.selection() == {"requested": "auto", "device": "cpu", "how": "no CUDA device available"}
    assert record({}, "cpu", 0.0)["device_selection"]["device"] == "cpu"
    assert not locks.exists()
