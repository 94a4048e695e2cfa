"""The learning rate step for step as the authors' WarmupCosineDecay callback sets it
(../shared/golden/schedule.json), across the stages of a run, and Keras' Adam epsilon."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from keras_golden import GOLDEN
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from nlfs.errors import NlfsError
from nlfs.evaluate import evaluate
from nlfs.train.profiles import OptimizerSpec, ScheduleSpec, load_profile
from nlfs.train.schedule import KerasAdam, build_optimizer, lr_at, set_lr, warmup_cosine


def golden_schedule() -> list[dict]:
    path = GOLDEN / "schedule.json"
    if not path.is_file():
        pytest.fail(f"golden file missing: {path}")
    return json.loads(path.read_text())["runs"]


def paper_spec(run: dict) -> ScheduleSpec:
    return ScheduleSpec(name="warmup_cosine", warmup_steps=run["warmup_steps"], total_steps=run["total_steps"],
                        offset=1e-7)


def test_the_optimisers_lr_matches_the_authors_callback_at_every_golden_step():
    """lr(b) + 1e-7 as float32, read back from the optimiser, within 1e-9 (in fact exactly)."""
    optimizer = KerasAdam([nn.Parameter(torch.zeros(1))], lr=1e-3, eps=1e-7)
    checked = 0
    for run in golden_schedule():
        assert (run["hold"], run["start_lr"], run["target_lr"]) == (0, 0.0, 1e-3)
        for row in run["values"]:
            step = row["step"]
            raw = warmup_cosine(step, peak=1e-3, warmup=run["warmup_steps"], total=run["total_steps"])
            assert raw == pytest.approx(row["lr_warmup_cosine_decay"], abs=1e-15)
            set_lr(optimizer, lr_at(paper_spec(run), 1e-3, step, run["total_steps"]))
            used = optimizer.param_groups[0]["lr"]
            assert abs(used - row["optimizer_lr_after_callback_float32"]) <= 1e-9
            assert used == row["optimizer_lr_after_callback_float32"]  # float32, bit for bit
            checked += 1
    assert checked == 14


def _recording_lrs():
    """Install a hook that records the lr of every optimiser step taken; returns (list, handle)."""
    seen: list[float] = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    return seen, handle


def _train(overrides: dict[str, str]) -> list[float]:
    profile = load_profile("tiny", {"steps_per_epoch": "2", "schedule.name": "warmup_cosine",
                                    "schedule.offset": "1.0e-7", **overrides})
    seen, handle = _recording_lrs()
    try:
        record = evaluate(nn.CrossEntropyLoss(), profile)
    finally:
        handle.remove()
    assert record.status == "ok", record.reason
    return seen


def test_the_training_loop_steps_with_the_golden_lr_from_step_0():
    run = golden_schedule()[0]  # warmup 800 of 8000: steps 0 and 1 are in the golden file
    seen = _train({"epochs": "1", "optimizer.lr": "0.001", "schedule.warmup_steps": "800",
                   "schedule.total_steps": "8000"})
    golden_lr = {row["step"]: row["optimizer_lr_after_callback_float32"] for row in run["values"]}
    assert seen == [golden_lr[0], golden_lr[1]]


def test_one_schedule_runs_across_the_stages_of_a_run():
    """Two stages of 2 steps on a 1-of-4-step schedule: the second stage goes on at step 2."""
    seen = _train({"schedule.warmup_steps": "1", "schedule.total_steps": "4",
                   "stages": "[{epochs: 1, image_size: 8}, {epochs: 1, image_size: 8}]"})
    spec = ScheduleSpec(name="warmup_cosine", warmup_steps=1, total_steps=4, offset=1e-7)
    expected = [lr_at(spec, 0.003, step, 4) for step in range(4)]
    assert seen == expected
    assert expected[2:] != expected[:2]  # a restarted schedule would repeat the first stage's


def test_the_schedule_stays_at_its_end_past_the_total():
    spec = ScheduleSpec(name="warmup_cosine", warmup_steps=10, total_steps=100, offset=1e-7)
    assert lr_at(spec, 1e-3, 100, 100) == lr_at(spec, 1e-3, 250, 100) == float(np.float32(1e-7))


def test_a_constant_schedule_keeps_the_profiles_lr_unrounded():
    assert lr_at(ScheduleSpec(), 0.003, 17, 100) == 0.003


def _keras_adam_reference(theta, grads, lr, eps, b1=0.9, b2=0.999):
    """Keras' Adam update (tf.keras.optimizers.Adam.update_step), float64 numpy."""
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        theta = theta - m * alpha / (np.sqrt(v) + eps)
    return theta


def _torch_steps(optimizer_cls, grads, **kw):
    param = nn.Parameter(torch.zeros(grads.shape[1], dtype=torch.float64))
    opt = optimizer_cls([param], **kw)
    for g in grads:
        param.grad = torch.from_numpy(g.copy())
        opt.step()
    return param.detach().numpy()


def test_keras_adam_adds_epsilon_before_bias_correction_as_keras_does():
    """Small gradients make epsilon matter: Keras' form and torch's part by far more than rounding."""
    grads = np.random.default_rng(0).normal(scale=1e-6, size=(5, 8))
    reference = _keras_adam_reference(np.zeros(8), grads, lr=1e-3, eps=1e-7)
    mine = _torch_steps(KerasAdam, grads, lr=1e-3, eps=1e-7)
    torchs = _torch_steps(torch.optim.Adam, grads, lr=1e-3, eps=1e-7)
    np.testing.assert_allclose(mine, reference, rtol=1e-12, atol=0)
    assert np.abs(torchs - reference).max() > 1e-3 * np.abs(reference).max()


def test_optimizer_defaults_are_torchs_and_the_paper_setting_is_keras_adam():
    default = build_optimizer(OptimizerSpec(), [nn.Parameter(torch.zeros(1))])
    assert type(default) is torch.optim.Adam and default.defaults["eps"] == 1e-8
    paper = build_optimizer(load_profile("prefilter").optimizer, [nn.Parameter(torch.zeros(1))])
    assert type(paper) is KerasAdam and paper.param_groups[0]["eps_hat"] == 1e-7


def test_keras_epsilon_on_another_optimiser_is_a_one_line_error():
    with pytest.raises(NlfsError, match="eps_mode") as err:
        load_profile("tiny", {"optimizer.name": "sgd", "optimizer.eps_mode": "keras"})
    assert "\n" not in str(err.value)
