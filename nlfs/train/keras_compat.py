"""Keras' layer defaults in PyTorch, for the authors' networks (METHOD.md 4): `padding="same"`
as TensorFlow pads, BatchNorm momentum and epsilon, and Keras' weight initialisers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Keras' BatchNormalization defaults: moving = 0.99 * moving + 0.01 * batch, epsilon 1e-3.
# PyTorch's momentum is the weight of the batch statistic, so Keras' 0.99 is PyTorch's 0.01.
KERAS_BN_MOMENTUM = 0.99
KERAS_BN_EPSILON = 1e-3

# The truncated normal Keras' VarianceScaling draws from: a standard normal cut at +-2 has this
# standard deviation, and Keras divides by it so that the kept samples have the variance asked for.
_TRUNCATED_STD = 0.87962566103423978


def keras_batch_norm(channels: int, momentum: float = KERAS_BN_MOMENTUM, eps: float = KERAS_BN_EPSILON) -> nn.BatchNorm2d:
    """nn.BatchNorm2d with Keras' `momentum` (the weight of the old moving average) and `eps`."""
    return nn.BatchNorm2d(channels, eps=eps, momentum=1.0 - momentum)


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zeros TensorFlow's padding="SAME" adds to one side of length `size`:
    the output has ceil(size / stride) positions, and an odd total puts the extra zero after
    (bottom / right), where PyTorch's `padding=k // 2` pads both sides alike."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """nn.Conv2d with TensorFlow's padding="SAME". Input [B, C, H, W], output
    [B, out_channels, ceil(H / stride), ceil(W / stride)].

    With stride 1 and an odd kernel SAME is symmetric, and the convolution pads itself; with
    stride 2 on an even side TensorFlow pads only the bottom / right, which shifts every
    sampling position by one pixel against PyTorch's symmetric padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, bias: bool = True):
        symmetric = stride == 1 and kernel_size % 2 == 1
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=dilation * (kernel_size // 2) if symmetric else 0,
                         dilation=dilation, groups=groups, bias=bias)
        self.symmetric = symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:
            (k_h, k_w), (s_h, s_w), (d_h, d_w) = self.kernel_size, self.stride, self.dilation
            top, bottom = same_pads(x.shape[-2], k_h, s_h, d_h)
            left, right = same_pads(x.shape[-1], k_w, s_w, d_w)
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)

    @classmethod
    def like(cls, conv: nn.Conv2d) -> "SameConv2d":
        """A SAME-padded twin of `conv` (same shapes, same parameters, shared)."""
        k, s, d = conv.kernel_size[0], conv.stride[0], conv.dilation[0]
        twin = cls(conv.in_channels, conv.out_channels, k, s, d, conv.groups, conv.bias is not None)
        twin.weight = conv.weight
        if conv.bias is not None:
            twin.bias = conv.bias
        return twin


def glorot_uniform_(model: nn.Module) -> nn.Module:
    """Keras' default initialisation of Conv2D and Dense: glorot-uniform kernels (the fans
    Keras computes equal PyTorch's for ungrouped convolutions and linear layers), zero biases.
    BatchNorm starts at scale 1, offset 0 in both."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if isinstance(module, nn.Conv2d) and module.groups != 1:
                raise ValueError("glorot_uniform_ covers ungrouped convolutions only")
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def variance_scaling_fan_out_(weight: torch.Tensor, groups: int = 1, scale: float = 2.0) -> torch.Tensor:
    """Keras' VarianceScaling(scale, mode="fan_out", distribution="truncated_normal") on a conv
    weight [out, in / groups, kh, kw]: Keras' fan_out is kh * kw * (out / groups), its kernel's
    last axis (a depthwise kernel's is the depth multiplier, not the channel count)."""
    fan_out = weight.shape[0] // groups * math.prod(weight.shape[2:])
    std = math.sqrt(scale / fan_out) / _TRUNCATED_STD
    return nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)
