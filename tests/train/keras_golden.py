"""The authors' Keras models as ../shared/golden/models.json records them, and nlfs's PyTorch
models read back as the same kind of Keras layer list, so that the two can be compared layer by
layer: types, settings, parameter counts, connections and output shapes.

A PyTorch model is traced with torch.fx and each call becomes the Keras layer it computes:
Conv2d -> Conv2D (DepthwiseConv2D when each channel is its own group), BatchNorm2d ->
BatchNormalization (Keras momentum = 1 - PyTorch's), SiLU / Sigmoid -> Activation, + -> Add,
* -> Multiply, AdaptiveAvgPool2d(1) then flatten -> GlobalAveragePooling2D, AdaptiveAvgPool2d(1)
kept 4-d -> TFOpLambda (the authors' SE block's tf.reduce_mean(keepdims=True)), Dropout ->
Dropout, Linear -> Dense. Flatten and Identity compute nothing and are skipped.
"""

from __future__ import annotations

import functools
import json
import operator
import os
from pathlib import Path

import pytest
import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from nlfs.train.keras_compat import SameConv2d

ROOT = Path(__file__).resolve().parents[2]
# The project's shared folder sits beside the checkout (CI lays it there too).
GOLDEN = Path(os.environ.get("NLFS_GOLDEN", ROOT.parent / "shared" / "golden"))

RESNET9 = "build_resnet9_v2('swish')"
RESNET9_ANY_SIZE = "build_resnet9_v2('swish', shape=(None, None, 3))"
CONVNET = "ConvNet('swish')"
EFFNET = ("EfficientNetV2S(input_shape=(None,None,3), num_classes=10, pretrained=None, "
          "classifier_activation='softmax', dropout=0.1)")

# Settings compared per layer type (Keras' names). A Dense layer's activation is left out: the
# authors' softmax is applied by nlfs's loss, not by the model (which returns logits).
SETTINGS = {
    "Conv2D": ("filters", "kernel_size", "strides", "padding", "use_bias", "dilation_rate"),
    "DepthwiseConv2D": ("kernel_size", "strides", "padding", "use_bias"),
    "BatchNormalization": ("momentum", "epsilon", "center", "scale"),
    "Activation": ("activation",),
    "Dropout": ("rate",),
    "Dense": ("units", "use_bias"),
}
COMMUTATIVE = ("Add", "Multiply")


@functools.lru_cache(maxsize=1)
def golden_models() -> dict:
    path = GOLDEN / "models.json"
    if not path.is_file():
        pytest.fail(f"golden file missing: {path} (the project's shared folder beside the checkout, or NLFS_GOLDEN)")
    return json.loads(path.read_text())["models"]


def golden(name: str) -> dict:
    return golden_models()[name]


class _KerasTracer(torch.fx.Tracer):
    """Keeps SAME-padded convolutions whole: their padding depends on the input's size."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, SameConv2d) or super().is_leaf_module(m, qualname)


def _padding(conv: nn.Conv2d) -> str:
    """Keras' name for a convolution's padding; "symmetric" where PyTorch's differs from SAME."""
    if isinstance(conv, SameConv2d):
        return "same"
    if all(p == 0 for p in conv.padding):
        return "valid"
    same_when_symmetric = conv.stride == (1, 1) and all(p == d * (k // 2) for p, k, d in
                                                        zip(conv.padding, conv.kernel_size, conv.dilation))
    return "same" if same_when_symmetric else "symmetric"


def _nhwc(shape) -> list:
    shape = list(shape)
    return [None, *shape[2:], shape[1]] if len(shape) == 4 else [None, *shape[1:]]


def _params(module: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in module.parameters(recurse=False))
    stats = sum(b.numel() for n, b in module.named_buffers(recurse=False) if n in ("running_mean", "running_var"))
    return trainable, stats


def torch_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """The model as a Keras layer list: dicts with name, type, the settings of SETTINGS,
    inbound (names), output_shape (NHWC, batch None), params_trainable, params_non_trainable."""
    model = model.eval()
    graph = _KerasTracer().trace(model)
    gm = torch.fx.GraphModule(model, graph)
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(input_shape))
    modules = dict(model.named_modules())
    layers: list[dict] = []
    alias: dict[str, str] = {}  # skipped node -> the layer whose output it passes on
    pooled: set[str] = set()  # AdaptiveAvgPool2d nodes later flattened: global average pooling

    def source(arg) -> str:
        return alias.get(arg.name, arg.name)

    def is_flatten(node) -> bool:
        return (node.op == "call_function" and node.target is torch.flatten) or (
            node.op == "call_module" and isinstance(modules[node.target], nn.Flatten))

    for node in graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], nn.AdaptiveAvgPool2d):
            if any(is_flatten(user) for user in node.users):
                pooled.add(node.name)

    for node in graph.nodes:
        if node.op == "output":
            continue
        inbound = [source(a) for a in node.args if isinstance(a, torch.fx.Node)]
        layer = {"name": node.name, "inbound": inbound, "params_trainable": 0, "params_non_trainable": 0}
        meta = node.meta.get("tensor_meta")
        layer["output_shape"] = _nhwc(meta.shape) if meta is not None else None
        if node.op == "placeholder":
            layer["type"] = "InputLayer"
        elif node.op == "call_module":
            m = modules[node.target]
            layer["params_trainable"], layer["params_non_trainable"] = _params(m)
            if isinstance(m, nn.Conv2d):
                depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
                layer.update(type="DepthwiseConv2D" if depthwise else "Conv2D", filters=m.out_channels,
                             kernel_size=list(m.kernel_size), strides=list(m.stride), padding=_padding(m),
                             use_bias=m.bias is not None, dilation_rate=list(m.dilation))
                if m.groups > 1 and not depthwise:
                    layer["type"] = "GroupedConv2D"
            elif isinstance(m, nn.BatchNorm2d):
                layer.update(type="BatchNormalization", momentum=round(1.0 - m.momentum, 6), epsilon=m.eps,
                             center=m.affine, scale=m.affine)
            elif isinstance(m, (nn.SiLU, nn.Sigmoid, nn.ReLU)):
                layer.update(type="Activation", activation={nn.SiLU: "swish", nn.Sigmoid: "sigmoid",
                                                            nn.ReLU: "relu"}[type(m)])
            elif isinstance(m, nn.AdaptiveAvgPool2d):
                layer["type"] = "GlobalAveragePooling2D" if node.name in pooled else "TFOpLambda"
            elif isinstance(m, nn.Dropout):
                layer.update(type="Dropout", rate=m.p)
            elif isinstance(m, nn.Linear):
                layer.update(type="Dense", units=m.out_features, use_bias=m.bias is not None)
            elif isinstance(m, (nn.Flatten, nn.Identity)):
                alias[node.name] = inbound[0]
                continue
            else:
                layer["type"] = f"torch:{type(m).__name__}"
        elif node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add):
            layer["type"] = "Add"
        elif node.op == "call_function" and node.target in (operator.mul, operator.imul, torch.mul):
            layer["type"] = "Multiply"
        elif is_flatten(node):
            alias[node.name] = inbound[0]
            continue
        else:
            layer["type"] = f"torch:{node.op}:{getattr(node.target, '__name__', node.target)}"
        if layer["type"] == "GlobalAveragePooling2D":
            layer["output_shape"] = [None, layer["output_shape"][-1]]
        layers.append(layer)
    return layers


def canonical(layers: list[dict]) -> list[tuple]:
    """Each layer as (type, settings, inbound positions, trainable, non-trainable): a form in
    which two lists are equal exactly when they hold the same layers connected the same way."""
    position = {layer["name"]: i for i, layer in enumerate(layers)}
    rows = []
    for layer in layers:
        kind = layer["type"]
        settings = tuple((key, _plain(layer.get(key))) for key in SETTINGS.get(kind, ()))
        inbound = [position[name] for name in layer["inbound"]]
        if kind in COMMUTATIVE:
            inbound = sorted(inbound)
        rows.append((kind, settings, tuple(inbound), layer["params_trainable"], layer["params_non_trainable"]))
    return rows


def _plain(value):
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, float):
        return round(value, 9)
    return value


def differences(mine: list[dict], theirs: list[dict]) -> list[str]:
    """Every position where the two canonical lists differ, as 'index: theirs != mine' lines
    (one line for a length difference)."""
    a, b = canonical(theirs), canonical(mine)
    lines = [f"{i}: {x} != {y}" for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if len(a) != len(b):
        lines.append(f"length: {len(a)} golden layers != {len(b)} nlfs layers")
    return lines


def type_counts(layers: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer["type"]] = counts.get(layer["type"], 0) + 1
    return counts


def param_counts(layers: list[dict]) -> tuple[int, int, int]:
    """(total, trainable, non-trainable) as Keras counts them (BatchNorm's moving mean and
    variance are its non-trainable weights; PyTorch's num_batches_tracked has no Keras twin)."""
    trainable = sum(layer["params_trainable"] for layer in layers)
    frozen = sum(layer["params_non_trainable"] for layer in layers)
    return trainable + frozen, trainable, frozen
