"""The files a search keeps in its run: `state.json` (`nlfs.state/v1`) and `batches/<n>.json`.

The state is small on purpose: the population with its genomes inline, the pending batch,
and counters. It never holds the history, so a controller step costs the same at evaluation
10 as at 10,000.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nlfs.formats import parse_stored_json

STATE_FORMAT = "nlfs.state/v1"
BATCH_FORMAT = "nlfs.batch/v1"

Phase = Literal["initial", "rescore", "evolve", "done"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Member(_Model):
    """A population member: born at `birth` (the child counter; 0 for the first population)."""

    id: str
    birth: int
    fitness: float
    genome: dict


class Slot(_Model):
    """One genome of a batch, to be evaluated (or reused) and folded into the state.

    In the evolve phase a slot is one child of the budget: `child` numbers it, `attempt`
    counts re-mutations after failed training, and the parent is kept inline so a retry does
    not depend on the parent still being alive.
    """

    id: str
    genome: dict
    child: int = -1
    parent: str | None = None
    parent_genome: dict | None = None
    attempt: int = 0
    reused_from: str | None = None  # the genome whose result this slot's result copies


class Batch(_Model):
    format: Literal["nlfs.batch/v1"] = BATCH_FORMAT
    index: int
    phase: Phase
    stage: Literal["initial", "main"]
    slots: list[Slot]


class Candidate(_Model):
    """A random genome of the initialisation, with its cheap-stage fitness once known."""

    id: str
    genome: dict
    fitness: float | None = None  # None until scored, and for candidates that failed the stage
    scored: bool = False


class Counters(_Model):
    evaluations: int = 0  # results folded (trained or reused), every stage
    reused: int = 0  # of which reused through the equivalence cache
    children_started: int = 0  # budget slots opened
    children_done: int = 0  # budget slots closed: joined the population or discarded
    discarded: int = 0  # children whose every re-mutation failed training
    remutations: int = 0
    statuses: dict[str, int] = Field(default_factory=dict)  # result status -> count


class State(_Model):
    format: Literal["nlfs.state/v1"] = STATE_FORMAT
    config_hash: str
    phase: Phase = "initial"
    next_batch: int = 0
    pending: Batch | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    cursor: int = 0  # next candidate (initial) or population entry (rescore) to batch
    population: list[Member] = Field(default_factory=list)
    top: list[Member] = Field(default_factory=list)  # best ever, also after aging out; best first
    counters: Counters = Field(default_factory=Counters)

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
