"""Networks of 1-Lipschitz-by-construction layers (:mod:`lmt.models.lipschitz_layers`).

One small MNIST network per layer type, cheap enough to train on a CPU, and CIFAR-10-sized
ConvNets in the spirit of the ConvNet-S of "1-Lipschitz Layers Compared" (Prach et al., CVPR
2024): a stem convolution, stages of blocks of the layer type, strided AOL convolutions that
double the channels between stages, a dense part and a 1-Lipschitz linear head. Not their exact
architecture (they use MaxMin activations, 1×1 "first channel" stems and their own
downsampling); ours uses ReLU between AOL and SOC layers and no activation between residual
blocks (SLL and CPL blocks carry their own ReLU). The SOC networks (skew-orthogonal convolutions,
12 Taylor terms in eval mode, 6 in training) use a Cayley-orthogonal dense block. Every layer
promises Lipschitz constant 1 and the engine checks each promise from the weights; the head is not an ``nn.Linear``, so certificates use
Prop. 1 with the whole network's bound.
"""

from __future__ import annotations

from torch import nn

from lmt.models import register_model
from lmt.models.lipschitz_layers import (
    AOLConv2d,
    AOLLinear,
    CayleyLinear,
    CPLConv2d,
    CPLLinear,
    SLLConv2d,
    SLLLinear,
    SOCConv2d,
)

KINDS = ("aol", "sll", "cpl", "soc")


def _conv_block(kind: str, channels: int, size: int) -> list[nn.Module]:
    if kind == "aol":
        return [AOLConv2d(channels, channels, 3), nn.ReLU()]
    if kind == "sll":
        return [SLLConv2d(channels)]
    if kind == "soc":
        return [SOCConv2d(channels, channels, 3), nn.ReLU()]
    return [CPLConv2d(channels, (size, size))]


def _dense_block(kind: str, features: int) -> list[nn.Module]:
    if kind == "aol":
        return [AOLLinear(features, features), nn.ReLU()]
    if kind == "sll":
        return [SLLLinear(features)]
    if kind == "soc":  # an orthogonal dense layer: Cayley (SOCLinear has no norm control)
        return [CayleyLinear(features, features), nn.ReLU()]
    return [CPLLinear(features)]


def lipschitz_convnet(kind: str, in_channels: int, num_classes: int, size: int, width: int, stages: int,
                      depth: int, stem_stride: int, dense: int) -> nn.Sequential:
    """Stem (AOL conv, ``stem_stride``), ``stages`` stages of ``depth`` blocks of ``kind``, an
    AOL 4×4 stride-2 convolution doubling the channels between stages, then flatten, an AOL
    dense layer to ``dense`` features, one dense block and an AOL linear head."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    layers: list[nn.Module] = [AOLConv2d(in_channels, width, 3 if stem_stride == 1 else 4, stride=stem_stride,
                                         padding=1), nn.ReLU()]
    size = size // stem_stride
    for stage in range(stages):
        for _ in range(depth):
            layers += _conv_block(kind, width, size)
        if stage < stages - 1:
            layers += [AOLConv2d(width, 2 * width, 4, stride=2, padding=1), nn.ReLU()]
            width, size = 2 * width, size // 2
    layers += [nn.Flatten(), AOLLinear(width * size * size, dense), nn.ReLU(), *_dense_block(kind, dense),
               AOLLinear(dense, num_classes)]
    return nn.Sequential(*layers)


def _register_mnist(kind: str) -> None:
    @register_model(f"{kind}_convnet", input_shape=(1, 28, 28))
    def build(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
        return lipschitz_convnet(kind, in_channels, num_classes, 28, 16, 2, 1, 2, 100)

    build.__doc__ = (f"MNIST: {kind.upper()} stem 16 ch 4×4/2 → 14×14, one {kind.upper()} block, AOL 4×4/2 → "
                     f"32 ch 7×7, one {kind.upper()} block, AOL dense 1568 → 100, one dense block, AOL head.")


def _register_cifar(kind: str) -> None:
    @register_model(f"{kind}_convnet_s", input_shape=(3, 32, 32))
    def build(in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Sequential:
        return lipschitz_convnet(kind, in_channels, num_classes, image_size, 32, 3, 2, 1, 256)

    build.__doc__ = (f"CIFAR-10, ConvNet-S-like: stem 32 ch at 32×32, 3 stages of 2 {kind.upper()} blocks "
                     "(32, 64, 128 ch; 32, 16, 8 px), AOL dense 8192 → 256, one dense block, AOL head "
                     "(``image_size``: other square inputs, e.g. small ones in tests).")


for _kind in KINDS:
    _register_mnist(_kind)
    _register_cifar(_kind)


@register_model("cayley_mlp", input_shape=(1, 28, 28))
def cayley_mlp(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """MNIST MLP: AOL 784 → 256, then Cayley-orthogonal 256 → 256 and 256 → 10 (ReLU between);
    the first layer is AOL so that the Cayley transform is of a 256×256, not a 784×784, matrix."""
    return nn.Sequential(
        nn.Flatten(), AOLLinear(in_channels * 28 * 28, 256), nn.ReLU(),
        CayleyLinear(256, 256), nn.ReLU(), CayleyLinear(256, num_classes),
    )
