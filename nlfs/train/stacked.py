"""S copies of one network run as one: the cohort's model (nlfs.train.cohort).

The copies' parameters live in one flat buffer, parameter by parameter, each a block [S, *shape]
(slot-major), so that `torch.func.functional_call` under `vmap` runs all copies with the kernels of
one network (a convolution over stacked weights becomes one grouped convolution), and the
optimiser (`StackedOptimizer`) updates every copy with a few elementwise kernels over the whole
buffer. Copies never mix: every kernel computes a slot's outputs from that slot's parameters and
inputs alone, so a slot whose values are NaN leaves the others' numbers untouched.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.func import functional_call, vmap

from nlfs.train.models import set_dropout
from nlfs.train.profiles import OptimizerSpec

_ADAM_BETAS = (0.9, 0.999)  # torch's and Keras' defaults, as nlfs.train.schedule.build_optimizer uses them


class StackedNet:
    """`slots` copies of `template`'s architecture; slot k holds one member's network.

    params: name -> leaf Parameter [S, *shape], a view of `flat` (their gradients are views of
    `grad`, accumulated in place by autograd); buffers: name -> [S, *shape] (BatchNorm statistics).
    `member_of` [P] gives the slot of every element of `flat`.
    """

    def __init__(self, template: nn.Module, slots: int):
        self.slots = slots
        self.base = copy.deepcopy(template).to("meta")  # the architecture only; functional_call supplies tensors
        named = list(template.named_parameters())
        first = named[0][1]
        self.device, self.dtype = first.device, first.dtype
        self.shapes = {name: tuple(p.shape) for name, p in named}
        self._layout(torch.zeros(slots * sum(p.numel() for _, p in named), device=self.device, dtype=self.dtype))
        self.buffers = {name: torch.stack([b] * slots).clone() for name, b in template.named_buffers()}
        self._blank = {name: b.detach().clone() for name, b in template.named_buffers()}

    def _layout(self, flat: torch.Tensor) -> None:
        """Lay the parameters out over `flat` [P]: block by block, each [S, *shape]."""
        self.flat, self.grad = flat, torch.zeros_like(flat)
        self.params: dict[str, nn.Parameter] = {}
        self._blocks: dict[str, tuple[int, int]] = {}  # name -> (offset, elements per slot)
        offset, owners, s = 0, [], self.slots
        for name, shape in self.shapes.items():
            n = math.prod(shape)
            self._blocks[name] = (offset, n)
            param = nn.Parameter(flat[offset: offset + s * n].view(s, *shape))
            param.grad = self.grad[offset: offset + s * n].view(s, *shape)
            self.params[name] = param
            owners.append(torch.arange(s, device=self.device).repeat_interleave(n))
            offset += s * n
        self.member_of = torch.cat(owners)

    # ---- slots ----------------------------------------------------------------------------------

    def load(self, slot: int, model: nn.Module) -> None:
        """Put a member's freshly initialised network (same architecture) into `slot`."""
        with torch.no_grad():
            for name, p in model.named_parameters():
                self.params[name][slot].copy_(p)
            for name, b in model.named_buffers():
                self.buffers[name][slot].copy_(b)

    def clear(self, slot: int) -> None:
        """Zero a freed slot: its outputs stay finite (and unused) until a member takes it."""
        with torch.no_grad():
            for p in self.params.values():
                p[slot].zero_()
            for name, b in self.buffers.items():
                b[slot].copy_(self._blank[name])

    def slot_mask(self, slot: int) -> torch.Tensor:
        """[P] bool: the elements of `flat` that belong to `slot`."""
        return self.member_of == slot

    def select(self, keep: list[int]) -> "StackedNet":
        """A new StackedNet of len(keep) slots holding these slots' networks, in this order."""
        other = StackedNet.__new__(StackedNet)
        other.__dict__.update(self.__dict__)
        other.slots = len(keep)
        other._layout(self.gather_rows(self.flat, keep))
        index = torch.tensor(keep, device=self.device)
        other.buffers = {name: b.index_select(0, index).clone() for name, b in self.buffers.items()}
        return other

    def gather_rows(self, values: torch.Tensor, keep: list[int]) -> torch.Tensor:
        """A [P]-shaped tensor laid out like `flat` -> the same for the slots `keep`, in order."""
        index = torch.tensor(keep, device=self.device)
        parts = []
        for name, (offset, n) in self._blocks.items():
            parts.append(values[offset: offset + self.slots * n].view(self.slots, n).index_select(0, index).reshape(-1))
        return torch.cat(parts)

    # ---- running --------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def set_dropout(self, p: float | None) -> None:
        set_dropout(self.base, p)

    def _one(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def function(self, per_slot: bool):
        """forward(params, buffers, x) -> logits [S, B, K], with x [B, C, H, W] shared by every
        slot or [S, B, C, H, W] per slot. Dropout draws one mask for all slots (`randomness=same`),
        the draw an unstacked network makes from the same generator state."""
        return vmap(self._one, in_dims=(0, 0, 0 if per_slot else None), randomness="same")


class StackedOptimizer:
    """The profile's optimiser for every slot of a StackedNet at once, each slot with its own step
    count and learning rate: Adam (torch's or Keras' epsilon), AdamW or SGD, computed as
    torch.optim computes them (nlfs.train.schedule.build_optimizer) with per-slot coefficients.

    `lr_table` [N]: the learning rate of a member's step n (nlfs.train.schedule.lr_at, float64);
    `steps` [S] int64: steps each slot's member has taken; `step(active)` advances the slots whose
    `active` [S] entry is 1 and leaves the others' parameters as they are.
    """

    def __init__(self, spec: OptimizerSpec, net: StackedNet, lr_table: torch.Tensor):
        self.spec, self.net = spec, net
        self.lr_table = lr_table.to(device=net.device, dtype=torch.float64)
        self.steps = torch.zeros(net.slots, dtype=torch.int64, device=net.device)
        adam = spec.name in ("adam", "adamw")
        self.exp_avg = torch.zeros_like(net.flat)  # Adam's m, or SGD's momentum buffer
        self.exp_avg_sq = torch.zeros_like(net.flat) if adam else None

    def reset(self, slot: int) -> None:
        """A new member in `slot`: no moments, step 0."""
        mask = self.net.slot_mask(slot)
        self.exp_avg.masked_fill_(mask, 0.0)
        if self.exp_avg_sq is not None:
            self.exp_avg_sq.masked_fill_(mask, 0.0)
        self.steps[slot] = 0

    def select(self, keep: list[int], net: StackedNet) -> "StackedOptimizer":
        other = StackedOptimizer.__new__(StackedOptimizer)
        other.spec, other.net, other.lr_table = self.spec, net, self.lr_table
        other.steps = self.steps.index_select(0, torch.tensor(keep, device=net.device))
        other.exp_avg = self.net.gather_rows(self.exp_avg, keep)
        other.exp_avg_sq = None if self.exp_avg_sq is None else self.net.gather_rows(self.exp_avg_sq, keep)
        return other

    def _per_element(self, per_slot: torch.Tensor) -> torch.Tensor:
        """[S] float64 -> [P] in the parameters' dtype (rounded as torch rounds a Python scalar)."""
        return per_slot.to(self.net.dtype).index_select(0, self.net.member_of)

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        """One step of the slots whose active [S] entry is 1; the others keep parameters, moments
        and step count as they are. No host sync, so a CUDA graph can capture it."""
        spec, p, g = self.spec, self.net.flat, self.net.grad
        last = self.lr_table.shape[0] - 1
        lr = self.lr_table.index_select(0, self.steps.clamp(max=last)) * active.to(torch.float64)
        t = (self.steps + 1).to(torch.float64)  # the step being taken, 1-based as torch counts it
        moving = self._per_element(active.to(torch.float64)).bool()  # [P]
        if spec.name == "sgd":
            if spec.weight_decay:
                g = g.add(p, alpha=spec.weight_decay)
            # torch's first step sets the buffer to g; momentum * 0 + g from zeros is the same
            buf = self.exp_avg
            buf.copy_(torch.where(moving, buf * spec.momentum + g, buf))
            direction = g.add(buf, alpha=spec.momentum) if spec.nesterov else buf
            p.sub_(self._per_element(lr) * direction)
        else:
            b1, b2 = _ADAM_BETAS
            if spec.name == "adamw":
                p.mul_(1.0 - self._per_element(lr * spec.weight_decay))
            elif spec.weight_decay:
                g = g.add(p, alpha=spec.weight_decay)
            m, v = self.exp_avg, self.exp_avg_sq
            m.copy_(torch.where(moving, m.lerp(g, 1.0 - b1), m))
            v.copy_(torch.where(moving, v * b2 + g * g * (1.0 - b2), v))
            bias1 = 1.0 - torch.pow(b1, t)
            bias2_sqrt = (1.0 - torch.pow(b2, t)).sqrt()
            # Keras adds epsilon before bias correction: torch's eps is then eps / sqrt(1 - b2^t) (KerasAdam)
            eps = spec.eps / bias2_sqrt if spec.eps_mode == "keras" else torch.full_like(t, spec.eps)
            denom = (v.sqrt() / self._per_element(bias2_sqrt)).add_(self._per_element(eps))
            p.sub_(self._per_element(lr / bias1) * m / denom)  # lr 0 leaves a resting slot where it is
        self.steps.add_(active.to(torch.int64))


def lr_table(values: list[float]) -> torch.Tensor:
    """[N] float64 learning rates, step by step (a float keeps lr_at's float32 value exactly)."""
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError("a learning-rate table needs finite values")
    return torch.tensor(values, dtype=torch.float64)
