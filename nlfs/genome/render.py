"""Genome -> text for people: infix expression, sympy-simplified form, LaTeX.

`infix` renders t (the per-class term); `describe` adds the reduction and sign so that the text
is the whole loss, e.g. `-mean_b sum_c [y * log(p)]`. `render` simplifies once under a time
limit and gives both the text and the LaTeX people read (`nlfs show`, `nlfs export`).
"""

from __future__ import annotations

import multiprocessing
import sys
from dataclasses import dataclass
from typing import Any, Callable

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

    Unbounded in time: `sympy.simplify` took minutes on some 14-node genomes. People-facing
    output goes through `render`, which runs this under a time limit.
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


# ---- bounded rendering -------------------------------------------------------------------------

SIMPLIFY_SECONDS = 1.5  # sympy gets this long; the search's 5-node genomes take well under 0.5 s


@dataclass(frozen=True)
class Rendering:
    """What people read of a genome: t as one line of text, and the whole loss in LaTeX."""

    text: str  # t simplified (p in (0, 1), y in [0, 1]), or t as written when it was not
    latex: str  # the whole loss: sign, batch mean, class sum and t
    simplified: bool
    note: str = ""  # why t is not simplified


def render(genome: Genome, seconds: float = SIMPLIFY_SECONDS) -> Rendering:
    """Simplify once, in a child process given `seconds`; past them (or past the size sympy
    is given at all) t is shown as written, in text and in LaTeX, without sympy.

    A child process, because sympy cannot be interrupted from outside (its work is pure Python
    and C, with no time limit of its own) and a thread cannot be stopped; killing the child is
    the only bound that holds. It is forked, so sympy is not imported twice.
    """
    genome.validate()
    size = expanded_size(genome)
    if size > MAX_SYMPY_OPS:
        return _as_written(genome, f"too large to simplify ({size} operators written out)")
    forms = _bounded(_sympy_forms, genome, seconds)
    if forms is None:
        return _as_written(genome, f"simplification took longer than {seconds:g} s")
    text, body = forms
    return Rendering(text, _whole_loss(genome, body), True)


def latex(genome: Genome, seconds: float = SIMPLIFY_SECONDS) -> str:
    """The whole loss in LaTeX: s * mean over the batch of the sum over classes of t
    (t simplified when sympy manages within `seconds`, else as written)."""
    return render(genome, seconds).latex


def _sympy_forms(genome: Genome) -> tuple[str, str]:
    expr = simplified(genome)
    return str(expr), sympy.latex(expr)


def _whole_loss(genome: Genome, body: str) -> str:
    sign = "-" if genome.sign < 0 else ""
    return rf"\mathcal{{L}} = {sign}\frac{{1}}{{B}}\sum_{{b=1}}^{{B}}\sum_{{c=1}}^{{C}} \left[{body}\right]"


def _as_written(genome: Genome, note: str) -> Rendering:
    body = latex_as_written(genome)
    if expanded_size(genome) > MAX_INFIX_OPS:  # definitions, one per node: t after the loss
        tex = rf"{_whole_loss(genome, 't')},\quad {body}"
    else:
        tex = _whole_loss(genome, body)
    return Rendering(infix(genome), tex, False, note)


def latex_as_written(genome: Genome) -> str:
    """t in LaTeX as the graph spells it (no sympy, linear in its size); one definition per
    node, `n_{3} = ...`, for graphs too large to write out as one expression."""
    if expanded_size(genome) > MAX_INFIX_OPS:
        parts = []
        for i in genome.order or ():
            node = genome.nodes[i]
            args = [_latex_leaf(x) if isinstance(x, str) else f"n_{{{x}}}" for x in node.inputs]
            parts.append(f"n_{{{i}}} = {_latex_apply(node.op, args)}")
        return r",\; ".join([*parts, f"t = n_{{{genome.output}}}"])
    text: dict[int, str] = {}
    for i in genome.order or ():
        node = genome.nodes[i]
        text[i] = _latex_apply(node.op, [_latex_leaf(x) if isinstance(x, str) else text[x] for x in node.inputs])
    return text[genome.output]


_LATEX_INFIX = {"*": r"\cdot"}


def _latex_leaf(name: str) -> str:
    return "(-1)" if name == "-1" else name


def _latex_apply(op: str, args: list[str]) -> str:
    symbol = OPS[op].infix
    if symbol:
        symbol = _LATEX_INFIX.get(symbol, symbol)
        return rf"\left({args[0]} {symbol} {args[1]}\right)"
    name = op.replace("_", r"\_")
    return rf"\operatorname{{{name}}}\left({', '.join(args)}\right)"


def _bounded(fn: Callable[[Any], Any], arg: Any, seconds: float) -> Any | None:
    """`fn(arg)` computed in a child process, or None if it fails or takes over `seconds`."""
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = multiprocessing.get_context(method)
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, fn, arg), daemon=True)
    child.start()
    send.close()  # the child's end: EOF here once the child is gone
    try:
        if not receive.poll(max(seconds, 0.0)):
            return None
        ok, value = receive.recv()
        return value if ok else None
    except (EOFError, OSError):  # the child died without answering
        return None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()


def _child(send: Any, fn: Callable[[Any], Any], arg: Any) -> None:
    try:
        result: tuple[bool, Any] = (True, fn(arg))
    except BaseException as err:  # noqa: BLE001 - any failure means "not simplified"
        result = (False, f"{type(err).__name__}: {err}")
    send.send(result)
    send.close()
