"""Images -> model input (nlfs.train.inputs) and the profile's `input` section in training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlfs.errors import NlfsError
from nlfs.evaluate import evaluate
from nlfs.train.inputs import finish, prepare, resize_tf
from nlfs.train.profiles import builtin_profiles, load_profile, profile_from_dict
from nlfs.train.registry import register_augmentation, register_model


def test_tf_resize_uses_half_pixel_centres_and_clamps_at_the_edges():
    """tf.image.resize([0, 4] -> 4 wide): sources -0.25, 0.25, 0.75, 1.25 -> 0, 1, 3, 4."""
    x = torch.tensor([[0.0, 4.0]]).expand(2, 2).reshape(1, 1, 2, 2)
    assert resize_tf(x, 4)[0, 0, 0].tolist() == [0.0, 1.0, 3.0, 4.0]


def test_tf_resize_is_bilinear_and_keeps_flat_regions_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 32, 32), generator=g).float()
    x[:, :, :12] = 77.0
    ours = resize_tf(x, 80)
    assert torch.allclose(ours, F.interpolate(x, size=(80, 80), mode="bilinear", align_corners=False), atol=1e-3)
    assert (ours[:, :, :28] == 77.0).all()  # rows fed only by the flat band: exact, so truncation keeps 77
    assert torch.equal(resize_tf(x, 32), x)


def test_uint8_preparation_resizes_on_the_0_255_scale_then_truncates():
    x = torch.tensor([[0, 5]], dtype=torch.uint8).expand(2, 2).reshape(1, 1, 2, 2)
    out = prepare(x, 4, "tf", uint8=True)
    assert out.dtype == torch.uint8 and out[0, 0, 0].tolist() == [0, 1, 3, 5]  # 1.25 -> 1, 3.75 -> 3
    assert prepare(x, None, "tf", uint8=True) is x  # no resize, no copy
    as_float = prepare(x, 4, "tf")
    assert as_float.dtype == torch.float32 and torch.allclose(as_float[0, 0, 0] * 255, torch.tensor([0, 1.25, 3.75, 5]))


def test_scalings_from_uint8_are_the_authors_exactly():
    x = torch.tensor([0, 1, 127, 128, 255], dtype=torch.uint8).view(1, 1, 1, 5)
    mean, inv_std = torch.full((1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1), 4.0)
    assert finish(x, "centered_128", mean, inv_std).flatten().tolist() == [(v - 127.5) / 128 for v in (0, 1, 127, 128, 255)]
    assert torch.equal(finish(x, "unit", mean, inv_std), x.float() / 255.0)
    assert torch.equal(finish(x, "mean_std", mean, inv_std), (x.float() / 255.0 - 0.5) * 4.0)
    unit = x.float() / 255.0  # float input (validation images, float augmentations): same values
    assert torch.allclose(finish(unit, "centered_128", mean, inv_std), finish(x, "centered_128", mean, inv_std), atol=1e-6)


def test_default_input_section_leaves_every_builtin_profile_hash_unchanged():
    for name in builtin_profiles():
        profile = load_profile(name)
        data = profile.model_dump(mode="json")
        if data["input"] == {"resize": "torch", "scaling": "mean_std"}:
            del data["input"]  # a profile written before the field existed
            assert profile_from_dict(data).hash == profile.hash, name
        else:
            defaulted = profile_from_dict({**data, "input": {}})
            assert defaulted.hash != profile.hash, name


def test_paper_search_profiles_use_the_authors_randaugment_and_scaling():
    for name in ("surrogate", "surrogate-effnet", "eliminate-4"):
        p = load_profile(name)
        assert (p.augment.name, p.input.resize, p.input.scaling) == ("randaugment_tf", "tf", "centered_128"), name
    assert load_profile("surrogate").augment.magnitude == 5
    assert [s.magnitude for s in load_profile("eliminate-4").stages] == [5, 8, 12, 15]


def test_unknown_scaling_is_a_user_error_naming_the_field():
    with pytest.raises(NlfsError, match="input.scaling"):
        load_profile("tiny", {"input.scaling": "zscore"})


class _Recorder:
    """What the loop hands a uint8 augmentation, and what the model then receives."""

    augment_inputs: list = []
    model_inputs: list = []


@register_augmentation("test_uint8_recorder")
def _uint8_recorder(spec, **_):
    def apply(x, y, rng):
        _Recorder.augment_inputs.append(x.clone())
        return 255 - x, y

    apply.takes_uint8 = True
    return apply


class _InputRecorder(nn.Module):
    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        _Recorder.model_inputs.append((self.training, x.detach().clone()))
        return self.fc(x.mean(dim=(2, 3)))


@register_model("test_input_recorder")
def _input_recorder(*, num_classes, in_channels, **_):
    return _InputRecorder(num_classes, in_channels)


def test_training_hands_uint8_augmentations_uint8_and_scales_as_the_profile_says():
    profile = load_profile("tiny", {
        "dataset.name": "fake", "dataset.image_size": "16", "dataset.val_size": "4", "dataset.train_limit": "8",
        "model.name": "test_input_recorder", "augment.name": "test_uint8_recorder", "image_size": "24",
        "input.resize": "tf", "input.scaling": "centered_128", "batch_size": "4", "epochs": "1",
        "steps_per_epoch": "2", "runtime.eval_batch_size": "4"})
    _Recorder.augment_inputs.clear()
    _Recorder.model_inputs.clear()
    record = evaluate(nn.CrossEntropyLoss(), profile, genome_id="rec")
    assert record.status == "ok", record.reason
    seen = _Recorder.augment_inputs
    assert len(seen) == 2 and all(x.dtype == torch.uint8 and x.shape == (4, 3, 24, 24) for x in seen)
    train = [x for training, x in _Recorder.model_inputs if training]
    for augmented, model_input in zip(seen, train):
        assert torch.equal(model_input, ((255 - augmented).float() - 127.5) / 128)
    val = [x for training, x in _Recorder.model_inputs if not training]
    assert val and val[0].shape == (4, 3, 24, 24) and val[0].abs().max() <= 127.5 / 128
    # validation images are resized, not augmented and not truncated: some are between integers
    assert ((val[0] * 128 + 127.5) % 1).abs().max() > 0.01
