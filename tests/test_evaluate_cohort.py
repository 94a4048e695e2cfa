"""evaluate_in_run with a cohort: gates, then the main runs of the passers, several genomes at once,
each record the one a solo evaluation writes."""

from __future__ import annotations

import json

import pytest

from nlfs.evaluate import evaluate_in_run, stage_plan
from nlfs.evolution.config import SearchConfig, StageProfile
from nlfs.genome import Genome
from nlfs.result import ResultRecord
from nlfs.store import layout, open_store

CE = {"format": "nlfs.genome/v1", "nodes": [{"op": "log", "in": ["p"]}, {"op": "mul", "in": ["y", 0]}],
      "output": 1, "sign": -1}
# -max(y, p): stays at chance on digits, so it fails the gate
FLAT = {"format": "nlfs.genome/v1", "nodes": [{"op": "max", "in": ["y", "p"]}, {"op": "neg", "in": [0]}],
        "output": 1, "sign": 1}
SQUARE = {"format": "nlfs.genome/v1", "nodes": [{"op": "sub", "in": ["y", "p"]}, {"op": "square", "in": [0]}],
          "output": 1, "sign": 1}
GENOMES = [CE, FLAT, SQUARE]
IDS = [Genome.from_json(g).id for g in GENOMES]
# float64, so that a member's numbers equal its solo run's to rounding
EXACT = {"runtime.dtype": "float64", "runtime.threads": 1}


def _init(store) -> None:
    config = SearchConfig(population=2, tournament=1, initial_candidates=2, budget=0,
                          stages={"initial": StageProfile(profile="tiny-prefilter", overrides={"epochs": 1}),
                                  "gate": StageProfile(profile="tiny-gate", overrides=EXACT),
                                  "main": StageProfile(profile="tiny", overrides={**EXACT, "epochs": 2, "steps_per_epoch": 8})})
    store.put(layout.config_key(), config.to_yaml().encode())
    for genome in GENOMES:
        store.put(layout.genome_key(Genome.from_json(genome).id), json.dumps(genome).encode())


def _stored(store, stage: str) -> dict[str, ResultRecord]:
    return {k.rsplit("/", 1)[1][:-5]: ResultRecord.from_json(store.get(k).data)
            for k in store.list(f"results/{stage}/")}


def _assert_same_record(mine: ResultRecord, solo: ResultRecord) -> None:
    """Every field alike but the clock's; training losses to 1e-6 relative (float64 rounding)."""
    ignore = {"seconds", "created", "epochs", "fitness"}
    assert mine.model_dump(exclude=ignore) == solo.model_dump(exclude=ignore)
    assert mine.fitness == pytest.approx(solo.fitness, abs=1e-9)
    assert len(mine.epochs) == len(solo.epochs)
    for a, b in zip(mine.epochs, solo.epochs):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-6)
        assert (a.epoch, a.train_accuracy, a.val_accuracy) == (b.epoch, b.train_accuracy, b.val_accuracy)


def test_a_cohort_writes_every_gate_and_main_record_a_solo_evaluation_writes(tmp_path):
    solo, packed = open_store(str(tmp_path / "solo")), open_store(str(tmp_path / "packed"))
    for store in (solo, packed):
        _init(store)
    lines: list[str] = []
    solo_records = evaluate_in_run(solo, "main", IDS, stage_plan(solo, "main"), cohort=1)
    packed_records = evaluate_in_run(packed, "main", IDS, stage_plan(packed, "main"), cohort=2, log=lines.append)
    assert [r.genome_id for r in packed_records] == [r.genome_id for r in solo_records] == IDS
    for stage in ("gate", "main"):
        mine, theirs = _stored(packed, stage), _stored(solo, stage)
        assert sorted(mine) == sorted(theirs) == sorted(IDS)
        for genome_id in IDS:
            _assert_same_record(mine[genome_id], theirs[genome_id])
    flat = _stored(packed, "main")[IDS[1]]
    assert flat.status == "gate_failed" and not flat.epochs and "gate (tiny-gate) rejected" in flat.reason
    assert [r.status for r in packed_records] == ["ok", "gate_failed", "ok"]
    # FLAT trained its gate's 2 epochs and no main run; the others 2 + 2
    epochs = {g: sum(line.startswith(f"genome {g} epoch") for line in lines) for g in IDS}
    assert epochs == {IDS[0]: 4, IDS[1]: 2, IDS[2]: 4}
    assert f"genome {IDS[1]} gate rejected (best train_accuracy" in "\n".join(lines)


def test_a_retried_cohort_trains_only_what_is_missing(tmp_path):
    store = open_store(str(tmp_path / "run"))
    _init(store)
    first = evaluate_in_run(store, "main", IDS, stage_plan(store, "main"), cohort=3)
    store.delete(layout.result_key("main", IDS[2]))  # the pod died after SQUARE's gate, before its main result
    gates_before = {g: store.get(layout.result_key("gate", g)).data for g in IDS}
    lines: list[str] = []
    again = evaluate_in_run(store, "main", IDS, stage_plan(store, "main"), cohort=3, log=lines.append)
    assert [r.genome_id for r in again] == [IDS[2]] and again[0].status == "ok"
    assert again[0].fitness == next(r for r in first if r.genome_id == IDS[2]).fitness
    assert {g: store.get(layout.result_key("gate", g)).data for g in IDS} == gates_before
    assert all(line.startswith(f"genome {IDS[2]} epoch") for line in lines if " epoch " in line)
