"""Batched augmentations by name: none, cutout, mixup, cutmix, autoaugment, randaugment,
randaugment_tf.

Each runs on a whole batch on the training device: images x [B, C, H, W] float 0..1 and labels
y [B] int64 in; images and targets out, where targets stay [B] int64 or become soft [B, K]
float (mixup, cutmix), which every loss accepts. An augmentation whose `takes_uint8` is true
(randaugment_tf) takes and returns uint8 0..255 images instead. Randomness comes from
`AugmentRNG` only, so a seeded run repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from nlfs.errors import NlfsError
from nlfs.train.profiles import AugmentSpec
from nlfs.train.registry import AUGMENTATIONS, register_augmentation


@dataclass
class AugmentRNG:
    """Per-sample draws come from `torch` (a generator on the training device); per-batch scalars
    (a Beta draw) from `np`, so there is no device sync for them."""

    torch: torch.Generator
    np: np.random.Generator

    @classmethod
    def seeded(cls, seed: int, device: torch.device) -> "AugmentRNG":
        return cls(torch.Generator(device=device).manual_seed(seed), np.random.default_rng(seed))


class Augmentation(Protocol):
    def __call__(self, x: torch.Tensor, y: torch.Tensor, rng: AugmentRNG) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, H, W] float 0..1 (uint8 0..255 if `takes_uint8`), y [B] int64 -> (x' of x's
        dtype, target [B] int64 or [B, K] float)."""


Builder = Callable[..., Augmentation]


def takes_uint8(augment: Augmentation) -> bool:
    """Whether `augment` wants uint8 images (an attribute `takes_uint8 = True`); float 0..1 otherwise."""
    return bool(getattr(augment, "takes_uint8", False))


def build_augmentation(spec: AugmentSpec, *, magnitude: float | None, num_classes: int,
                       mean: tuple[float, ...]) -> Augmentation:
    """The augmentation a profile names; `magnitude` is the current stage's (progressive resizing)."""
    return AUGMENTATIONS.get(spec.name)(spec, magnitude=magnitude if magnitude is not None else spec.magnitude,
                                        num_classes=num_classes, mean=mean)


def rand_uniform(shape, rng: AugmentRNG, device) -> torch.Tensor:
    return torch.rand(shape, generator=rng.torch, device=device)


@register_augmentation("none")
def none(spec: AugmentSpec, **_) -> Augmentation:
    return lambda x, y, rng: (x, y)


@register_augmentation("cutout")
def cutout(spec: AugmentSpec, *, mean: tuple[float, ...], **_) -> Augmentation:
    """Erase one square of side `cutout_size` per image at a uniform centre (clipped at the
    border; DeVries & Taylor 2017), filled with the dataset mean: the zero of normalised input."""
    size = spec.cutout_size

    def apply(x: torch.Tensor, y: torch.Tensor, rng: AugmentRNG):
        b, c, h, w = x.shape
        cy = (rand_uniform((b, 1, 1), rng, x.device) * h).floor()
        cx = (rand_uniform((b, 1, 1), rng, x.device) * w).floor()
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        half = size / 2
        inside = ((rows - cy).abs() < half) & ((cols - cx).abs() < half)  # [B, H, W]
        fill = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, c, 1, 1)
        return torch.where(inside.unsqueeze(1), fill, x), y

    return apply


def _one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(y, num_classes).float()


@register_augmentation("mixup")
def mixup(spec: AugmentSpec, *, num_classes: int, **_) -> Augmentation:
    """Blend each image with a partner from the same batch, lambda ~ Beta(alpha, alpha) per batch
    (Zhang et al. 2018); the target is the same blend of one-hot labels [B, K]."""

    def apply(x: torch.Tensor, y: torch.Tensor, rng: AugmentRNG):
        lam = float(rng.np.beta(spec.alpha, spec.alpha))
        perm = torch.randperm(x.shape[0], generator=rng.torch, device=x.device)
        t = _one_hot(y, num_classes)
        return x.mul(lam).add_(x[perm], alpha=1 - lam), t.mul(lam).add_(t[perm], alpha=1 - lam)

    return apply


@register_augmentation("cutmix")
def cutmix(spec: AugmentSpec, *, num_classes: int, **_) -> Augmentation:
    """Paste one box from a partner image per batch, area fraction 1 - lambda with lambda ~
    Beta(alpha, alpha) (Yun et al. 2019); the target mixes one-hot labels by the pasted area."""

    def apply(x: torch.Tensor, y: torch.Tensor, rng: AugmentRNG):
        b, _, h, w = x.shape
        lam = float(rng.np.beta(spec.alpha, spec.alpha))
        cut = np.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(rng.np.integers(h)), int(rng.np.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        perm = torch.randperm(b, generator=rng.torch, device=x.device)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        t = _one_hot(y, num_classes)
        return x, t.mul(lam).add_(t[perm], alpha=1 - lam)

    return apply


@register_augmentation("randaugment")
def randaugment(spec: AugmentSpec, *, magnitude: float | None, **_) -> Augmentation:
    """RandAugment (Cubuk et al. 2020) with torchvision's operations and magnitude scale, drawn
    independently per image; see `augment_ops`."""
    from nlfs.train.augment_ops import RandAugment

    return RandAugment(num_ops=spec.num_ops, magnitude=5.0 if magnitude is None else magnitude)


@register_augmentation("autoaugment")
def autoaugment(spec: AugmentSpec, **_) -> Augmentation:
    """AutoAugment's CIFAR-10 policy (Cubuk et al. 2019), one sub-policy drawn per image."""
    from nlfs.train.augment_ops import AutoAugmentCifar10

    return AutoAugmentCifar10()


@register_augmentation("randaugment_tf")
def randaugment_tf(spec: AugmentSpec, *, magnitude: float | None, mean: tuple[float, ...], **_) -> Augmentation:
    """The TensorFlow Model Garden RandAugment the authors ran (METHOD.md 4.1): 16 operations plus
    identity, magnitude on the 0..10 scale (default 10, the authors' class default), uint8 RGB
    images, per-image draws; see `augment_tf`."""
    from nlfs.train.augment_tf import RandAugmentTF

    if len(mean) != 3:
        raise NlfsError(f"randaugment_tf needs RGB images; this dataset has {len(mean)} channel(s)")
    return RandAugmentTF(num_layers=spec.num_ops, magnitude=10.0 if magnitude is None else magnitude)
