"""The profiles a search's stages train with: resolved from its config, validated as a whole.

`nlfs init` calls `stage_profiles` so that a config naming an unknown profile, an override that
does not apply or a value out of range is refused before anything is stored; evaluations call
`stage_profile` for the one stage they run. No torch here: profiles are plain data.
"""

from __future__ import annotations

from nlfs.errors import NlfsError
from nlfs.evolution.config import SearchConfig, StageProfile
from nlfs.train.registry import AUGMENTATIONS, DATASETS, MODELS
from nlfs.train.profiles import Profile, apply_overrides, builtin_profiles, load_profile, profile_from_dict


def override_text(value) -> str:
    """A config override value (str, int, float, bool) as the `--set` text that parses back to it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve(entry: StageProfile, stage: str, overrides: dict[str, str] | None = None) -> Profile:
    """The profile of one stage entry, with the config's overrides and then `overrides` applied."""
    merged = {k: override_text(v) for k, v in entry.overrides.items()}
    merged.update(overrides or {})
    where = f"stages.{stage}"
    try:
        if isinstance(entry.profile, dict):
            base_name = entry.profile.get("base")
            if base_name is not None and base_name not in builtin_profiles():
                raise NlfsError(f"an inline profile's base must be a built-in profile, not {base_name!r}")
            base = profile_from_dict(entry.profile, source=f"{where}.profile")
            return apply_overrides(base, merged, source=f"{where}.profile")
        if entry.profile not in builtin_profiles():
            raise NlfsError(f"unknown profile {entry.profile!r} (built in: {', '.join(builtin_profiles())}; "
                            f"a profile file is embedded when the config file is loaded)")
        return load_profile(entry.profile, merged)
    except NlfsError as err:
        raise NlfsError(f"{where}: {err}") from None


def stage_profile(config: SearchConfig, stage: str, overrides: dict[str, str] | None = None) -> Profile:
    """The profile `config` assigns to `stage`; NlfsError if the config has no such stage."""
    if stage not in config.stages:
        raise NlfsError(f"stage {stage!r} is not in the run's config (stages: {', '.join(config.stages)})")
    return resolve(config.stages[stage], stage, overrides)


def stage_profiles(config: SearchConfig) -> dict[str, Profile]:
    """Every stage's profile; the first one that does not resolve is a one-line NlfsError
    naming its stage."""
    return {stage: resolve(entry, stage) for stage, entry in config.stages.items()}


def validate_stages(config: SearchConfig) -> dict[str, Profile]:
    """`stage_profiles`, each also naming only registered parts (model, dataset, augmentation):
    what `nlfs init` checks before it stores anything. Looking parts up imports the training
    code (torch), so steps that only need the profiles call `stage_profiles`."""
    profiles = stage_profiles(config)
    for stage, profile in profiles.items():
        for registry, name in ((MODELS, profile.model.name), (DATASETS, profile.dataset.name),
                               (AUGMENTATIONS, profile.augment.name)):
            if name not in registry:
                raise NlfsError(f"stages.{stage}: profile {profile.name!r} names an unknown "
                                f"{registry.kind} {name!r} (known: {', '.join(registry.names())})")
    return profiles


def gradient_readings(config: SearchConfig) -> tuple[str, ...]:
    """How the stages' training reads a genome's log(p) (`loss.inputs`), each once: the integrity
    check's gradient test mirrors every one of them."""
    return tuple(sorted({profile.loss.inputs for profile in stage_profiles(config).values()}))
