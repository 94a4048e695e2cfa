"""`nlfs export`: a loss genome as a standalone PyTorch module file, or as LaTeX.

The Python file imports only torch and math: it is the genome's straight-line program
(`nlfs.genome.program.plan`, the one training runs, with log(p) read from log_softmax)
written out as code, inside a module with exactly `GenomeLoss`'s semantics (softmax, one-hot
or soft targets, label smoothing, float32 outside autocast, sign * mean over the batch of the
sum over classes). Every operator's code mirrors its torch definition in nlfs/genome/ops.py.
"""

from __future__ import annotations

import keyword

from nlfs.errors import NlfsError
from nlfs.genome.graph import Genome
from nlfs.genome.ops import OPS

# Operator -> Python expression over its operands {0}, {1}; the same formulas as ops._torch_table.
TORCH_CODE: dict[str, str] = {
    "neg": "torch.neg({0})",
    "log": "torch.log(torch.abs({0}) + EPS)",
    "log10": "torch.log10(torch.abs({0}) + EPS)",
    "exp": "torch.exp({0})",
    "abs": "torch.abs({0})",
    "sigmoid": "torch.sigmoid({0})",
    "inv_abs1": "1 / (1 + torch.abs({0}))",
    "softplus": "torch.log(torch.abs(1 + torch.exp({0})) + EPS)",
    "dsigmoid": "torch.sigmoid({0}) * (1 - torch.sigmoid({0}))",
    "erf": "torch.erf({0})",
    "erfc": "torch.erfc({0})",
    "sin": "torch.sin({0})",
    "sinh": "torch.sinh({0})",
    "asinh": "torch.asinh({0})",
    "tanh": "torch.tanh({0})",
    "atan": "torch.atan({0})",
    "dtanh": "1 - torch.tanh({0}) ** 2",
    "bessel_i0": "torch.special.i0({0})",
    "bessel_i0e": "torch.special.i0e({0})",
    "bessel_i1": "torch.special.i1({0})",
    "bessel_i1e": "torch.special.i1e({0})",
    "recip": "1 / ({0} + EPS)",
    "relu": "torch.relu({0})",
    "negrelu": "torch.clamp({0}, max=0)",
    "square": "torch.square({0})",
    "sqrt_abs": "torch.sqrt(torch.abs({0}))",
    "softsign": "{0} / (1 + torch.abs({0}))",
    "add": "torch.add({0}, {1})",
    "sub": "torch.sub({0}, {1})",
    "mul": "torch.mul({0}, {1})",
    "max": "torch.maximum({0}, {1})",
    "min": "torch.minimum({0}, {1})",
    "div": "{0} / ({1} + EPS)",
    "ndiv": "{0} / torch.sqrt(1 + {1} * {1})",
}
assert TORCH_CODE.keys() == OPS.keys(), sorted(TORCH_CODE.keys() ^ OPS.keys())

_LOG10_OF_LOGP = "{0} / LN10"  # the planner's log10(p) read from log_softmax

_TEMPLATE = '''"""{title}

    {formula}

Exported by nlfs {version} from genome {genome_id}; standalone: needs only PyTorch.
A drop-in for nn.CrossEntropyLoss: loss(logits [B, C], target [B] class indices or [B, C]
probabilities) -> scalar. p = softmax(logits); y = the one-hot or soft target{smoothing_doc};
loss = {sign_word}mean over the batch of the sum over classes of t(y, p), computed in float32.
"""

import math

import torch
from torch import nn

EPS = 1e-7  # the operators' guard
LN10 = math.log(10.0)
SIGN = {sign}
LABEL_SMOOTHING = {label_smoothing!r}


def elementwise(y, p, logp):
    """t, shape [B, C], from labels y, probabilities p and log-probabilities logp, all [B, C]."""
{body}


class {class_name}(nn.Module):
    """{title}"""

    def forward(self, logits, target):
        if torch.is_autocast_enabled(logits.device.type):
            with torch.autocast(device_type=logits.device.type, enabled=False):
                return self._loss(logits.float(), target)
        return self._loss(logits.float(), target)

    def _loss(self, logits, target):
        classes = logits.shape[-1]
        if target.dim() == 1:
            if target.dtype.is_floating_point:
                raise ValueError("integer class targets expected for a 1-d target")
            y = torch.zeros(target.shape[0], classes, dtype=logits.dtype, device=target.device)
            y = y.scatter_(1, target.unsqueeze(1), 1.0)
        elif target.dim() == 2 and target.shape[1] == classes:
            y = target.to(logits.dtype)
        else:
            raise ValueError(f"target of shape {{tuple(target.shape)}} does not fit {{classes}} classes")
        if LABEL_SMOOTHING:
            y = y * (1 - LABEL_SMOOTHING) + LABEL_SMOOTHING / classes
        p = {p_expr}
        logp = {logp_expr}
        t = elementwise(y, p, logp)
        if t.shape != y.shape:  # a constant term: broadcast like the class sum sees it
            t = y.new_zeros(y.shape) + t
        return t.sum() * (SIGN / logits.shape[0])


Loss = {class_name}
'''


def class_name(name: str | None, genome: Genome) -> str:
    """A CamelCase class name from a loss name (e.g. cross_entropy -> CrossEntropyLoss)."""
    base = "".join(part.capitalize() for part in (name or "").replace("-", "_").split("_") if part)
    base = "".join(ch for ch in base if ch.isalnum())
    if not base or not base[0].isalpha() or keyword.iskeyword(base):
        base = f"Genome{genome.id}"
    return base if base.endswith("Loss") else base + "Loss"


def to_python(genome: Genome, name: str | None = None) -> str:
    """The source of a standalone module file implementing `genome` like `GenomeLoss`."""
    from nlfs import __version__
    from nlfs.genome.program import _LOG10_OF_LOGP as LOG10_STEP
    from nlfs.genome.program import plan
    from nlfs.genome.render import describe

    genome.validate()
    program = plan(genome, True)  # log(p) -> log_softmax, as training computes it

    def ref(r) -> str:
        if isinstance(r, bool):
            raise AssertionError("unexpected reference")
        if isinstance(r, int):
            return f"v{r}"
        if isinstance(r, float):
            return f"torch.tensor({r!r})"  # a float32 scalar, as the program binds constants
        return {"y": "y", "p": "p", "logp": "logp"}[r]

    lines = []
    for k, (op, refs) in enumerate(program.steps):
        code = _LOG10_OF_LOGP if op == LOG10_STEP else TORCH_CODE[op]
        lines.append(f"    v{k} = {code.format(*(ref(r) for r in refs))}")
    lines.append(f"    return {ref(program.out)}")
    reads = {r for _, refs in program.steps for r in refs if isinstance(r, str)} | (
        {program.out} if isinstance(program.out, str) else set())
    title = f"The loss {name}" if name else f"The loss of genome {genome.id}"
    return _TEMPLATE.format(
        title=title, formula=describe(genome), version=__version__, genome_id=genome.id,
        smoothing_doc=f", smoothed as y (1 - {genome.label_smoothing:g}) + {genome.label_smoothing:g} / C"
        if genome.label_smoothing else "",
        sign_word="-" if genome.sign < 0 else "", sign=float(genome.sign),
        label_smoothing=float(genome.label_smoothing), body="\n".join(lines),
        class_name=class_name(name, genome),
        p_expr="torch.softmax(logits, dim=-1)" if "p" in reads else "None",
        logp_expr="torch.log_softmax(logits, dim=-1)" if "logp" in reads else "None")


def to_latex(genome: Genome) -> str:
    """The whole loss as one LaTeX equation: the per-class term sympy-simplified when that takes
    under `nlfs.genome.render.SIMPLIFY_SECONDS`, else as the graph writes it."""
    from nlfs.genome.render import latex

    return latex(genome)


# ---- resolving what to export ----------------------------------------------------------------

def resolve(ref: str, run_uri: str | None) -> tuple[Genome, str | None]:
    """The genome and its name: with a run, a genome id or a unique id prefix (4+ hex digits);
    otherwise (or when no genome matches) a registry name or a genome file."""
    import re

    from nlfs import losses

    if run_uri is not None and re.fullmatch(r"[0-9a-f]{4,64}", ref):
        from nlfs.runs import open_run
        from nlfs.store import layout

        run = open_run(run_uri)
        if len(ref) >= 8 and run.store.exists(layout.genome_key(ref)):
            return run.genome(ref), None
        ids = [layout.genome_id_from_key(k) for k in run.store.list(f"{layout.genomes_prefix()}{ref}")]
        if len(ids) == 1:
            return run.genome(ids[0]), None
        if len(ids) > 1:
            raise NlfsError(f"genome prefix {ref!r} is ambiguous in {run.uri}: {', '.join(ids[:5])}...")
        raise NlfsError(f"no genome {ref!r} in {run.uri}")
    genome = losses.get_genome(ref)
    name = None if losses.is_file_reference(ref) else ref
    return genome, name
