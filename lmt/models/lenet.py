"""LeNet of the v1 code (after Peck et al. 2017): conv5×5-20, max-pool 2, conv5×5-50, max-pool 2,
FC 500, FC 10, ReLU activations."""

from __future__ import annotations

from torch import nn

from lmt.models import register_model
from lmt.models.init import chainer_init_


def _lenet(in_channels: int, spatial: int, num_classes: int) -> nn.Sequential:
    side = ((spatial - 4) // 2 - 4) // 2
    model = nn.Sequential(
        nn.Conv2d(in_channels, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(50 * side * side, 500), nn.ReLU(), nn.Linear(500, num_classes),
    )
    return chainer_init_(model)


@register_model("lenet_mnist", input_shape=(1, 28, 28))
def lenet_mnist(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    return _lenet(in_channels, 28, num_classes)


@register_model("lenet_cifar", input_shape=(3, 32, 32))
def lenet_cifar(in_channels: int = 3, num_classes: int = 10) -> nn.Sequential:
    return _lenet(in_channels, 32, num_classes)
