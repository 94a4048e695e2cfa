"""Small models by name: the `tiny` CNN for 8x8 digits, and the authors' Keras networks of
METHOD.md 4: the surrogate ResNet9V2 and the gate ConvNet.

Every factory takes keyword arguments `num_classes`, `in_channels`, `dropout` (None = its
default), `pretrained`, `weights`; `create_model` builds any registered model from a profile.
"""

from __future__ import annotations

import torch
from torch import nn

from nlfs.errors import NlfsError
from nlfs.train.keras_compat import SameConv2d, glorot_uniform_, keras_batch_norm
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


class _KerasBlock(nn.Module):
    """The authors' `block(prev, filter, act)` (fitness_functions.py): (BN, swish, conv 3x3) three
    times, the first conv stride 2, plus a 1x1 stride-2 conv of the block's raw input `prev` (not
    the pre-activated one), added. Every conv has a bias and pads as Keras' padding="same".
    Input [B, cin, H, W], output [B, cout, ceil(H / 2), ceil(W / 2)]."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn1, self.conv1 = keras_batch_norm(cin), SameConv2d(cin, cout, 3, stride=2)
        self.bn2, self.conv2 = keras_batch_norm(cout), SameConv2d(cout, cout, 3)
        self.bn3, self.conv3 = keras_batch_norm(cout), SameConv2d(cout, cout, 3)
        self.shortcut = SameConv2d(cin, cout, 1, stride=2)
        self.act = nn.SiLU()  # Keras' swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.bn1(x)))
        h = self.conv2(self.act(self.bn2(h)))
        h = self.conv3(self.act(self.bn3(h)))
        return h + self.shortcut(x)


class ResNet9V2(nn.Module):
    """The search surrogate, the authors' `build_resnet9_v2("swish")` (fitness_functions.py):
    conv 3x3 (8) -> blocks of 16 and 32 filters -> global average pool (no BN or activation
    before it) -> dropout 0.5 -> dense. Keras defaults throughout (nlfs.train.keras_compat).
    Input [B, C, H, W] (32x32 or 80x80), output logits [B, num_classes]: the authors' closing
    softmax is applied by the loss, which receives p = softmax(logits)."""

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        self.stem = SameConv2d(in_channels, 8, 3)
        self.block1 = _KerasBlock(8, 16)
        self.block2 = _KerasBlock(16, 32)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(32, num_classes)
        glorot_uniform_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.block1(self.stem(x)))
        return self.fc(self.dropout(self.pool(h)))


class ConvNet(nn.Module):
    """The gate of the EfficientNet search, the authors' `ConvNet("swish")` (fitness_functions.py):
    conv 3x3 (12) -> BN, swish, conv 3x3 stride 2 (24) -> BN, swish, conv 3x3 stride 2 (48) ->
    global average pool -> dropout 0.1 -> dense. Keras defaults throughout.
    Input [B, C, H, W] (32x32), output logits [B, num_classes]."""

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.1):
        super().__init__()
        self.conv1 = SameConv2d(in_channels, 12, 3)
        self.bn1, self.conv2 = keras_batch_norm(12), SameConv2d(12, 24, 3, stride=2)
        self.bn2, self.conv3 = keras_batch_norm(24), SameConv2d(24, 48, 3, stride=2)
        self.act = nn.SiLU()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(48, num_classes)
        glorot_uniform_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        h = self.conv2(self.act(self.bn1(h)))
        h = self.conv3(self.act(self.bn2(h)))
        return self.fc(self.dropout(self.pool(h)))


@register_model("resnet9v2")
def resnet9v2(*, num_classes: int, in_channels: int, dropout: float | None = None,
              pretrained: bool = False, weights: str | None = None) -> nn.Module:
    _no_pretrained("resnet9v2", pretrained)
    return ResNet9V2(num_classes, in_channels, 0.5 if dropout is None else dropout)


@register_model("convnet")
def convnet(*, num_classes: int, in_channels: int, dropout: float | None = None,
            pretrained: bool = False, weights: str | None = None) -> nn.Module:
    _no_pretrained("convnet", pretrained)
    return ConvNet(num_classes, in_channels, 0.1 if dropout is None else dropout)
