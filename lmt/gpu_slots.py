"""One job per GPU without a scheduler: a file-lock slot allocator.

Snakemake's ``--resources gpu=N`` caps how many GPU jobs run at once but assigns no device ids
(Snakemake 9 has no GPU-id mechanism), so on a node with several visible GPUs every job would
pick ``cuda:0``. A job that may use any GPU (``training.device: auto`` or ``cuda``) therefore
claims a slot: it takes an exclusive ``fcntl.flock`` on one lock file per GPU, trying them in
order, and keeps the file open for the rest of the process. The kernel drops the lock when the
process exits or dies (no stale locks; the pid written into the file is only for people). When
every slot is taken the job says so once and waits until one is free.

Nothing is claimed where a scheduler already narrowed the job to one GPU (SLURM sets
``CUDA_VISIBLE_DEVICES=3``), where one GPU or none is visible, or where a device is named
(``cuda:N``).

- ``LMT_GPU_LOCK_DIR``: the lock directory (default ``<tempdir>/lmt-gpu-locks-<uid>``, local to
  the machine, as the GPUs are). Lock files are named after the host, so a directory on a
  shared file system does not make GPUs of different nodes exclusive.
- ``LMT_JOBS_PER_GPU``: slots per GPU (default 1); with k > 1, jobs fill every GPU once before
  any GPU gets a second job.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO


def lock_dir() -> Path:
    """``$LMT_GPU_LOCK_DIR``, else a per-user directory under the machine's temp directory."""
    configured = os.environ.get("LMT_GPU_LOCK_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"lmt-gpu-locks-{os.getuid()}"


def jobs_per_gpu() -> int:
    value = os.environ.get("LMT_JOBS_PER_GPU", "1")
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 1:
        raise ValueError(f"LMT_JOBS_PER_GPU must be a positive integer, got {value!r}")
    return k


def visible_gpu_ids(count: int) -> list[str]:
    """What identifies each of the ``count`` visible GPUs across processes: its entry in
    ``CUDA_VISIBLE_DEVICES`` (an index or a UUID) where that is set, else its index."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip():
        entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
        if len(entries) >= count:
            return entries[:count]
    return [str(i) for i in range(count)]


@dataclass
class GpuSlot:
    """A claimed GPU: ``index`` among the visible devices (``cuda:<index>``), ``gpu_id`` (what
    identifies it across processes), the lock ``path`` held open, seconds ``waited``."""

    index: int
    gpu_id: str
    slot: int
    path: Path
    waited_s: float
    _fd: int | None = field(default=None, repr=False)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the slot back (a process that exits releases it anyway)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def _lock_name(gpu_id: str, slot: int) -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"
    gid = re.sub(r"[^A-Za-z0-9_.-]", "_", gpu_id)
    return f"{host}-gpu{gid}" + (f"-slot{slot}" if slot else "") + ".lock"


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on ``path``, or None if another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n".encode())
    return fd


def _holders(paths: list[Path]) -> str:
    notes = []
    for path in paths:
        try:
            notes.append(path.read_text().split(" on ")[0].strip() or "?")
        except OSError:
            notes.append("?")
    return ", ".join(notes)


def claim(
    count: int,
    *,
    directory: Path | None = None,
    per_gpu: int | None = None,
    poll_s: float = 1.0,
    log: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> GpuSlot:
    """Claim the first free slot among ``count`` visible GPUs, waiting while all are taken."""
    if count < 1:
        raise ValueError("no GPU to claim")
    directory = lock_dir() if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    per_gpu = jobs_per_gpu() if per_gpu is None else per_gpu
    ids = visible_gpu_ids(count)
    # slot-major order: every GPU gets a first job before any gets a second
    slots = [(index, slot) for slot in range(per_gpu) for index in range(count)]
    paths = [directory / _lock_name(ids[index], slot) for index, slot in slots]
    log = sys.stderr if log is None else log
    started = time.monotonic()
    announced = False
    while True:
        for (index, slot), path in zip(slots, paths):
            fd = _try_lock(path)
            if fd is not None:
                waited = time.monotonic() - started
                if announced:
                    print(f"lmt: GPU {ids[index]} is free after {waited:.0f} s of waiting", file=log, flush=True)
                return GpuSlot(index, ids[index], slot, path, waited, fd)
        if not announced:
            print(
                f"lmt: all {len(slots)} GPU slots ({count} visible GPUs x {per_gpu}) are taken by other "
                f"jobs (locks in {directory}: {_holders(paths)}); waiting for one to be free",
                file=log, flush=True,
            )
            announced = True
        sleep(poll_s)
