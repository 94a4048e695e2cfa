"""The cohort trainer: each member trains as its solo run does, ends alone, and hands its slot on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlfs.evaluate import resolve_loss
from nlfs.train.cohort import CohortJob, train_cohort
from nlfs.train.cohort_size import AUTO_LIMIT, auto_slots, cohort_size, member_footprint, one_stage
from nlfs.train.data import load_dataset
from nlfs.train.loop import Runtime, TrainOutcome, train
from nlfs.train.models import create_model
from nlfs.train.profiles import FloorSpec, load_profile

LOSSES = ("cross_entropy", "focal", "baikal", "poly1")


def _profile(**overrides):
    # tiny (digits, tiny_cnn without dropout) in float64, shortened: 3 epochs of 6 steps
    base = {"runtime.dtype": "float64", "epochs": "3", "steps_per_epoch": "6", "runtime.threads": "1"}
    return load_profile("tiny", {**base, **{k: str(v) for k, v in overrides.items()}})


PROFILE = _profile()


def _setup(profile):
    runtime = Runtime.resolve(profile.runtime)
    torch.set_num_threads(1)
    return runtime, load_dataset(profile.dataset, runtime.device)


def _loss(name, profile=PROFILE):
    return resolve_loss(name, profile.loss)[0]


class _TurnsNaN(nn.Module):
    """Cross-entropy whose training calls turn NaN from call `after` on (validation calls, without
    gradient, are left alone), as a loss that blows up mid-run."""

    def __init__(self, after: int):
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, logits, target):
        loss = nn.functional.cross_entropy(logits, target)
        if logits.requires_grad:
            self.calls += 1
            if self.calls > self.after:
                return loss * float("nan")
        return loss


class _Raises(nn.Module):
    def forward(self, logits, target):
        if logits.requires_grad:
            raise RuntimeError("boom\nsecond line")
        return nn.functional.cross_entropy(logits, target)


def _same_except_seconds(a: TrainOutcome, b: TrainOutcome) -> bool:
    strip = lambda o: (o.status, o.fitness, o.reason, [e.model_dump(exclude={"seconds"}) for e in o.epochs])  # noqa: E731
    return strip(a) == strip(b)


def _assert_reproduces(member: TrainOutcome, solo: TrainOutcome, rel: float = 1e-6) -> None:
    """Same status, reason and epochs; every epoch's training loss within `rel` relative."""
    assert (member.status, member.reason, len(member.epochs)) == (solo.status, solo.reason, len(solo.epochs))
    for mine, theirs in zip(member.epochs, solo.epochs):
        assert mine.epoch == theirs.epoch
        assert mine.train_loss == pytest.approx(theirs.train_loss, rel=rel)
        assert mine.val_loss == pytest.approx(theirs.val_loss, rel=rel)
        assert mine.train_accuracy == pytest.approx(theirs.train_accuracy, abs=1e-9)
        assert mine.val_accuracy == pytest.approx(theirs.val_accuracy, abs=1e-9)
    assert member.fitness == pytest.approx(solo.fitness, abs=1e-9)


@pytest.fixture(scope="module")
def solo_runs():
    runtime, data = _setup(PROFILE)
    return {name: train(PROFILE, data, _loss(name), seed=0, runtime=runtime) for name in LOSSES}


def test_each_member_of_a_cohort_of_four_reproduces_its_solo_run_in_float64(solo_runs):
    runtime, data = _setup(PROFILE)
    jobs = [CohortJob(name, _loss(name), seed=0) for name in LOSSES]
    results = train_cohort(PROFILE, data, jobs, slots=4, runtime=runtime)
    assert [r.index for r in results] == [0, 1, 2, 3]
    for name, result in zip(LOSSES, results):
        assert result.outcome.status == "ok" and len(result.outcome.epochs) == 3
        _assert_reproduces(result.outcome, solo_runs[name])
    # the members learnt different things: they are four trainings, not one
    assert len({r.outcome.epochs[-1].train_loss for r in results}) == 4


def test_a_member_whose_loss_turns_nan_ends_diverged_while_the_other_three_finish_exactly_as_without_it(solo_runs):
    runtime, data = _setup(PROFILE)
    three = [CohortJob(name, _loss(name), seed=0) for name in LOSSES[:3]]
    with_nan = train_cohort(PROFILE, data, three + [CohortJob("nan", _TurnsNaN(after=8), seed=0)], slots=4,
                            runtime=runtime)
    without = train_cohort(PROFILE, data, three + [CohortJob("poly1", _loss("poly1"), seed=0)], slots=4,
                           runtime=runtime)
    for a, b in zip(with_nan[:3], without[:3]):
        assert _same_except_seconds(a.outcome, b.outcome)
    diverged = with_nan[3].outcome
    assert diverged.status == "diverged" and diverged.reason == "non-finite loss in epoch 2"
    assert len(diverged.epochs) == 1 and diverged.fitness == diverged.epochs[0].val_accuracy
    alone = train(PROFILE, data, _TurnsNaN(after=8), seed=0, runtime=runtime)
    _assert_reproduces(diverged, alone)


def test_a_slot_freed_by_a_member_that_hits_its_floor_goes_to_the_next_job_which_reproduces_its_solo_run():
    # anti-cross-entropy (y * log p, minimised) unlearns, and the floor stops it after epoch index 1
    profile = PROFILE.model_copy(update={"floors": [FloorSpec(min=0.15, from_epoch_index=1)]})
    runtime, data = _setup(profile)
    anti = resolve_loss(_anti_ce(), profile.loss)[0]
    lines: list[str] = []
    jobs = [CohortJob("anti", anti, 0), CohortJob("ce", _loss("cross_entropy"), 0), CohortJob("focal", _loss("focal"), 0)]
    results = train_cohort(profile, data, jobs, slots=2, runtime=runtime, log=lines.append)
    stopped = results[0].outcome
    assert stopped.status == "stopped" and len(stopped.epochs) == 2 and stopped.fitness is not None
    assert "below floor 0.15 at epoch index 1" in stopped.reason
    # focal waited for anti's slot: its first epoch came after anti's last, beside ce's third
    order = [line.split()[1] + ":" + line.split()[3] for line in lines]
    assert order.index("focal:1") > order.index("anti:2") and order.index("focal:1") > order.index("ce:2")
    assert abs(order.index("focal:1") - order.index("ce:3")) == 1  # the same epoch of the cohort
    for job, result in zip(jobs, results):
        _assert_reproduces(result.outcome, train(profile, data, job.loss_fn, seed=0, runtime=runtime))
    assert results[1].outcome.status == results[2].outcome.status == "ok"


def test_a_member_whose_loss_raises_fails_alone_with_the_solo_runs_record(solo_runs):
    runtime, data = _setup(PROFILE)
    jobs = [CohortJob("ce", _loss("cross_entropy"), 0), CohortJob("raises", _Raises(), 0)]
    results = train_cohort(PROFILE, data, jobs, slots=2, runtime=runtime)
    alone = train(PROFILE, data, _Raises(), seed=0, runtime=runtime)
    assert results[1].outcome == alone and alone.status == "failed" and alone.reason == "RuntimeError: boom second line"
    _assert_reproduces(results[0].outcome, solo_runs["cross_entropy"])


def test_an_error_in_the_shared_network_pass_fails_every_member_with_the_epochs_it_had(monkeypatch):
    from nlfs.train import cohort

    forward, calls = cohort._Cohort.forward, []

    def breaks_in_epoch_2(self, x, per_slot):
        if self.net.base.training:
            calls.append(1)
            if len(calls) > PROFILE.steps_per_epoch:
                raise RuntimeError("CUDA out of memory (simulated)")
        return forward(self, x, per_slot)

    monkeypatch.setattr(cohort._Cohort, "forward", breaks_in_epoch_2)
    runtime, data = _setup(PROFILE)
    results = train_cohort(PROFILE, data, [CohortJob(n, _loss(n), 0) for n in LOSSES[:2]], slots=2, runtime=runtime)
    for result in results:
        outcome = result.outcome
        assert (outcome.status, outcome.fitness, len(outcome.epochs)) == ("failed", None, 1)
        assert outcome.reason == "RuntimeError: CUDA out of memory (simulated)"


def test_a_loss_that_is_not_a_scalar_fails_its_member_as_it_fails_a_solo_run():
    runtime, data = _setup(PROFILE)
    per_sample = nn.CrossEntropyLoss(reduction="none")
    results = train_cohort(PROFILE, data, [CohortJob("bad", per_sample, 0)], slots=1, runtime=runtime)
    assert results[0].outcome == train(PROFILE, data, per_sample, seed=0, runtime=runtime)


def test_members_past_their_wall_clock_limit_end_as_timeouts_as_solo_runs_do():
    profile = _profile(**{"runtime.time_limit_s": 0})
    runtime, data = _setup(profile)
    results = train_cohort(profile, data, [CohortJob(n, _loss(n, profile), 0) for n in LOSSES[:2]], slots=2,
                           runtime=runtime)
    alone = train(profile, data, _loss("cross_entropy", profile), seed=0, runtime=runtime)
    assert alone.status == "timeout" and len(alone.epochs) == 1
    assert _same_except_seconds(results[0].outcome, alone)
    assert results[1].outcome.status == "timeout" and results[1].outcome.reason == alone.reason


def test_members_of_different_seeds_each_see_their_own_solo_runs_batches():
    runtime, data = _setup(PROFILE)
    results = train_cohort(PROFILE, data, [CohortJob("a", _loss("cross_entropy"), 0),
                                           CohortJob("b", _loss("cross_entropy"), 5)], slots=2, runtime=runtime)
    for result, seed in zip(results, (0, 5)):
        _assert_reproduces(result.outcome, train(PROFILE, data, _loss("cross_entropy"), seed=seed, runtime=runtime))
    assert results[0].outcome.epochs[0].train_loss != results[1].outcome.epochs[0].train_loss


def test_members_that_start_together_with_one_seed_draw_their_solo_runs_dropout_masks():
    profile = _profile(**{"model.dropout": 0.3, "epochs": 2})
    runtime, data = _setup(profile)
    results = train_cohort(profile, data, [CohortJob(n, _loss(n, profile), 0) for n in LOSSES[:2]], slots=2,
                           runtime=runtime)
    for name, result in zip(LOSSES[:2], results):
        _assert_reproduces(result.outcome, train(profile, data, _loss(name, profile), seed=0, runtime=runtime))


@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")  # GenomeLoss's identity cache
def test_bf16_autocast_channels_last_and_compiled_steps_train_like_the_eager_cohort():
    """The fast path's parts, on CPU: torch.compile of the stacked network and of the members'
    losses (backend aot_eager: dynamo and AOTAutograd trace what inductor would compile), and
    bf16 autocast with channels_last inputs."""
    plain = _profile(**{"runtime.dtype": "float32", "epochs": 2, "steps_per_epoch": 4})
    runtime, data = _setup(plain)
    names = ("cross_entropy", "baikal")
    reference = train_cohort(plain, data, [CohortJob(n, _loss(n, plain), 0) for n in names], slots=2,
                             runtime=runtime)
    compiled = _profile(**{"runtime.dtype": "float32", "epochs": 2, "steps_per_epoch": 4, "runtime.compile": "true",
                           "runtime.compile_loss": "true", "runtime.compile_backend": "aot_eager"})
    fast = train_cohort(compiled, data, [CohortJob(n, _loss(n, compiled), 0) for n in names], slots=2,
                        runtime=Runtime.resolve(compiled.runtime))
    for a, b in zip(fast, reference):
        _assert_reproduces(a.outcome, b.outcome, rel=1e-5)
    bf16 = _profile(**{"runtime.dtype": "float32", "epochs": 2, "steps_per_epoch": 4, "runtime.amp": "bf16",
                       "runtime.channels_last": "true"})
    low = train_cohort(bf16, data, [CohortJob(n, _loss(n, bf16), 0) for n in names], slots=2,
                       runtime=Runtime.resolve(bf16.runtime))
    for a, b in zip(low, reference):
        assert a.outcome.status == "ok" and len(a.outcome.epochs) == 2
        for mine, theirs in zip(a.outcome.epochs, b.outcome.epochs):
            assert mine.train_loss == pytest.approx(theirs.train_loss, rel=0.05)


def test_a_cohort_trains_one_stage_profiles_only():
    staged = load_profile("tiny", {"stages": "[{epochs: 1}, {epochs: 1, image_size: 10}]"})
    assert one_stage(PROFILE) and not one_stage(staged)
    runtime, data = _setup(staged)
    with pytest.raises(ValueError, match="2 stages"):
        train_cohort(staged, data, [CohortJob("ce", _loss("cross_entropy"), 0)], slots=2, runtime=runtime)
    assert cohort_size(staged, runtime, 4) == (1, "2 stages: a cohort needs one, so one genome at a time")


def test_auto_is_one_member_on_cpu_and_a_count_is_kept():
    runtime = Runtime.resolve(PROFILE.runtime)
    assert cohort_size(PROFILE, runtime, "auto") == (1, None)
    assert cohort_size(PROFILE, runtime, 6) == (6, None)


def test_auto_on_a_gpu_packs_small_networks_into_half_the_free_memory():
    assert auto_slots(params=30_000, member_bytes=2**30, free_bytes=10 * 2**30) == 5
    assert auto_slots(params=30_000, member_bytes=2**20, free_bytes=80 * 2**30) == AUTO_LIMIT
    assert auto_slots(params=30_000, member_bytes=2**33, free_bytes=2**30) == 1
    assert auto_slots(params=20_000_000, member_bytes=2**20, free_bytes=80 * 2**30) == 1


def test_member_footprint_counts_the_surrogates_parameters_and_grows_with_its_inputs():
    surrogate = load_profile("surrogate", {"dataset.name": "fake", "dataset.val_size": "256"})
    data = load_dataset(surrogate.dataset)
    params, at80 = member_footprint(surrogate, data)
    real = create_model(surrogate.model, num_classes=10, in_channels=3)
    assert params == sum(p.numel() for p in real.parameters())
    _, at32 = member_footprint(surrogate.model_copy(update={"image_size": 32}), data)
    assert at80 > 5 * at32 > 0


def _anti_ce():
    from nlfs.genome import Genome

    return Genome.from_json({"format": "nlfs.genome/v1", "output": 1, "sign": 1,
                             "nodes": [{"op": "log", "in": ["p"]}, {"op": "mul", "in": ["y", 0]}]})


def test_with_the_authors_short_last_batches_a_waiting_job_starts_when_the_cohort_is_empty():
    """`batching.drop_remainder: false` (the authors' loaders): every pass over the data ends with
    a short batch, so members must share their stream's steps; a job waiting for a slot starts
    with the next round, and every member still reproduces its solo run, short batches included."""
    profile = _profile(**{"batching.order": "sequential", "batching.drop_remainder": "false",
                          "batch_size": 400, "steps_per_epoch": 5, "epochs": 2})
    runtime, data = _setup(profile)
    assert data.train_x.shape[0] % 400  # passes end with a short batch
    anti = resolve_loss(_anti_ce(), profile.loss)[0]
    stopping = profile.model_copy(update={"floors": [FloorSpec(min=0.1, from_epoch_index=0)]})
    lines: list[str] = []
    jobs = [CohortJob("anti", anti, 0), CohortJob("ce", _loss("cross_entropy"), 0),
            CohortJob("focal", _loss("focal"), 0)]
    results = train_cohort(stopping, data, jobs, slots=2, runtime=runtime, log=lines.append)
    order = [line.split()[1] + ":" + line.split()[3] for line in lines]
    assert order.index("focal:1") > order.index("ce:2")  # not seated beside ce's second epoch
    for job, result in zip(jobs, results):
        _assert_reproduces(result.outcome, train(stopping, data, job.loss_fn, seed=0, runtime=runtime))


def test_members_record_the_test_accuracy_as_solo_runs_do():
    # digits has no test split: CIFAR-shaped random images (the `fake` dataset) at 8x8 do
    profile = _profile(**{"dataset.name": "fake", "dataset.image_size": 8, "dataset.val_size": 256,
                          "dataset.evaluate_test": "true", "epochs": 2, "steps_per_epoch": 3})
    runtime, data = _setup(profile)
    assert data.test_x is not None and not data.test_is_val
    jobs = [CohortJob(name, _loss(name), seed=0) for name in LOSSES[:2]]
    results = train_cohort(profile, data, jobs, slots=2, runtime=runtime)
    for job, result in zip(jobs, results):
        solo = train(profile, data, job.loss_fn, seed=0, runtime=runtime)
        tested = [e.test_accuracy for e in result.outcome.epochs]
        assert None not in tested and tested == [e.test_accuracy for e in solo.epochs]
