"""The controller step against a real store: idempotent, one batch under concurrency, resumable.

Evaluations are simulated by writing result records directly, so these tests need no training.
"""

import json
import multiprocessing

import pytest

from nlfs.errors import NlfsError
from nlfs.evolution.controller import fingerprint, init_run, step
from nlfs.genome import Genome
from nlfs.result import ResultRecord
from nlfs.runs import Run
from nlfs.store import layout, open_store
from searchkit import fast_config


def _record(stage, genome_id, fitness=0.5, status="ok"):
    return ResultRecord(genome_id=genome_id, stage=stage, profile="test", profile_hash="0" * 16,
                        status=status, fitness=fitness)


def _finish(run, outcome, fitness=lambda gid: int(gid[:6], 16) / 0xFFFFFF):
    for gid in outcome.genomes:
        run.put_result(_record(outcome.stage, gid, fitness(gid)))


def _new_run(store, **changes):
    run = Run(store)
    init_run(run, fast_config(**changes))
    return run


def test_first_step_writes_candidates_and_the_first_batch(store):
    run = _new_run(store)
    outcome = step(run)
    assert outcome.stage == "initial" and outcome.batch == 0 and len(outcome.genomes) == 3
    assert len(store.list(layout.genomes_prefix())) == 8
    assert store.list(layout.batches_prefix()) == [layout.batch_key(0)]
    for gid in outcome.genomes:
        assert run.genome(gid).id == gid


def test_step_before_results_arrive_repeats_the_pending_work(store):
    run = _new_run(store)
    first = step(run)
    etag = store.get(layout.state_key()).etag
    again = step(run)
    assert (again.batch, again.genomes) == (first.batch, first.genomes)
    assert store.get(layout.state_key()).etag == etag  # nothing was written
    run.put_result(_record(first.stage, first.genomes[0]))
    assert step(run).genomes == first.genomes[1:]  # only what is still missing


def test_items_group_genomes_per_pod(store):
    run = _new_run(store)
    outcome = step(run)
    items = outcome.items(run.uri, genomes_per_item=2)
    assert [len(i["genomes"]) for i in items] == [2, 1]
    assert all(i["run"] == run.uri and i["stage"] == "initial" and i["batch"] == 0 for i in items)


def _racing_step(uri, barrier, queue):
    run = Run(open_store(uri))
    barrier.wait()
    outcome = step(run)
    queue.put((outcome.batch, outcome.genomes))


def test_two_controller_steps_at_once_make_one_next_batch(store):
    run = _new_run(store)
    first = step(run)
    _finish(run, first)
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_racing_step, args=(store.uri, barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    answers = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    assert answers[0] == answers[1]
    assert answers[0][0] == 1
    assert store.list(layout.batches_prefix()) == [layout.batch_key(0), layout.batch_key(1)]
    assert run.read_state()[0].next_batch == 2


def test_steps_run_a_search_to_done_with_exactly_the_budget(store):
    run = _new_run(store, budget=6)
    for _ in range(100):
        outcome = step(run)
        if outcome.done:
            break
        _finish(run, outcome)
    state = run.read_state()[0]
    assert state.done and state.counters.children_done == 6
    assert len(state.population) == 4
    assert step(run).done  # and stays done


def test_a_child_equal_in_function_to_an_earlier_genome_reuses_its_result(tmp_path):
    run = _new_run(open_store(str(tmp_path / "run")))
    outcome = step(run)
    # Pretend an equivalent genome was evaluated before: claim the fingerprint of one of the
    # upcoming children for another genome with a result.
    while outcome.stage != "main" or run.read_state()[0].pending.phase != "evolve":
        _finish(run, outcome)
        outcome = step(run)
    state = run.read_state()[0]
    child = Genome.from_json(state.pending.slots[0].genome)
    assert state.pending.slots[0].reused_from is None
    # The next batch's children are not known in advance, so check the cache directly:
    twin_id = "f" * 16
    run.put_result(_record("main", twin_id, 0.77))
    twin_key = layout.fec_key(fingerprint(child))
    run.store.put(twin_key, json.dumps({"genome": twin_id}).encode())
    from nlfs.evolution.controller import _reuse

    assert _reuse(run, "main", state.pending.slots[0].model_copy(update={"id": "e" * 16}), child) == twin_id
    reused = run.result("main", "e" * 16)
    assert reused.reused_from == twin_id and reused.fitness == 0.77


def test_step_refuses_a_corrupt_state_and_leaves_it_untouched(store):
    run = _new_run(store)
    step(run)
    store.put(layout.state_key(), b'{"format": "nlfs.state/v1", "phase": 3}')
    with pytest.raises(NlfsError, match="state.json is corrupt"):
        step(run)
    assert store.get(layout.state_key()).data == b'{"format": "nlfs.state/v1", "phase": 3}'


def test_step_refuses_a_corrupt_result(store):
    run = _new_run(store)
    outcome = step(run)
    store.put(layout.result_key(outcome.stage, outcome.genomes[0]), b"not json")
    with pytest.raises(NlfsError, match="invalid result record"):
        step(run)


def test_init_is_idempotent_and_refuses_another_config(store):
    run = Run(store)
    assert init_run(run, fast_config()) is True
    assert init_run(run, fast_config()) is False
    with pytest.raises(NlfsError, match="different search config"):
        init_run(run, fast_config(seed=99))
    assert run.config == fast_config()


def test_step_without_a_run_says_how_to_start_one(tmp_path):
    with pytest.raises(NlfsError, match="nlfs init"):
        step(Run(open_store(str(tmp_path / "nothing"))))


def test_workers_bound_what_one_step_hands_out_and_the_next_step_hands_out_the_rest(store):
    run = _new_run(store, initial_batch_size=8)
    outcome = step(run)
    first = outcome.items(run.uri, genomes_per_item=2, max_genomes=3)
    assert [i["genomes"] for i in first] == [outcome.genomes[:2], outcome.genomes[2:3]]
    for gid in outcome.genomes[:3]:
        run.put_result(_record("initial", gid))
    again = step(run)
    assert again.batch == outcome.batch and again.genomes == outcome.genomes[3:]
