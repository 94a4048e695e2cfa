"""Aging evolution as pure transitions: no store, no training, only states in and states out."""

import numpy as np
import pytest

from nlfs.evolution.population import Outcome, advance, age, random_candidates, start, tournament
from nlfs.evolution.state import Member
from nlfs.genome import Genome, check
from searchkit import fast_config


def _member(i, birth, fitness):
    return Member(id=f"{i:016x}", birth=birth, fitness=fitness, genome={})


def _score(state, fitness_of=lambda slot: 0.5, usable=lambda slot: True):
    return {s.id: Outcome("ok" if usable(s) else "rejected", fitness_of(s) if usable(s) else None, usable(s))
            for s in state.pending.slots}


def _fitness(slot):  # a deterministic stand-in for training
    return int(slot.id[:6], 16) / 0xFFFFFF


def _run(config, usable=lambda s: True, max_steps=1000):
    state = advance(start(config), config, {})
    for _ in range(max_steps):
        if state.done:
            return state
        state = advance(state, config, _score(state, _fitness, usable))
    raise AssertionError("search did not finish")


def test_tournament_draws_with_replacement_and_takes_the_fittest():
    pop = [_member(i, 0, f) for i, f in enumerate([0.1, 0.9, 0.5])]
    # A tournament as large as the population still can miss members when drawing with replacement.
    winners = {tournament(pop, 3, np.random.default_rng(s)).fitness for s in range(200)}
    assert winners == {0.1, 0.5, 0.9}
    assert tournament(pop, 50, np.random.default_rng(0)).fitness == 0.9


def test_oldest_leaves_and_worst_breaks_ties_among_equally_old():
    pop = [_member(0, 0, 0.9), _member(1, 0, 0.2), _member(2, 0, 0.5), _member(3, 5, 0.1)]
    after = age(pop, _member(4, 6, 0.3), capacity=4)
    assert [m.id[-1] for m in after] == ["0", "2", "3", "4"]  # the worst of the birth-0 members left
    after = age(after, _member(5, 7, 0.3), capacity=4)
    assert [m.id[-1] for m in after] == ["0", "3", "4", "5"]


def test_random_candidates_are_checked_signed_and_distinct():
    config = fast_config(initial_candidates=20, population=4)
    genomes = random_candidates(config)
    assert len({g.id for g in genomes}) == 20
    for g in genomes:
        verdict = check(g)
        assert verdict.accepted and verdict.sign == g.sign


def test_initialisation_rescores_the_best_candidates_of_the_cheap_stage():
    config = fast_config(population=3, initial_candidates=6, initial_batch_size=6)
    state = advance(start(config), config, {})
    assert state.pending.phase == "initial" and len(state.pending.slots) == 6
    state = advance(state, config, _score(state, _fitness))
    assert state.pending.phase == "rescore" and state.pending.stage == "main"
    best3 = sorted((s for s in start(config).candidates), key=lambda c: -_fitness(c))[:3]
    assert [s.id for s in state.pending.slots] == [c.id for c in best3]
    state = advance(state, config, _score(state, _fitness))
    assert state.phase == "evolve" and len(state.population) == 3
    assert all(m.birth == 0 for m in state.population)


def test_candidates_that_fail_the_cheap_stage_are_never_rescored():
    config = fast_config(population=3, initial_candidates=6, initial_batch_size=6)
    state = advance(start(config), config, {})
    failing = {s.id for s in state.pending.slots[:4]}
    state = advance(state, config, _score(state, _fitness, usable=lambda s: s.id not in failing))
    assert {s.id for s in state.pending.slots}.isdisjoint(failing)
    assert len(state.pending.slots) == 2  # only two learned anything


def test_a_whole_search_spends_exactly_the_budget_and_keeps_the_population_size():
    config = fast_config(budget=12, batch_size=3)
    state = _run(config)
    c = state.counters
    assert c.children_started == c.children_done == 12
    assert c.evaluations == config.initial_candidates + config.population + 12
    assert len(state.population) == config.population
    assert state.best.fitness == max(m.fitness for m in state.top)


def test_batch_size_one_is_the_sequential_algorithm():
    config = fast_config(batch_size=1, budget=5)
    state = advance(start(config), config, {})
    sizes = []
    while not state.done:
        if state.pending.phase == "evolve":
            sizes.append(len(state.pending.slots))
        state = advance(state, config, _score(state, _fitness))
    assert sizes == [1] * 5


def test_failed_children_are_remutated_up_to_the_limit_then_discarded():
    config = fast_config(budget=2, batch_size=2, max_remutations=3)
    state = advance(start(config), config, {})
    while state.pending.phase != "evolve":
        state = advance(state, config, _score(state, _fitness))
    before = [m.id for m in state.population]
    attempts = []
    while not state.done:
        attempts.append(sorted(s.attempt for s in state.pending.slots))
        state = advance(state, config, _score(state, _fitness, usable=lambda s: False))
    assert attempts == [[0, 0], [1, 1], [2, 2], [3, 3]]
    assert state.counters.discarded == 2 and state.counters.remutations == 6
    assert [m.id for m in state.population] == before  # nothing joined, nobody was pushed out


def test_children_differ_from_the_population_and_from_each_other():
    config = fast_config(budget=6, batch_size=6)
    state = advance(start(config), config, {})
    while state.pending.phase != "evolve":
        state = advance(state, config, _score(state, _fitness))
    ids = [s.id for s in state.pending.slots]
    assert len(set(ids)) == 6 and set(ids).isdisjoint(m.id for m in state.population)
    for slot in state.pending.slots:
        assert Genome.from_json(slot.genome).id == slot.id


def test_same_seed_same_search_other_seed_other_search():
    a, b = _run(fast_config()), _run(fast_config())
    assert a == b
    assert _run(fast_config(seed=8)).population != a.population


def test_advance_does_not_modify_its_input():
    config = fast_config()
    state = advance(start(config), config, {})
    copy = state.model_copy(deep=True)
    advance(state, config, _score(state, _fitness))
    assert state == copy


def test_a_batch_needs_every_outcome():
    config = fast_config()
    state = advance(start(config), config, {})
    partial = dict(list(_score(state).items())[:1])
    with pytest.raises(KeyError):
        advance(state, config, partial)
