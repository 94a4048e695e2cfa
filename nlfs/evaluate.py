"""One evaluation: a loss plus a profile in, a result record (`nlfs.result/v1`) out.

The same function runs in Argo pods, in the local executor's worker processes and behind
`nlfs evaluate`. A loss that cannot learn is a status in the record, never an exception;
only user errors (unknown profile parts, unknown loss names) raise NlfsError.
"""

from __future__ import annotations

import platform
import time
from typing import Callable

import torch
from torch import nn

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
    from nlfs.train.data import load_dataset
    from nlfs.train.loop import Runtime, train

    started = time.monotonic()
    module, text, default_id = resolve_loss(loss, profile.loss)
    genome_id = genome_id or default_id
    seed = profile.seed if seed is None else seed
    configure_threads(profile)
    runtime = Runtime.resolve(profile.runtime)
    data = load_dataset(profile.dataset, runtime.device)
    outcome = train(profile, data, module.to(runtime.device), seed=seed, runtime=runtime, log=log,
                    label=genome_id)
    return ResultRecord(
        genome_id=genome_id, loss=text, stage=stage, profile=profile.name, profile_hash=profile.hash,
        status=outcome.status, fitness=outcome.fitness, reason=outcome.reason, epochs=outcome.epochs,
        seconds=round(time.monotonic() - started, 3), device=runtime.describe(), seed=seed,
        versions=versions(),
    )


# ---------------------------------------------------------------------------------------------
# evaluation inside a run's store (Argo pods, the local executor, `nlfs evaluate --run`)


def profile_for_stage(store, stage: str, overrides: dict[str, str] | None = None) -> Profile:
    """The profile a run's config assigns to `stage` (`stages.<stage>` in config.yaml: a profile
    name plus field overrides), with `overrides` applied on top."""
    from nlfs.errors import NlfsError
    from nlfs.evolution.config import parse_config
    from nlfs.store import NotFoundError, layout
    from nlfs.train.profiles import load_profile

    try:
        text = store.get(layout.config_key()).data
    except NotFoundError:
        raise NlfsError(f"{store.uri}: no {layout.config_key()}; give --profile or initialise the run") from None
    config = parse_config(text, source=f"{store.uri}/{layout.config_key()}")
    if stage not in config.stages:
        raise NlfsError(f"stage {stage!r} is not in the run's config (stages: {', '.join(config.stages)})")
    entry = config.stages[stage]
    merged = {k: _override_text(v) for k, v in entry.overrides.items()}
    merged.update(overrides or {})
    return load_profile(entry.profile, merged)


def _override_text(value) -> str:
    """A config override value (str, int, float, bool) as the `--set` text that parses back to it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def evaluate_in_run(store, stage: str, genome_ids: list[str], profile: Profile, *, seed: int | None = None,
                    log: Callable[[str], None] | None = None) -> list[ResultRecord]:
    """Evaluate genomes of a run and write each record create-only to results/<stage>/<id>.json.

    A result already in the store is skipped (a retried pod repeats no work) and not returned;
    an unreadable genome is a user error (NlfsError) raised before any training starts.
    """
    from nlfs.errors import NlfsError
    from nlfs.genome import Genome
    from nlfs.store import NotFoundError, layout

    layout.validate_stage(stage)
    say = log or (lambda line: None)
    todo: list[tuple[str, Genome]] = []
    for genome_id in dict.fromkeys(genome_ids):  # once each, in order
        key = layout.result_key(stage, genome_id)
        if store.exists(key):
            say(f"genome {genome_id} skipped: {key} exists")
            continue
        try:
            blob = store.get(layout.genome_key(genome_id))
        except NotFoundError:
            raise NlfsError(f"genome {genome_id} is not in {store.uri} ({layout.genome_key(genome_id)})") from None
        source = f"{store.uri}/{layout.genome_key(genome_id)}"
        todo.append((genome_id, Genome.from_json(blob.data, source=source).validate(source=source)))
    records = []
    for genome_id, genome in todo:
        record = evaluate(genome, profile, genome_id=genome_id, stage=stage, seed=seed, log=log)
        key = layout.result_key(stage, genome_id)
        if store.put_if_absent(key, record.to_json().encode()):
            records.append(record)
        else:
            say(f"genome {genome_id}: {key} was written by another worker meanwhile; kept theirs")
    return records
