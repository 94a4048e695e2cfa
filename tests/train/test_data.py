"""Datasets: every loader reads its torchvision on-disk layout; splits are fixed and seeded."""

from __future__ import annotations

import pickle

import pytest
import torch

from nlfs.errors import NlfsError
from nlfs.train.data import load_dataset
from nlfs.train.profiles import DatasetSpec

EXPECTED = {  # name: (train images incl. holdout, test images or None, classes, image side)
    "cifar10": (100, 20, 10, 32), "cifar100": (60, 20, 100, 32), "svhn": (30, 10, 10, 32),
    "flowers102": (8, 4, 102, 24), "stanford_cars": (6, 6, 196, 24), "caltech101": (9, None, 3, 24),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_file_dataset_loads_from_its_torchvision_layout(name, fake_root):
    n_train, n_test, classes, side = EXPECTED[name]
    root = fake_root(name)
    spec = DatasetSpec(name=name, root=str(root), val_size=2, image_size=24 if side == 24 else None)
    split = load_dataset(spec)
    assert split.train_x.dtype == torch.uint8 and split.train_x.shape[1:] == (3, side, side)
    assert split.train_x.shape[0] == n_train - 2 and split.val_x.shape[0] == 2
    assert split.num_classes == classes and int(split.train_y.max()) < classes
    if n_test is not None:
        test = load_dataset(spec.model_copy(update={"val": "test"}))
        assert test.val_x.shape[0] == n_test and test.train_x.shape[0] == n_train
    else:
        with pytest.raises(NlfsError, match="no test split"):
            load_dataset(spec.model_copy(update={"val": "test"}))


def test_holdout_split_is_fixed_by_split_seed_and_disjoint():
    a = load_dataset(DatasetSpec(name="digits"))
    b = load_dataset(DatasetSpec(name="digits", train_limit=None, val_size=360))  # same split, other cache key
    c = load_dataset(DatasetSpec(name="digits", split_seed=1))
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)
    assert a.train_x.shape[0] + a.val_x.shape[0] == 1797


def test_cifar_default_holdout_is_5000(fake_root):
    import nlfs.train.data_vision as dv

    raw = dv.cifar10(DatasetSpec(name="cifar10", root=str(fake_root("cifar10"))))
    assert raw.default_val_size == 5000  # METHOD.md 4: 45k / 5k


def test_cifar_batches_refuse_anything_but_numpy(fake_root):
    root = fake_root("cifar10")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"data": Evil(), "labels": []}))
    with pytest.raises(NlfsError, match="not a CIFAR batch"):
        load_dataset(DatasetSpec(name="cifar10", root=str(root)))


def test_missing_dataset_says_how_to_stage_it():
    with pytest.raises(NlfsError, match="nlfs data stage cifar10"):
        load_dataset(DatasetSpec(name="cifar10"))


def test_decoded_images_are_cached_as_tensors(fake_root):
    root = fake_root("caltech101")
    spec = DatasetSpec(name="caltech101", root=str(root), image_size=16, val_size=1)
    first = load_dataset(spec)
    assert list((root / "caltech101").glob(".nlfs-all-16.pt"))
    again = load_dataset(spec.model_copy(update={"split_seed": 5}))  # new split, decoded from the cache
    assert again.train_x.shape == first.train_x.shape
