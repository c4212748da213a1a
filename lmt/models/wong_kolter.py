"""The 4-layer MNIST CNN of Wong & Kolter (2018) used in §6.1 of the paper (notes §4.1), and the
larger 4C3F network of Wong et al. (2018) that BCP and GloRo train on MNIST."""

from __future__ import annotations

from torch import nn

from lmt.models import register_model
from lmt.models.init import chainer_init_


@register_model("wong_kolter_mnist", input_shape=(1, 28, 28))
def wong_kolter_mnist(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """conv 16 4×4/2 pad 1, ReLU, conv 32 4×4/2 pad 1, ReLU, FC 100, ReLU, FC 10 (28×28 input)."""
    model = nn.Sequential(
        nn.Conv2d(in_channels, 16, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 100),
        nn.ReLU(),
        nn.Linear(100, num_classes),
    )
    return chainer_init_(model)


@register_model("wong_kolter_large_mnist", input_shape=(1, 28, 28))
def wong_kolter_large_mnist(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """The large MNIST network of Wong, Schmidt, Metzen & Kolter (NeurIPS 2018), "4C3F": conv 32
    3×3 pad 1, conv 32 4×4/2 pad 1, conv 64 3×3 pad 1, conv 64 4×4/2 pad 1, FC 512, FC 512,
    FC 10, ReLUs between (28×28 input). BCP's MNIST recipe trains this network (README)."""
    model = nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, num_classes),
    )
    return chainer_init_(model)
