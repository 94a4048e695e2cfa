"""The operator table of the search space: the 27 unary and 7 binary operators of METHOD.md 1.

Each operator has one definition per backend: torch (training), numpy (the fast integrity
probe) and sympy (simplified rendering). All are elementwise with broadcasting; guards use EPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import scipy.special as sps
import sympy
import torch

EPS = 1e-7


@dataclass(frozen=True)
class Op:
    """One operator. `torch_fn`, `np_fn` and `sympy_fn` take `arity` arguments of like shape."""

    name: str
    arity: int
    torch_fn: Callable[..., torch.Tensor]
    np_fn: Callable[..., np.ndarray]
    sympy_fn: Callable[..., Any]
    infix: str | None = None  # binary operators written between operands, e.g. "+"
    commutative: bool = False


def _t_softplus(x: torch.Tensor) -> torch.Tensor:
    # ln(|1 + e^x| + eps), as METHOD.md writes it (not F.softplus: the guard changes the value).
    return torch.log(torch.abs(1 + torch.exp(x)) + EPS)


def _np_sigmoid(x: np.ndarray) -> np.ndarray:
    return sps.expit(x)


def _sy_sigmoid(x):
    return 1 / (1 + sympy.exp(-x))


_UNARY: list[tuple[str, Callable, Callable, Callable]] = [
    ("neg", torch.neg, np.negative, lambda x: -x),
    ("log", lambda x: torch.log(torch.abs(x) + EPS), lambda x: np.log(np.abs(x) + EPS),
     lambda x: sympy.log(sympy.Abs(x) + EPS)),
    ("log10", lambda x: torch.log10(torch.abs(x) + EPS), lambda x: np.log10(np.abs(x) + EPS),
     lambda x: sympy.log(sympy.Abs(x) + EPS, 10)),
    ("exp", torch.exp, np.exp, sympy.exp),
    ("abs", torch.abs, np.abs, sympy.Abs),
    ("sigmoid", torch.sigmoid, _np_sigmoid, _sy_sigmoid),
    ("inv_abs1", lambda x: 1 / (1 + torch.abs(x)), lambda x: 1 / (1 + np.abs(x)),
     lambda x: 1 / (1 + sympy.Abs(x))),
    ("softplus", _t_softplus, lambda x: np.log(np.abs(1 + np.exp(x)) + EPS),
     lambda x: sympy.log(sympy.Abs(1 + sympy.exp(x)) + EPS)),
    ("dsigmoid", lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)),
     lambda x: _np_sigmoid(x) * (1 - _np_sigmoid(x)),
     lambda x: _sy_sigmoid(x) * (1 - _sy_sigmoid(x))),
    ("erf", torch.erf, sps.erf, sympy.erf),
    ("erfc", torch.erfc, sps.erfc, sympy.erfc),
    ("sin", torch.sin, np.sin, sympy.sin),
    ("sinh", torch.sinh, np.sinh, sympy.sinh),
    ("asinh", torch.asinh, np.arcsinh, sympy.asinh),
    ("tanh", torch.tanh, np.tanh, sympy.tanh),
    ("atan", torch.atan, np.arctan, sympy.atan),
    ("dtanh", lambda x: 1 - torch.tanh(x) ** 2, lambda x: 1 - np.tanh(x) ** 2,
     lambda x: 1 - sympy.tanh(x) ** 2),
    ("bessel_i0", torch.special.i0, sps.i0, lambda x: sympy.besseli(0, x)),
    ("bessel_i0e", torch.special.i0e, sps.i0e,
     lambda x: sympy.exp(-sympy.Abs(x)) * sympy.besseli(0, x)),
    ("bessel_i1", torch.special.i1, sps.i1, lambda x: sympy.besseli(1, x)),
    ("bessel_i1e", torch.special.i1e, sps.i1e,
     lambda x: sympy.exp(-sympy.Abs(x)) * sympy.besseli(1, x)),
    ("recip", lambda x: 1 / (x + EPS), lambda x: 1 / (x + EPS), lambda x: 1 / (x + EPS)),
    ("relu", torch.relu, lambda x: np.maximum(x, 0), lambda x: sympy.Max(x, 0)),
    ("negrelu", lambda x: torch.clamp(x, max=0), lambda x: np.minimum(x, 0),
     lambda x: sympy.Min(x, 0)),
    ("square", torch.square, np.square, lambda x: x**2),
    ("sqrt_abs", lambda x: torch.sqrt(torch.abs(x)), lambda x: np.sqrt(np.abs(x)),
     lambda x: sympy.sqrt(sympy.Abs(x))),
    ("softsign", lambda x: x / (1 + torch.abs(x)), lambda x: x / (1 + np.abs(x)),
     lambda x: x / (1 + sympy.Abs(x))),
]

_BINARY: list[tuple[str, Callable, Callable, Callable, str | None, bool]] = [
    ("add", torch.add, np.add, lambda a, b: a + b, "+", True),
    ("sub", torch.sub, np.subtract, lambda a, b: a - b, "-", False),
    ("mul", torch.mul, np.multiply, lambda a, b: a * b, "*", True),
    ("max", torch.maximum, np.maximum, sympy.Max, None, True),
    ("min", torch.minimum, np.minimum, sympy.Min, None, True),
    ("div", lambda a, b: a / (b + EPS), lambda a, b: a / (b + EPS), lambda a, b: a / (b + EPS),
     None, False),
    ("ndiv", lambda a, b: a / torch.sqrt(1 + b * b), lambda a, b: a / np.sqrt(1 + b * b),
     lambda a, b: a / sympy.sqrt(1 + b**2), None, False),
]

OPS: dict[str, Op] = {}
for _name, _t, _n, _s in _UNARY:
    OPS[_name] = Op(_name, 1, _t, _n, _s)
for _name, _t, _n, _s, _infix, _comm in _BINARY:
    OPS[_name] = Op(_name, 2, _t, _n, _s, infix=_infix, commutative=_comm)

UNARY_OPS: tuple[str, ...] = tuple(n for n, op in OPS.items() if op.arity == 1)
BINARY_OPS: tuple[str, ...] = tuple(n for n, op in OPS.items() if op.arity == 2)

# Leaves: y (one-hot, optionally smoothed label), p (softmax output), and two constants.
LEAVES: tuple[str, ...] = ("y", "p", "1", "-1")
CONSTANT_LEAVES: dict[str, float] = {"1": 1.0, "-1": -1.0}

assert len(UNARY_OPS) == 27 and len(BINARY_OPS) == 7, "METHOD.md 1 fixes 27 unary, 7 binary"
