"""Wide residual networks of §6.2, as in the official code (notes §4.2, §7).

WRN-16-4: stem conv+BN without ReLU; three groups of 2 pre-activation blocks (widths 64, 128,
256; strides 1, 2, 2); dropout 0.4 between the convs; no conv biases; a 1×1 strided shortcut in
the first block of each group; BN+ReLU, global 8×8 average pooling and a linear head. The
``avg`` variant replaces the strided 1×1 shortcut by a 2×2 average pool and a 1×1 conv.
BatchNorm uses Chainer's eps 2e-5 and decay 0.9 (PyTorch momentum 0.1).
"""

from __future__ import annotations

from torch import Tensor, nn

from lmt.models import register_model
from lmt.models.init import chainer_init_

BN_EPS = 2e-5
BN_MOMENTUM = 0.1


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _shortcut(cin: int, cout: int, stride: int, kind: str) -> nn.Module | None:
    if cin == cout and stride == 1:
        return None
    if kind == "avg" and stride > 1:
        return nn.Sequential(nn.AvgPool2d(stride, stride), nn.Conv2d(cin, cout, 1, bias=False))
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class WideBlock(nn.Module):
    """out = conv2(dropout(ReLU(BN(conv1(bnx))))) + shortcut, with bnx = ReLU(BN(x))."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float, shortcut: str) -> None:
        super().__init__()
        self.bn_in = _bn(cin)
        self.relu_in = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _bn(cout)
        self.relu1 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.shortcut = _shortcut(cin, cout, stride, shortcut)
        # Weights of the residual sum; identities unless a method (Parseval) replaces them.
        self.mix_residual: nn.Module = nn.Identity()
        self.mix_shortcut: nn.Module = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        bnx = self.relu_in(self.bn_in(x))
        h = self.conv2(self.dropout(self.relu1(self.bn1(self.conv1(bnx)))))
        # Identity shortcuts take the pre-BN sum x; projection shortcuts take bnx.
        skip = x if self.shortcut is None else self.shortcut(bnx)
        return self.mix_residual(h) + self.mix_shortcut(skip)


class WideResNet(nn.Module):
    def __init__(
        self, depth: int = 16, widen: int = 4, dropout: float = 0.4, in_channels: int = 3,
        num_classes: int = 10, shortcut: str = "conv",
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False), _bn(widths[0]))
        blocks = []
        cin = widths[0]
        for group, stride in enumerate((1, 2, 2)):
            for i in range(n):
                blocks.append(WideBlock(cin, widths[group + 1], stride if i == 0 else 1, dropout, shortcut))
                cin = widths[group + 1]
        self.blocks = nn.Sequential(*blocks)
        self.head_bn = _bn(cin)
        self.head_relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes)
        chainer_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.stem(x))
        return self.fc(self.flatten(self.pool(self.head_relu(self.head_bn(h)))))


@register_model("wrn_16_4", input_shape=(3, 32, 32))
def wrn_16_4(in_channels: int = 3, num_classes: int = 10) -> WideResNet:
    return WideResNet(16, 4, 0.4, in_channels, num_classes, shortcut="conv")


@register_model("wrn_16_4_avg", input_shape=(3, 32, 32))
def wrn_16_4_avg(in_channels: int = 3, num_classes: int = 10) -> WideResNet:
    return WideResNet(16, 4, 0.4, in_channels, num_classes, shortcut="avg")
