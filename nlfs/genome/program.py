"""A genome's active graph as a straight-line program, run on torch or numpy, and its gradient.

Shared by compilation (torch, training) and the integrity check (numpy, fast). The numpy
reverse pass computes d loss / d logits the way torch autograd does for `GenomeLoss`, so the
integrity check needs no torch.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Callable, Sequence

import numpy as np

from nlfs.genome.graph import Genome, GenomeError
from nlfs.genome.ops import CONSTANT_LEAVES, LN10, OPS

# A program step: (function, operand references). A reference is a leaf name ("y", "p", or
# "logp" = log_softmax of the logits), a constant, or the int index of an earlier step's result.
Step = tuple[Callable, tuple]

# log10(p) read from log_softmax: log10 p = ln p / ln 10. (log(p) reads "logp" itself.)
_LOG10_OF_LOGP = "log10_of_logp"


def _log10_of_logp(x):
    return x / LN10


def _log10_of_logp_grad(g, out, x):
    return (g / LN10,)


class Plan:
    """A backend-neutral program: `steps` as (operator name, references) in evaluation order,
    the output's reference `out`, and `on_p[k]`: whether step k depends on p (or log p)."""

    def __init__(self, steps: tuple[tuple[str, tuple], ...], out: object, on_p: tuple[bool, ...]):
        self.steps, self.out, self.on_p = steps, out, on_p

    def bind(self, backend: str) -> tuple[list[Step], object]:
        """Steps with the backend's functions and float32 scalar constants, and the output."""
        if backend == "torch":
            import torch

            const, table = torch.tensor, lambda n: OPS[n].torch_fn
        else:
            const, table = np.float32, lambda n: OPS[n].np_fn
        steps = [(_log10_of_logp if name == _LOG10_OF_LOGP else table(name),
                  tuple(const(a) if isinstance(a, float) else a for a in refs))
                 for name, refs in self.steps]
        return steps, const(self.out) if isinstance(self.out, float) else self.out

    @cached_property
    def numpy(self) -> tuple[list[Step], object]:
        """`bind("numpy")`, kept: the integrity check runs each program several times."""
        return self.bind("numpy")

    @cached_property
    def memo_keys(self) -> tuple[tuple | None, ...]:
        """For each step that reads only leaves and constants, a key for its value (the same
        for every genome with that step), else None; see `run_program`'s memo."""
        return tuple(step if all(type(r) is not int for r in step[1]) else None for step in self.steps)

    @cached_property
    def numpy_grads(self) -> list[Callable]:
        """Each step's vector-Jacobian product (see `Op.np_grad`)."""
        return [_log10_of_logp_grad if name == _LOG10_OF_LOGP else OPS[name].np_grad
                for name, _ in self.steps]


@lru_cache(maxsize=4096)
def _plan(nodes: tuple, output: int, logp: bool, order: tuple[int, ...] | None) -> Plan:
    if order is None:
        raise GenomeError("genome: the active graph has a cycle")
    ref: dict[int, object] = {}
    steps: list[tuple[str, tuple]] = []
    on_p: list[bool] = []
    for i in order:
        node = nodes[i]
        args = [ref[x] if isinstance(x, int) else CONSTANT_LEAVES.get(x, x) for x in node.inputs]
        if all(isinstance(a, float) for a in args):
            with np.errstate(all="ignore"):
                ref[i] = float(OPS[node.op].np_fn(*(np.float32(a) for a in args)))
            continue
        name = node.op
        if logp and name in ("log", "log10") and args == ["p"]:
            if name == "log":
                ref[i] = "logp"  # ln p is log_softmax itself: no step at all
                continue
            name, args = _LOG10_OF_LOGP, ["logp"]
        ref[i] = len(steps)
        steps.append((name, tuple(args)))
        on_p.append(any(a in ("p", "logp") if isinstance(a, str) else type(a) is int and on_p[a]
                        for a in args))
    return Plan(tuple(steps), ref[output], tuple(on_p))


def plan(genome: Genome, logp: bool) -> Plan:
    """The genome's program (cached). Subexpressions of constants alone are folded in float32.

    With `logp`, log(p) and log10(p) read log_softmax of the logits: the eps guard only keeps
    log away from 0, which log_softmax never reaches, so training gets the exact value and
    the bounded gradient y - p, and cross-entropy equals F.cross_entropy. Without it (the
    numpy probe), log keeps its guard, as METHOD.md states it.
    """
    order = genome.order  # cached on the genome
    if logp and not any(genome.nodes[i].op in ("log", "log10") and genome.nodes[i].inputs == ("p",)
                        for i in order or ()):
        logp = False  # nothing reads log p: one program serves both
    return _plan(genome.nodes, genome.output, logp, order)


def flatten(genome: Genome, backend: str = "torch", logp: bool | None = None) -> tuple[list[Step], object]:
    """The active graph as straight-line steps in evaluation order, and the output's reference.

    `logp` defaults to True on torch (training) and False on numpy (the probe); see `plan`.
    Constants are float32 scalars of the backend, so that numpy computes in float32 like torch.
    """
    pl = plan(genome, backend == "torch" if logp is None else logp)
    return pl.numpy if backend == "numpy" else pl.bind(backend)


def run_program(steps: Sequence[Step], out, leaves: dict, values: list | None = None,
                memo: dict | None = None, memo_keys: Sequence | None = None):
    """Evaluate a flattened program. `leaves` maps "y" and those of "p", "logp" it reads to [B, C].

    Returns t of shape [B, C]; a constant output is broadcast to that shape. Pass a list as
    `values` to keep every step's result (a reverse pass needs them). With `memo` (a dict kept
    for one set of leaves) and `memo_keys` (Plan.memo_keys), steps that read only leaves are
    computed once for all genomes: in a search most nodes take leaves, and a mutant shares
    all but one node with its parent. The values are never modified, so sharing is safe.
    """
    if values is None:
        values = []
    for k, (fn, refs) in enumerate(steps):
        key = memo_keys[k] if memo is not None else None
        value = memo.get(key) if key is not None else None
        if value is None:
            value = fn(*[values[r] if type(r) is int else leaves[r] if type(r) is str else r for r in refs])
            if key is not None:
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                memo[key] = value
        values.append(value)
    like = leaves["y"]  # every leaf is [B, C]; y is always there
    t = values[out] if type(out) is int else leaves[out] if type(out) is str else out
    if not hasattr(t, "shape") or t.shape != like.shape:
        t = (like.new_zeros(like.shape) if hasattr(like, "new_zeros") else np.zeros_like(like)) + t
    return t


_MEMO_SIZE = 2048  # values kept per memo (at most 16 MB for the probe): operators of leaves


def logit_gradient(genome: Genome, y: np.ndarray, p: np.ndarray, logp: np.ndarray,
                   memo: dict | None = None, *, log_softmax: bool = True) -> np.ndarray | None:
    """d loss / d logits, [B, C], of loss = sign * mean_b sum_c t(y, p), in numpy.

    `y` [B, C] are the (smoothed) labels, `p` and `logp` [B, C] softmax and log_softmax of the
    logits. Mirrors `GenomeLoss` under torch autograd step by step: log(p) reads logp (with
    `log_softmax`, GenomeLoss's inputs="log_softmax") or is the guarded ln(|p| + eps) of p
    (without, inputs="probabilities"), each operator's gradient follows torch's formula, and
    the softmax and log_softmax backwards are torch's. Returns None where the loss does not
    depend on the logits at all (autograd's unused input). Call under np.errstate(all="ignore")
    to silence overflow warnings. `memo`: as in `run_program`, for these leaves.
    """
    return softmax_backward(*leaf_gradients(genome, y, p, logp, memo, log_softmax=log_softmax), p, logp)


def leaf_gradients(genome: Genome, y: np.ndarray, p: np.ndarray, logp: np.ndarray,
                   memo: dict | None = None, *, log_softmax: bool = True):
    """(d loss / d p, d loss / d logp), each [B, C] or None where the program does not read it;
    `log_softmax` as in `logit_gradient`."""
    pl = plan(genome, log_softmax)
    leaves = {"y": y, "p": p, "logp": logp}
    values: list = []
    run_program(*pl.numpy, leaves, values, memo, pl.memo_keys)
    return reverse_pass(pl, values, leaves, genome.sign)


def reverse_pass(pl: Plan, values: list, leaves: dict, sign: int):
    """The gradients of loss = sign * mean_b sum_c t w.r.t. leaves["p"] and leaves["logp"],
    given every step's forward value.

    From d loss / d t = sign / B, each step's vector-Jacobian product (`Op.np_grad`) is
    applied in reverse order, and gradients reaching a value from several uses are summed.
    Only values that depend on p carry a gradient, as in autograd.
    """
    steps, out = pl.numpy
    p = leaves["p"]
    grads: list = [None] * len(steps) + [None, None]  # the steps', then p's and logp's
    slot = {"p": len(steps), "logp": len(steps) + 1}
    g_t = np.full(p.shape, sign / p.shape[0], dtype=p.dtype)  # d (sign/B sum t) / d t
    if type(out) is int:
        grads[out] = g_t
    elif out in slot:
        grads[slot[out]] = g_t
    vjps, on_p = pl.numpy_grads, pl.on_p
    for k in range(len(steps) - 1, -1, -1):
        g = grads[k]
        if g is None:
            continue
        refs = steps[k][1]
        args = [values[r] if type(r) is int else leaves[r] if type(r) is str else r for r in refs]
        for r, g_in in zip(refs, vjps[k](g, values[k], *args)):
            j = r if type(r) is int and on_p[r] else slot.get(r) if type(r) is str else None
            if j is not None:
                grads[j] = g_in if grads[j] is None else grads[j] + g_in
    return grads[slot["p"]], grads[slot["logp"]]


def softmax_backward(g_p, g_logp, p, logp) -> np.ndarray | None:
    """[B, C] gradient w.r.t. the logits from the gradients w.r.t. p and log p (None: unused)."""
    g_z = None
    if g_p is not None:
        g_z = p * (g_p - (g_p * p).sum(axis=1, keepdims=True))
    if g_logp is not None:
        g_l = g_logp - np.exp(logp) * g_logp.sum(axis=1, keepdims=True)
        g_z = g_l if g_z is None else g_z + g_l
    return g_z


def softmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p and log p, both [B, C], of logits [B, C], computed as torch does (max-shifted)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    return e * (1 / s), z - np.log(s)
