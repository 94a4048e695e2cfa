"""Genome -> PyTorch: a loss module that is a drop-in for `nn.CrossEntropyLoss`.

The active graph is flattened once into a straight-line program over the two tensor leaves
(y, p) and scalar constants, so a call costs the operators and nothing else.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nlfs.genome.graph import Genome, GenomeError
from nlfs.genome.ops import CONSTANT_LEAVES, OPS

# A program step: (function, operand references). A reference is a leaf name ("y", "p", or
# "logp" = log_softmax of the logits), a constant, or the int index of an earlier step's result.
Step = tuple[Callable, tuple]
_LN10 = math.log(10.0)


def flatten(genome: Genome, backend: str = "torch") -> tuple[list[Step], int]:
    """The active graph as straight-line steps in evaluation order, and the output's reference.

    Subexpressions of constants alone are folded. On the torch backend, log(p) and log10(p)
    read log_softmax of the logits: the eps guard only keeps log away from 0, which
    log_softmax never reaches, so training gets the exact value and the bounded gradient
    y - p, and cross-entropy equals F.cross_entropy. The numpy probe keeps the guard, as
    METHOD.md states it.
    """
    order = genome.order
    if order is None:
        raise GenomeError("genome: the active graph has a cycle")
    ref: dict[int, object] = {}
    steps: list[Step] = []
    for i in order:
        node = genome.nodes[i]
        op = OPS[node.op]
        args = [ref[x] if isinstance(x, int) else CONSTANT_LEAVES.get(x, x) for x in node.inputs]
        if all(isinstance(a, float) for a in args):
            with np.errstate(all="ignore"):
                ref[i] = float(op.np_fn(*(np.float32(a) for a in args)))
            continue
        if backend == "torch" and node.op in ("log", "log10") and args == ["p"]:
            fn = _identity if node.op == "log" else _div_ln10
            args = ["logp"]
        else:
            fn = op.torch_fn if backend == "torch" else op.np_fn
        if backend == "torch":
            args = [torch.tensor(a) if isinstance(a, float) else a for a in args]
        ref[i] = len(steps)
        steps.append((fn, tuple(args)))
    return steps, ref[genome.output]


def _identity(x):
    return x


def _div_ln10(x):
    return x / _LN10


def run_program(steps: Sequence[Step], out, leaves: dict):
    """Evaluate a flattened program. `leaves` maps "y", "p" (and "logp" on torch) to [B, C] values.

    Returns t of shape [B, C]; a constant output is broadcast to that shape.
    """
    values: list = []
    for fn, refs in steps:
        args = [values[r] if type(r) is int else leaves[r] if type(r) is str else r for r in refs]
        values.append(fn(*args))
    p = leaves["p"]
    t = values[out] if type(out) is int else out
    if not hasattr(t, "shape") or t.shape != p.shape:
        t = (torch.zeros_like(p) if isinstance(p, torch.Tensor) else np.zeros_like(p)) + t
    return t


def targets_to_probs(target: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Integer targets [B] -> one-hot [B, C]; probability targets [B, C] pass through."""
    if target.dim() == 1:
        if target.dtype.is_floating_point:
            raise ValueError("integer class targets expected for a 1-d target")
        return F.one_hot(target, num_classes).to(dtype)
    if target.dim() == 2 and target.shape[1] == num_classes:
        return target.to(dtype)
    raise ValueError(f"target of shape {tuple(target.shape)} does not fit {num_classes} classes")


class GenomeLoss(nn.Module):
    """loss(logits [B, C], target [B] int or [B, C] probs) -> scalar, like nn.CrossEntropyLoss.

    Applies softmax itself: p = softmax(logits), y = target (one-hot or soft), smoothed as
    y * (1 - ls) + ls / C; the loss is sign * mean over the batch of the sum over classes of t.
    Computed in float32 even under autocast, since guards like eps = 1e-7 vanish in bf16.
    """

    def __init__(self, genome: Genome):
        super().__init__()
        self.genome = genome
        self._steps, self._out = flatten(genome)
        self._needs_logp = any(isinstance(r, str) and r == "logp" for _, refs in self._steps for r in refs)

    def elementwise(self, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """t = the root node's value, shape [B, C], from labels y and logits, both [B, C]."""
        leaves = {"y": y, "p": torch.softmax(logits, dim=-1)}
        if self._needs_logp:
            leaves["logp"] = torch.log_softmax(logits, dim=-1)
        return run_program(self._steps, self._out, leaves)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.float()
            y = targets_to_probs(target, logits.shape[-1], logits.dtype)
            ls = self.genome.label_smoothing
            if ls:
                y = y * (1 - ls) + ls / logits.shape[-1]
            t = self.elementwise(y, logits)
            return t.sum() * (self.genome.sign / logits.shape[0])

    def extra_repr(self) -> str:
        from nlfs.genome.render import infix

        return f"id={self.genome.id}, loss={infix(self.genome)}"


def compile_genome(genome: Genome) -> GenomeLoss:
    """The loss module of a structurally valid genome (raises GenomeError otherwise)."""
    genome.validate()
    return GenomeLoss(genome)
