"""The result record (`nlfs.result/v1`): what one evaluation of one loss under one profile produced.

Written create-only to `<run>/results/<stage>/<genome id>.json`, or to a file with
`nlfs evaluate --out`. Read by the controller (fitness), `nlfs results` and `nlfs report`.
"""

from __future__ import annotations

import datetime as _dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nlfs.errors import NlfsError
from nlfs.formats import first_error

RESULT_FORMAT = "nlfs.result/v1"

Status = Literal["ok", "stopped", "diverged", "rejected", "gate_failed", "failed", "timeout"]
# ok: trained to the end; stopped: a `stop` floor ended training early, fitness kept;
# diverged: NaN/Inf loss, fitness is the best before it; timeout: wall-clock limit, fitness so far;
# rejected: a `fail` floor was missed (no fitness); gate_failed: the stage's gate run was rejected,
# so this run was never trained (no fitness); failed: an error in training, or no result ever came.
USABLE_STATUSES: frozenset[str] = frozenset({"ok", "stopped", "diverged", "timeout"})


class EpochMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epoch: int
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    # accuracy on the test split when the profile scores it every epoch (dataset.evaluate_test);
    # equal to val_accuracy when validation is the test split (dataset.val=test)
    test_accuracy: float | None = None
    seconds: float = 0.0


class ResultRecord(BaseModel):
    """One evaluation. `fitness` is the maximum validation accuracy over epochs (METHOD.md 4)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["nlfs.result/v1"] = RESULT_FORMAT
    genome_id: str
    loss: str = ""  # registry name or infix text, for people reading the record
    stage: str = "main"
    profile: str
    profile_hash: str
    status: Status
    fitness: float | None = None
    reason: str | None = None
    epochs: list[EpochMetrics] = Field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    seed: int = 0
    versions: dict[str, str] = Field(default_factory=dict)
    # Equivalence cache: set when this record copies the result of an equivalent genome.
    reused_from: str | None = None
    created: str = Field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())

    @property
    def usable(self) -> bool:
        """True when the run has a fitness the search keeps (it may have stopped early)."""
        return self.status in USABLE_STATUSES and self.fitness is not None

    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    @classmethod
    def from_json(cls, data: str | bytes, *, source: str = "result") -> "ResultRecord":
        try:
            return cls.model_validate_json(data)
        except ValidationError as err:
            raise NlfsError(f"{source}: invalid result record: {first_error(err, 'record')}") from None
