"""Augmentations: batched, per-image random, seeded, in range; soft targets from mixup/cutmix."""

from __future__ import annotations

import pytest
import torch

from nlfs.errors import NlfsError
from nlfs.train.augment import AugmentRNG, build_augmentation, takes_uint8
from nlfs.train.augment_ops import OPS, apply_per_sample
from nlfs.train.profiles import AugmentSpec
from nlfs.train.registry import AUGMENTATIONS

CPU = torch.device("cpu")


def _batch(b=16, c=3, side=20):
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, c, side, side, generator=g), torch.randint(0, 10, (b,), generator=g)


def _build(name, magnitude=5.0):
    return build_augmentation(AugmentSpec(name=name, magnitude=magnitude), magnitude=None, num_classes=10,
                              mean=(0.5, 0.5, 0.5))


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_augmentation_keeps_shape_range_and_repeats_with_its_seed(name):
    x, y = _batch()
    aug = _build(name)
    if takes_uint8(aug):
        x = (x * 255).to(torch.uint8)
    out1, t1 = aug(x, y, AugmentRNG.seeded(7, CPU))
    out2, t2 = aug(x, y, AugmentRNG.seeded(7, CPU))
    assert out1.shape == x.shape and out1.dtype == x.dtype
    if x.dtype == torch.float32:
        assert float(out1.min()) >= 0.0 and float(out1.max()) <= 1.0
    assert torch.equal(out1, out2) and torch.equal(t1, t2)
    if t1.dim() == 2:
        assert t1.shape == (16, 10) and torch.allclose(t1.sum(1), torch.ones(16))
    else:
        assert torch.equal(t1, y)


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mixing_augmentations_give_soft_targets(name):
    x, y = _batch()
    _, t = _build(name)(x, y, AugmentRNG.seeded(1, CPU))
    assert t.dim() == 2 and (t.max(1).values < 1).any()


@pytest.mark.parametrize("name", ["randaugment", "autoaugment", "cutout", "randaugment_tf"])
def test_draws_are_per_image_not_per_batch(name):
    same = torch.rand(1, 3, 20, 20).expand(32, 3, 20, 20).contiguous()
    aug = _build(name, magnitude=9)
    if takes_uint8(aug):
        same = (same * 255).to(torch.uint8)
    out, _ = aug(same, torch.zeros(32, dtype=torch.long), AugmentRNG.seeded(3, CPU))
    distinct = {tuple(o.flatten()[:50].tolist()) for o in out}
    assert len(distinct) > 4


def test_every_op_runs_on_grey_and_colour_images():
    for c in (1, 3):
        x, _ = _batch(c=c)
        for k, name in enumerate(OPS):
            value = torch.full((16,), 5.0 if name == "Posterize" else (128.0 if name == "Solarize" else 0.3))
            out = apply_per_sample(x, list(OPS), torch.full((16,), k), value)
            assert out.shape == x.shape and torch.isfinite(out).all(), name


def test_randaugment_magnitude_outside_31_bins_is_refused():
    with pytest.raises(NlfsError, match="magnitude"):
        _build("randaugment", magnitude=31)


def test_unknown_augmentation_is_a_user_error():
    with pytest.raises(NlfsError, match="unknown augmentation"):
        _build("sparkle")


def test_only_randaugment_tf_takes_uint8():
    builtin = [n for n in AUGMENTATIONS.names() if not n.startswith("test_")]  # tests register their own
    assert [n for n in builtin if takes_uint8(_build(n))] == ["randaugment_tf"]
