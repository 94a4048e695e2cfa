"""Large models of the transfer study (METHOD.md 5-6): EfficientNetV2-S (the authors' settings,
and torchvision's own), WideResNet-28-10 (CIFAR variant), ResNet-18 with a CIFAR stem; from
scratch or from ImageNet weights. Weights are downloaded by URL (torchvision's, hash-checked) or read from a store URI /
file given as `model.weights`; always loaded with `weights_only=True`.
"""

from __future__ import annotations

import io

import torch
from torch import nn

from nlfs.errors import NlfsError
from nlfs.files import read_file_bytes
from nlfs.train.keras_compat import SameConv2d, variance_scaling_fan_out_
from nlfs.train.registry import register_model


MAX_WEIGHTS_BYTES = 4 << 30  # a state dict file: EfficientNetV2-S is about 80 MB


def _state_dict_from(weights: str | None, default_url: str) -> dict[str, torch.Tensor]:
    """A state dict from `weights` (a file path, or a store URI `s3://bucket/key.pth` /
    `file://...`), or else torchvision's published `default_url` (cached under $TORCH_HOME)."""
    if weights is None:
        return torch.hub.load_state_dict_from_url(default_url, progress=False, check_hash=True, weights_only=True)
    if "://" not in weights:
        data = read_file_bytes(weights, f"model.weights {weights}", max_bytes=MAX_WEIGHTS_BYTES, what="weights file")
    else:
        from nlfs.store import open_store

        parent, _, key = weights.rstrip("/").rpartition("/")
        data = open_store(parent).get(key).data
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _load_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy every tensor whose name and shape match; a changed head or stem keeps its init."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < len(own) // 2:
        raise NlfsError(f"pretrained weights fit only {len(usable)} of {len(own)} tensors of the model")
    model.load_state_dict(usable, strict=False)


def _torchvision_efficientnet_v2_s(num_classes: int, in_channels: int, dropout: float,
                                   stochastic_depth: float) -> nn.Module:
    from torchvision.models import efficientnet_v2_s as build

    model = build(weights=None, num_classes=num_classes, dropout=dropout, stochastic_depth_prob=stochastic_depth)
    if in_channels != 3:
        old = model.features[0][0]
        model.features[0][0] = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride,
                                         old.padding, bias=False)
    return model


def _keras_efficientnet_v2_s_(model: nn.Module) -> nn.Module:
    """torchvision's EfficientNetV2-S made the authors' (effnet_rand_aug.py `EfficientNetV2S`,
    `EfficientNetV2`, `MBConv`, `conv2d_no_bias`, `se_module`; golden models.json), in place:
    - strided convolutions pad as TensorFlow's padding="same" (the stem, the first blocks of
      stages 2, 3, 4 and 6: the bottom / right only on even sides), where torchvision pads
      symmetrically; stride-1 convolutions already agree;
    - no stochastic depth: the authors' drop_connect_rate is 0, torchvision's 0.2;
    - Keras' initialisers: every conv (stem, fused, expand, depthwise, project, SE) from
      VarianceScaling(2.0, fan_out, truncated normal) with Keras' fan_out (a depthwise kernel's is
      kh * kw, torchvision's kh * kw * channels), SE biases 0, the head glorot-uniform with bias 0.
    Unchanged because they already agree: the block table, widths, SE squeeze widths (input / 4),
    swish and sigmoid, BatchNorm momentum 0.9 (PyTorch 0.1) and epsilon 1e-3, the 1280-wide head
    conv, global average pool, dropout, dense. Parameter names stay torchvision's, so its
    ImageNet weights still load."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and child.stride != (1, 1):
                setattr(parent, name, SameConv2d.like(child))
            elif type(child).__name__ == "StochasticDepth":
                setattr(parent, name, nn.Identity())
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            variance_scaling_fan_out_(module.weight, module.groups)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


@register_model("efficientnet_v2_s")
def efficientnet_v2_s(*, num_classes: int, in_channels: int, dropout: float | None = None,
                      pretrained: bool = False, weights: str | None = None) -> nn.Module:
    """EfficientNetV2-S as the authors build it (`_keras_efficientnet_v2_s_`); input [B, C, H, W]
    (any size >= 32), logits [B, num_classes] (the authors' closing softmax is the loss's).
    `dropout` is the head's (default 0.2, theirs too; their runs use 0.1); progressive resizing
    changes it. Pretrained: torchvision's ImageNet weights by default, trained with symmetric
    padding (the authors' were TensorFlow's, trained with SAME)."""
    from torchvision.models import EfficientNet_V2_S_Weights

    model = _torchvision_efficientnet_v2_s(num_classes, in_channels, 0.2 if dropout is None else dropout, 0.0)
    _keras_efficientnet_v2_s_(model)
    if pretrained:
        _load_matching(model, _state_dict_from(weights, EfficientNet_V2_S_Weights.IMAGENET1K_V1.url))
    return model


@register_model("efficientnet_v2_s_torchvision")
def efficientnet_v2_s_torchvision(*, num_classes: int, in_channels: int, dropout: float | None = None,
                                  pretrained: bool = False, weights: str | None = None) -> nn.Module:
    """torchvision's EfficientNetV2-S as torchvision trains it: symmetric padding, stochastic
    depth 0.2, PyTorch's initialisers; the architecture its ImageNet weights were trained in.
    Not the authors' (see `efficientnet_v2_s`). Input [B, C, H, W], logits [B, num_classes]."""
    from torchvision.models import EfficientNet_V2_S_Weights

    model = _torchvision_efficientnet_v2_s(num_classes, in_channels, 0.2 if dropout is None else dropout, 0.2)
    if pretrained:
        _load_matching(model, _state_dict_from(weights, EfficientNet_V2_S_Weights.IMAGENET1K_V1.url))
    return model


@register_model("resnet18_cifar")
def resnet18_cifar(*, num_classes: int, in_channels: int, dropout: float | None = None,
                   pretrained: bool = False, weights: str | None = None) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem: a 3x3 stride-1 first conv and no max-pool.
    Pretrained: ImageNet weights for every layer but that stem and the head."""
    from torchvision.models import ResNet18_Weights, resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    if dropout:
        model.fc = nn.Sequential(nn.Dropout(dropout), model.fc)
    if pretrained:
        _load_matching(model, _state_dict_from(weights, ResNet18_Weights.IMAGENET1K_V1.url))
    return model


class _WideBasic(nn.Module):
    """Pre-activation wide block (Zagoruyko & Komodakis 2016): BN-ReLU-conv3x3, dropout,
    BN-ReLU-conv3x3, with a 1x1 projection when shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        h = self.conv2(self.relu(self.bn2(self.dropout(self.conv1(pre)))))
        return h + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WRN-depth-widen for 32x32 inputs: conv(16) -> 3 groups of (depth-4)/6 wide blocks with
    16k, 32k, 64k channels (strides 1, 2, 2) -> BN-ReLU -> global pool -> linear.
    Input [B, C, H, W], logits [B, num_classes]."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WideResNet depth must be 6n + 4")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)]
        cin = widths[0]
        for group, stride in zip(widths[1:], (1, 2, 2)):
            for i in range(n):
                layers.append(_WideBasic(cin, group, stride if i == 0 else 1, dropout))
                cin = group
        layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@register_model("wide_resnet28_10")
def wide_resnet28_10(*, num_classes: int, in_channels: int, dropout: float | None = None,
                     pretrained: bool = False, weights: str | None = None) -> nn.Module:
    """WRN-28-10, dropout between the convolutions (default 0.0; the WRN paper also used 0.3)."""
    if pretrained and weights is None:
        raise NlfsError("wide_resnet28_10 has no published ImageNet weights; give model.weights")
    model = WideResNet(28, 10, num_classes, in_channels, 0.0 if dropout is None else dropout)
    if pretrained:
        _load_matching(model, _state_dict_from(weights, ""))
    return model
