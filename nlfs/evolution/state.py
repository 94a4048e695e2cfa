"""The files a search keeps in its run: `state.json` (`nlfs.state/v2`) and `batches/<n>.json`.

The state is small on purpose: the population with its genomes inline, the pending batch,
and counters. It never holds the history, so a controller step costs the same at evaluation
10 as at 10,000.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, field_validator, model_validator

from nlfs.formats import parse_stored_json

STATE_FORMAT = "nlfs.state/v2"
BATCH_FORMAT = "nlfs.batch/v2"

Phase = Literal["initial", "rescore", "evolve", "done"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _fitness(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"fitness must be a number in [0, 1], not {value!r}")
    return value


class Member(_Model):
    """A population member: born at `birth` (the child counter; 0 for the first population).
    `fitness` is 0 for a member whose main run failed (METHOD.md 3: it stays in the population)."""

    id: str
    birth: NonNegativeInt
    fitness: float
    genome: dict

    _finite = field_validator("fitness")(_fitness)


class Slot(_Model):
    """One genome of a batch, to be evaluated (or reused) and folded into the state.

    In the evolve phase a slot is one child of the budget: `child` numbers it, `attempt`
    counts the trainings the child used before this one (each failed gate re-mutates it), and
    the parent is kept inline so a retry does not depend on the parent still being alive.
    `handouts` counts the controller steps that handed this slot out for evaluation (counted
    only when the step is told to keep a failure budget, as the Argo workflow does).
    """

    id: str
    genome: dict
    child: int = Field(-1, ge=-1)
    parent: str | None = None
    parent_genome: dict | None = None
    attempt: NonNegativeInt = 0
    reused_from: str | None = None  # the genome whose result this slot's result copies
    handouts: NonNegativeInt = 0


class Batch(_Model):
    format: Literal["nlfs.batch/v2"] = BATCH_FORMAT
    index: NonNegativeInt
    phase: Phase
    stage: Literal["initial", "main"]
    slots: list[Slot]

    @model_validator(mode="after")
    def _distinct(self) -> "Batch":
        if len({s.id for s in self.slots}) != len(self.slots):
            raise ValueError("a batch names a genome twice")
        return self


class Candidate(_Model):
    """A random genome of the initialisation, with its initial-stage fitness once scored (0 for
    a candidate whose run failed: METHOD.md 3 keeps it, and it can still be picked)."""

    id: str
    genome: dict
    fitness: float | None = None  # None until scored
    scored: bool = False

    _finite = field_validator("fitness")(_fitness)


class Counters(_Model):
    evaluations: NonNegativeInt = 0  # results folded (trained or reused), every stage
    reused: NonNegativeInt = 0  # of which reused through the equivalence cache
    children_started: NonNegativeInt = 0  # budget slots opened
    children_done: NonNegativeInt = 0  # budget slots closed: joined the population or scored 0
    discarded: NonNegativeInt = 0  # children that scored 0: every training failed (not inserted)
    remutations: NonNegativeInt = 0  # re-mutations after a failed training (a failed gate)
    gate_failures: NonNegativeInt = 0  # gate runs that failed: each saved a main-stage training
    mutation_failures: NonNegativeInt = 0  # children for which no valid mutant was found
    lost: NonNegativeInt = 0  # evaluations recorded failed because no result ever came
    statuses: dict[str, NonNegativeInt] = Field(default_factory=dict)  # result status -> count


class State(_Model):
    format: Literal["nlfs.state/v2"] = STATE_FORMAT
    config_hash: str
    phase: Phase = "initial"
    next_batch: NonNegativeInt = 0
    pending: Batch | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    cursor: NonNegativeInt = 0  # next candidate to batch (initial and rescore phases)
    population: list[Member] = Field(default_factory=list)
    top: list[Member] = Field(default_factory=list)  # best ever, also after aging out; best first
    counters: Counters = Field(default_factory=Counters)

    @model_validator(mode="after")
    def _consistent(self) -> "State":
        """What a transition relies on, so that a damaged state is a named error when it is
        read, not a crash in the middle of a step."""
        if self.pending is not None and self.pending.phase == "initial":
            known = {c.id for c in self.candidates}
            for slot in self.pending.slots:
                if slot.id not in known:
                    raise ValueError(f"pending slot {slot.id} is not among the candidates")
        if self.pending is not None and self.pending.index >= self.next_batch:
            raise ValueError("the pending batch's index is not below next_batch")
        if self.cursor < 0 or self.cursor > len(self.candidates):
            raise ValueError("cursor is outside the candidate list")
        if self.phase in ("evolve", "done") and self.pending is not None and self.pending.phase != "evolve":
            raise ValueError(f"phase {self.phase} with a pending {self.pending.phase} batch")
        if self.phase == "evolve" and not self.population:
            raise ValueError("phase evolve with an empty population")
        return self

    @property
    def best(self) -> Member | None:
        return self.top[0] if self.top else None

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def to_json(self) -> str:
        return self.model_dump_json()


def parse_model(cls, data: bytes | str, source: str):
    """Validate a stored JSON object; a corrupt one is a one-line NlfsError naming the key."""
    return parse_stored_json(cls, data, source)
