"""One controller step against a run's store: fold the finished batch, propose the next.

Idempotent and safe under concurrency: the state moves only by compare-and-swap, and what
is written before it (genomes, batch files, reused results) is create-only and the same for
every controller that computes it, because the transition is deterministic.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

import numpy as np

from nlfs.errors import NlfsError
from nlfs.evolution.config import SearchConfig
from nlfs.evolution.population import Outcome, advance, start
from nlfs.evolution.state import Batch, Slot, State
from nlfs.genome.graph import Genome
from nlfs.genome.integrity import phenotype, probe_curve
from nlfs.runs import Run
from nlfs.store import ConflictError, NotFoundError, layout

log = logging.getLogger("nlfs.controller")
MAX_CAS_RETRIES = 50


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
    """Store the config once. True if this call created the run; the same config again is a no-op."""
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


def step(run: Run) -> StepResult:
    """Advance the run by at most one batch; returns what remains to evaluate."""
    config = run.config
    for _ in range(MAX_CAS_RETRIES):
        state, etag = run.read_state()
        if state is None:
            state = start(config)
            for c in state.candidates:
                run.put_genome(Genome.from_json(c.genome))
        elif state.config_hash != config.hash:
            raise NlfsError(f"{run.uri}: state.json belongs to another config "
                            f"({state.config_hash}, config is {config.hash})")
        outcomes: dict[str, Outcome] = {}
        if state.pending is not None:
            missing = []
            for slot in state.pending.slots:
                record = run.result(state.pending.stage, slot.id)
                if record is None:
                    missing.append(slot.id)
                else:
                    outcomes[slot.id] = Outcome(record.status, record.fitness, record.usable)
            if missing:
                return StepResult(state.pending.index, state.pending.stage, missing, False, state)
        elif state.done:
            return StepResult(None, None, [], True, state)
        new = advance(state, config, outcomes)
        if new.pending is not None:
            _prepare(run, new.pending)
        try:
            run.store.compare_and_swap(layout.state_key(), new.to_json().encode(), etag)
        except ConflictError:
            continue  # another controller moved first: look again
        if new.pending is None:
            return StepResult(None, None, [], new.done, new)
        todo = [s.id for s in new.pending.slots if not s.reused_from]
        if not todo:
            continue  # everything was reused: fold it at once
        log.info("batch %d (%s, %s): %d to evaluate, %d reused", new.pending.index,
                 new.pending.phase, new.pending.stage, len(todo), len(new.pending.slots) - len(todo))
        return StepResult(new.pending.index, new.pending.stage, todo, False, new)
    raise NlfsError(f"{run.uri}: state.json kept changing under {MAX_CAS_RETRIES} attempts")


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
    if run.result(stage, slot.id) is not None:
        return slot.id  # the very same function came back: its result stands
    key = layout.fec_key(fingerprint(genome))
    if run.store.put_if_absent(key, json.dumps({"genome": slot.id}).encode()):
        return None
    try:
        first = json.loads(run.store.get(key).data)["genome"]
    except (NotFoundError, ValueError, KeyError, TypeError):
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
