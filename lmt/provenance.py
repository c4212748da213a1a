"""Provenance of every result: configuration, package versions, git revision, device, time."""

from __future__ import annotations

import contextlib
import io
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, TextIO

import torch

from lmt.device import selection as device_selection
from lmt.io import write_text
from lmt.numerics import float_settings

PACKAGES = ("torch", "torchvision", "foolbox", "eagerpy", "numpy", "snakemake", "pandas", "lmt-bench")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_revision() -> str:
    """The repository's HEAD (with '+dirty' when files differ), or 'unknown' outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    """The machine in words that name no one: CPU model, logical core count and OS
    (``Intel(R) Xeon(R) ... , 16 cores, Linux-6.1-x86_64``); never the hostname."""
    return f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()} {platform.machine()}"


def _selection_of(device: str) -> dict[str, Any] | None:
    """How this process chose ``device`` (:func:`lmt.device.selection`: requested setting,
    index, name, GPU slot), or None where the record's device is not the one chosen (a table
    stage records ``cpu`` after a training stage in the same process chose a GPU)."""
    chosen = device_selection()
    if chosen is None or device.split(" (")[0] != chosen["device"]:
        return None
    return chosen


def record(config: dict[str, Any], device: str, wall_time_s: float, **extra: Any) -> dict[str, Any]:
    """One provenance record, stored next to the result it describes; ``config`` is the subset
    of the experiment's settings that the stage read (:mod:`lmt.stage_config`)."""
    return {
        "config": config,
        "packages": package_versions(),
        "python": platform.python_version(),
        "machine": machine(),
        "git_revision": git_revision(),
        "device": device,
        "device_selection": _selection_of(device),
        "float_settings": float_settings(),
        "wall_time_s": round(wall_time_s, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def markdown_header(title: str, device: str, wall_time_s: float, argv: list[str] | None = None) -> str:
    """A provenance block for a Markdown file that a command wrote (a benchmark's numbers):
    git revision (with '+dirty'), torch version, device, CPU model, threads, the command
    line, the date and the wall time, so that every number in the file can be traced."""
    command = shlex.join([Path(sys.executable).name, *(sys.argv if argv is None else argv)])
    rows = [
        ("git revision", git_revision()),
        ("torch", torch.__version__),
        ("device", device),
        ("machine", machine()),
        ("threads", str(torch.get_num_threads())),
        ("command", f"`{command}`"),
        ("finished at", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
        ("wall time", f"{wall_time_s:.1f} s"),
    ]
    return f"# {title}\n\n" + "".join(f"- {name}: {value}\n" for name, value in rows) + "\n## Results\n\n"


class _Tee(io.TextIOBase):
    """Writes to ``stream`` and keeps a copy."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def print_and_record(path: str | Path | None, title: str, device: str, run: Callable[[], None]) -> None:
    """Run ``run`` (which prints its results); if ``path`` is given, also write what it printed,
    under a :func:`markdown_header`, to ``path`` atomically (complete or absent)."""
    if path is None:
        run()
        return
    started = time.perf_counter()
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        run()
    header = markdown_header(title, device, time.perf_counter() - started)
    write_text(path, header + tee.copy.getvalue())
