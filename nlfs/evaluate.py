"""One evaluation: a loss plus a profile in, a result record (`nlfs.result/v1`) out.

The same function runs in Argo pods, in the local executor's worker processes and behind
`nlfs evaluate`. A loss that cannot learn is a status in the record, never an exception;
only user errors (unknown profile parts, unknown loss names) raise NlfsError.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from nlfs.formats import check_seed
from nlfs.result import ResultRecord
from nlfs.train.profiles import LossSpec, Profile


def resolve_loss(loss, spec: LossSpec | None = None) -> tuple[nn.Module, str, str]:
    """(module, text for people, default genome id) of a Genome, a loss name/path or a module.

    A genome (also one named by the registry) is compiled as the profile's `loss` section says
    (`spec`; None = its defaults); a module, or a module-only registry loss, computes its own.
    """
    from nlfs.genome import Genome, compile_genome, infix

    spec = spec or LossSpec()
    options = {"inputs": spec.inputs, "fuse_cross_entropy": spec.fuse_cross_entropy}
    if isinstance(loss, Genome):
        return compile_genome(loss, **options), infix(loss), loss.id
    if isinstance(loss, str):
        from nlfs import losses

        try:
            genome = losses.get_genome(loss)
        except Exception:  # a module-only loss, or unknown: load_loss says which
            return losses.load_loss(loss), loss, loss
        return compile_genome(genome, **options), loss, genome.id
    if isinstance(loss, nn.Module):
        name = type(loss).__name__
        return loss, name, name
    raise TypeError(f"loss must be a Genome, a name or path, or an nn.Module, not {type(loss).__name__}")


def versions() -> dict[str, str]:
    import torchvision

    from nlfs import __version__

    return {"nlfs": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def configure_threads(profile: Profile) -> None:
    """Use the profile's thread count so that parallel workers do not oversubscribe the cores."""
    threads = profile.runtime.threads
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def evaluate(loss, profile: Profile, *, genome_id: str | None = None, stage: str = "main",
             seed: int | None = None, log: Callable[[str], None] | None = None) -> ResultRecord:
    """Train the profile's model with `loss` and return the record; fitness = max val accuracy.

    `loss` is an `nlfs.genome.Genome`, a registry name or genome file path (`nlfs.load_loss`),
    or an `nn.Module` called as loss(logits [B, C], target [B] int64 or [B, C] float).
    `log` receives one line per epoch ("genome <id> epoch <e> train_acc .. val_acc ..").
    """
    from nlfs.train.loop import train

    started = time.monotonic()
    seed = check_seed(profile.seed if seed is None else seed)
    module, text, default_id = resolve_loss(loss, profile.loss)
    genome_id = genome_id or default_id
    runtime, data = _device_and_data(profile)
    outcome = train(profile, data, module.to(runtime.device), seed=seed, runtime=runtime, log=log,
                    label=genome_id)
    return _record(genome_id, text, stage, profile, outcome, round(time.monotonic() - started, 3), runtime, seed)


def _device_and_data(profile: Profile):
    """What every training under `profile` starts from: torch's threads set, the resolved
    runtime (`nlfs.train.loop.Runtime`) and the dataset on its device."""
    from nlfs.train.data import load_dataset
    from nlfs.train.loop import Runtime

    configure_threads(profile)
    runtime = Runtime.resolve(profile.runtime)
    return runtime, load_dataset(profile.dataset, runtime.device)


def _record(genome_id: str, text: str, stage: str, profile: Profile, outcome, seconds: float, runtime,
            seed: int) -> ResultRecord:
    """The record of one training (`nlfs.train.loop.TrainOutcome`), solo or in a cohort alike."""
    return ResultRecord(
        genome_id=genome_id, loss=text, stage=stage, profile=profile.name, profile_hash=profile.hash,
        status=outcome.status, fitness=outcome.fitness, reason=outcome.reason, epochs=outcome.epochs,
        seconds=seconds, device=runtime.describe(), seed=seed, versions=versions(),
    )


def evaluate_many(losses: list[tuple[str, object]], profile: Profile, *, slots: int, stage: str = "main",
                  seed: int | None = None, log: Callable[[str], None] | None = None,
                  on_record: Callable[[ResultRecord], None] | None = None) -> list[ResultRecord]:
    """`evaluate` for each (genome id, loss), trained `slots` at a time in one cohort on one
    device (nlfs.train.cohort; a one-stage profile). Each record has the form of a solo
    evaluation's; `on_record` receives each as its training ends. Records in the order given."""
    from nlfs.train.cohort import CohortJob, train_cohort

    seed = check_seed(profile.seed if seed is None else seed)
    resolved = [(genome_id, *resolve_loss(loss, profile.loss)) for genome_id, loss in losses]
    runtime, data = _device_and_data(profile)
    jobs = [CohortJob(genome_id or default_id, module.to(runtime.device), seed)
            for genome_id, module, _, default_id in resolved]
    records: dict[int, ResultRecord] = {}

    def done(result) -> None:
        job, text = jobs[result.index], resolved[result.index][2]
        record = _record(job.label, text, stage, profile, result.outcome, result.seconds, runtime, seed)
        records[result.index] = record
        if on_record is not None:
            on_record(record)

    train_cohort(profile, data, jobs, slots=slots, runtime=runtime, log=log, on_result=done)
    return [records[i] for i in range(len(jobs))]


def cohort_slots(profile: Profile, requested: int | str | None, waiting: int,
                 log: Callable[[str], None] | None = None) -> int:
    """How many genomes to train at once under `profile`: `requested` (the command line's
    --cohort) or else the profile's `runtime.cohort`, never more than are `waiting`."""
    from nlfs.train.cohort_size import cohort_size
    from nlfs.train.data import load_dataset
    from nlfs.train.loop import Runtime

    choice = profile.runtime.cohort if requested is None else requested
    if waiting <= 1 or choice == 1:
        return 1
    runtime = Runtime.resolve(profile.runtime)
    data = load_dataset(profile.dataset, runtime.device) if choice == "auto" and runtime.device.type == "cuda" else None
    slots, why = cohort_size(profile, runtime, choice, data)
    if why and log is not None:
        log(f"cohort of {slots} for profile {profile.name}: {why}")
    return max(1, min(slots, waiting))


# ---------------------------------------------------------------------------------------------
# evaluation inside a run's store (Argo pods, the local executor, `nlfs evaluate --run`)


@dataclass(frozen=True)
class StagePlan:
    """What evaluating one genome for a stage trains: `profile`, after `gate` when there is one.

    The main stage of a gated search is the authors' main fitness (`fitness_function_resnet_rand_aug`
    in fitness_functions.py): a short gate run first, and the main run only if the gate passes.
    """

    profile: Profile
    gate: Profile | None = None


def stage_plan(store, stage: str, overrides: dict[str, str] | None = None) -> StagePlan:
    """The plan a run's config assigns to `stage` (`stages.<stage>` in config.yaml), with
    `overrides` applied on top of the stage's profile (not the gate's). The main stage of a
    config with a `gate` stage is gated."""
    from nlfs.evolution.stages import stage_profile
    from nlfs.runs import Run

    config = Run(store).config
    profile = stage_profile(config, stage, overrides)
    gate = stage_profile(config, GATE_STAGE) if stage == "main" and config.gated else None
    return StagePlan(profile, gate)


GATE_STAGE = "gate"


def gate_failed_record(genome_id: str, text: str, stage: str, profile: Profile, gate: ResultRecord) -> ResultRecord:
    """The main stage's record of a genome whose gate failed: never trained, no fitness."""
    return ResultRecord(
        genome_id=genome_id, loss=text, stage=stage, profile=profile.name, profile_hash=profile.hash,
        status="gate_failed", fitness=None, reason=f"gate ({gate.profile}) {gate.status}: {gate.reason}",
        seconds=0.0, device=gate.device, seed=gate.seed, versions=gate.versions)


def _gate_verdict(gate: ResultRecord, stage: str, profile: Profile, say: Callable[[str], None]) -> ResultRecord | None:
    """Say how `gate` ended; the main stage's `gate_failed` record if it failed, else None."""
    say(f"genome {gate.genome_id} gate {gate.status}" + (f" ({gate.reason})" if gate.reason else ""))
    return None if gate.usable else gate_failed_record(gate.genome_id, gate.loss, stage, profile, gate)


def _store_main(run, record: ResultRecord, say: Callable[[str], None]) -> bool:
    """Store a main-stage record create-only; False, saying so, if another worker's came first."""
    from nlfs.store import layout

    if _store_once(run, record) is record:
        return True
    say(f"genome {record.genome_id}: {layout.result_key(record.stage, record.genome_id)} was written by another "
        f"worker meanwhile; kept theirs")
    return False


def evaluate_in_run(store, stage: str, genome_ids: list[str], plan: StagePlan | Profile, *,
                    seed: int | None = None, log: Callable[[str], None] | None = None,
                    cohort: int | str | None = None) -> list[ResultRecord]:
    """Evaluate genomes of a run and write each record create-only to results/<stage>/<id>.json.

    With a gate, the gate's record goes to results/gate/<id>.json first (a retried pod reuses
    it), and the main run is trained only if the gate passed. A result already in the store is
    skipped (a retried pod repeats no work) and not returned. Every genome is read and checked
    against its id before any training starts (a planted file is a user error, never trained).

    `cohort` (None: each profile's `runtime.cohort`; "auto" or a count) trains several genomes
    at once on the device: every gate first, then the main runs of those that passed, each
    record written as its training ends.
    """
    from nlfs.runs import Run
    from nlfs.store import layout

    plan = plan if isinstance(plan, StagePlan) else StagePlan(plan)
    layout.validate_stage(stage)
    run = Run(store)
    say = log or (lambda line: None)
    todo = []
    for genome_id in dict.fromkeys(genome_ids):  # once each, in order
        if run.result(stage, genome_id) is not None:
            say(f"genome {genome_id} skipped: {layout.result_key(stage, genome_id)} exists")
            continue
        todo.append((genome_id, run.genome(genome_id).validate(source=f"{run.uri}/{layout.genome_key(genome_id)}")))
    gate_slots = 1 if plan.gate is None else cohort_slots(plan.gate, cohort, len(todo), log)
    main_slots = cohort_slots(plan.profile, cohort, len(todo), log)
    if max(gate_slots, main_slots) > 1:
        return _evaluate_cohorts(run, stage, todo, plan, (gate_slots, main_slots), seed, log)
    records = []
    for genome_id, genome in todo:
        record = None
        if plan.gate is not None:
            gate = run.result(GATE_STAGE, genome_id)
            if gate is None:
                gate = _store_once(run, evaluate(genome, plan.gate, genome_id=genome_id, stage=GATE_STAGE,
                                                 seed=seed, log=log))
            record = _gate_verdict(gate, stage, plan.profile, say)
        if record is None:
            record = evaluate(genome, plan.profile, genome_id=genome_id, stage=stage, seed=seed, log=log)
        if _store_main(run, record, say):
            records.append(record)
    return records


def _store_once(run, record: ResultRecord) -> ResultRecord:
    """Write `record` create-only and return it, or return the record another worker wrote first.

    A key that can be neither created nor read (a stray object under it, a directory in its place)
    is an error here: returning quietly would hand the same genome out again forever.
    """
    from nlfs.errors import NlfsError
    from nlfs.store import layout

    if run.put_result(record):
        return record
    theirs = run.result(record.stage, record.genome_id)
    if theirs is None:
        key = layout.result_key(record.stage, record.genome_id)
        raise NlfsError(f"{run.uri}/{key} can be neither created nor read (is something else stored "
                        f"under that key?); remove it to let genome {record.genome_id} be evaluated")
    return theirs


def _evaluate_cohorts(run, stage: str, todo: list, plan: StagePlan, slots: tuple[int, int], seed: int | None,
                      log: Callable[[str], None] | None) -> list[ResultRecord]:
    """evaluate_in_run's work with cohorts of (gate, main) `slots` at most: the gates that are
    missing, then the main runs of the genomes whose gate passed; each record stored as soon as
    its training ends."""
    say = log or (lambda line: None)
    mine: dict[str, ResultRecord] = {}  # main-stage records this call stored

    def store_main(record: ResultRecord) -> None:
        if _store_main(run, record, say):
            mine[record.genome_id] = record

    def gate_known(gate: ResultRecord) -> None:
        failed = _gate_verdict(gate, stage, plan.profile, say)
        if failed is not None:
            store_main(failed)

    passed = todo
    if plan.gate is not None:
        gates = {genome_id: run.result(GATE_STAGE, genome_id) for genome_id, _ in todo}
        for genome_id, _ in todo:
            if gates[genome_id] is not None:
                gate_known(gates[genome_id])  # a retried pod reuses it
        missing = [(genome_id, genome) for genome_id, genome in todo if gates[genome_id] is None]

        def gate_done(gate: ResultRecord) -> None:
            gates[gate.genome_id] = _store_once(run, gate)
            gate_known(gates[gate.genome_id])

        _train(missing, plan.gate, GATE_STAGE, slots[0], seed, log, gate_done)
        passed = [(genome_id, genome) for genome_id, genome in todo if gates[genome_id].usable]
    _train(passed, plan.profile, stage, slots[1], seed, log, store_main)
    return [mine[genome_id] for genome_id, _ in todo if genome_id in mine]


def _train(todo: list, profile: Profile, stage: str, slots: int, seed: int | None, log, on_record) -> None:
    """Train `todo` (genome id, genome) under `profile`, in a cohort of at most `slots` where that
    is more than one genome, else one after another; `on_record` receives each record as its
    training ends."""
    slots = min(slots, len(todo))  # cohort_slots for every genome waiting; fewer may have passed
    if slots > 1:
        evaluate_many(todo, profile, slots=slots, stage=stage, seed=seed, log=log, on_record=on_record)
        return
    for genome_id, genome in todo:
        on_record(evaluate(genome, profile, genome_id=genome_id, stage=stage, seed=seed, log=log))
