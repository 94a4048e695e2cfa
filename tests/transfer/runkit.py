"""Runs for the protocol and results tests: synthetic finished searches and a tiny protocol.

A synthetic search is what a finished search leaves in its store (config, state.json with a
hall of fame of real accepted genomes, genome files, result records), written directly so a
test can have 10,000 evaluations, or none trained at all, in a second. Tests that need real
training use the tiny search of tests/report/conftest.py instead.
"""

from __future__ import annotations

import numpy as np

from nlfs.evolution.controller import init_run
from nlfs.evolution.state import Counters, Member, State
from nlfs.genome import Genome, check, random_genome
from nlfs.result import EpochMetrics, ResultRecord
from nlfs.runs import Run
from nlfs.store import DirectoryStore, layout
from nlfs.transfer.protocol import Protocol, parse_protocol
from searchkit import fast_config

TINY_PROTOCOL = """
elimination:
  candidates: 3
  phases:
    - {profile: tiny, set: {epochs: 1}, survivors: 2}
    - {profile: tiny, set: {epochs: 1, optimizer.lr: 0.005}, survivors: 1}
transfer:
  profile: tiny
  set: {epochs: 1}
  axes:
    model: {tiny_cnn: {}}
  seeds: [0, 1]
fidelity: {resamples: 200}
"""


def tiny_protocol(**overrides: str) -> Protocol:
    """Two phases (survivors 2, 1) and a one-cell grid of two seeds, all on `tiny` for one epoch."""
    return parse_protocol(TINY_PROTOCOL, dict(overrides) or None)


def accepted_genomes(n: int, seed: int = 0) -> list[Genome]:
    """n distinct random genomes that pass the integrity check."""
    rng = np.random.default_rng(seed)
    out: dict[str, Genome] = {}
    while len(out) < n:
        g = random_genome(rng)
        verdict = check(g)
        if verdict.accepted:
            g = g.with_sign(verdict.sign)
            out.setdefault(g.id, g)
    return list(out.values())


def record(genome_id: str, stage: str, fitness: float | None, status: str = "ok", profile: str = "tiny") -> ResultRecord:
    return ResultRecord(genome_id=genome_id, stage=stage, profile=profile, profile_hash="0" * 16,
                        status=status, fitness=fitness)


def synthetic_search(run: Run, evaluations: int = 20, top: int = 6, seed: int = 0) -> list[Member]:
    """A finished search with `evaluations` main-stage results; the hall of fame holds `top`
    accepted genomes (fitness 0.9, 0.89, ...), the rest of the history has plain ids."""
    config = fast_config(hall_of_fame=max(top, 1), budget=max(8, evaluations - 12))  # 8 + 4 + budget
    init_run(run, config)
    genomes = accepted_genomes(top, seed)
    members = [Member(id=g.id, birth=i, fitness=round(0.9 - 0.01 * i, 4), genome=g.to_dict())
               for i, g in enumerate(genomes)]
    for g, m in zip(genomes, members):
        run.put_genome(g)
        run.put_result(record(g.id, "main", m.fitness))
    statuses = {"ok": 0, "rejected": 0}
    bulk = []
    for i in range(evaluations - top):
        status = "rejected" if i % 5 == 4 else "ok"
        statuses[status] += 1
        bulk.append(record(f"{i:016x}", "main", 0.5 if status == "ok" else 0.1, status))
    _write_history(run, bulk)
    statuses["ok"] += top
    counters = Counters(evaluations=evaluations, children_started=config.budget, children_done=config.budget,
                        statuses=statuses)
    state = State(config_hash=config.hash, phase="done", population=members[:config.population], top=members,
                  counters=counters)
    run.store.put(layout.state_key(), state.to_json().encode())
    return members


def finish_units(run: Run, units, fitness) -> None:
    """Write a result for each unit: `fitness(unit)` -> float, or (status, fitness)."""
    for u in units:
        value = fitness(u)
        status, fit = value if isinstance(value, tuple) else ("ok", value)
        run.put_result(record(u.genome, u.stage, fit, status, u.profile))


def _write_history(run: Run, records: list[ResultRecord]) -> None:
    """The bulk of a synthetic history. On a directory store the files are written as plain
    files (the same bytes at the same paths; the store's locked, fsynced writes would take
    most of a test's time for 10,000 of them); elsewhere through the store."""
    if isinstance(run.store, DirectoryStore):
        folder = run.store.root / "results" / "main"
        folder.mkdir(parents=True, exist_ok=True)
        for r in records:
            (folder / f"{r.genome_id}.json").write_text(r.to_json())
    else:
        for r in records:
            run.put_result(r)


# ---- the final study's two figures ------------------------------------------------------------

# Each loss's two seeds: (validation accuracies, test accuracies) per epoch. The candidate's best
# validation epoch is never its best test epoch, so its two figures differ.
FINAL_CURVES = {
    "candidate": [([0.5, 0.8, 0.6], [0.9, 0.7, 0.95]), ([0.6, 0.7, 0.7], [0.8, 0.75, 0.9])],
    "cross_entropy": [([0.5, 0.6, 0.55], [0.6, 0.62, 0.64]), ([0.5, 0.65, 0.6], [0.6, 0.61, 0.63])],
    "baikal": [([0.4, 0.5, 0.45], [0.5, 0.55, 0.52]), ([0.4, 0.45, 0.5], [0.5, 0.52, 0.54])],
}


def epochs_of(val: list[float], test: list[float | None]) -> list[EpochMetrics]:
    return [EpochMetrics(epoch=i + 1, val_accuracy=v, test_accuracy=t) for i, (v, t) in enumerate(zip(val, test))]


def held_out_protocol(**overrides: str) -> Protocol:
    """No elimination, one best candidate, a one-cell grid of two seeds whose profile validates on a
    held-out split and scores the test set every epoch."""
    return tiny_protocol(**{"elimination.phases": "[]", "elimination.candidates": "1",
                            "transfer.set": "{epochs: 1, dataset.evaluate_test: true}", **overrides})


def finish_grid(run: Run, protocol: Protocol, curves: dict = FINAL_CURVES) -> None:
    """Plan the protocol to its end, writing each unit's record with the epochs of `curves`."""
    from nlfs.transfer.plan import plan

    p = plan(run, protocol)
    names = {e.id: e.name for e in p.state.named}
    while not p.done:
        for u in p.units:
            val, test = curves[names.get(u.genome, "candidate")][int(u.set["seed"])]
            run.put_result(ResultRecord(genome_id=u.genome, stage=u.stage, profile=u.profile, profile_hash="0" * 16,
                                        status="ok", fitness=max(val), epochs=epochs_of(val, test)))
        p = plan(run)
