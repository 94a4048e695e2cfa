"""Optimisers and the per-step learning rate named by a profile.

The learning rate is a pure function of the run's global step (`lr_at`), counted across all
stages of a run, and written into the optimiser before each step (`set_lr`), as the authors'
`WarmupCosineDecay` callback does (fitness_functions.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nlfs.train.profiles import OptimizerSpec, ScheduleSpec


class KerasAdam(torch.optim.Adam):
    """Adam with Keras' epsilon: theta -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).

    torch adds eps after bias correction, sqrt(v / (1 - b2^t)) + eps; Keras adds it before
    ("epsilon hat", Kingma & Ba section 2). The two agree exactly when torch's eps is
    eps / sqrt(1 - b2^t), which this class sets before each step; the rest is torch's Adam.
    Every parameter must take every step (as in a plain training loop), so one step count
    serves all of them.
    """

    def __init__(self, params, *, lr: float, eps: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999)):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        for group in self.param_groups:
            group["eps_hat"] = eps
        self.steps_taken = 0

    @torch.no_grad()
    def step(self, closure=None):
        self.steps_taken += 1
        for group in self.param_groups:
            beta2 = group["betas"][1]
            group["eps"] = group["eps_hat"] / math.sqrt(1.0 - beta2 ** self.steps_taken)
        return super().step(closure)


def build_optimizer(spec: OptimizerSpec, params) -> torch.optim.Optimizer:
    if spec.name == "adam":
        if spec.eps_mode == "keras":
            return KerasAdam(params, lr=spec.lr, eps=spec.eps, weight_decay=spec.weight_decay)
        return torch.optim.Adam(params, lr=spec.lr, eps=spec.eps, weight_decay=spec.weight_decay)
    if spec.name == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, eps=spec.eps, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                           weight_decay=spec.weight_decay)


def warmup_cosine(step: int, *, peak: float, warmup: int, total: int) -> float:
    """The authors' `lr_warmup_cosine_decay(step, warmup, hold=0, total, target_lr=peak)`
    (fitness_functions.py), in float64: peak * step / warmup while step < warmup, then
    0.5 * peak * (1 + cos(pi * (step - warmup) / (total - warmup))). Step 0 is 0.

    Past `total` the authors' formula climbs again (its cosine runs on); no run of theirs gets
    there (each schedule's total is the run's step count or more), and here the rate stays at 0.
    """
    if step < warmup:
        return peak * (step / warmup)
    step = min(step, total)
    return 0.5 * peak * (1.0 + math.cos(math.pi * (step - warmup) / float(total - warmup)))


def lr_at(spec: ScheduleSpec, peak: float, step: int, total_steps: int) -> float:
    """The learning rate optimiser step `step` trains with (0-based, counted across every stage
    of a run, never restarted), for a schedule spanning `total_steps` steps.

    constant: `peak`. warmup_cosine: `warmup_cosine(...) + spec.offset`, rounded to float32,
    the value the authors' callback writes into Keras' float32 learning-rate variable before
    each batch (`K.set_value(optimizer.lr, lr + 1e-7)`).
    """
    if spec.name == "constant":
        return peak
    total = spec.total_steps or total_steps
    warm = min(spec.warmup_steps, total - 1)  # a cosine needs at least one step after warm-up
    return float(np.float32(warmup_cosine(step, peak=peak, warmup=warm, total=total) + spec.offset))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write `lr` into every parameter group, before `optimizer.step()`."""
    for group in optimizer.param_groups:
        group["lr"] = lr
