"""One controller step against a run's store: fold the finished batch, propose the next.

Idempotent and safe under concurrency: the state moves only by compare-and-swap, and what
is written before it (genomes, batch files, reused results) is create-only and the same for
every controller that computes it, because the transition is deterministic.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nlfs.errors import NlfsError
from nlfs.formats import parse_stored_json
from nlfs.evolution.config import SearchConfig
from nlfs.evolution.population import Outcome, advance, start
from nlfs.evolution.stages import gradient_readings, stage_profile, validate_stages
from nlfs.evolution.state import Batch, Slot, State
from nlfs.genome.graph import Genome
from nlfs.genome.integrity import phenotype, probe_curve
from nlfs.result import ResultRecord
from nlfs.runs import Run
from nlfs.store import ConflictError, NotFoundError, layout

log = logging.getLogger("nlfs.controller")
MAX_CAS_RETRIES = 50
# A genome handed out this many times with no result is lost: its pods already had their
# retries (workflows/nlfs-evaluate.yaml), so a third hand-out would fail the same way.
MAX_HANDOUTS = 2


class FailureBudgetExhausted(NlfsError):
    """More evaluations were lost (handed out MAX_HANDOUTS times, no result) than the budget allows."""


class FecEntry(BaseModel):
    """An equivalence-cache entry (`fec/<fingerprint>.json`): the first genome with this phenotype."""

    model_config = ConfigDict(extra="forbid")

    genome: str = Field(pattern=r"^[0-9a-f]{8,64}$")


@dataclass
class StepResult:
    """What a step leaves to do: work items of the pending batch whose results are missing."""

    batch: int | None
    stage: str | None
    genomes: list[str] = field(default_factory=list)
    done: bool = False
    state: State | None = None

    def items(self, run_uri: str, genomes_per_item: int = 1, max_genomes: int | None = None) -> list[dict]:
        """Work items for a fan-out: each names the run, batch, stage and up to K genomes.

        `max_genomes` hands out only the first N missing genomes; the next step, seeing the
        batch still incomplete, hands out the rest. The algorithm's batch stays the config's.
        """
        k = max(1, genomes_per_item)
        genomes = self.genomes if max_genomes is None else self.genomes[:max_genomes]
        return [{"run": run_uri, "batch": self.batch, "stage": self.stage, "genomes": genomes[i:i + k]}
                for i in range(0, len(genomes), k)]


def init_run(run: Run, config: SearchConfig) -> bool:
    """Store the config once. True if this call created the run; the same config again is a no-op.

    The whole run is validated first (every stage's profile resolves, every override applies and
    is in range), so a config that could never train is refused before anything is stored.
    """
    validate_stages(config)
    text = config.to_yaml().encode()
    if run.store.put_if_absent(layout.config_key(), text):
        return True
    existing = run.config
    if existing.hash != config.hash:
        raise NlfsError(f"{run.uri} already holds a different search config "
                        f"(hash {existing.hash}, given {config.hash}); use another run URI")
    return False


def fingerprint(genome: Genome) -> str:
    """The equivalence-cache key: the phenotype rounded to 3 decimals, hashed (AutoML-Zero's FEC)."""
    pheno = phenotype(probe_curve(genome), genome.sign)
    rounded = np.round(pheno, 3) + 0.0  # + 0.0 folds -0.0 into 0.0
    return hashlib.sha256(rounded.astype("<f8").tobytes()).hexdigest()[:16]


def step(run: Run, *, max_genomes: int | None = None, max_failed: int | None = None) -> StepResult:
    """Advance the run by at most one batch; returns what remains to evaluate (at most
    `max_genomes` genomes: the rest are handed out by the next step).

    With `max_failed` (the Argo workflow passes it), a step counts the times it hands each genome
    out: a genome handed out MAX_HANDOUTS times without a result appearing is recorded as a
    failed evaluation and the search goes on; a run that has lost more than `max_failed`
    evaluations so stops with a one-line error. Without it, a step never writes unless it folds,
    so stepping by hand to look at the pending work changes nothing.
    """
    config = run.config
    # Resolving them reads every stage's profile: only a step that starts or advances the search
    # does, not the many that find work still outstanding.
    readings: tuple[str, ...] = ()
    for _ in range(MAX_CAS_RETRIES):
        state, etag = _read_state(run, config)
        if state is None:
            readings = readings or gradient_readings(config)
            state = start(config, readings)
            for c in state.candidates:
                run.put_genome(Genome.from_json(c.genome))
        _check_budget(run, state, max_failed)
        outcomes: dict[str, Outcome] = {}
        if state.pending is not None:
            missing = []
            for slot in state.pending.slots:
                record = run.result(state.pending.stage, slot.id)
                if record is None:
                    missing.append(slot)
                else:
                    outcomes[slot.id] = Outcome(record.status, record.fitness)
            if missing and max_failed is None:
                ids = [s.id for s in missing][:max_genomes]
                return StepResult(state.pending.index, state.pending.stage, ids, False, state)
            if missing:
                state = state.model_copy(deep=True)
                handout = _count_handouts(run, config, state, missing, outcomes, max_genomes)
                if handout or state.counters.lost > max_failed:
                    # Commit the count before anything else, so a resubmitted run knows it.
                    if not _swap(run, state, etag):
                        continue
                    _check_budget(run, state, max_failed)
                    return StepResult(state.pending.index, state.pending.stage, handout, False, state)
        elif state.done:
            return StepResult(None, None, [], True, state)
        readings = readings or gradient_readings(config)
        new = advance(state, config, outcomes, readings)
        if new.pending is not None:
            _prepare(run, new.pending)
            todo = [s for s in new.pending.slots if not s.reused_from][:max_genomes]
            if max_failed is not None:
                for slot in todo:
                    slot.handouts += 1
        if not _swap(run, new, etag):
            continue  # another controller moved first: look again
        if new.pending is None:
            return StepResult(None, None, [], new.done, new)
        if not todo:
            continue  # everything was reused: fold it at once
        log.info("batch %d (%s, %s): %d to evaluate, %d reused", new.pending.index,
                 new.pending.phase, new.pending.stage, len(todo),
                 sum(1 for s in new.pending.slots if s.reused_from))
        return StepResult(new.pending.index, new.pending.stage, [s.id for s in todo], False, new)
    raise NlfsError(f"{run.uri}: state.json kept changing under {MAX_CAS_RETRIES} attempts")


def _read_state(run: Run, config: SearchConfig) -> tuple[State | None, str | None]:
    """The state and its etag (None, None before the first step), refused if another config's."""
    state, etag = run.read_state()
    if state is not None and state.config_hash != config.hash:
        raise NlfsError(f"{run.uri}: state.json belongs to another config "
                        f"({state.config_hash}, config is {config.hash})")
    return state, etag


def _swap(run: Run, state: State, etag: str | None) -> bool:
    """Compare-and-swap the state; False if another controller wrote it first."""
    try:
        run.store.compare_and_swap(layout.state_key(), state.to_json().encode(), etag)
    except ConflictError:
        return False
    return True


def check_failure_budget(run: Run, max_failed: int) -> State | None:
    """Read-only: raise FailureBudgetExhausted if the run's search stopped on its failure budget.

    The Argo Workflow's exit handler asks this, so that the stop's reason becomes the Workflow's
    message. Returns the state (None before the first step); a run that does not exist is an error."""
    state, _ = _read_state(run, run.config)
    if state is not None:
        _check_budget(run, state, max_failed)
    return state


def _check_budget(run: Run, state: State, max_failed: int | None) -> None:
    lost = state.counters.lost
    if max_failed is not None and lost > max_failed:
        raise FailureBudgetExhausted(
            f"failure budget exhausted: {lost} evaluations of {run.uri} produced no result after "
            f"{MAX_HANDOUTS} hand-outs each (budget {max_failed}); see their results/<stage>/<id>.json "
            f"records, fix the cause, and resubmit with a larger budget")


def _count_handouts(run: Run, config: SearchConfig, state: State, missing: list[Slot],
                    outcomes: dict[str, Outcome], max_genomes: int | None) -> list[str]:
    """In `state` (a copy): record as failed the missing genomes handed out MAX_HANDOUTS times
    (adding their outcomes), and count one more hand-out for those handed out now (returned)."""
    handout: list[str] = []
    stage = state.pending.stage
    missing_ids = {m.id for m in missing}
    for slot in state.pending.slots:
        if slot.id not in missing_ids:
            continue
        if slot.handouts >= MAX_HANDOUTS:
            record = _lost_record(run, config, stage, slot)
            outcomes[slot.id] = Outcome(record.status, record.fitness)
            state.counters.lost += 1
            log.warning("genome %s: no %s result after %d hand-outs; recorded as failed",
                        slot.id, stage, slot.handouts)
        elif max_genomes is None or len(handout) < max_genomes:
            slot.handouts += 1
            handout.append(slot.id)
    return handout


def _lost_record(run: Run, config: SearchConfig, stage: str, slot: Slot) -> ResultRecord:
    """Write (create-only) the `failed` record of a genome whose evaluations never reported."""
    profile = stage_profile(config, stage)
    record = ResultRecord(
        genome_id=slot.id, stage=stage, profile=profile.name, profile_hash=profile.hash, status="failed",
        reason=f"no result after {slot.handouts} hand-outs: every evaluation of it failed "
               f"(pods killed, evicted or crashing)")
    if run.put_result(record):
        return record
    theirs = run.result(stage, slot.id)
    if theirs is None:
        raise NlfsError(f"{run.uri}/{layout.result_key(stage, slot.id)} can be neither created nor read "
                        f"(is something else stored under that key?); remove it to let the search go on")
    return theirs


def _prepare(run: Run, batch: Batch) -> None:
    """Write what the batch needs before the state names it; apply the equivalence cache."""
    for slot in batch.slots:
        genome = Genome.from_json(slot.genome)
        run.put_genome(genome)
        if batch.phase == "evolve":
            slot.reused_from = _reuse(run, batch.stage, slot, genome)
    run.put_batch(batch)


def _reuse(run: Run, stage: str, slot: Slot, genome: Genome) -> str | None:
    """The id whose result this child reuses, if an equivalent genome was evaluated before."""
    existing = run.result(stage, slot.id)
    if existing is not None:
        # The very same function came back and its result stands; or a controller killed
        # between preparing this batch and committing it already wrote the copy below.
        return existing.reused_from or slot.id
    key = layout.fec_key(fingerprint(genome))
    if run.store.put_if_absent(key, FecEntry(genome=slot.id).model_dump_json().encode()):
        return None
    try:
        first = parse_stored_json(FecEntry, run.store.get(key).data, f"{run.uri}/{key}").genome
    except NotFoundError:
        return None
    except NlfsError as err:  # the cache only saves work: a damaged entry means no reuse, said once
        log.warning("%s; not reusing through it", err)
        return None
    if first == slot.id:
        return None
    earlier = run.result(stage, first)
    if earlier is None:
        return None
    copy = earlier.model_copy(update={"genome_id": slot.id, "loss": "", "reused_from": first,
                                      "seconds": 0.0})
    run.put_result(copy)
    return first
