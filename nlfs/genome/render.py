"""Genome -> text for people: infix expression, sympy-simplified form, LaTeX.

`infix` renders t (the per-class term); `describe` adds the reduction and sign so that the text
is the whole loss, e.g. `-mean_b sum_c [y * log(p)]`.
"""

from __future__ import annotations

import sympy

from nlfs.genome.graph import Genome
from nlfs.genome.ops import OPS

Y, P = sympy.symbols("y p", real=True)
_LEAF_SYMPY = {"y": Y, "p": P, "1": sympy.Integer(1), "-1": sympy.Integer(-1)}


def infix(genome: Genome) -> str:
    """The root's expression with shared subexpressions written out, e.g. `y * log(p)`."""
    if genome.order is None:
        return "<cyclic graph>"
    text: dict[int, str] = {}
    for i in genome.order:
        node = genome.nodes[i]
        op = OPS[node.op]
        args = [x if isinstance(x, str) else text[x] for x in node.inputs]
        if op.infix:
            text[i] = f"({args[0]} {op.infix} {args[1]})"
        else:
            text[i] = f"{node.op}({', '.join(_strip(a) for a in args)})"
    return _strip(text[genome.output])


def _strip(s: str) -> str:
    if s.startswith("(") and s.endswith(")"):
        depth = 0
        for k, ch in enumerate(s):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and k < len(s) - 1:
                return s
        return s[1:-1]
    return s


def describe(genome: Genome) -> str:
    """The whole loss as one line: sign, batch mean, class sum, and t."""
    sign = "-" if genome.sign < 0 else ""
    ls = f"  (label smoothing {genome.label_smoothing:g})" if genome.label_smoothing else ""
    return f"{sign}mean_b sum_c [{infix(genome)}]{ls}"


def to_sympy(genome: Genome) -> sympy.Expr:
    """t as a sympy expression in the real symbols y and p (unsimplified)."""
    values: dict[int, sympy.Expr] = {}
    for i in genome.order or ():
        node = genome.nodes[i]
        args = [_LEAF_SYMPY[x] if isinstance(x, str) else values[x] for x in node.inputs]
        values[i] = OPS[node.op].sympy_fn(*args)
    return values[genome.output]


def simplified(genome: Genome, timeout_ops: int = 400) -> sympy.Expr:
    """A simplified t with p in (0, 1) and y in [0, 1]; falls back to light rewriting when large.

    Full `sympy.simplify` is slow on big trees, so trees above `timeout_ops` operations only
    get `nsimplify`-free cancellation, which is cheap.
    """
    expr = to_sympy(genome)
    # p and y are probabilities: substitute positive symbols so |p| and |y| simplify away.
    yp, pp = sympy.symbols("y p", positive=True)
    expr = expr.subs({Y: yp, P: pp})
    if sympy.count_ops(expr) > timeout_ops:
        return sympy.cancel(expr)
    return sympy.simplify(expr)


def latex(genome: Genome) -> str:
    """The whole loss in LaTeX: s * mean over the batch of the sum over classes of t."""
    body = sympy.latex(simplified(genome))
    sign = "-" if genome.sign < 0 else ""
    return rf"\mathcal{{L}} = {sign}\frac{{1}}{{B}}\sum_{{b=1}}^{{B}}\sum_{{c=1}}^{{C}} \left[{body}\right]"
