"""Small models by name: the `tiny` CNN for 8x8 digits and the METHOD.md 4 surrogate (ResNet9V2).

Every factory takes keyword arguments `num_classes`, `in_channels`, `dropout` (None = its
default), `pretrained`, `weights`; `create_model` builds any registered model from a profile.
"""

from __future__ import annotations

import torch
from torch import nn

from nlfs.errors import NlfsError
from nlfs.train.profiles import ModelSpec
from nlfs.train.registry import MODELS, register_model


def create_model(spec: ModelSpec, *, num_classes: int, in_channels: int) -> nn.Module:
    """The model a profile names, freshly initialised (seed the global RNG first)."""
    factory = MODELS.get(spec.name)
    return factory(num_classes=num_classes, in_channels=in_channels, dropout=spec.dropout,
                   pretrained=spec.pretrained, weights=spec.weights)


def set_dropout(model: nn.Module, p: float | None) -> None:
    """Set every dropout layer's probability (progressive resizing changes it per stage)."""
    if p is None:
        return
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = float(p)


def _no_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise NlfsError(f"model {name!r} has no pretrained weights")


@register_model("tiny_cnn")
def tiny_cnn(*, num_classes: int, in_channels: int, dropout: float | None = None,
             pretrained: bool = False, weights: str | None = None) -> nn.Module:
    """A three-conv CNN sized for 8x8 digits: one evaluation in about a second of CPU.
    Input [B, in_channels, H, W] (any H, W >= 2), output logits [B, num_classes]. Our design."""
    _no_pretrained("tiny_cnn", pretrained)
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.0 if dropout is None else dropout),
        nn.Linear(64, num_classes),
    )


class _PreActBlock(nn.Module):
    """Pre-activation residual block: (BN, swish, conv) three times, the first conv stride 2,
    plus a 1x1 stride-2 projection shortcut (METHOD.md 4). The shortcut reads the pre-activated
    input, as Keras' ResNetV2 does (the method's record does not say)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.act = nn.SiLU()  # swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act(self.bn1(x))
        h = self.conv1(pre)
        h = self.conv2(self.act(self.bn2(h)))
        h = self.conv3(self.act(self.bn3(h)))
        return h + self.shortcut(pre)


class ResNet9V2(nn.Module):
    """The search surrogate of METHOD.md 4: conv(8) -> pre-act blocks of 16 and 32 filters ->
    BN + swish (ResNetV2's closing activation; our reading) -> global average pool -> dropout
    0.5 -> linear. Input [B, C, H, W] (32x32 or 80x80), output logits [B, num_classes]."""

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, padding=1, bias=False)
        self.block1 = _PreActBlock(8, 16)
        self.block2 = _PreActBlock(16, 32)
        self.post = nn.Sequential(nn.BatchNorm2d(32), nn.SiLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.block1(self.stem(x)))
        return self.fc(self.dropout(self.pool(self.post(h))))


@register_model("resnet9v2")
def resnet9v2(*, num_classes: int, in_channels: int, dropout: float | None = None,
              pretrained: bool = False, weights: str | None = None) -> nn.Module:
    _no_pretrained("resnet9v2", pretrained)
    return ResNet9V2(num_classes, in_channels, 0.5 if dropout is None else dropout)
