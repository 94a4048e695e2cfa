"""The result record (`nlfs.result/v1`) is as strict when read as when made and written: finite
numbers, accuracies in [0, 1], no NaN literals (issue 12, point 1)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from nlfs.errors import NlfsError
from nlfs.result import EpochMetrics, ResultRecord


def record(**changes) -> ResultRecord:
    fields = dict(genome_id="0123456789abcdef", profile="tiny", profile_hash="0" * 16, status="ok",
                  fitness=0.9, epochs=[EpochMetrics(epoch=1, train_loss=0.5, train_accuracy=0.8,
                                                    val_loss=0.6, val_accuracy=0.9, seconds=1.5)],
                  seconds=2.0)
    fields.update(changes)
    return ResultRecord(**fields)


def stored(**changes) -> str:
    """A valid stored record with fields replaced in its JSON text (NaN written as a literal)."""
    doc = json.loads(record().to_json())
    for key, value in changes.items():
        target, _, field = key.rpartition(".")
        (doc["epochs"][0] if target == "epochs.0" else doc)[field] = value
    return json.dumps(doc)  # json.dumps writes NaN and Infinity as the bare literals


def test_a_valid_record_round_trips():
    rec = record(status="diverged", fitness=None, reason="non-finite loss in epoch 2",
                 epochs=[EpochMetrics(epoch=1, train_loss=None, val_loss=-3.5, val_accuracy=0.1)])
    assert ResultRecord.from_json(rec.to_json()) == rec


@pytest.mark.parametrize("field", ["fitness", "seconds", "epochs.0.train_loss", "epochs.0.val_loss",
                                   "epochs.0.train_accuracy", "epochs.0.val_accuracy", "epochs.0.seconds"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_stored_non_finite_number_is_refused_when_read(field, value):
    with pytest.raises(NlfsError) as info:
        ResultRecord.from_json(stored(**{field: value}), source="run/results/main/x.json")
    message = str(info.value)
    assert message.startswith("run/results/main/x.json: invalid result record") and "\n" not in message


@pytest.mark.parametrize("field, value", [("fitness", 1.5), ("fitness", -0.1), ("epochs.0.val_accuracy", 2),
                                          ("epochs.0.train_accuracy", -1), ("seconds", -1.0), ("seed", -1),
                                          ("epochs.0.epoch", 0), ("fitness", True), ("seed", 2**32)])
def test_a_stored_number_out_of_range_is_refused_when_read(field, value):
    with pytest.raises(NlfsError, match="invalid result record"):
        ResultRecord.from_json(stored(**{field: value}))


@pytest.mark.parametrize("changes", [{"fitness": float("nan")}, {"fitness": float("inf")}, {"fitness": 1.01},
                                     {"seconds": float("nan")}])
def test_a_record_with_a_bad_number_cannot_be_made(changes):
    with pytest.raises(ValidationError):
        record(**changes)


def test_a_record_changed_in_place_cannot_be_assigned_or_written_invalid():
    rec = record()
    with pytest.raises(ValidationError):
        rec.fitness = float("nan")
    with pytest.raises(ValidationError):
        rec.epochs[0].val_accuracy = float("inf")
    rec.epochs.append(EpochMetrics.model_construct(epoch=2, val_accuracy=float("nan")))  # validation bypassed
    with pytest.raises(NlfsError, match="refusing to write an invalid record"):
        rec.to_json()
