"""Optimisers and per-step learning-rate schedules named by a profile."""

from __future__ import annotations

import math

import torch

from nlfs.train.profiles import OptimizerSpec, ScheduleSpec


def build_optimizer(spec: OptimizerSpec, params) -> torch.optim.Optimizer:
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.name == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                           weight_decay=spec.weight_decay)


def lr_factor(spec: ScheduleSpec, step: int, total_steps: int) -> float:
    """Multiplier of the peak lr before optimiser step `step` (0-based) of `total_steps`.

    warmup_cosine: linear from 0 to 1 over `warmup_steps`, then half a cosine down to 0 at the
    last step (METHOD.md 4 names the schedule, peak and warm-up; the shape is our reading).
    """
    if spec.name == "constant":
        return 1.0
    warm = spec.warmup_steps
    if step < warm:
        return (step + 1) / warm
    decay = max(total_steps - warm, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, decay) / decay))


def build_scheduler(spec: ScheduleSpec, optimizer: torch.optim.Optimizer, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(spec, step, total_steps))
