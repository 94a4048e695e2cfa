"""The planner (`nlfs transfer --plan`'s step) against real stores, with results written by hand.

No training here: each test writes the result records an evaluation would, so the protocol's
bookkeeping (folding, ranking, survivors, the grid, compare-and-swap) is tested on its own.
"""

from __future__ import annotations

import threading

import pytest

from nlfs.errors import NlfsError
from nlfs.evolution.state import State
from nlfs.notebook import RunReading as Run  # the run with its elimination and transfer readings
from nlfs.store import layout
from nlfs.transfer.plan import plan, read_state
from runkit import finish_units, synthetic_search, tiny_protocol


@pytest.fixture
def run(store) -> Run:
    r = Run(store)
    synthetic_search(r, evaluations=20, top=6)
    return r


def _etag(run: Run) -> str:
    return run.store.get(layout.protocol_state_key()).etag


def test_first_call_hands_out_phase_one_in_bounded_items(run):
    top = run.state().top
    p = plan(run, tiny_protocol(), workers=3)
    items = p.items(run.uri, genomes_per_item=2)
    assert not p.done and p.state.step == "eliminate" and p.state.phase == 1
    assert [c.id for c in p.state.candidates] == [m.id for m in top[:3]]
    assert [len(i["genomes"]) for i in items] == [2, 1]  # 3 of the 4 units (3 entrants + cross-entropy)
    for item in items:
        assert item["run"] == run.uri and item["batch"] == 1 and item["stage"] == "elim-1"
        assert item["profile"] == "tiny" and item["set"] == ["epochs=1"]
    ce = next(e.id for e in p.state.named if e.name == "cross_entropy")
    assert run.store.exists(layout.genome_key(ce))  # baselines are genomes of the run
    # Idempotent: nothing finished, so the same call plans the same and writes nothing.
    etag = _etag(run)
    again = plan(run, workers=3)
    assert again.items(run.uri, 2) == items and _etag(run) == etag


def test_protocol_runs_to_the_end_ranking_each_phase(run):
    protocol = tiny_protocol()
    first = plan(run, protocol)
    c0, c1, c2 = (c.id for c in first.state.candidates)
    fitness = {("elim-1", c0): ("rejected", 0.2), ("elim-1", c1): 0.8, ("elim-1", c2): 0.6,
               ("elim-2", c1): 0.4, ("elim-2", c2): 0.9}
    for _ in range(10):
        p = plan(run, workers=2)  # at most two at a time: the rest come at the next call
        assert len(p.units) <= 2
        if p.done:
            break
        finish_units(run, p.units, lambda u: fitness.get((u.stage, u.genome), 0.7))
    assert p.done and p.state.step == "done" and p.state.finalists == [c2]
    phase1, phase2 = run.elimination()
    assert [(r.id, r.survived) for r in phase1.ranking] == [(c1, True), (c2, True), (c0, False)]
    assert phase1.ranking[2].status == "rejected" and phase1.references[0].name == "cross_entropy"
    assert [(r.id, r.survived) for r in phase2.ranking] == [(c2, True), (c1, False)]
    assert phase1.fidelity.n == 2 and phase1.set == {"epochs": "1"}
    table = run.transfer_table()
    assert [loss.name for loss in table.losses] == [None, "cross_entropy", "baikal"]
    assert [e.n for e in table.entries] == [2, 2, 2]
    # Done is done: later calls change nothing.
    etag = _etag(run)
    assert plan(run).done and _etag(run) == etag


def test_a_phase_where_every_entrant_fails_leaves_only_the_baselines(run):
    p = plan(run, tiny_protocol())
    ce = next(e.id for e in p.state.named if e.name == "cross_entropy")
    finish_units(run, p.units, lambda u: 0.7 if u.genome == ce else ("failed", None))
    p = plan(run)
    assert p.state.step == "transfer" and p.state.finalists == []
    assert {u.genome for u in p.units} == {e.id for e in p.state.named}


def test_eliminate_stops_after_the_last_phase(run):
    plan(run, tiny_protocol())
    for _ in range(5):
        p = plan(run, until="elimination")
        if p.done:
            break
        finish_units(run, p.units, lambda u: 0.5)
    assert p.done and p.state.step == "transfer" and len(run.elimination()) == 2
    assert not plan(run).done  # `nlfs transfer` goes on from there


def test_racing_planners_close_a_phase_once(run):
    p = plan(run, tiny_protocol())
    finish_units(run, p.units, lambda u: 0.5)
    outcomes, errors = [], []

    def call():
        try:
            outcomes.append(plan(run))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    state, _ = read_state(run)
    assert state.phase == 2 and state.round == 2  # one close, not four
    assert {o.state.round for o in outcomes} == {2}
    assert len(run.elimination()) == 1


def test_a_search_still_running_is_refused(store):
    run = Run(store)
    synthetic_search(run)
    state = run.state()
    unfinished = State.model_validate({**state.model_dump(), "phase": "evolve"})
    run.store.put(layout.state_key(), unfinished.to_json().encode())
    with pytest.raises(NlfsError, match="has not finished"):
        plan(run, tiny_protocol())


def test_another_protocol_for_the_same_run_is_refused(run):
    plan(run, tiny_protocol())
    with pytest.raises(NlfsError, match="different protocol"):
        plan(run, tiny_protocol(**{"elimination.candidates": "2"}))
    assert plan(run).state.phase == 1  # without --protocol the stored one resumes


def test_without_phases_the_candidates_go_straight_to_the_grid(run):
    p = plan(run, tiny_protocol(**{"elimination.phases": "[]"}))
    assert p.state.step == "transfer" and len(p.state.finalists) == 3
    assert len(p.units) == (3 + 2) * 2  # (finalists + baselines) x 2 seeds


def test_more_candidates_than_the_hall_of_fame_come_from_the_results(run):
    p = plan(run, tiny_protocol(**{"elimination.candidates": "8"}))
    ids = [c.id for c in p.state.candidates]
    assert len(ids) == 8 and ids[:6] == [m.id for m in run.state().top]
    assert all(c.surrogate == 0.5 for c in p.state.candidates[6:])  # the best of the rest, ties by id
