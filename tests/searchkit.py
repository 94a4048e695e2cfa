"""Small searches for tests: a config that runs in seconds on the `tiny` profiles."""

from __future__ import annotations

from nlfs.evolution.config import SearchConfig, StageProfile


def fast_config(**changes) -> SearchConfig:
    """A whole search in ~10-30 s on 2 cores: few candidates, short training (our test sizes),
    with the paper's three stages: initial, the tiny gate, main."""
    fields = dict(
        population=4, tournament=2, initial_candidates=8, budget=8, batch_size=2,
        initial_batch_size=3, seed=7,
        stages={"initial": StageProfile(profile="tiny-prefilter", overrides={"epochs": 2}),
                "gate": StageProfile(profile="tiny-gate"),
                "main": StageProfile(profile="tiny", overrides={"epochs": 2})},
    )
    fields.update(changes)
    return SearchConfig(**fields)
