"""evaluate(): the tiny profile end to end, its guards, and repeatability."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from nlfs.errors import NlfsError
from nlfs.evaluate import evaluate
from nlfs.genome import Genome
from nlfs.result import ResultRecord
from nlfs.train.profiles import load_profile


class _NaNAfter(nn.Module):
    """Cross-entropy that turns NaN from call `after` on (a loss that blows up mid-training)."""

    def __init__(self, after: int):
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, logits, target):
        self.calls += 1
        loss = nn.functional.cross_entropy(logits, target)
        return loss * float("nan") if self.calls > self.after and self.training else loss


class _Raises(nn.Module):
    def forward(self, logits, target):
        raise RuntimeError("boom\nsecond line")


class _Flat(nn.Module):
    """No gradient signal at all: the model cannot learn."""

    def forward(self, logits, target):
        return logits.sum() * 0.0


@pytest.fixture(scope="module")
def tiny():
    return load_profile("tiny")


@pytest.mark.slow
def test_cross_entropy_by_name_reaches_095_and_repeats_bit_for_bit(tiny):
    first = evaluate("cross_entropy", tiny)
    second = evaluate("cross_entropy", tiny)
    assert first.status == "ok" and first.fitness >= 0.95
    assert first.fitness == second.fitness
    assert [e.train_loss for e in first.epochs] == [e.train_loss for e in second.epochs]
    assert first.genome_id == Genome.from_json(json.dumps(_ce_genome())).id
    assert first.profile == "tiny" and first.profile_hash == tiny.hash and first.device == "cpu"
    assert len(first.epochs) == tiny.epochs and first.fitness == max(e.val_accuracy for e in first.epochs)
    assert {"torch", "nlfs", "torchvision"} <= set(first.versions)
    ResultRecord.from_json(first.to_json())  # round-trips


def _ce_genome() -> dict:
    return {"format": "nlfs.genome/v1", "nodes": [{"op": "log", "in": ["p"]}, {"op": "mul", "in": ["y", 0]}],
            "output": 1, "sign": -1}


def test_genome_object_and_module_are_accepted(tiny):
    profile = load_profile("tiny", {"epochs": "2"})
    genome = Genome.from_json(json.dumps(_ce_genome()))
    by_genome = evaluate(genome, profile, stage="prefilter", seed=3)
    by_module = evaluate(nn.CrossEntropyLoss(), profile, genome_id="abc", seed=3)
    assert by_genome.genome_id == genome.id and by_genome.stage == "prefilter" and by_genome.seed == 3
    assert by_module.genome_id == "abc" and by_module.status == "ok"
    assert by_genome.fitness == pytest.approx(by_module.fitness, abs=0.03)  # same function, float rounding aside


def test_seed_changes_the_run():
    profile = load_profile("tiny", {"epochs": "1"})
    a, b = evaluate(nn.CrossEntropyLoss(), profile, seed=0), evaluate(nn.CrossEntropyLoss(), profile, seed=1)
    assert a.epochs[0].train_loss != b.epochs[0].train_loss


def test_nan_loss_is_diverged_with_best_fitness_before_it():
    profile = load_profile("tiny", {"epochs": "4"})
    steps = 1437 // 64  # steps per epoch of tiny
    rec = evaluate(_NaNAfter(after=2 * steps + 3), profile, genome_id="nan")
    assert rec.status == "diverged" and "epoch 3" in rec.reason
    assert len(rec.epochs) == 2 and rec.fitness == max(e.val_accuracy for e in rec.epochs)
    assert rec.usable


def test_nan_in_first_epoch_has_no_fitness():
    rec = evaluate(_NaNAfter(after=0), load_profile("tiny", {"epochs": "2"}))
    assert rec.status == "diverged" and rec.fitness is None and not rec.usable


def test_exception_in_loss_is_failed_with_one_line_reason():
    rec = evaluate(_Raises(), load_profile("tiny", {"epochs": "1"}))
    assert rec.status == "failed" and rec.fitness is None
    assert rec.reason == "RuntimeError: boom second line"


def test_loss_that_cannot_learn_is_rejected_by_the_prefilter_floor():
    rec = evaluate(_Flat(), load_profile("tiny-prefilter"))
    assert rec.status == "rejected" and "below floor 0.35" in rec.reason and not rec.usable


def test_a_stop_floor_ends_training_at_its_0_based_epoch_index_and_keeps_the_fitness():
    """The authors' EpochCallback(threshold, epoch=1) checks epochs with index >= 1: the second."""
    profile = load_profile("tiny", {"epochs": "5", "floors": "[{min: 0.99, from_epoch_index: 1, action: stop}]"})
    rec = evaluate(nn.CrossEntropyLoss(), profile)
    assert rec.status == "stopped" and len(rec.epochs) == 2 and "at epoch index 1" in rec.reason
    assert rec.usable and rec.fitness == max(e.val_accuracy for e in rec.epochs)


def test_a_fail_floor_rejects_however_the_run_ended():
    profile = load_profile("tiny", {"epochs": "3", "floors": "[{min: 0.99, action: stop}, {min: 0.999, action: fail}]"})
    rec = evaluate(nn.CrossEntropyLoss(), profile)
    assert rec.status == "rejected" and rec.fitness is None and len(rec.epochs) == 1
    assert "below floor 0.999" in rec.reason and "stopped" in rec.reason


def test_a_stop_floor_ends_only_its_stage_and_restarts_in_the_next():
    """loss_projection.py: each stage is a new `fit` with a fresh EpochCallback, so a stop ends
    the stage and the next stage counts its epochs from 0 again."""
    profile = load_profile("tiny", {"epochs": "null", "stages": "[{epochs: 3}, {epochs: 3}]",
                                    "floors": "[{min: 0.99, from_epoch_index: 1, action: stop}]"})
    rec = evaluate(nn.CrossEntropyLoss(), profile)
    assert rec.status == "stopped" and len(rec.epochs) == 4  # two epochs in each stage
    assert rec.reason.count("stage") == 2


def test_non_scalar_loss_is_failed():
    rec = evaluate(nn.CrossEntropyLoss(reduction="none"), load_profile("tiny", {"epochs": "1"}))
    assert rec.status == "failed" and "scalar" in rec.reason


def test_wall_clock_limit_is_timeout_with_a_fitness():
    rec = evaluate(nn.CrossEntropyLoss(), load_profile("tiny", {"runtime.time_limit_s": "0.0"}))
    assert rec.status == "timeout" and len(rec.epochs) == 1 and rec.fitness is not None


def test_unknown_loss_name_is_a_user_error(tiny):
    with pytest.raises(NlfsError, match="unknown loss"):
        evaluate("no_such_loss", tiny)


@pytest.mark.parametrize("key,value,match", [("dataset.name", "imagenet42", "unknown dataset"),
                                             ("model.name", "resnet1000", "unknown model"),
                                             ("augment.name", "sparkle", "unknown augmentation")])
def test_unknown_parts_are_user_errors(key, value, match):
    with pytest.raises(NlfsError, match=match):
        evaluate(nn.CrossEntropyLoss(), load_profile("tiny", {key: value, "epochs": "1"}))


def test_threads_follow_the_profile():
    before = torch.get_num_threads()
    try:
        evaluate(nn.CrossEntropyLoss(), load_profile("tiny", {"epochs": "1", "runtime.threads": "1"}))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
