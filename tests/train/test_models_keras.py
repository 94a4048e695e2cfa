"""The authors' Keras networks in PyTorch: ResNet9V2 and ConvNet (fitness_functions.py) and
EfficientNetV2-S (effnet_rand_aug.py) against ../shared/golden/models.json, layer by layer.

Where nlfs's networks still differ from the authors', and why (nothing a layer list shows):
- initial weights: the same distributions (glorot-uniform; Keras' truncated-normal variance
  scaling for EfficientNetV2-S), other random numbers (TensorFlow's generator is not PyTorch's);
- the closing softmax: the models return logits and the loss applies softmax (GenomeLoss), so
  that a profile can choose how a genome's log(p) is read (`loss.inputs`); Dense's activation is
  therefore not compared;
- EfficientNetV2-S's ImageNet weights (the pretrained settings only): torchvision's, trained with
  symmetric padding; the authors loaded TensorFlow's official weights, which torchvision does not
  publish.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from keras_golden import (CONVNET, EFFNET, RESNET9, RESNET9_ANY_SIZE, differences, golden, param_counts,
                          torch_layers, type_counts)
from torch import nn

from nlfs.train.keras_compat import SameConv2d, same_pads
from nlfs.train.models import ConvNet, ResNet9V2, _KerasBlock, create_model
from nlfs.train.models_large import efficientnet_v2_s, efficientnet_v2_s_torchvision
from nlfs.train.profiles import ModelSpec


def golden_counts(name: str) -> tuple[int, int, int]:
    g = golden(name)
    return g["params_total"], g["params_trainable"], g["params_non_trainable"]


def shapes_agree(mine: list[dict], theirs: list[dict]) -> bool:
    """Every output shape equal where the golden one is known (None: a free input size)."""
    if len(mine) != len(theirs):
        return False
    for a, b in zip(mine, theirs):
        if len(a["output_shape"]) != len(b["output_shape"]):
            return False
        if any(y is not None and x != y for x, y in zip(a["output_shape"], b["output_shape"])):
            return False
    return True


# ---- ResNet9V2 and ConvNet -----------------------------------------------------------------
@pytest.mark.parametrize("model, name, size", [
    (ResNet9V2, RESNET9, 32), (ResNet9V2, RESNET9_ANY_SIZE, 80), (ConvNet, CONVNET, 32)],
    ids=["resnet9v2-32", "resnet9v2-any-size", "convnet"])
def test_keras_networks_have_the_authors_layers_counts_and_shapes(model, name, size):
    layers = torch_layers(model(10), (2, 3, size, size))
    theirs = golden(name)
    assert differences(layers, theirs["layers"]) == []
    assert param_counts(layers) == golden_counts(name)
    assert type_counts(layers) == theirs["layer_type_counts"]
    assert shapes_agree(layers, theirs["layers"])
    assert layers[-1]["output_shape"] == theirs["output_shape"]


def test_resnet9v2_at_80x80_halves_each_side_twice():
    layers = torch_layers(ResNet9V2(10), (1, 3, 80, 80))
    assert [layer["output_shape"] for layer in layers if layer["type"] == "Add"] == [[None, 40, 40, 16], [None, 20, 20, 32]]


class _PreActivatedShortcut(_KerasBlock):
    """The shortcut reads the pre-activated input, as nlfs's first ResNet9V2 did."""

    def forward(self, x):
        pre = self.act(self.bn1(x))
        h = self.conv3(self.act(self.bn3(self.conv2(self.act(self.bn2(self.conv1(pre)))))))
        return h + self.shortcut(pre)


def test_the_comparison_notices_a_shortcut_that_reads_the_pre_activated_input():
    model = ResNet9V2(10)
    model.block1 = _PreActivatedShortcut(8, 16)
    lines = differences(torch_layers(model, (1, 3, 32, 32)), golden(RESNET9)["layers"])
    assert len(lines) == 1 and lines[0].startswith("11: ('Conv2D'") and "(1,)" in lines[0] and "(3,)" in lines[0]


def test_the_comparison_notices_a_missing_bias_and_torch_batch_norm_momentum():
    model = ConvNet(10)
    model.conv1 = nn.Conv2d(3, 12, 3, padding=1, bias=False)
    model.bn1 = nn.BatchNorm2d(12, eps=1e-3)
    lines = differences(torch_layers(model, (1, 3, 32, 32)), golden(CONVNET)["layers"])
    assert [line.split(":")[0] for line in lines] == ["1", "2"]
    assert "('use_bias', False)" in lines[0] and "('momentum', 0.9)" in lines[1]


def test_keras_initialisation_glorot_uniform_kernels_zero_biases_and_batch_norm_defaults():
    torch.manual_seed(0)
    model = ResNet9V2(10)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(convs) == 10 and all(m.bias is not None and not m.bias.any() for m in convs)
    for m in convs:
        fan_in, fan_out = m.weight[0].numel(), m.weight[:, 0].numel()
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        assert m.weight.abs().max() <= limit
    w = model.block2.conv2.weight  # 9216 draws: the sample std is within 3% of glorot's limit / sqrt(3)
    assert w.std().item() == pytest.approx(math.sqrt(6.0 / (288 + 288)) / math.sqrt(3.0), rel=0.03)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 6 and all(m.momentum == pytest.approx(0.01) and m.eps == 1e-3 for m in bns)


@pytest.mark.parametrize("name, cls", [("resnet9v2", ResNet9V2), ("convnet", ConvNet)])
def test_registered_keras_networks_take_their_dropout_and_input_channels(name, cls):
    net = create_model(ModelSpec(name=name, dropout=0.3), num_classes=7, in_channels=1)
    assert isinstance(net, cls) and net.dropout.p == 0.3
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 7)


# ---- Keras' padding="same" ------------------------------------------------------------------
def test_same_padding_with_stride_2_pads_only_bottom_and_right_on_even_sides():
    """x = 0..15 as 4x4, an all-ones 3x3 kernel, stride 2: TensorFlow's windows are rows/cols
    0-2 and 2-3 (+ a zero row/col); PyTorch's padding=1 windows start at -1."""
    conv = SameConv2d(1, 1, 3, stride=2, bias=False)
    nn.init.ones_(conv.weight)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert conv(x).flatten().tolist() == [45.0, 39.0, 66.0, 50.0]
    assert F.conv2d(x, conv.weight, stride=2, padding=1).flatten().tolist() == [10.0, 24.0, 51.0, 90.0]


def test_same_padding_is_symmetric_on_odd_sides_and_absent_for_1x1_kernels():
    assert same_pads(5, 3, 2) == (1, 1) and same_pads(4, 3, 2) == (0, 1) and same_pads(33, 3, 2) == (1, 1)
    assert same_pads(4, 1, 2) == (0, 0) and same_pads(5, 1, 2) == (0, 0) and same_pads(7, 3, 1) == (1, 1)
    conv = SameConv2d(2, 3, 3, stride=2)
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1))
    assert conv(torch.randn(1, 2, 33, 32)).shape == (1, 3, 17, 16)


# ---- EfficientNetV2-S ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def effnet_layers():
    torch.manual_seed(0)
    model = efficientnet_v2_s(num_classes=10, in_channels=3, dropout=0.1)
    return model, torch_layers(model, (1, 3, 96, 96))


def test_efficientnet_v2_s_has_the_authors_layer_list(effnet_layers):
    """Layer by layer as the authors build it: the same 511 layers with the same settings,
    parameters and connections; so also the same counts per type, parameter total and
    BatchNorm settings (momentum 0.9, epsilon 1e-3). What still differs is in this file's
    docstring: initial random numbers, the softmax's place, and the pretrained weights."""
    _, layers = effnet_layers
    theirs = golden(EFFNET)
    assert differences(layers, theirs["layers"]) == []
    assert type_counts(layers) == theirs["layer_type_counts"]
    assert param_counts(layers) == golden_counts(EFFNET) == (20_344_170, 20_190_298, 153_872)
    bn = {(layer["momentum"], layer["epsilon"]) for layer in layers if layer["type"] == "BatchNormalization"}
    assert bn == {(0.9, 0.001)}
    assert len(layers) == theirs["n_layers"] == 511
    assert layers[-1]["output_shape"][1:] == theirs["forward_check"]["output_shape"][1:] == [10]


def test_efficientnet_v2_s_starts_from_keras_initialisers(effnet_layers):
    """VarianceScaling(2, fan_out, truncated normal) on every conv, with Keras' fan_out: a
    depthwise 3x3 kernel's is 9 (torchvision's 9 x channels), so its weights are far larger."""
    model, _ = effnet_layers
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    w = torch.cat([m.weight.flatten() for m in depthwise])
    std = math.sqrt(2.0 / 9)
    assert w.std().item() == pytest.approx(std, rel=0.02)
    assert w.abs().max().item() <= 2 * std / 0.87962566103423978 + 1e-6
    head = model.classifier[1]
    assert not head.bias.any() and head.weight.abs().max() <= math.sqrt(6.0 / (1280 + 10))
    se_biases = [m.bias for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    assert len(se_biases) == 60 and not any(b.any() for b in se_biases)


def test_torchvisions_own_efficientnet_v2_s_differs_in_padding_and_stochastic_depth():
    """What nlfs's efficientnet_v2_s changes in torchvision's, shown by the same comparison:
    symmetric padding at the five strided convolutions, and a stochastic-depth call on every
    one of the 35 residual branches (the authors' drop_connect_rate is 0)."""
    layers = torch_layers(efficientnet_v2_s_torchvision(num_classes=10, in_channels=3, dropout=0.1), (1, 3, 96, 96))
    strided = [layer for layer in layers if layer.get("strides") == [2, 2]]
    assert len(strided) == 5 and {layer["padding"] for layer in strided} == {"symmetric"}
    assert type_counts(layers).get("torch:call_function:stochastic_depth") == 35
    assert param_counts(layers) == golden_counts(EFFNET)


def test_efficientnet_v2_s_pads_its_strided_convolutions_as_tensorflow(effnet_layers):
    model, _ = effnet_layers
    strided = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    assert len(strided) == 5 and all(isinstance(m, SameConv2d) for m in strided)
