"""Genome -> text for people: infix expression, sympy-simplified form, LaTeX.

`infix` renders t (the per-class term); `describe` adds the reduction and sign so that the text
is the whole loss, e.g. `-mean_b sum_c [y * log(p)]`.
"""

from __future__ import annotations

import sympy

from nlfs.genome.graph import Genome, GenomeError
from nlfs.genome.ops import OPS

Y, P = sympy.symbols("y p", real=True)
_LEAF_SYMPY = {"y": Y, "p": P, "1": sympy.Integer(1), "-1": sympy.Integer(-1)}


# Written out, a shared subexpression is repeated at each use, so the text of a graph can
# double with every level of sharing; beyond these sizes the forms below change.
MAX_INFIX_OPS = 200  # larger: one line per node, `n3 = ...; t = n4`
MAX_SYMPY_OPS = 2000  # larger: no sympy form at all (GenomeError)


def expanded_size(genome: Genome) -> int:
    """Operators in t written out as a tree (shared subexpressions counted at each use)."""
    size: dict[int, int] = {}
    for i in genome.order or ():
        size[i] = 1 + sum(size[x] for x in genome.nodes[i].inputs if isinstance(x, int))
    return size.get(genome.output, 0)


def infix(genome: Genome) -> str:
    """The root's expression with shared subexpressions written out, e.g. `y * log(p)`."""
    if genome.order is None:
        return "<cyclic graph>"
    if expanded_size(genome) > MAX_INFIX_OPS:
        return _node_by_node(genome)
    text: dict[int, str] = {}
    for i in genome.order:
        node = genome.nodes[i]
        args = [x if isinstance(x, str) else text[x] for x in node.inputs]
        text[i] = _apply(node.op, args)
    return _strip(text[genome.output])


def _apply(op: str, args: list[str]) -> str:
    symbol = OPS[op].infix
    if symbol:
        return f"({args[0]} {symbol} {args[1]})"
    return f"{op}({', '.join(_strip(a) for a in args)})"


def _node_by_node(genome: Genome) -> str:
    """`n0 = log(p); n1 = y * n0; t = n1`: one entry per active node, for graphs too large to
    write out as one expression."""
    parts = []
    for i in genome.order:
        node = genome.nodes[i]
        args = [x if isinstance(x, str) else f"n{x}" for x in node.inputs]
        parts.append(f"n{i} = {_strip(_apply(node.op, args))}")
    return "; ".join([*parts, f"t = n{genome.output}"])


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
    genome.validate()
    size = expanded_size(genome)
    if size > MAX_SYMPY_OPS:
        raise GenomeError(f"genome: too large to simplify ({size} operators written out)")
    expr = to_sympy(genome)
    # p and y are probabilities: substitute positive symbols so |p| and |y| simplify away.
    yp, pp = sympy.symbols("y p", positive=True)
    expr = expr.subs({Y: yp, P: pp})
    if size > timeout_ops:
        return sympy.cancel(expr)
    return sympy.simplify(expr)


def latex(genome: Genome) -> str:
    """The whole loss in LaTeX: s * mean over the batch of the sum over classes of t."""
    body = sympy.latex(simplified(genome))
    sign = "-" if genome.sign < 0 else ""
    return rf"\mathcal{{L}} = {sign}\frac{{1}}{{B}}\sum_{{b=1}}^{{B}}\sum_{{c=1}}^{{C}} \left[{body}\right]"
