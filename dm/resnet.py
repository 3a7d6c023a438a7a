"""CIFAR ResNets (He, Zhang, Ren, Sun 2016, section 4.2).

A 3x3 convolution with 16 filters, then three stages of ``n`` basic blocks
(two 3x3 convolutions each) with 16, 32 and 64 filters on 32x32, 16x16 and
8x8 feature maps, global average pooling and one linear layer: depth
``6n + 2``. The paper's CIFAR networks are ResNet-20/32/44/56/110 (n = 3, 5,
7, 9, 18); the DM paper uses ResNet-44 on CIFAR-100 and ResNet-56 on CIFAR-10.
ResNet-8 (n = 1) is offered for quick CPU checks only.

Where a stage halves the resolution and doubles the width, the shortcut is
by default He et al.'s option A: subsample by 2 and pad the new channels with
zeros, so shortcuts add no parameters (their CIFAR networks have 0.27M-1.7M
parameters; ResNet-44 has 0.66M). ``shortcut="B"`` uses a projection there
instead (a strided 1x1 convolution and batch norm), as the DM authors'
Caffe ResNet-44 does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResNet", "resnet", "depth_of", "DEPTHS"]

# The depths of He et al.'s CIFAR table, plus 8 for quick checks.
DEPTHS = (8, 20, 32, 44, 56, 110)


class _Block(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str = "A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes - in_planes  # option A: zero channels for the shortcut
        self.stride = stride
        self.projection = None
        if shortcut == "B" and (stride != 1 or self.pad):
            self.projection = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.projection is not None:
            shortcut = self.projection(x)
        elif self.stride != 1 or self.pad:
            shortcut = x[:, :, ::self.stride, ::self.stride]
            shortcut = F.pad(shortcut, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + shortcut)


class ResNet(nn.Module):
    """A CIFAR ResNet of depth ``6n + 2`` for 3x32x32 inputs."""

    def __init__(self, depth: int = 44, num_classes: int = 10, shortcut: str = "A"):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (zero padding) or 'B' (projection), got {shortcut!r}")
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {DEPTHS} (6n+2), got {depth!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, planes = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(_Block(planes, width, stride if i == 0 else 1, shortcut))
                planes = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for images ``x`` of shape ``[B, 3, 32, 32]``."""
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def depth_of(name: str) -> int:
    """The depth in a model name ``"resnet<depth>"``, checked against `DEPTHS`."""
    if not isinstance(name, str) or not name.lower().startswith("resnet") or not name[6:].isdigit():
        raise ValueError(f"model must be named 'resnet<depth>', got {name!r}")
    depth = int(name[6:])
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {DEPTHS} (6n+2), got {depth!r} in {name!r}")
    return depth


def resnet(name_or_depth, num_classes: int, shortcut: str = "A") -> ResNet:
    """``resnet("resnet44", 100)`` or ``resnet(44, 100)``."""
    depth = depth_of(name_or_depth) if isinstance(name_or_depth, str) else name_or_depth
    return ResNet(depth, num_classes, shortcut)
