"""Datasets as tensors: a registered loader gives the raw splits, `load_dataset` carves the fixed
holdout split and keeps the result for the next evaluation in the same process.

The training loop only ever sees a `DataSplit`: whole splits as tensors, indexed by batch on the
training device, so no per-sample Python runs in the hot loop (the airbench way).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from nlfs.errors import NlfsError
from nlfs.train.profiles import DatasetSpec
from nlfs.train.registry import DATASETS, register_dataset


@dataclass(frozen=True)
class RawDataset:
    """What a dataset loader returns: uint8 [N, C, H, W] (or float in [0, 1]) images, int64 [N] labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    num_classes: int
    default_val_size: int  # holdout size when the profile gives none


@dataclass(frozen=True)
class DataSplit:
    """Train and validation tensors plus what the loop needs to normalise them.

    x: [N, C, H, W], uint8 (0..255) or float32 (0..1); y: [N] int64 class indices.
    mean, std: per-channel statistics of the training split on the 0..1 scale.
    test_x, test_y: the test split, scored after every epoch beside validation (`evaluate_test`);
    None when not asked for, or when validation already is the test split (`test_is_val`).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    test_is_val: bool = False  # validation is the test split and its accuracy is the test accuracy

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    def to(self, device: torch.device | str) -> "DataSplit":
        moved = {name: getattr(self, name).to(device) for name in ("train_x", "train_y", "val_x", "val_y",
                                                                    "test_x", "test_y")
                 if getattr(self, name) is not None}
        return replace(self, **moved)


def as_unit_float(x: torch.Tensor) -> torch.Tensor:
    """Images [B, C, H, W] uint8 0..255 or float 0..1 -> float32 0..1."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of images [N, C, H, W] on the 0..1 scale, in chunks to bound memory."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(x.shape[1], dtype=torch.float64)
    for chunk in torch.split(x, 4096):
        f = as_unit_float(chunk).double()
        total += f.sum(dim=(0, 2, 3))
        total_sq += (f * f).sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def split_dataset(raw: RawDataset, spec: DatasetSpec) -> DataSplit:
    """Holdout: `val_size` training examples move to validation, the same for every loss: drawn by
    a permutation seeded by `spec.split_seed` (`holdout: random`) or the last ones (`holdout:
    last`, the authors' split). Test: train on the whole training split, validate on test.
    With `evaluate_test`, the test split comes along to be scored after every epoch."""
    if (spec.val == "test" or spec.evaluate_test) and raw.test_x is None:
        raise NlfsError(f"dataset {spec.name!r} has no test split; use dataset.val=holdout without "
                        f"dataset.evaluate_test")
    if spec.val == "test":
        train_x, train_y, val_x, val_y = raw.train_x, raw.train_y, raw.test_x, raw.test_y
    else:
        n = raw.train_x.shape[0]
        val_size = spec.val_size if spec.val_size is not None else raw.default_val_size
        if not 0 < val_size < n:
            raise NlfsError(f"dataset {spec.name!r}: val_size {val_size} must be between 1 and {n - 1}")
        if spec.holdout == "last":
            val_idx, train_idx = torch.arange(n - val_size, n), torch.arange(n - val_size)
        else:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(spec.split_seed))
            val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
        train_x, train_y = raw.train_x[train_idx], raw.train_y[train_idx]
        val_x, val_y = raw.train_x[val_idx], raw.train_y[val_idx]
    if spec.train_limit is not None:
        train_x, train_y = train_x[: spec.train_limit], train_y[: spec.train_limit]
    mean, std = _channel_stats(train_x)
    # With val=test the validation pass already scores the test split: no second pass over it.
    separate_test = spec.evaluate_test and spec.val != "test"
    return DataSplit(spec.name, train_x.contiguous(), train_y.long(), val_x.contiguous(), val_y.long(),
                     raw.num_classes, mean, std,
                     test_x=raw.test_x.contiguous() if separate_test else None,
                     test_y=raw.test_y.long() if separate_test else None,
                     test_is_val=spec.evaluate_test and spec.val == "test")


_CACHE: dict[str, DataSplit] = {}


def load_dataset(spec: DatasetSpec, device: torch.device | str = "cpu") -> DataSplit:
    """The split for `spec` on `device`; the last one loaded is kept, so several evaluations in
    one process (a pod's batch of genomes, a worker of the local pool) load and copy it once."""
    key = f"{spec.model_dump_json()}@{torch.device(device)}"
    if key not in _CACHE:
        _CACHE.clear()  # one dataset at a time: a GPU holds one copy, not one per profile seen
        _CACHE[key] = split_dataset(DATASETS.get(spec.name)(spec), spec).to(device)
    return _CACHE[key]


@register_dataset("digits")
def digits(spec: DatasetSpec) -> RawDataset:
    """scikit-learn's bundled 8x8 digits: 1797 grey images, 10 classes, values 0..16 -> 0..1.
    The default holdout of 360 (20%) is our choice; there is no test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)  # [1797, 1, 8, 8]
    y = torch.tensor(bunch.target, dtype=torch.int64)
    return RawDataset(x, y, None, None, 10, default_val_size=360)


@register_dataset("fake")
def fake(spec: DatasetSpec) -> RawDataset:
    """Random CIFAR-shaped uint8 images (3x32x32, 10 classes) for tests and benches: no files,
    learnable only by memorising. `image_size` changes the side."""
    side = spec.image_size or 32
    g = torch.Generator().manual_seed(1234)
    n_train, n_test = 2048, 256
    x = torch.randint(0, 256, (n_train + n_test, 3, side, side), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    return RawDataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], 10, default_val_size=256)
