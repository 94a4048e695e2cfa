"""Aging evolution as pure transitions: no store, no training, only states in and states out.

The rules are the authors' (`GeneticAlgorithmRegularized` in loss_function_evolution.py,
METHOD.md 3): initial candidates that fail score 0 and stay candidates; the best are re-scored
by the gated main fitness; only a failed gate re-mutates a child, at most `max_trainings`
trainings; a child that fails them all scores 0 and is not inserted, yet everyone ages.
"""

import numpy as np
import pytest

from nlfs.evolution.population import Outcome, advance, age, random_candidates, start, tournament
from nlfs.evolution.state import Member
from nlfs.genome import Genome, check
from searchkit import fast_config


def _member(i, birth, fitness):
    return Member(id=f"{i:016x}", birth=birth, fitness=fitness, genome={})


def _fitness(slot):  # a deterministic stand-in for training
    return int(slot.id[:6], 16) / 0xFFFFFF


def _score(state, fitness_of=_fitness, status_of=lambda slot: "ok"):
    """The pending batch's outcomes: `status_of(slot)` decides, a fitness for scored statuses."""
    out = {}
    for s in state.pending.slots:
        status = status_of(s)
        scored = status in ("ok", "stopped", "diverged", "timeout")
        out[s.id] = Outcome(status, fitness_of(s) if scored else None)
    return out


def _run(config, status_of=lambda s: "ok", max_steps=1000):
    state = advance(start(config), config, {})
    for _ in range(max_steps):
        if state.done:
            return state
        state = advance(state, config, _score(state, _fitness, status_of))
    raise AssertionError("search did not finish")


def _to_evolve(config, fitness_of=_fitness):
    state = advance(start(config), config, {})
    while state.pending.phase != "evolve":
        state = advance(state, config, _score(state, fitness_of))
    return state


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


def test_random_candidates_are_checked_signed_and_distinct_by_id_only():
    config = fast_config(initial_candidates=20, population=4)
    genomes = random_candidates(config)
    assert len({g.id for g in genomes}) == 20
    for g in genomes:
        verdict = check(g)
        assert verdict.accepted and verdict.sign == g.sign


def test_initialisation_rescores_the_best_candidates_with_the_main_fitness():
    config = fast_config(population=3, initial_candidates=6, initial_batch_size=6)
    state = advance(start(config), config, {})
    assert state.pending.phase == "initial" and len(state.pending.slots) == 6
    state = advance(state, config, _score(state))
    assert state.pending.phase == "rescore" and state.pending.stage == "main"
    best3 = sorted((s for s in start(config).candidates), key=lambda c: -_fitness(c))[:3]
    assert [s.id for s in state.pending.slots] == [c.id for c in best3]
    state = advance(state, config, _score(state))
    assert state.phase == "evolve" and len(state.population) == 3
    assert all(m.birth == 0 for m in state.population)


def test_an_initial_candidate_that_fails_scores_0_and_can_still_be_picked():
    config = fast_config(population=3, initial_candidates=6, initial_batch_size=6)
    state = advance(start(config), config, {})
    failing = {s.id for s in state.pending.slots[:4]}
    state = advance(state, config, _score(state, status_of=lambda s: "rejected" if s.id in failing else "ok"))
    scored = {c.id: c.fitness for c in state.candidates}
    picked = [s.id for s in state.pending.slots]
    assert len(picked) == 3  # two that learned, and one of the failures at 0
    assert len(failing & set(picked)) == 1 and scored[next(iter(failing & set(picked)))] == 0.0


def test_a_member_whose_main_fitness_fails_stays_in_the_population_at_0():
    config = fast_config(population=3, initial_candidates=6, initial_batch_size=6)
    state = advance(start(config), config, {})
    state = advance(state, config, _score(state))
    first = state.pending.slots[0].id
    state = advance(state, config, _score(state, status_of=lambda s: "gate_failed" if s.id == first else "ok"))
    assert state.phase == "evolve" and len(state.population) == 3
    assert {m.id: m.fitness for m in state.population}[first] == 0.0
    assert state.counters.gate_failures == 1


def test_a_failed_gate_remutates_the_child_from_the_same_parent():
    config = fast_config(budget=1, batch_size=1)
    state = _to_evolve(config)
    child = state.pending.slots[0]
    state = advance(state, config, _score(state, status_of=lambda s: "gate_failed"))
    retry = state.pending.slots[0]
    assert (retry.child, retry.attempt, retry.parent) == (child.child, 1, child.parent)
    assert retry.id != child.id
    assert state.counters.remutations == 1 and state.counters.gate_failures == 1
    assert state.counters.children_done == 0


def test_a_stopped_main_run_keeps_its_fitness_and_joins():
    config = fast_config(budget=1, batch_size=1)
    state = _to_evolve(config)
    child = state.pending.slots[0].id
    state = advance(state, config, _score(state, lambda s: 0.61, lambda s: "stopped"))
    assert state.done and {m.id: m.fitness for m in state.population}.get(child) == 0.61
    assert state.counters.remutations == 0


@pytest.mark.parametrize("limit", [1, 3, 7])
def test_a_child_gets_at_most_max_trainings_trainings(limit):
    config = fast_config(budget=2, batch_size=2, max_trainings=limit)
    state = _to_evolve(config)
    attempts = []
    while not state.done:
        attempts.append(sorted(s.attempt for s in state.pending.slots))
        state = advance(state, config, _score(state, status_of=lambda s: "gate_failed"))
    assert attempts == [[k, k] for k in range(limit)]  # `limit` trainings per child in all
    assert state.counters.discarded == 2 and state.counters.remutations == 2 * (limit - 1)


def test_a_child_scoring_0_ages_the_population_without_joining_it():
    config = fast_config(budget=2, batch_size=1, max_trainings=1)
    state = _to_evolve(config)
    before = {m.id: m.birth for m in state.population}
    lost = state.pending.slots[0].id
    state = advance(state, config, _score(state, status_of=lambda s: "gate_failed"))
    assert {m.id: m.birth for m in state.population} == before  # nobody joined, nobody left
    assert state.counters.children_done == 1 and state.counters.discarded == 1
    # The clock moved: the next child is child 1, born after child 0's number was used up.
    nxt = state.pending.slots[0]
    assert nxt.child == 1
    state = advance(state, config, _score(state, lambda s: 0.99))
    joined = {m.id: m.birth for m in state.population}
    assert lost not in joined and joined[nxt.id] == 2 and len(joined) == config.population


def test_a_main_fitness_of_exactly_0_is_not_inserted_as_the_authors_do():
    config = fast_config(budget=1, batch_size=1)
    state = _to_evolve(config)
    child = state.pending.slots[0].id
    state = advance(state, config, _score(state, lambda s: 0.0))
    assert child not in {m.id for m in state.population} and state.counters.discarded == 1


def test_a_child_without_a_valid_mutant_uses_a_training_and_is_drawn_again():
    config = fast_config(budget=8, batch_size=8, max_mutation_attempts=1, max_trainings=50)
    state = _to_evolve(config)
    c = state.counters
    # With one draw per try, some tries find no valid mutant: each used a training, untrained.
    assert sum(s.attempt for s in state.pending.slots) == c.mutation_failures == c.remutations
    assert c.mutation_failures > 0


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
        state = advance(state, config, _score(state))
    assert sizes == [1] * 5


def test_children_differ_from_the_population_and_from_each_other():
    config = fast_config(budget=6, batch_size=6)
    state = _to_evolve(config)
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
    advance(state, config, _score(state))
    assert state == copy


def test_a_batch_needs_every_outcome():
    config = fast_config()
    state = advance(start(config), config, {})
    partial = dict(list(_score(state).items())[:1])
    with pytest.raises(KeyError):
        advance(state, config, partial)
