"""The two checkpoint kinds — a finished ``model.pt`` and the per-epoch ``resume.pt`` — written
and read in one place.

A checkpoint holds plain values only (tensors, numbers, strings, booleans, ``None``, and lists,
tuples and dicts of those), checked when it is written, and is read with
``torch.load(weights_only=True)``: reading one never runs code from the file. Each carries its
``format`` (the kind) and a format ``version``. Any failure to read one — missing, truncated,
corrupt, foreign, malicious, of another version, lacking a key — is a :class:`CheckpointError`
naming the file and the remedy.
"""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmt.io import save_torch

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointKind:
    """What one kind of checkpoint must contain, and what to do when a file of it is unusable."""

    format: str
    keys: frozenset[str]
    remedy: str


MODEL = CheckpointKind(
    "lmt-bench model",
    frozenset({"info", "model", "bound"}),
    "delete it (if present) and rerun the workflow (`snakemake` or `lmt-bench run`) to retrain this run",
)
RESUME = CheckpointKind(
    "lmt-bench resume",
    frozenset({"identity", "epoch", "model", "bound", "optimizer", "scheduler", "method", "rng_cpu", "rng_cuda", "log"}),
    "delete it; training then restarts from epoch 0",
)


class CheckpointError(Exception):
    """A checkpoint file cannot be used; the message names the file, the reason and the remedy."""

    def __init__(self, path: Path, kind: CheckpointKind, reason: str) -> None:
        super().__init__(f"{path}: {reason}. To fix: {kind.remedy}.")
        self.path = path
        self.reason = reason


class CheckpointWarning(UserWarning):
    """An unusable ``resume.pt`` was set aside and training restarts from epoch 0."""


def save_checkpoint(path: str | Path, kind: CheckpointKind, content: dict[str, Any]) -> None:
    """Write ``content`` atomically as a checkpoint of ``kind``.

    Raises ``ValueError``/``TypeError`` (a bug, not a bad file) if a key is missing or a value is
    not plain, so that a checkpoint which could not be read back is never written."""
    missing = kind.keys - content.keys()
    if missing:
        raise ValueError(f"{kind.format} checkpoint {path} lacks {sorted(missing)}")
    _require_plain(content, "checkpoint")
    save_torch(path, {"format": kind.format, "version": FORMAT_VERSION, **content})


def load_checkpoint(path: str | Path, kind: CheckpointKind) -> dict[str, Any]:
    """The checkpoint of ``kind`` at ``path``, read without running code from it; tensors on the CPU.

    Raises :class:`CheckpointError` for every reason the file cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, kind, "not a file" if path.exists() else "no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, kind, "the file is empty")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load's failures on bad bytes are many and undocumented
        raise CheckpointError(path, kind, f"not a readable checkpoint ({_describe(err)})") from err
    if not isinstance(state, dict):
        raise CheckpointError(path, kind, f"not an {kind.format} checkpoint (it holds a {type(state).__name__}, not a dict)")
    if "format" not in state:
        raise CheckpointError(
            path, kind,
            f"not an {kind.format} checkpoint (no 'format' field: written by another program, "
            "or by lmt-bench before its checkpoints were versioned)",
        )
    if state["format"] != kind.format:
        raise CheckpointError(path, kind, f"an {state['format']!r} checkpoint, not an {kind.format!r} one")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            path, kind,
            f"checkpoint format version {state.get('version')!r}, but this lmt-bench reads version {FORMAT_VERSION}",
        )
    missing = kind.keys - state.keys()
    if missing:
        raise CheckpointError(path, kind, f"the checkpoint lacks {sorted(missing)}")
    return state


def load_resume(path: str | Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The resume checkpoint at ``path`` if it continues the run ``identity``, else ``None``
    (train from epoch 0). Tensors are on the CPU (RNG states must be).

    An unusable file is set aside with a :class:`CheckpointWarning`, so it never blocks a rerun;
    one from other settings is left in place (the next epoch overwrites it)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = load_checkpoint(path, RESUME)
    except CheckpointError as err:
        aside = set_aside(path)
        warnings.warn(
            f"{path}: {err.reason}; moved it to {aside} and training restarts from epoch 0",
            CheckpointWarning, stacklevel=2,
        )
        return None
    if state["identity"] != identity:
        print(f"ignoring {path}: it belongs to other settings", flush=True)
        return None
    return state


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<path>.corrupt`` (or ``.corrupt.1``, ``.corrupt.2``, ... never
    replacing an earlier one) and return the new path."""
    aside = path.with_name(path.name + ".corrupt")
    n = 0
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt.{n}")
    path.rename(aside)
    return aside


_SCALARS = (str, int, float, bool, type(None))


def _require_plain(value: Any, where: str) -> None:
    """Raise ``TypeError`` naming the first value the weights-only unpickler may refuse.

    Exact types: a ``Counter`` is refused although it is a dict, a ``numpy.float64`` although it
    is a float."""
    if isinstance(value, torch.Tensor) or type(value) in _SCALARS:
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _require_plain(item, f"{where}[{i}]")
    elif type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key of type {type(key).__name__}; checkpoints hold str or int keys")
            _require_plain(item, f"{where}[{key!r}]")
    else:
        raise TypeError(
            f"{where} is a {type(value).__module__}.{type(value).__qualname__}; checkpoints hold only "
            "tensors, numbers, strings, None, and lists, tuples and dicts of those"
        )


_REFUSAL = re.compile(r"WeightsUnpickler error:\s*(.+)|(Trying to load unsupported GLOBAL .+)")


def _describe(err: Exception) -> str:
    """Why torch.load failed, in one short line. A weights-only refusal keeps only what was
    refused, not torch's hint to retry with ``weights_only=False`` (which would run the file)."""
    text = str(err).strip()
    if text.startswith("Weights only load failed"):
        found = _REFUSAL.search(text)
        what = (found.group(1) or found.group(2)) if found else ""
        detail = "refused by the weights-only unpickler" + (f": {what.split('. ')[0].rstrip('.')}" if what else "")
    else:
        detail = text.split("\n")[0].split(". ")[0]
    detail = detail if len(detail) <= 200 else detail[:197] + "..."
    return f"{type(err).__name__}: {detail}" if detail else type(err).__name__
