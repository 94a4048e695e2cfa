"""A run's history in algorithm order, for the report: every evaluation and the population over time.

Unlike `nlfs results`, a report may read the whole history: every batch file and every result.
Batches give the exact order the controller folded results in; the population is replayed with
the search's own aging rule (`nlfs.evolution.population.age`), so the curve is the population
the search had, not an approximation of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nlfs.evolution.population import Outcome, age
from nlfs.evolution.state import Batch, Member, parse_model
from nlfs.result import ResultRecord
from nlfs.runs import Run
from nlfs.store import layout


@dataclass(frozen=True)
class Event:
    """One folded result: which batch, phase and stage, and what it scored."""

    batch: int
    phase: str  # initial, rescore, evolve
    stage: str
    genome: str
    child: int  # the child number in the evolve phase; -1 otherwise
    status: str | None  # None when the result is missing (batch still pending)
    fitness: float | None
    usable: bool


@dataclass(frozen=True)
class PopulationPoint:
    """The population after `children` children: its members' fitness."""

    children: int
    fitness: tuple[float, ...]


def read_batches(run: Run) -> list[Batch]:
    out = []
    for key in run.store.list(layout.batches_prefix()):
        out.append(parse_model(Batch, run.store.get(key).data, f"{run.uri}/{key}"))
    return sorted(out, key=lambda b: b.index)


def read_results(run: Run, stages: tuple[str, ...] = ("initial", "main")) -> dict[tuple[str, str], ResultRecord]:
    return {(r.stage, r.genome_id): r for stage in stages for r in run.results(stage)}


def events(batches: list[Batch], results: dict[tuple[str, str], ResultRecord]) -> list[Event]:
    """Every slot of every batch in fold order, with its result (pure)."""
    out = []
    for batch in batches:
        for slot in batch.slots:
            r = results.get((batch.stage, slot.id))
            out.append(Event(batch=batch.index, phase=batch.phase, stage=batch.stage, genome=slot.id,
                             child=slot.child, status=None if r is None else r.status,
                             fitness=None if r is None else r.fitness, usable=r is not None and r.usable))
    return out


def population_over_time(evs: list[Event], size: int) -> list[PopulationPoint]:
    """Replay the population: re-scored members join at birth 0 (at fitness 0 when their main
    fitness failed), then each child with a fitness above 0 ages it (the oldest leaves; among
    equally old, the worst). One point after the re-scoring and one per closed child (children
    that scored 0 move the clock without changing the population)."""
    population: list[Member] = []
    points: list[PopulationPoint] = []
    children = 0
    for e in evs:
        score = Outcome(e.status or "failed", e.fitness).score
        if e.phase == "rescore" and e.status is not None:
            population.append(Member(id=e.genome, birth=0, fitness=score, genome={}))
        elif e.phase == "evolve" and e.status is not None:
            if not points and population:
                points.append(PopulationPoint(0, tuple(m.fitness for m in population)))
            if score > 0.0:
                population = age(population, Member(id=e.genome, birth=e.child + 1, fitness=score, genome={}),
                                 size)
            children = max(children, e.child + 1)
            if population:
                points.append(PopulationPoint(children, tuple(m.fitness for m in population)))
    if not points and population:
        points.append(PopulationPoint(0, tuple(m.fitness for m in population)))
    return points
