"""The files the protocol keeps in a run: its state, each phase's ranking, the transfer table.

`protocol/state.json` (`nlfs.protocol-state/v1`) moves by compare-and-swap; it holds only the
current round, so a planner call costs the same in phase 4 as in phase 1. Rankings
(`elimination/phase-<k>.json`) and the table (`transfer/table.json`) are written create-only,
and are deterministic functions of the state, so two planners racing write the same bytes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from nlfs.formats import Float, Int, Seed
from nlfs.result import USABLE_STATUSES, Accuracy

# Every number a protocol file holds is checked when it is read, as result records are: a
# damaged file is a named error, never a table of impossible accuracies.
Count = Annotated[Int, Field(ge=0)]
Probability = Annotated[Float, Field(ge=0, le=1)]
Correlation = Annotated[Float, Field(ge=-1, le=1)]
Spread = Annotated[Float, Field(ge=0)]

STATE_FORMAT = "nlfs.protocol-state/v1"
RANKING_FORMAT = "nlfs.elimination-phase/v1"
TABLE_FORMAT = "nlfs.transfer-table/v1"

Step = Literal["eliminate", "transfer", "done"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Entrant(_Model):
    """A genome of the protocol: a search candidate (with its surrogate fitness) or a named loss."""

    id: str
    surrogate: Accuracy | None = None  # the search's main-stage fitness; None for named losses
    name: str | None = None  # registry name of a reference or baseline loss (cross_entropy, ...)


class Unit(_Model):
    """One evaluation of the current round, folded in once its result exists."""

    stage: str
    genome: str
    profile: str
    set: dict[str, str] = Field(default_factory=dict)
    status: str | None = None  # None: not evaluated yet
    fitness: Accuracy | None = None
    # From the result's epochs when the run scored the test split (nlfs.transfer.accuracy):
    test_max: Accuracy | None = None  # the maximum test accuracy over epochs
    test_at_best_val: Accuracy | None = None  # the test accuracy at the epoch of best validation accuracy

    @property
    def open(self) -> bool:
        return self.status is None

    @property
    def usable(self) -> bool:
        return self.status in USABLE_STATUSES and self.fitness is not None


class ProtocolState(_Model):
    format: Literal["nlfs.protocol-state/v1"] = STATE_FORMAT
    protocol_hash: str
    step: Step = "eliminate"
    phase: Count = 0  # the elimination phase running (1-based); 0 when none runs
    round: Count = 0  # counts rounds; the work items' "batch"
    candidates: list[Entrant] = Field(default_factory=list)  # the search's best, best first, frozen
    named: list[Entrant] = Field(default_factory=list)  # references and baselines, with their ids
    entrants: list[str] = Field(default_factory=list)  # ids competing in this phase, best first
    finalists: list[str] = Field(default_factory=list)  # survivors of the last phase
    units: list[Unit] = Field(default_factory=list)  # the current round

    @property
    def done(self) -> bool:
        return self.step == "done"

    def to_json(self) -> str:
        return self.model_dump_json()


class CorrelationRecord(_Model):
    value: Correlation | None
    low: Correlation | None  # bootstrap confidence interval
    high: Correlation | None


class Fidelity(_Model):
    """Rank agreement of surrogate fitness with a large model's accuracy over n genomes."""

    against: str  # what the surrogate is compared with, e.g. "elimination phase 1" or a cell name
    stage: str
    n: Count
    spearman: CorrelationRecord
    kendall: CorrelationRecord
    method: str  # how the interval was computed, in words


class Ranked(_Model):
    rank: Annotated[Int, Field(ge=1)]  # 1-based; losses that failed the phase come last
    id: str
    status: str | None
    fitness: Accuracy | None
    surrogate: Accuracy | None
    survived: bool


class Reference(_Model):
    name: str
    id: str
    status: str | None
    fitness: Accuracy | None


class PhaseRanking(_Model):
    format: Literal["nlfs.elimination-phase/v1"] = RANKING_FORMAT
    phase: Count
    stage: str
    profile: str
    set: dict[str, str] = Field(default_factory=dict)
    survivors: Count  # how many were to survive; fewer when fewer trained usably
    ranking: list[Ranked]
    references: list[Reference] = Field(default_factory=list)
    fidelity: Fidelity | None = None


class CellRecord(_Model):
    id: str
    name: str
    labels: dict[str, str]
    profile: str
    set: dict[str, str]
    stages: list[str]  # one per seed
    # What the entries' values are: max_test_accuracy (the paper's figure: the cell scores the test
    # set every epoch, or validates on it) or max_val_accuracy (the runs' fitness).
    figure: Literal["max_test_accuracy", "max_val_accuracy"] = "max_val_accuracy"
    held_out: bool = False  # entries also have the test accuracy at the best held-out validation epoch


class LossRecord(_Model):
    id: str
    name: str | None  # the baseline's name (also for a searched loss that is one); else None
    text: str  # the loss as one line (nlfs.genome.describe)
    surrogate: Accuracy | None = None


Verdict = Literal["win", "tie", "loss", "reference"]


class HeldOut(_Model):
    """One loss in one cell by the test accuracy at each run's epoch of best validation accuracy
    on the held-out split (not biased upwards), with its own test against the reference."""

    values: list[Accuracy]
    mean: Accuracy | None
    std: Spread | None
    n: Count
    p_value: Probability | None
    verdict: Verdict


class Entry(_Model):
    """One loss in one cell: accuracy over seeds and the test against the reference baseline."""

    cell: str  # cell id
    loss: str  # genome id
    values: list[Accuracy]  # each usable run's figure: the cell's `figure` (max test or max validation accuracy)
    failures: Count  # runs without a usable result (rejected, failed)
    statuses: dict[str, Count] = Field(default_factory=dict)  # status -> runs
    mean: Accuracy | None
    std: Spread | None
    n: Count
    p_value: Probability | None  # None for the reference itself and where the test is undefined
    verdict: Verdict
    held_out: HeldOut | None = None  # in cells with a held-out validation split (`CellRecord.held_out`)


class Counts(_Model):
    wins: Count
    ties: Count
    losses: Count


class Tally(_Model):
    loss: str
    wins: Count
    ties: Count
    losses: Count
    held_out: Counts | None = None  # the same by the held-out figure, over the cells that have it


class TransferTable(_Model):
    format: Literal["nlfs.transfer-table/v1"] = TABLE_FORMAT
    test: str  # the significance test, in words
    alpha: Probability
    reference: str  # genome id of the reference baseline
    seeds: list[Seed]
    cells: list[CellRecord]
    losses: list[LossRecord]
    entries: list[Entry]
    tallies: list[Tally]  # wins/ties/losses of each loss against the reference, over cells
    fidelity: list[Fidelity] = Field(default_factory=list)
