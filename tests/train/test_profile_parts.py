"""Every built-in profile's model, augmentation and schedule build and take one training step on
tiny inputs on the CPU (the large profiles never train here; this proves their parts fit)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlfs.evaluate import evaluate
from nlfs.train.profiles import builtin_profiles, load_profile, profile_from_dict
from nlfs.train.registry import MODELS, register_model


def _shrunk(name: str):
    """The profile with its data swapped for random 16x16 images and every length cut to one step."""
    data = load_profile(name).model_dump(mode="json")
    data["dataset"] = {"name": "fake", "image_size": 16, "val_size": 4, "train_limit": 8}
    data["model"]["pretrained"] = False
    data.update(batch_size=2, steps_per_epoch=1, floors=[])
    data["schedule"]["total_steps"] = None
    data["runtime"] = {"device": "cpu", "eval_batch_size": 4}
    if data["stages"]:
        # keep the progression of sizes, scaled down (128, 160, ... -> 16, 20, ...)
        data["stages"] = [{**s, "epochs": 1, "image_size": s["image_size"] // 8} for s in data["stages"]]
        data["epochs"] = None
    else:
        data["epochs"] = 1
        if data["image_size"]:
            data["image_size"] = 20
    return profile_from_dict(data, source=name)


def _distinct_parts() -> list[str]:
    """One profile per distinct (model, augmentation, progressive or not): the one with the most
    stages. Profiles sharing parts differ only in numbers, which `test_profiles` validates; the
    large models cost seconds per step on a CPU, so each combination steps once."""
    chosen: dict[tuple, str] = {}
    for name in builtin_profiles():
        p = load_profile(name)
        key = (p.model.name, p.augment.name, bool(p.stages))
        if key not in chosen or len(p.stages) > len(load_profile(chosen[key]).stages):
            chosen[key] = name
    return sorted(chosen.values())


@pytest.mark.parametrize("name", _distinct_parts())
def test_profile_parts_take_one_training_step(name):
    profile = _shrunk(name)
    record = evaluate(nn.CrossEntropyLoss(), profile, genome_id="step")
    assert record.status == "ok", record.reason
    assert len(record.epochs) == len(profile.stage_plan())


@pytest.mark.parametrize("model", MODELS.names())
def test_every_registered_model_maps_images_to_logits(model):
    from nlfs.train.models import create_model
    from nlfs.train.profiles import ModelSpec

    net = create_model(ModelSpec(name=model), num_classes=7, in_channels=3)
    out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 7)


class _SizeRecorder(nn.Module):
    """Remembers the input side of every training forward, and its dropout layer's p."""

    seen: list = []

    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        self.drop = nn.Dropout(0.0)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        if self.training:
            _SizeRecorder.seen.append((x.shape[-1], self.drop.p))
        return self.fc(self.drop(x.mean(dim=(2, 3))))


@register_model("test_size_recorder")
def _size_recorder(*, num_classes, in_channels, **_):
    return _SizeRecorder(num_classes, in_channels)


def test_progressive_stages_change_image_size_and_dropout():
    profile = load_profile("tiny", {
        "model.name": "test_size_recorder", "steps_per_epoch": "1", "augment.name": "randaugment",
        "stages": "[{epochs: 1, image_size: 8, dropout: 0.1, magnitude: 5}, {epochs: 2, image_size: 12, dropout: 0.3, magnitude: 12}]"})
    _SizeRecorder.seen.clear()
    record = evaluate(nn.CrossEntropyLoss(), profile)
    assert record.status == "ok" and len(record.epochs) == 3
    assert _SizeRecorder.seen == [(8, 0.1), (12, 0.3), (12, 0.3)]


def test_pretrained_weights_load_from_a_file_with_weights_only(tmp_path):
    from torchvision.models import resnet18

    from nlfs.train.models import create_model
    from nlfs.train.profiles import ModelSpec

    imagenet = resnet18(num_classes=1000)
    path = tmp_path / "r18.pth"
    torch.save(imagenet.state_dict(), path)
    net = create_model(ModelSpec(name="resnet18_cifar", pretrained=True, weights=str(path)), num_classes=10, in_channels=3)
    assert torch.equal(net.layer1[0].conv1.weight, imagenet.layer1[0].conv1.weight)  # body copied
    assert net.conv1.weight.shape[-1] == 3 and net.fc.out_features == 10  # CIFAR stem and head kept


def test_pretrained_efficientnet_takes_weights_from_a_store(tmp_path):
    import io

    from torchvision.models import efficientnet_v2_s

    from nlfs.store import open_store
    from nlfs.train.models import create_model
    from nlfs.train.profiles import ModelSpec

    imagenet = efficientnet_v2_s(num_classes=1000)
    buf = io.BytesIO()
    torch.save(imagenet.state_dict(), buf)
    open_store(str(tmp_path / "weights")).put("effnet.pth", buf.getvalue())
    spec = ModelSpec(name="efficientnet_v2_s", pretrained=True, weights=f"file://{tmp_path}/weights/effnet.pth")
    net = create_model(spec, num_classes=10, in_channels=3)
    assert torch.equal(net.features[0][0].weight, imagenet.features[0][0].weight)
    assert net.classifier[1].out_features == 10
