"""The result record (`nlfs.result/v1`): what one evaluation of one loss under one profile produced.

Written create-only to `<run>/results/<stage>/<genome id>.json`, or to a file with
`nlfs evaluate --out`. Read by the controller (fitness), `nlfs results` and `nlfs report`.
"""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nlfs.errors import NlfsError
from nlfs.formats import Float, Int, Seed, first_error, parse_stored_json

RESULT_FORMAT = "nlfs.result/v1"

Status = Literal["ok", "stopped", "diverged", "rejected", "gate_failed", "failed", "timeout"]
# ok: trained to the end; stopped: a `stop` floor ended training early, fitness kept;
# diverged: NaN/Inf loss, fitness is the best before it; timeout: wall-clock limit, fitness so far;
# rejected: a `fail` floor was missed (no fitness); gate_failed: the stage's gate run was rejected,
# so this run was never trained (no fitness); failed: an error in training, or no result ever came.
USABLE_STATUSES: frozenset[str] = frozenset({"ok", "stopped", "diverged", "timeout"})


# A record is read back by the controller, which folds its fitness into state.json: a value
# that could not have been measured (NaN, an accuracy of 1.7, negative seconds) is refused when
# the record is made, when it is written and when it is read, never folded.
Accuracy = Annotated[Float, Field(ge=0, le=1)]
Seconds = Annotated[Float, Field(ge=0)]
# Losses may be any finite number: a genome's loss can be negative. Non-finite losses are
# recorded as None (status `diverged` says why).
Loss = Float


# Serialised NaN stays NaN (pydantic would write null, a valid "no value"), so that `to_json`'s
# read-back check refuses a record that bypassed validation instead of silently changing it.
_CONFIG = ConfigDict(extra="forbid", validate_assignment=True, ser_json_inf_nan="constants")


class EpochMetrics(BaseModel):
    model_config = _CONFIG

    epoch: Annotated[Int, Field(ge=1)]
    train_loss: Loss | None = None
    train_accuracy: Accuracy | None = None
    val_loss: Loss | None = None
    val_accuracy: Accuracy | None = None
    # accuracy on the test split when the profile scores it every epoch (dataset.evaluate_test);
    # equal to val_accuracy when validation is the test split (dataset.val=test)
    test_accuracy: Accuracy | None = None
    seconds: Seconds = 0.0


class ResultRecord(BaseModel):
    """One evaluation. `fitness` is the maximum validation accuracy over epochs (METHOD.md 4)."""

    model_config = _CONFIG

    format: Literal["nlfs.result/v1"] = RESULT_FORMAT
    genome_id: str
    loss: str = ""  # registry name or infix text, for people reading the record
    stage: str = "main"
    profile: str
    profile_hash: str
    status: Status
    fitness: Accuracy | None = None
    reason: str | None = None
    epochs: list[EpochMetrics] = Field(default_factory=list)
    seconds: Seconds = 0.0
    device: str = "cpu"
    seed: Seed = 0
    versions: dict[str, str] = Field(default_factory=dict)
    # Equivalence cache: set when this record copies the result of an equivalent genome.
    reused_from: str | None = None
    created: str = Field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())

    @property
    def usable(self) -> bool:
        """True when the run has a fitness the search keeps (it may have stopped early)."""
        return self.status in USABLE_STATUSES and self.fitness is not None

    def to_json(self) -> str:
        """The stored form; NlfsError if it would not read back (e.g. a list changed in place)."""
        text = self.model_dump_json(indent=1)
        try:
            type(self).model_validate_json(text)
        except ValidationError as err:
            raise NlfsError(f"result {self.genome_id}: refusing to write an invalid record: "
                            f"{first_error(err, 'record')}") from None
        return text

    @classmethod
    def from_json(cls, data: str | bytes, *, source: str = "result") -> "ResultRecord":
        """A stored record, as strictly as it was written: plain JSON (no NaN), finite numbers in range."""
        return parse_stored_json(cls, data, source, lead=f"{source}: invalid result record", what="record")
