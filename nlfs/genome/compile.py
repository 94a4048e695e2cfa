"""Genome -> PyTorch: a loss module that is a drop-in for `nn.CrossEntropyLoss`.

The active graph is flattened once into a straight-line program over the tensor leaves
(y, p, and log p where log(p) reads log_softmax) and scalar constants (`nlfs.genome.program`),
so a call costs the operators and little else.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from nlfs.genome.graph import Genome
from nlfs.genome.program import Step, flatten, plan, run_program  # noqa: F401  (re-exported)


def targets_to_probs(target: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Integer targets [B] -> one-hot [B, C]; probability targets [B, C] pass through."""
    target = _checked_target(target, num_classes, dtype)
    if target.dim() == 2:
        return target
    if num_classes <= _EYE_MAX_CLASSES:
        # Rows of a cached identity: one kernel, where F.one_hot(...).to(dtype) takes three
        # and a host-side range check. An index out of range (negative too) still raises.
        return torch.index_select(_eye(num_classes, dtype, target.device), 0, target)
    one_hot = torch.zeros(target.shape[0], num_classes, dtype=dtype, device=target.device)
    return one_hot.scatter_(1, target.unsqueeze(1), 1.0)


def _checked_target(target: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Class indices [B] as they are, probabilities [B, C] in `dtype`; ValueError otherwise."""
    if target.dim() == 1:
        if target.dtype.is_floating_point:
            raise ValueError("integer class targets expected for a 1-d target")
        return target
    if target.dim() == 2 and target.shape[1] == num_classes:
        return target.to(dtype)
    raise ValueError(f"target of shape {tuple(target.shape)} does not fit {num_classes} classes")


_NO_INDEX = torch.iinfo(torch.int64).min
_EYE_MAX_CLASSES = 1024  # an identity of 1024 classes is 4 MiB; larger ones scatter instead


@lru_cache(maxsize=16)
def _eye(num_classes: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.eye(num_classes, dtype=dtype, device=device)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has no per-device query
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


INPUTS = ("log_softmax", "probabilities")


class GenomeLoss(nn.Module):
    """loss(logits [B, C], target [B] int or [B, C] probs) -> scalar, like nn.CrossEntropyLoss.

    Applies softmax itself: p = softmax(logits), y = target (one-hot or soft), smoothed as
    y * (1 - ls) + ls / C; the loss is sign * mean over the batch of the sum over classes of t.
    Computed in float32 even under autocast, since guards like eps = 1e-7 vanish in bf16.

    `inputs` says what log(p) and log10(p) read:
    - "log_softmax" (default): log_softmax of the logits, exact and never -inf, so the guard's
      eps / p error never enters and cross-entropy is F.cross_entropy's value and gradient;
    - "probabilities": the operators receive p itself, so log(p) is ln(|p| + 1e-7) exactly as
      the operator table says, as the authors train: their model ends in softmax and their loss
      (loss_function_evolution.py `Loss.call`) reads its output (METHOD.md 4).

    `fuse_cross_entropy`: a genome whose t is y * log(p) runs as -sign * F.cross_entropy (with
    the same smoothing) instead of building the one-hot labels, multiplying and summing: the
    same numbers as the log_softmax program, at F.cross_entropy's speed. With "probabilities" it
    gives Keras' CategoricalCrossentropy on a softmax output (which reads the cached logits),
    the authors' cross-entropy baseline, rather than the guarded program. False keeps the
    general program for every genome.
    """

    def __init__(self, genome: Genome, *, inputs: str = "log_softmax", fuse_cross_entropy: bool = True):
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, not {inputs!r}")
        self.genome, self.inputs = genome, inputs
        self._steps, self._out = flatten(genome, "torch", logp=inputs == "log_softmax")
        refs = [r for _, rs in self._steps for r in rs] + [self._out]
        self._needs_p = any(isinstance(r, str) and r == "p" for r in refs)
        self._needs_logp = any(isinstance(r, str) and r == "logp" for r in refs)
        program = plan(genome, logp=True)
        self._cross_entropy = fuse_cross_entropy and program.out == 0 and program.steps in (
            (("mul", ("y", "logp")),), (("mul", ("logp", "y")),))

    def elementwise(self, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """t = the root node's value, shape [B, C], from labels y and logits, both [B, C]."""
        # Only the leaves the program reads: cross-entropy needs log_softmax, not softmax.
        leaves = {"y": y}
        if self._needs_p:
            leaves["p"] = torch.softmax(logits, dim=-1)
        if self._needs_logp:
            leaves["logp"] = torch.log_softmax(logits, dim=-1)
        return run_program(self._steps, self._out, leaves)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if _autocast_enabled(logits.device.type):
            with torch.autocast(device_type=logits.device.type, enabled=False):
                return self._loss(logits.float(), target)
        return self._loss(logits.float(), target)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The scalar loss of float32 logits [B, C] and targets [B] or [B, C]."""
        ls = self.genome.label_smoothing
        if self._cross_entropy:
            target = _checked_target(target, logits.shape[-1], logits.dtype)
            # No index is ignored: nn.CrossEntropyLoss's -100 would silently drop samples
            # that the general program rejects as out of range.
            loss = F.cross_entropy(logits, target, label_smoothing=ls, ignore_index=_NO_INDEX)
            return loss if self.genome.sign < 0 else -loss
        y = targets_to_probs(target, logits.shape[-1], logits.dtype)
        if ls:
            y = y * (1 - ls) + ls / logits.shape[-1]
        t = self.elementwise(y, logits)
        return t.sum() * (self.genome.sign / logits.shape[0])

    def extra_repr(self) -> str:
        from nlfs.genome.render import infix

        return f"id={self.genome.id}, loss={infix(self.genome)}, inputs={self.inputs}"


def compile_genome(genome: Genome, *, inputs: str = "log_softmax", fuse_cross_entropy: bool = True) -> GenomeLoss:
    """The loss module of a structurally valid genome (raises GenomeError otherwise); the
    keywords are `GenomeLoss`'s (a profile's `loss` section)."""
    genome.validate()
    return GenomeLoss(genome, inputs=inputs, fuse_cross_entropy=fuse_cross_entropy)
