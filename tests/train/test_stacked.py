"""StackedNet and StackedOptimizer: S networks as one, each slot stepped as torch.optim steps it alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nlfs.train.models import create_model
from nlfs.train.profiles import OptimizerSpec, ScheduleSpec
from nlfs.train.schedule import build_optimizer, lr_at, set_lr
from nlfs.train.stacked import StackedNet, StackedOptimizer, lr_table


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()


SCHEDULE = ScheduleSpec(name="warmup_cosine", warmup_steps=3, total_steps=12, offset=1e-7)


def _lr(step: int, spec: OptimizerSpec) -> float:
    return lr_at(SCHEDULE, spec.lr, step, 12)


@pytest.mark.parametrize("spec", [
    OptimizerSpec(name="adam", lr=1e-2),
    OptimizerSpec(name="adam", lr=1e-2, eps=1e-7, eps_mode="keras"),
    OptimizerSpec(name="adam", lr=1e-2, weight_decay=0.1),
    OptimizerSpec(name="adamw", lr=1e-2, weight_decay=0.1),
    OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.01),
    OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, nesterov=True),
], ids=["adam", "adam-keras-eps", "adam-l2", "adamw", "sgd", "sgd-nesterov"])
def test_each_slot_steps_as_the_profiles_torch_optimiser_steps_its_network_alone(spec):
    """Three slots; slot 1 sits out two steps and slot 2 gets a new network half way, so the slots
    differ in step count and learning rate, as cohort members that joined at different times."""
    alone = [_net(s) for s in range(3)]
    optimisers = [build_optimizer(spec, m.parameters()) for m in alone]
    steps = [0, 0, 0]
    stacked = StackedNet(alone[0], 3)
    for slot, m in enumerate(alone):
        stacked.load(slot, m)
    opt = StackedOptimizer(spec, stacked, lr_table([_lr(n, spec) for n in range(12)]))
    fn = stacked.function(per_slot=True)
    g = torch.Generator().manual_seed(0)
    for step in range(8):
        if step == 4:  # a new member takes slot 2
            alone[2] = _net(7)
            optimisers[2] = build_optimizer(spec, alone[2].parameters())
            steps[2] = 0
            stacked.load(2, alone[2])
            opt.reset(2)
        active = [1.0, 0.0 if step in (2, 3) else 1.0, 1.0]
        x = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (3, 6), generator=g)
        out = fn(stacked.params, stacked.buffers, x)
        losses = [nn.functional.cross_entropy(out[k], y[k]) for k in range(3) if active[k]]
        stacked.grad.zero_()
        torch.autograd.backward(losses)
        opt.step(torch.tensor(active, dtype=torch.float64))
        for k, m in enumerate(alone):
            if not active[k]:
                continue
            o = optimisers[k]
            o.zero_grad()
            nn.functional.cross_entropy(m(x[k]), y[k]).backward()
            set_lr(o, _lr(steps[k], spec))
            o.step()
            steps[k] += 1
    assert opt.steps.tolist() == steps
    for k, m in enumerate(alone):
        for name, p in m.named_parameters():
            torch.testing.assert_close(stacked.params[name][k], p.detach(), rtol=1e-12, atol=1e-14)


def test_shrinking_keeps_each_slots_network_buffers_and_optimiser_state():
    template = create_model(_spec(), num_classes=10, in_channels=3)
    stacked = StackedNet(template, 3)
    for slot in range(3):
        torch.manual_seed(slot)
        stacked.load(slot, create_model(_spec(), num_classes=10, in_channels=3))
    opt = StackedOptimizer(OptimizerSpec(), stacked, lr_table([1e-3] * 5))
    x = torch.rand(4, 3, 16, 16)
    out = stacked.function(per_slot=False)(stacked.params, stacked.buffers, x)  # moves BatchNorm statistics
    torch.autograd.backward([out[k].square().mean() for k in range(3)])
    opt.step(torch.ones(3, dtype=torch.float64))
    small = stacked.select([2, 0])
    small_opt = opt.select([2, 0], small)
    for new, old in ((0, 2), (1, 0)):
        for name, p in stacked.params.items():
            assert torch.equal(small.params[name][new], p[old])
        for name, b in stacked.buffers.items():
            assert torch.equal(small.buffers[name][new], b[old])
    assert small_opt.steps.tolist() == [1, 1]
    assert torch.equal(small_opt.exp_avg, stacked.gather_rows(opt.exp_avg, [2, 0]))
    assert small.params["fc.weight"].data_ptr() == small.flat.data_ptr() + small._blocks["fc.weight"][0] * 4


def test_a_cleared_slot_gives_finite_outputs_and_zero_gradients():
    template = create_model(_spec(), num_classes=10, in_channels=3)
    stacked = StackedNet(template, 2)
    stacked.load(0, template)
    stacked.load(1, template)
    with torch.no_grad():
        stacked.params["fc.weight"][1].fill_(float("nan"))
    stacked.clear(1)
    out = stacked.function(per_slot=False)(stacked.params, stacked.buffers, torch.rand(4, 3, 16, 16))
    out[0].sum().backward()
    assert torch.isfinite(out).all() and out[1].abs().max() == 0
    assert all(p.grad[1].abs().max() == 0 for p in stacked.params.values())


def _spec():
    from nlfs.train.profiles import ModelSpec

    return ModelSpec(name="resnet9v2", dropout=0.0)
