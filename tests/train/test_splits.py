"""The splits of the final study (METHOD.md 6 and 7): the authors' last-5000 holdout, the test
split scored after every epoch beside validation, and the authors' own setting where validation
is the test set; and a CIFAR-100 run's 100-class head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlfs.errors import NlfsError
from nlfs.evaluate import evaluate
from nlfs.train.data import RawDataset, load_dataset
from nlfs.train.profiles import DatasetSpec, load_profile
from nlfs.train.registry import register_dataset, register_model

N_TRAIN, N_TEST = 40, 12


@register_dataset("test_numbered_splits")
def _numbered(spec: DatasetSpec) -> RawDataset:
    """Training image i is filled with i, so a split shows which images it holds. Training and
    validation labels are 1; every test label is 0."""
    train_x = torch.arange(N_TRAIN, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 4, 4).contiguous()
    test_x = torch.full((N_TEST, 3, 4, 4), 200, dtype=torch.uint8)
    return RawDataset(train_x, torch.ones(N_TRAIN, dtype=torch.int64), test_x, torch.zeros(N_TEST, dtype=torch.int64),
                      num_classes=3, default_val_size=8)


class _SaysZero(nn.Module):
    """Predicts class 0 whatever the image: a bias with a margin of 10 that a few steps of Adam
    at lr 1e-3 cannot overturn, so every split's accuracy is the share of its labels that are 0."""

    built_with: list = []

    def __init__(self, num_classes: int):
        super().__init__()
        _SaysZero.built_with.append(num_classes)
        self.bias = nn.Parameter(torch.zeros(num_classes))
        with torch.no_grad():
            self.bias[0] = 10.0

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1) + 0.0 * x.mean()


@register_model("test_says_zero")
def _says_zero(*, num_classes, **_):
    return _SaysZero(num_classes)


def _profile(**overrides: str):
    base = {"dataset.name": "test_numbered_splits", "dataset.val_size": "8", "model.name": "test_says_zero",
            "epochs": "2", "steps_per_epoch": "1", "batch_size": "4"}
    return load_profile("tiny", {**base, **overrides})


def test_the_authors_holdout_is_the_last_val_size_training_images():
    last = load_dataset(DatasetSpec(name="test_numbered_splits", holdout="last"))
    assert last.val_x[:, 0, 0, 0].tolist() == list(range(N_TRAIN - 8, N_TRAIN))
    assert last.train_x[:, 0, 0, 0].tolist() == list(range(N_TRAIN - 8))
    drawn = load_dataset(DatasetSpec(name="test_numbered_splits"))  # random: a seeded permutation
    assert drawn.val_x[:, 0, 0, 0].tolist() != list(range(N_TRAIN - 8, N_TRAIN))
    assert DatasetSpec(name="x").holdout == "random"  # the default keeps every earlier split


def test_every_epoch_scores_the_test_split_beside_the_held_out_validation():
    record = evaluate(nn.CrossEntropyLoss(), _profile(**{"dataset.evaluate_test": "true"}))
    assert record.status == "ok" and len(record.epochs) == 2
    # validation labels are all 1, test labels all 0, and the model says 0: two different splits
    assert [(e.val_accuracy, e.test_accuracy) for e in record.epochs] == [(0.0, 1.0), (0.0, 1.0)]
    assert record.fitness == 0.0  # fitness stays the validation split's


def test_without_evaluate_test_no_test_accuracy_is_recorded():
    record = evaluate(nn.CrossEntropyLoss(), _profile())
    assert record.status == "ok" and all(e.test_accuracy is None for e in record.epochs)


def test_where_validation_is_the_test_set_its_accuracy_is_the_test_accuracy():
    """The authors' setting (train on every training image, validate on the test set)."""
    data = load_dataset(DatasetSpec(name="test_numbered_splits", val="test", evaluate_test=True))
    assert data.train_x.shape[0] == N_TRAIN and data.test_x is None and data.test_is_val  # one pass
    record = evaluate(nn.CrossEntropyLoss(), _profile(**{"dataset.val": "test", "dataset.evaluate_test": "true"}))
    assert [(e.val_accuracy, e.test_accuracy) for e in record.epochs] == [(1.0, 1.0), (1.0, 1.0)]


def test_evaluate_test_on_a_dataset_without_a_test_split_is_a_user_error():
    with pytest.raises(NlfsError, match="no test split") as err:
        load_dataset(DatasetSpec(name="digits", evaluate_test=True))
    assert "\n" not in str(err.value)


def test_the_new_dataset_fields_at_their_defaults_keep_every_hash(tmp_path):
    spelt = tmp_path / "spelt.yaml"
    spelt.write_text("base: tiny\ndataset: {holdout: random, evaluate_test: false}\n")
    assert load_profile(str(spelt)).hash == load_profile("tiny").hash
    assert load_profile("tiny", {"dataset.evaluate_test": "true"}).hash != load_profile("tiny").hash
    assert load_profile("tiny", {"dataset.holdout": "last"}).hash != load_profile("tiny").hash


@pytest.mark.parametrize("profile", ["final-effnetv2s-cifar10-base", "final-effnetv2s-cifar10"])
def test_a_cifar100_cell_trains_a_100_class_head(profile, fake_root):
    """METHOD.md 7: the authors' final study hard-codes 10 classes; a CIFAR-100 cell of ours has
    the dataset's 100 (the cell's profile, its data swapped for a tiny CIFAR-100 on disk)."""
    root = fake_root("cifar100")
    p = load_profile(profile, {"dataset.name": "cifar100", "dataset.root": str(root), "dataset.val_size": "10",
                               "model.name": "test_says_zero", "batch_size": "4", "steps_per_epoch": "1",
                               "stages": "[]", "epochs": "1", "image_size": "8", "runtime.device": "cpu"})
    _SaysZero.built_with.clear()
    record = evaluate(nn.CrossEntropyLoss(), p)
    assert record.status == "ok", record.reason
    assert _SaysZero.built_with == [100]
    assert record.epochs[0].test_accuracy is not None  # the final profiles score the test split
