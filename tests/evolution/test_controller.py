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


def _to_phase(run, phase):
    outcome = step(run)
    while run.read_state()[0].pending.phase != phase:
        _finish(run, outcome)
        outcome = step(run)
    return outcome


def test_without_a_failure_budget_a_repeated_step_writes_nothing(store):
    run = _new_run(store)
    first = step(run)
    etag = store.get(layout.state_key()).etag
    for _ in range(4):
        assert step(run).genomes == first.genomes
    assert store.get(layout.state_key()).etag == etag


def test_a_genome_handed_out_twice_without_a_result_is_recorded_failed_and_the_search_goes_on(store):
    run = _new_run(store)
    outcome = _to_phase(run, "evolve")
    lost = outcome.genomes[0]
    assert step(run, max_failed=5).genomes == outcome.genomes  # hand-out 1
    for gid in outcome.genomes[1:]:
        run.put_result(_record("main", gid))
    assert step(run, max_failed=5).genomes == [lost]  # hand-out 2: its pods failed once
    nxt = step(run, max_failed=5)  # still nothing: recorded as failed, the batch folds
    record = run.result("main", lost)
    assert record.status == "failed" and "hand-outs" in record.reason
    state = run.read_state()[0]
    assert state.counters.lost == 1 and state.counters.statuses["failed"] == 1
    # A failed training re-mutates the child: its retry is in the next batch.
    assert any(s.attempt == 1 for s in state.pending.slots) and nxt.genomes


def test_past_the_failure_budget_the_step_stops_with_one_line_and_a_readable_state(store):
    run = _new_run(store)
    _to_phase(run, "evolve")
    for _ in range(2):  # two hand-outs, and no pod ever reports
        step(run, max_failed=0)
    with pytest.raises(NlfsError) as err:
        step(run, max_failed=0)
    assert "failure budget exhausted: 2 evaluations" in str(err.value) and "\n" not in str(err.value)
    state, _ = run.read_state()
    assert state.counters.lost == 2
    # Resubmitted with a larger budget, the search goes on from the same state.
    assert step(run, max_failed=10).genomes


def test_workers_and_handouts_count_only_the_genomes_handed_out(store):
    run = _new_run(store, initial_batch_size=8)
    first = step(run, max_genomes=3, max_failed=5)
    assert len(first.genomes) == 3
    counts = {s.id: s.handouts for s in run.read_state()[0].pending.slots}
    assert sorted(counts.values()) == [0] * 5 + [1] * 3
    second = step(run, max_genomes=3, max_failed=5)
    assert second.genomes == first.genomes  # missing still, handed out again, first come first


def test_a_rerun_after_a_kill_between_prepare_and_commit_reuses_from_the_first_genome(tmp_path):
    run = _new_run(open_store(str(tmp_path / "run")))
    _to_phase(run, "evolve")
    state = run.read_state()[0]
    child = Genome.from_json(state.pending.slots[0].genome)
    twin = "f" * 16
    run.put_result(_record("main", twin, 0.77))
    run.store.put(layout.fec_key(fingerprint(child)), json.dumps({"genome": twin}).encode())
    from nlfs.evolution.controller import _reuse

    slot = state.pending.slots[0].model_copy(update={"id": "e" * 16})
    assert _reuse(run, "main", slot, child) == twin
    # The killed controller wrote the copy; the step that runs again finds it.
    assert _reuse(run, "main", slot, child) == twin


@pytest.mark.parametrize("bad, fragment", [
    ({"pending": {"index": 0, "phase": "initial", "stage": "initial",
                  "slots": [{"id": "0123456789abcdef", "genome": {}}]}, "next_batch": 1},
     "not among the candidates"),
    ({"counters": {"evaluations": -1}}, "counters.evaluations"),
    ({"population": [{"id": "0123456789abcdef", "birth": 0, "fitness": 2.0, "genome": {}}],
      "phase": "evolve"}, "fitness"),
])
def test_a_damaged_state_is_a_named_error_when_read(store, bad, fragment):
    run = _new_run(store)
    step(run)
    state = json.loads(store.get(layout.state_key()).data)
    state.update(bad)
    text = json.dumps(state).encode()
    store.put(layout.state_key(), text)
    with pytest.raises(NlfsError) as err:
        step(run)
    assert "state.json is corrupt" in str(err.value) and fragment in str(err.value)
    assert store.get(layout.state_key()).data == text


def test_init_refuses_a_config_that_could_never_train_and_stores_nothing(store):
    from nlfs.evolution.config import StageProfile

    stages = dict(fast_config().stages)
    stages["gate"] = StageProfile(profile="tiny-gate", overrides={"epochs": -3})
    with pytest.raises(NlfsError, match="stages.gate"):
        init_run(Run(store), fast_config(stages=stages))
    assert store.list() == []
