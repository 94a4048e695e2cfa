"""The operator table of the search space: the 27 unary and 7 binary operators of METHOD.md 1.

Each operator has one definition per backend: torch (training), numpy (the fast integrity
probe and its hand-written gradient) and sympy (simplified rendering). All are elementwise
with broadcasting; guards use EPS. Backends are imported on first use, so that parsing a
genome file needs neither torch nor sympy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable

EPS = 1e-7
LN10 = math.log(10.0)

# Operators as METHOD.md 1 lists them: name -> (arity, infix symbol, commutative).
_TABLE: tuple[tuple[str, int, str | None, bool], ...] = (
    *((name, 1, None, False) for name in (
        "neg", "log", "log10", "exp", "abs", "sigmoid", "inv_abs1", "softplus", "dsigmoid",
        "erf", "erfc", "sin", "sinh", "asinh", "tanh", "atan", "dtanh",
        "bessel_i0", "bessel_i0e", "bessel_i1", "bessel_i1e",
        "recip", "relu", "negrelu", "square", "sqrt_abs", "softsign")),
    ("add", 2, "+", True), ("sub", 2, "-", False), ("mul", 2, "*", True),
    ("max", 2, None, True), ("min", 2, None, True), ("div", 2, None, False),
    ("ndiv", 2, None, False),
)


@dataclass(frozen=True)
class Op:
    """One operator. `torch_fn`, `np_fn` and `sympy_fn` take `arity` arguments of like shape.

    `np_grad(g, out, *xs)` is the vector-Jacobian product of `np_fn`: given the upstream
    gradient g and the forward output `out` (both [B, C]) and the inputs, it returns one
    gradient per input, computed the way torch autograd computes the gradient of `torch_fn`
    (same decomposition, same tie and NaN rules), so that both backends agree on the verdict
    of the integrity check's gradient test.
    """

    name: str
    arity: int
    infix: str | None = None  # binary operators written between operands, e.g. "+"
    commutative: bool = False

    @property
    def torch_fn(self) -> Callable:
        return _torch_table()[self.name]

    @property
    def np_fn(self) -> Callable:
        return _numpy_table()[self.name]

    @property
    def np_grad(self) -> Callable:
        return _numpy_grad_table()[self.name]

    @property
    def sympy_fn(self) -> Callable[..., Any]:
        return _sympy_table()[self.name]


OPS: dict[str, Op] = {name: Op(name, arity, infix, comm) for name, arity, infix, comm in _TABLE}
UNARY_OPS: tuple[str, ...] = tuple(n for n, op in OPS.items() if op.arity == 1)
BINARY_OPS: tuple[str, ...] = tuple(n for n, op in OPS.items() if op.arity == 2)

# Leaves: y (one-hot, optionally smoothed label), p (softmax output), and two constants.
LEAVES: tuple[str, ...] = ("y", "p", "1", "-1")
CONSTANT_LEAVES: dict[str, float] = {"1": 1.0, "-1": -1.0}

assert len(UNARY_OPS) == 27 and len(BINARY_OPS) == 7, "METHOD.md 1 fixes 27 unary, 7 binary"


# ---- torch ---------------------------------------------------------------------------------
@cache
def _torch_table() -> dict[str, Callable]:
    import torch

    def softplus(x):
        # ln(|1 + e^x| + eps), as METHOD.md writes it (not F.softplus: the guard changes the value).
        return torch.log(torch.abs(1 + torch.exp(x)) + EPS)

    return _complete({
        "neg": torch.neg,
        "log": lambda x: torch.log(torch.abs(x) + EPS),
        "log10": lambda x: torch.log10(torch.abs(x) + EPS),
        "exp": torch.exp,
        "abs": torch.abs,
        "sigmoid": torch.sigmoid,
        "inv_abs1": lambda x: 1 / (1 + torch.abs(x)),
        "softplus": softplus,
        "dsigmoid": lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)),
        "erf": torch.erf,
        "erfc": torch.erfc,
        "sin": torch.sin,
        "sinh": torch.sinh,
        "asinh": torch.asinh,
        "tanh": torch.tanh,
        "atan": torch.atan,
        "dtanh": lambda x: 1 - torch.tanh(x) ** 2,
        "bessel_i0": torch.special.i0,
        "bessel_i0e": torch.special.i0e,
        "bessel_i1": torch.special.i1,
        "bessel_i1e": torch.special.i1e,
        "recip": lambda x: 1 / (x + EPS),
        "relu": torch.relu,
        "negrelu": lambda x: torch.clamp(x, max=0),
        "square": torch.square,
        "sqrt_abs": lambda x: torch.sqrt(torch.abs(x)),
        "softsign": lambda x: x / (1 + torch.abs(x)),
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "max": torch.maximum,
        "min": torch.minimum,
        "div": lambda a, b: a / (b + EPS),
        "ndiv": lambda a, b: a / torch.sqrt(1 + b * b),
    })


# ---- numpy: values -------------------------------------------------------------------------
@cache
def _numpy_table() -> dict[str, Callable]:
    import numpy as np
    import scipy.special as sps

    i0, i1 = _bessel_like_torch()
    return _complete({
        "neg": np.negative,
        "log": lambda x: np.log(np.abs(x) + EPS),
        "log10": lambda x: np.log10(np.abs(x) + EPS),
        "exp": np.exp,
        "abs": np.abs,
        "sigmoid": sps.expit,
        "inv_abs1": lambda x: 1 / (1 + np.abs(x)),
        "softplus": lambda x: np.log(np.abs(1 + np.exp(x)) + EPS),
        "dsigmoid": lambda x: sps.expit(x) * (1 - sps.expit(x)),
        "erf": sps.erf,
        "erfc": sps.erfc,
        "sin": np.sin,
        "sinh": np.sinh,
        "asinh": np.arcsinh,
        "tanh": np.tanh,
        "atan": np.arctan,
        "dtanh": lambda x: 1 - np.tanh(x) ** 2,
        "bessel_i0": i0,
        "bessel_i0e": sps.i0e,
        "bessel_i1": i1,
        "bessel_i1e": sps.i1e,
        "recip": lambda x: 1 / (x + EPS),
        "relu": lambda x: np.maximum(x, 0),
        "negrelu": lambda x: np.minimum(x, 0),
        "square": np.square,
        "sqrt_abs": lambda x: np.sqrt(np.abs(x)),
        "softsign": lambda x: x / (1 + np.abs(x)),
        "add": np.add,
        "sub": np.subtract,
        "mul": np.multiply,
        "max": np.maximum,
        "min": np.minimum,
        "div": lambda a, b: a / (b + EPS),
        "ndiv": lambda a, b: a / np.sqrt(1 + b * b),
    })


@cache
def _bessel_like_torch() -> tuple[Callable, Callable]:
    """I0 and I1 in float32 as torch computes them: scipy's values, but torch evaluates
    exp(|x|) first, so it overflows to +-inf where that does (|x| > 88.72) and gives NaN at
    +-inf. The probe must see what training will."""
    import numpy as np
    import scipy.special as sps

    def overflow_threshold(dtype) -> np.floating:
        """The largest x of this dtype whose exp(x) is finite."""
        x = np.log(np.finfo(dtype).max).astype(dtype)
        with np.errstate(over="ignore"):
            while np.isfinite(np.exp(np.nextafter(x, dtype(np.inf)))):
                x = np.nextafter(x, dtype(np.inf))
            while not np.isfinite(np.exp(x)):
                x = np.nextafter(x, dtype(0))
        return x

    limits = {np.dtype(t): overflow_threshold(t) for t in (np.float32, np.float64)}

    def overflowing(fn, odd: bool) -> Callable:
        def f(x):
            out = fn(x)
            over = np.abs(x) > limits[x.dtype]  # where exp(|x|) is inf; NaN stays NaN
            if over.any():
                inf = np.float32(np.inf)
                out = np.where(over, np.where(np.isinf(x), np.float32(np.nan),
                                              np.sign(x) * inf if odd else inf), out)
            return out

        return f

    return overflowing(sps.i0, odd=False), overflowing(sps.i1, odd=True)


# ---- numpy: gradients ----------------------------------------------------------------------
# Each entry is (g, out, *xs) -> tuple of input gradients. They follow torch's derivative
# formulas (tools/autograd/derivatives.yaml) for the composition `torch_fn` is written as,
# e.g. sqrt_abs = sqrt(abs(x)) gives (g / (2 * out)) * sgn(x), which is NaN at x = 0 in both.
@cache
def _numpy_grad_table() -> dict[str, Callable]:
    import numpy as np
    import scipy.special as sps

    two_over_sqrt_pi = 2.0 / math.sqrt(math.pi)
    i0, i1 = _bessel_like_torch()

    def sgn(x):
        # torch's sign: 0 at NaN (numpy's is NaN), so a NaN input stops the gradient as there.
        return np.where(x == x, np.sign(x), np.float32(0))

    def sigmoid_back(g, s):
        return g * (1 - s) * s

    def dsigmoid(g, out, x):
        # sigmoid(x) * (1 - sigmoid(x)): two sigmoid nodes, a rsub and a mul.
        s = sps.expit(x)
        u = 1 - s
        return (sigmoid_back(g * u, s) + sigmoid_back(-(g * s), s),)

    def dtanh(g, out, x):
        # 1 - tanh(x) ** 2: rsub, pow(2), tanh.
        t = np.tanh(x)
        g_t = -g * (2 * t)
        return (g_t * (1 - t * t),)

    def softplus(g, out, x):
        e = np.exp(x)
        a = 1 + e
        return (((g / (np.abs(a) + EPS)) * sgn(a)) * e,)

    def not_tiny(x):
        # torch's i1 and i1e backward take the limit 0.5 for |x| <= the dtype's epsilon (and
        # for NaN); elsewhere x itself, with a safe stand-in where it would divide by ~0.
        tiny = np.finfo(x.dtype).eps
        big = np.abs(x) > tiny
        return big, np.where(big, x, x.dtype.type(tiny))

    def bessel_i1(g, out, x):
        big, safe = not_tiny(x)
        return (g * np.where(big, i0(safe) - out * (1 / safe), np.float32(0.5)),)

    def bessel_i1e(g, out, x):
        big, safe = not_tiny(x)
        return (g * np.where(big, sps.i0e(safe) - out * (sgn(safe) + 1 / safe), np.float32(0.5)),)

    def softsign(g, out, x):
        d = 1 + np.abs(x)
        return (g / d + (-g * ((x / d) / d)) * sgn(x),)

    def maximum(g, out, a, b):
        h = np.where(a == b, g / 2, g)
        return np.where(a < b, 0, h), np.where(a > b, 0, h)

    def minimum(g, out, a, b):
        h = np.where(a == b, g / 2, g)
        return np.where(a > b, 0, h), np.where(a < b, 0, h)

    def div(g, out, a, b):
        c = b + EPS
        return g / c, -g * ((a / c) / c)

    def ndiv(g, out, a, b):
        s = np.sqrt(1 + b * b)
        g_u = (-g * ((a / s) / s)) / (2 * s)
        return g / s, g_u * b + g_u * b  # b * b: the same tensor twice in one mul

    return _complete({
        "neg": lambda g, out, x: (-g,),
        "log": lambda g, out, x: ((g / (np.abs(x) + EPS)) * sgn(x),),
        "log10": lambda g, out, x: ((g / ((np.abs(x) + EPS) * LN10)) * sgn(x),),
        "exp": lambda g, out, x: (g * out,),
        "abs": lambda g, out, x: (g * sgn(x),),
        "sigmoid": lambda g, out, x: (sigmoid_back(g, out),),
        "inv_abs1": lambda g, out, x: ((-g * (out * out)) * sgn(x),),
        "softplus": softplus,
        "dsigmoid": dsigmoid,
        "erf": lambda g, out, x: (two_over_sqrt_pi * np.exp(-(x * x)) * g,),
        "erfc": lambda g, out, x: (-two_over_sqrt_pi * np.exp(-(x * x)) * g,),
        "sin": lambda g, out, x: (g * np.cos(x),),
        "sinh": lambda g, out, x: (g * np.cosh(x),),
        "asinh": lambda g, out, x: (g * (1 / np.sqrt(x * x + 1)),),
        "tanh": lambda g, out, x: (g * (1 - out * out),),
        "atan": lambda g, out, x: (g / (x * x + 1),),
        "dtanh": dtanh,
        "bessel_i0": lambda g, out, x: (g * i1(x),),
        "bessel_i0e": lambda g, out, x: (g * (sps.i1e(x) - sgn(x) * out),),
        "bessel_i1": bessel_i1,
        "bessel_i1e": bessel_i1e,
        "recip": lambda g, out, x: (-g * (out * out),),
        "relu": lambda g, out, x: (np.where(out <= 0, 0, g),),
        "negrelu": lambda g, out, x: (np.where(x < 0, g, 0),),  # torch: 0 at x = 0
        "square": lambda g, out, x: (g * (2 * x),),
        "sqrt_abs": lambda g, out, x: ((g / (2 * out)) * sgn(x),),
        "softsign": softsign,
        "add": lambda g, out, a, b: (g, g),
        "sub": lambda g, out, a, b: (g, -g),
        "mul": lambda g, out, a, b: (g * b, g * a),
        "max": maximum,
        "min": minimum,
        "div": div,
        "ndiv": ndiv,
    })


# ---- sympy ---------------------------------------------------------------------------------
@cache
def _sympy_table() -> dict[str, Callable]:
    import sympy

    def sigmoid(x):
        return 1 / (1 + sympy.exp(-x))

    return _complete({
        "neg": lambda x: -x,
        "log": lambda x: sympy.log(sympy.Abs(x) + EPS),
        "log10": lambda x: sympy.log(sympy.Abs(x) + EPS, 10),
        "exp": sympy.exp,
        "abs": sympy.Abs,
        "sigmoid": sigmoid,
        "inv_abs1": lambda x: 1 / (1 + sympy.Abs(x)),
        "softplus": lambda x: sympy.log(sympy.Abs(1 + sympy.exp(x)) + EPS),
        "dsigmoid": lambda x: sigmoid(x) * (1 - sigmoid(x)),
        "erf": sympy.erf,
        "erfc": sympy.erfc,
        "sin": sympy.sin,
        "sinh": sympy.sinh,
        "asinh": sympy.asinh,
        "tanh": sympy.tanh,
        "atan": sympy.atan,
        "dtanh": lambda x: 1 - sympy.tanh(x) ** 2,
        "bessel_i0": lambda x: sympy.besseli(0, x),
        "bessel_i0e": lambda x: sympy.exp(-sympy.Abs(x)) * sympy.besseli(0, x),
        "bessel_i1": lambda x: sympy.besseli(1, x),
        "bessel_i1e": lambda x: sympy.exp(-sympy.Abs(x)) * sympy.besseli(1, x),
        "recip": lambda x: 1 / (x + EPS),
        "relu": lambda x: sympy.Max(x, 0),
        "negrelu": lambda x: sympy.Min(x, 0),
        "square": lambda x: x**2,
        "sqrt_abs": lambda x: sympy.sqrt(sympy.Abs(x)),
        "softsign": lambda x: x / (1 + sympy.Abs(x)),
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "max": sympy.Max,
        "min": sympy.Min,
        "div": lambda a, b: a / (b + EPS),
        "ndiv": lambda a, b: a / sympy.sqrt(1 + b**2),
    })


def _complete(table: dict[str, Callable]) -> dict[str, Callable]:
    """A backend table must define every operator and nothing else."""
    assert table.keys() == OPS.keys(), sorted(table.keys() ^ OPS.keys())
    return table
