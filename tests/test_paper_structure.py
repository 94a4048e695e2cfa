"""Issue 10, point 4: the paper configuration's whole training structure, end to end on tiny shapes.

The paper's own profiles (config `paper`, protocol defaults: eliminate-1/2, the final study's
base setting) with overrides that shrink them and keep their structure: random CIFAR-shaped
images (`fake`) at an eighth of the side (32 -> 4, 80 -> 10, 128 -> 16, 160 -> 20), 2 steps per
epoch instead of 100, epochs and floor indices divided by 40 (160 -> 4, 40 -> 1), every schedule's
steps divided by 2000 (64000 -> 32, warmup 6400 -> 3), so each schedule still spans its run as in
the paper. EfficientNetV2-S stands in as ResNet9V2 (building EfficientNetV2-S costs seconds on a
loaded 2-core machine; its parts are stepped in tests/train/test_profile_parts.py). No loss learns
random labels, so the `stop` floors keep the paper's thresholds and fire at their scaled index,
while the `fail` floors of the initial stage and the gate are lowered to 0 to let every loss go on
to the next stage.

Everything runs in this process through the functions the workers run (controller step, planner,
`evaluate_one`), with a spy on the training loop's epochs, so the test sees which profile trained,
at which size and dropout, from which step of which schedule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import yaml
from torch import nn

from nlfs.evolution.config import StageProfile, load_config
from nlfs.evolution.controller import init_run, step
from nlfs.local import evaluate_one
from nlfs.notebook import RunReading
from nlfs.store import DirectoryStore
from nlfs.train import loop
from nlfs.train.profiles import load_profile
from nlfs.train.schedule import lr_at
from nlfs.transfer.plan import plan
from nlfs.transfer.protocol import Protocol, parse_protocol

TIME, STEPS, SPACE, SCHEDULE = 40, 50, 8, 2000  # divisors of epochs, steps per epoch, image sides, schedules
FINAL = Protocol().transfer.axes["setting"]["base"].profile  # the final study's base setting


def shrink(name: str) -> dict[str, str]:
    """`--set` overrides that make the paper profile `name` tiny without changing its structure."""
    p = load_profile(name)
    epochs = lambda n: max(1, round(n / TIME))  # noqa: E731
    side = lambda n: None if n is None else n // SPACE  # noqa: E731
    out = {"dataset.name": "fake", "dataset.image_size": str(32 // SPACE), "dataset.val_size": "16",
           "dataset.train_limit": "32", "batch_size": "8", "steps_per_epoch": str(p.steps_per_epoch // STEPS),
           "runtime.device": "cpu", "runtime.threads": "1", "runtime.eval_batch_size": "512"}
    if p.model.name == "efficientnet_v2_s":
        out.update({"model.name": "resnet9v2", "model.pretrained": "false"})
    if p.schedule.total_steps:
        out["schedule.total_steps"] = str(p.schedule.total_steps // SCHEDULE)
        out["schedule.warmup_steps"] = str(max(1, round(p.schedule.warmup_steps / SCHEDULE)))
    if p.stages:
        out["stages"] = yaml.safe_dump([{**s.model_dump(), "epochs": epochs(s.epochs), "image_size": side(s.image_size)}
                                        for s in p.stages], default_flow_style=True).strip()
    else:
        out["epochs"] = str(epochs(p.epochs))
        if p.image_size:
            out["image_size"] = str(side(p.image_size))
    floors = [{**f.model_dump(), "from_epoch_index": f.from_epoch_index // TIME,
               "min": 0.0 if f.action == "fail" else f.min} for f in p.floors]
    out["floors"] = yaml.safe_dump(floors, default_flow_style=True).strip()
    return out


@dataclass(frozen=True)
class Epoch:
    """One training epoch as the loop ran it."""

    run: int  # which training run (one trainer: one model, one optimiser, one schedule)
    profile: str
    size: int | None  # the stage's image side
    dropout: float  # the head's dropout probability
    first_step: int  # the schedule's step count at the epoch's start (0 = a new run)
    last_step: int
    total_steps: int  # the length of the schedule the run follows


@pytest.fixture
def epochs(monkeypatch) -> list[Epoch]:
    seen: list[Epoch] = []
    original = loop._Trainer.train_epoch

    def spy(self, augment, size, deadline):
        if not hasattr(self, "spied_run"):
            self.spied_run = len({e.run for e in seen})
        first = self.global_step
        out = original(self, augment, size, deadline)
        dropout = next(m.p for m in self.model.modules() if isinstance(m, nn.Dropout))
        seen.append(Epoch(self.spied_run, self.profile.name, size, dropout, first, self.global_step, self.total_steps))
        return out

    monkeypatch.setattr(loop._Trainer, "train_epoch", spy)
    return seen


def runs_of(seen: list[Epoch]) -> list[list[Epoch]]:
    """The epochs grouped by training run, in the order the runs started."""
    runs: dict[int, list[Epoch]] = {}
    for e in seen:
        runs.setdefault(e.run, []).append(e)
    return list(runs.values())


def test_the_paper_structure_runs_end_to_end_on_tiny_shapes(tmp_path, epochs):
    run = RunReading(DirectoryStore(str(tmp_path / "run")))

    # ---- the search: initial stage, then a gate before every main run -------------------------
    paper = load_config("paper")
    config = paper.model_copy(update={
        "population": 2, "tournament": 2, "initial_candidates": 3, "budget": 2, "batch_size": 1,
        "initial_batch_size": 3, "hall_of_fame": 4,
        "stages": {stage: StageProfile(profile=entry.profile, overrides=shrink(entry.profile))
                   for stage, entry in paper.stages.items()}})
    assert {s: e.profile for s, e in config.stages.items()} == {
        "initial": "prefilter", "gate": "surrogate-gate", "main": "surrogate"}
    init_run(run, config)
    while not (outcome := step(run)).done:
        for genome in outcome.genomes:
            evaluate_one(run.uri, outcome.stage, genome)
    search_runs = runs_of(epochs)
    order = " ".join(r[0].profile for r in search_runs)
    assert re.fullmatch(r"prefilter prefilter prefilter( surrogate-gate surrogate)+", order), order
    trained_main = [r for r in run.results("main") if not r.reused_from]
    assert order.count("surrogate-gate") == len(trained_main) >= 2  # the re-scored best, then children
    assert len(run.results("initial")) == 3 and len(run.results("gate")) == len(trained_main)
    for r in search_runs:
        head = r[0]
        if head.profile == "surrogate":  # the main run: a fresh network at 80 -> 20, its own schedule
            assert head.size == 80 // SPACE and head.total_steps == 8000 // SCHEDULE
        else:  # the initial stage and the gate: 32x32 -> 8x8, the 800-of-8000 schedule
            assert head.size is None and head.total_steps == 8000 // SCHEDULE
    for record in run.results("initial") + trained_main:
        # the stop floors (0.35 from epoch index 6, 0.22 from index 7; both index 0 here) end the
        # run at that index and keep its fitness
        assert record.status == "stopped" and len(record.epochs) == 1 and record.fitness is not None
    assert run.state().done

    # ---- elimination across two phases, then one final setting ---------------------------------
    protocol = parse_protocol(yaml.safe_dump({
        "elimination": {"candidates": 2, "phases": [
            {"profile": "eliminate-1", "set": shrink("eliminate-1"), "survivors": 1},
            {"profile": "eliminate-2", "set": shrink("eliminate-2"), "survivors": 1}]},
        "transfer": {"profile": FINAL, "set": shrink(FINAL), "axes": {"setting": {"base": {}}}, "seeds": [0, 1]},
        "fidelity": {"resamples": 20}}))
    given = protocol
    while not (p := plan(run, given)).done:
        given = None
        for u in p.units:
            evaluate_one(run.uri, u.stage, u.genome, u.profile, u.set)
    protocol_runs = runs_of(epochs)[len(search_runs):]
    assert [r[0].profile for r in protocol_runs] == ["eliminate-1"] * 3 + ["eliminate-2"] * 2 + [FINAL] * 6

    # Phase 2: two stages on ONE schedule of 64000 -> 32 steps; the 0.45 floor from epoch index 40
    # (-> 1) restarts in each stage, so each stage runs two of its four epochs.
    stages = load_profile("eliminate-2").stages
    for r in (x for x in protocol_runs if x[0].profile == "eliminate-2"):
        assert [(e.size, e.dropout) for e in r] == [(stages[0].image_size // SPACE, 0.1)] * 2 + [
            (stages[1].image_size // SPACE, 0.2)] * 2
        assert [e.first_step for e in r] == [0, 2, 4, 6]  # the step count runs on into stage 2
        assert {e.total_steps for e in r} == {64000 // SCHEDULE}
        shrunk = load_profile("eliminate-2", shrink("eliminate-2"))
        stage2_lr = lr_at(shrunk.schedule, 1e-3, r[2].first_step, r[2].total_steps)
        assert stage2_lr > lr_at(shrunk.schedule, 1e-3, 0, r[2].total_steps)  # not back at warm-up's start
    # Phase 1 (one stage) covers a quarter of the same schedule at most.
    for r in (x for x in protocol_runs if x[0].profile == "eliminate-1"):
        assert {e.total_steps for e in r} == {64000 // SCHEDULE} and r[-1].last_step <= 64000 // SCHEDULE // 4
    phase1, phase2 = run.elimination()
    assert len(phase1.ranking) == 2 and sum(x.survived for x in phase1.ranking) == 1
    for record in run.results("elim-2"):
        assert record.status == "stopped" and len(record.epochs) == 4
        assert re.fullmatch(r"stage 0: .* at epoch index 1; stage 1: .* at epoch index 1", record.reason)
        assert record.fitness == max(e.val_accuracy for e in record.epochs)  # best over all stages

    # The final setting: both reported figures, per run and per cell.
    table = run.transfer_table()
    (cell,) = table.cells
    assert cell.profile == FINAL and cell.figure == "max_test_accuracy" and cell.held_out
    assert len(table.losses) == 3  # the finalist, cross-entropy, Baikal
    for e in table.entries:
        assert e.n == 2 and e.held_out is not None and e.held_out.n == 2
        assert all(0.0 <= v <= 1.0 for v in e.values + e.held_out.values)
    for stage in cell.stages:
        for record in run.results(stage):
            tests = [x.test_accuracy for x in record.epochs]
            assert None not in tests and len(tests) == 640 // TIME
            best_val = max(range(len(tests)), key=lambda i: record.epochs[i].val_accuracy)
            entry = next(e for e in table.entries if e.loss == record.genome_id)
            assert max(tests) in entry.values and tests[best_val] in entry.held_out.values
