"""Aging (regularized) evolution as pure state transitions (METHOD.md 3), batched for fan-out.

`advance(state, config, outcomes)` folds the results of the pending batch and proposes the
next one. No I/O and no clock: the same state, config and outcomes give the same next state,
because every random draw comes from a generator seeded by (seed, purpose, child, attempt).

The authors' protocol (`GeneticAlgorithmRegularized` in loss_function_evolution.py):
- `initialize`: random candidates scored by the initial stage; one whose run fails scores 0 and
  stays a candidate. The best `population` are re-scored by the main fitness (gate, then main
  run); one that fails it scores 0 and stays in the population.
- `evolve`: per child, a tournament picks the parent; the child is mutated until it passes the
  integrity check; only a failed training (its gate) re-mutates it, from the same parent, for at
  most `max_trainings` trainings; a child that fails them all scores 0 and is not inserted; every
  member ages by one per child either way, and an inserted child replaces the oldest (the worst
  among equally old).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from nlfs.evolution.config import SearchConfig
from nlfs.evolution.state import Batch, Candidate, Member, Slot, State
from nlfs.genome.graph import Genome
from nlfs.genome.integrity import KnownLosses, check
from nlfs.genome.mutate import mutate, random_accepted

_INITIAL, _CHILD = 1, 2  # rng stream tags
# Result statuses that carry a fitness the search keeps; the others are failed trainings.
SCORED = frozenset({"ok", "stopped", "diverged", "timeout"})


@dataclass(frozen=True)
class Outcome:
    """What the controller learned from one slot's result record."""

    status: str
    fitness: float | None

    @property
    def scored(self) -> bool:
        """The run reached a fitness (possibly stopped early by its floor, METHOD.md 3)."""
        return self.status in SCORED and self.fitness is not None

    @property
    def score(self) -> float:
        """The authors' number for it: the fitness, or 0 for a run that failed."""
        return float(self.fitness) if self.scored else 0.0


def rng_for(config: SearchConfig, *keys: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, *keys])


# ---- initialisation -------------------------------------------------------------------------

def random_candidates(config: SearchConfig, limit_attempts: int = 1000,
                      readings: tuple[str, ...] = ("log_softmax",)) -> list[Genome]:
    """`initial_candidates` random genomes that pass the check, each with the sign its check chose.

    As in the authors' `initialize`, the candidates are not tested against each other for
    duplicates; they are distinct by content id only, because the store keys results by id.
    Raises RuntimeError if the space yields too few (it cannot at the method's sizes; the
    bound keeps a broken operator table from hanging). `readings`: how the stages' training
    reads log(p), for the integrity check's gradient test (`nlfs.genome.integrity.check`).
    """
    wanted = config.initial_candidates
    found = random_accepted(rng_for(config, _INITIAL), wanted, limit_attempts * wanted,
                            distinct_phenotypes=False, readings=readings)
    if len(found) < wanted:
        raise RuntimeError("random generation yields too few valid genomes")
    return found


def start(config: SearchConfig, readings: tuple[str, ...] = ("log_softmax",)) -> State:
    """The state of a new run: random candidates waiting for the initial stage."""
    candidates = [Candidate(id=g.id, genome=g.to_dict()) for g in random_candidates(config, readings=readings)]
    return State(config_hash=config.hash, candidates=candidates)


# ---- the aging-evolution operators --------------------------------------------------------

def tournament(population: list[Member], size: int, rng: np.random.Generator) -> Member:
    """The fittest of `size` members drawn with replacement (ties: the first drawn)."""
    picks = rng.integers(0, len(population), size=size)
    best = population[int(picks[0])]
    for k in picks[1:]:
        if population[int(k)].fitness > best.fitness:
            best = population[int(k)]
    return best


def make_child(parent: Genome, known: KnownLosses, rng: np.random.Generator,
               attempts: int, readings: tuple[str, ...] = ("log_softmax",),
               rejected: set | None = None) -> Genome | None:
    """Mutate `parent` until the child passes every check, at most `attempts` times.

    The child's sign is decided afresh by its own check (METHOD.md 7: the authors' child
    inherits its parent's flip); None when no mutant passes (the authors train the last invalid
    one; here it counts as a failed training).

    `rejected` remembers the functions already refused while `known` only grows (one step's
    children): a parent's neighbourhood is small, so the same mutant comes up again and again,
    and a function refused once is refused again. Every attempt still draws its mutation, so
    the outcome is the same with or without it.
    """
    rejected = set() if rejected is None else rejected
    for _ in range(attempts):
        child = mutate(parent, rng)
        key = _function_key(child)
        if key in rejected:
            continue
        verdict = check(child, known, readings=readings)
        if verdict.accepted:
            return child.with_sign(verdict.sign)
        rejected.add(key)
    return None


def _function_key(genome: Genome) -> tuple:
    """What the integrity check's verdict depends on: operators, inputs, output and smoothing
    (not the dormant operators, nor the sign, which the check decides)."""
    return (tuple((n.op, n.inputs) for n in genome.nodes), genome.output, genome.label_smoothing)


def age(population: list[Member], child: Member, capacity: int) -> list[Member]:
    """Add `child`; while over capacity the oldest leaves, the worst among equally old."""
    out = [*population, child]
    while len(out) > capacity:
        out.remove(min(out, key=lambda m: (m.birth, m.fitness, m.id)))
    return out


def remember(top: list[Member], member: Member, size: int) -> list[Member]:
    """The hall of fame with `member` considered: best fitness first (ties: lower id), `size` long."""
    if any(m.id == member.id for m in top):
        return top
    return sorted([*top, member], key=lambda m: (-m.fitness, m.id))[:size]


# ---- one controller transition --------------------------------------------------------------

def advance(state: State, config: SearchConfig, outcomes: Mapping[str, Outcome],
            readings: tuple[str, ...] = ("log_softmax",)) -> State:
    """Fold the pending batch's outcomes (by genome id; all must be present), propose the next.
    `readings`: how the stages' training reads log(p), for the children's integrity check."""
    state = state.model_copy(deep=True)
    retries: list[Slot] = []
    if state.pending is not None:
        retries = _fold(state, config, state.pending, outcomes)
        state.pending = None
    _propose(state, config, retries, readings)
    return state


def _count(state: State, slot: Slot, outcome: Outcome) -> None:
    c = state.counters
    c.evaluations += 1
    c.statuses[outcome.status] = c.statuses.get(outcome.status, 0) + 1
    if slot.reused_from:
        c.reused += 1
    elif outcome.status == "gate_failed":
        c.gate_failures += 1


def _fold(state: State, config: SearchConfig, batch: Batch,
          outcomes: Mapping[str, Outcome]) -> list[Slot]:
    """Apply the outcomes in slot order; returns the children whose training failed, to re-mutate."""
    retries: list[Slot] = []
    for slot in batch.slots:
        outcome = outcomes[slot.id]
        _count(state, slot, outcome)
        if batch.phase == "initial":
            cand = next(c for c in state.candidates if c.id == slot.id)
            cand.scored, cand.fitness = True, outcome.score
        elif batch.phase == "rescore":
            member = Member(id=slot.id, birth=0, fitness=outcome.score, genome=slot.genome)
            state.population.append(member)
            state.top = remember(state.top, member, config.hall_of_fame)
        elif outcome.scored:
            _close_child(state, config, slot, outcome.score)
        elif slot.attempt + 1 < config.max_trainings:
            retries.append(slot)
        else:
            _close_child(state, config, slot, 0.0)
    return retries


def _close_child(state: State, config: SearchConfig, slot: Slot, fitness: float) -> None:
    """The child's number is used up; it joins unless it scored 0 (the authors' `if f == 0`),
    and the clock moves either way: every member is one child older."""
    state.counters.children_done += 1
    if fitness == 0.0:
        state.counters.discarded += 1
        return
    member = Member(id=slot.id, birth=slot.child + 1, fitness=fitness, genome=slot.genome)
    state.population = age(state.population, member, config.population)
    state.top = remember(state.top, member, config.hall_of_fame)


def _propose(state: State, config: SearchConfig, retries: list[Slot], readings: tuple[str, ...]) -> None:
    while True:
        if state.phase == "initial":
            if _open_next_candidates(state, config, "initial"):
                return
            # Failed candidates scored 0 and stay in the ranking (ties: the lower id first).
            ranked = sorted(state.candidates, key=lambda c: (-(c.fitness or 0.0), c.id))
            state.candidates = ranked[:config.population]
            state.phase, state.cursor = "rescore", 0
        elif state.phase == "rescore":
            if _open_next_candidates(state, config, "main"):
                return
            state.candidates, state.cursor = [], 0
            state.phase = "evolve"
        elif state.phase == "evolve":
            slots = _children(state, config, retries, readings)
            retries = []
            if slots:
                _open(state, "evolve", "main", slots)
                return
            if state.counters.children_started >= config.budget:
                state.phase = "done"
                return
        else:
            return


def _open_next_candidates(state: State, config: SearchConfig, stage: str) -> bool:
    """Open a batch of the next `initial_batch_size` candidates, if any are left."""
    todo = state.candidates[state.cursor:state.cursor + config.initial_batch_size]
    if todo:
        state.cursor += len(todo)
        _open(state, state.phase, stage, [Slot(id=c.id, genome=c.genome) for c in todo])
    return bool(todo)


def _open(state: State, phase: str, stage: str, slots: list[Slot]) -> None:
    state.pending = Batch(index=state.next_batch, phase=phase, stage=stage, slots=slots)
    state.next_batch += 1


def _children(state: State, config: SearchConfig, retries: list[Slot], readings: tuple[str, ...]) -> list[Slot]:
    """Re-mutations of failed children first, then new children while the budget lasts.

    A child for which no valid mutant turns up in `max_mutation_attempts` draws has used one of
    its trainings without training (METHOD.md 7) and is drawn again at once from the same parent.
    """
    known = KnownLosses(Genome.from_json(m.genome) for m in state.population)
    rejected: set = set()  # functions refused this step; `known` only grows meanwhile
    slots: list[Slot] = []
    plans: list[tuple[int, int, str, dict]] = [
        (r.child, r.attempt + 1, r.parent, r.parent_genome) for r in retries]
    while len(plans) < config.batch_size and state.counters.children_started < config.budget:
        child_no = state.counters.children_started
        state.counters.children_started += 1
        parent = tournament(state.population, config.tournament, rng_for(config, _CHILD, child_no, 0))
        plans.append((child_no, 0, parent.id, parent.genome))
    for child_no, attempt, parent_id, parent_genome in plans:
        child = None
        while child is None and attempt < config.max_trainings:
            if attempt:
                state.counters.remutations += 1
            rng = rng_for(config, _CHILD, child_no, attempt + 1)
            child = make_child(Genome.from_json(parent_genome), known, rng, config.max_mutation_attempts,
                               readings, rejected)
            if child is None:
                state.counters.mutation_failures += 1
                attempt += 1
        if child is None:  # every training used up without one valid mutant: the child scores 0
            state.counters.children_done += 1
            state.counters.discarded += 1
            continue
        known.add(child)
        slots.append(Slot(id=child.id, genome=child.to_dict(), child=child_no, parent=parent_id,
                          parent_genome=parent_genome, attempt=attempt))
    return slots


def items_of(batch: Batch | None, done: Iterable[str] = ()) -> list[Slot]:
    """The slots of `batch` whose results are not yet in `done`."""
    finished = set(done)
    return [] if batch is None else [s for s in batch.slots if s.id not in finished]
