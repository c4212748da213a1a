"""Device choice: CUDA when present (respecting CUDA_VISIBLE_DEVICES), else CPU.

Where several GPUs are visible and the config leaves the choice open (``auto`` or ``cuda``),
each process claims a GPU of its own through :mod:`lmt.gpu_slots` (a lock held until it exits),
so that concurrent Snakemake jobs spread over the GPUs. What was chosen, and how, is recorded in
every provenance record (:func:`selection`).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from lmt import gpu_slots

_slot: gpu_slots.GpuSlot | None = None  # this process's claimed GPU, held until exit
_selection: dict[str, Any] | None = None


def _record(preference: str, device: torch.device, how: str, slot: gpu_slots.GpuSlot | None = None) -> None:
    global _selection
    entry: dict[str, Any] = {"requested": preference, "device": str(device), "how": how}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        entry.update(
            index=index,
            name=torch.cuda.get_device_name(index),
            visible_gpus=torch.cuda.device_count(),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
    if slot is not None:
        entry.update(gpu_id=slot.gpu_id, slot=slot.slot, lock=str(slot.path), waited_s=round(slot.waited_s, 3))
    _selection = entry


def _claimed_cuda(preference: str) -> torch.device:
    """``cuda`` where at most one GPU is visible; else the GPU of this process's slot."""
    global _slot
    count = torch.cuda.device_count()
    if count <= 1:
        device = torch.device("cuda")
        _record(preference, device, "the only visible GPU")
        return device
    if _slot is None or not _slot.held:
        _slot = gpu_slots.claim(count)
    torch.cuda.set_device(_slot.index)  # plain "cuda" (Foolbox, eagerpy) means this GPU too
    device = torch.device("cuda", _slot.index)
    _record(preference, device, f"slot lock: {count} visible GPUs, this process holds one (lmt.gpu_slots)", _slot)
    return device


def choose_device(preference: str = "auto") -> torch.device:
    """Resolve ``auto``/``cpu``/``cuda``/``cuda:N`` to a usable device, with a clear error.

    ``auto`` and ``cuda`` with several visible GPUs claim one GPU for this process (waiting
    while every GPU is held by another process); ``cuda:N`` is used as named."""
    if preference == "auto":
        if not torch.cuda.is_available():
            device = torch.device("cpu")
            _record(preference, device, "no CUDA device available")
            return device
        return _claimed_cuda(preference)
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} was requested but CUDA is not available here")
    if device.type == "cuda" and device.index is None:
        return _claimed_cuda(preference)
    _record(preference, device, "as requested")
    return device


def selection() -> dict[str, Any] | None:
    """How this process's device was chosen (the last :func:`choose_device`), for provenance;
    None where no device was chosen (the table and figure stages)."""
    return None if _selection is None else dict(_selection)


def release() -> None:
    """Give back this process's GPU slot, if any (exiting does this too)."""
    global _slot
    if _slot is not None:
        _slot.release()
        _slot = None


def describe(device: torch.device) -> str:
    """A human-readable device name for provenance records."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
