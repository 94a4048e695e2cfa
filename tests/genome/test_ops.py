"""The operator table: METHOD.md's 34 operators, and three backends that agree with each other.

The numpy gradients (`Op.np_grad`) stand in for torch autograd in the integrity check, so they
are held to torch's gradients operator by operator, special values included.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch

from nlfs.genome.ops import BINARY_OPS, EPS, LEAVES, OPS, UNARY_OPS

METHOD_UNARY = {"neg", "log", "log10", "exp", "abs", "sigmoid", "inv_abs1", "softplus", "dsigmoid",
                "erf", "erfc", "sin", "sinh", "asinh", "tanh", "atan", "dtanh", "bessel_i0",
                "bessel_i0e", "bessel_i1", "bessel_i1e", "recip", "relu", "negrelu", "square",
                "sqrt_abs", "softsign"}
METHOD_BINARY = {"add", "sub", "mul", "max", "min", "div", "ndiv"}

# A grid over the reals plus the values where guards, ties, kinks and float32 overflow live.
SPECIAL = [0.0, -0.0, 1e-8, -1e-8, EPS, -EPS, 1e-3, -1e-3, 0.5, 1.0, -1.0, 9.0, 20.0, 44.0,
           45.0, 88.0, 88.72, 88.73, 89.0, 90.0, 100.0, -89.0, -100.0, 1e19, 1e20, 1e30, -1e30,
           3e38, np.nan, np.inf, -np.inf]
GRID = np.concatenate([np.linspace(-6, 6, 97), SPECIAL]).astype(np.float32)


def op_inputs(name: str) -> list[np.ndarray]:
    """[x] for a unary operator; every pair of grid values for a binary one (ties included)."""
    if OPS[name].arity == 1:
        return [GRID]
    a, b = np.meshgrid(GRID, GRID)
    return [a.ravel(), b.ravel()]


def assert_same_floats(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> None:
    """NaN, +inf and -inf in the same places; finite values within rtol * |expected| + atol."""
    actual = np.broadcast_to(actual, expected.shape)
    for test in (np.isnan, np.isposinf, np.isneginf):
        assert np.array_equal(test(actual), test(expected)), test.__name__
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=rtol, atol=atol)


def test_the_table_holds_exactly_the_operators_of_method_md():
    assert set(UNARY_OPS) == METHOD_UNARY and set(BINARY_OPS) == METHOD_BINARY
    assert {n for n, op in OPS.items() if op.commutative} == {"add", "mul", "max", "min"}
    assert LEAVES == ("y", "p", "1", "-1")


@pytest.mark.parametrize("name", sorted(OPS))
def test_numpy_value_equals_torch_value_in_float32(name):
    """The probe (numpy) sees what training (torch) computes, overflow to inf included."""
    args = op_inputs(name)
    with np.errstate(all="ignore"):
        got = OPS[name].np_fn(*args)
    expected = OPS[name].torch_fn(*map(torch.from_numpy, args)).numpy()
    assert got.dtype == np.float32
    # dtanh = 1 - tanh^2 cancels near |x| = 9, where one ulp of tanh is all that is left.
    assert_same_floats(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPS))
def test_numpy_gradient_equals_torch_autograd(name):
    """np_grad(g, out, *x) is the vector-Jacobian product autograd computes for torch_fn,
    including its choices at kinks and ties (relu at 0, max of equals), NaN inputs and
    overflow, so both report the same non-finite gradients."""
    args = op_inputs(name)
    g = np.random.default_rng(0).normal(size=args[0].shape).astype(np.float32)
    leaves = [torch.tensor(a, requires_grad=True) for a in args]
    expected = torch.autograd.grad(OPS[name].torch_fn(*leaves), leaves, torch.from_numpy(g))
    with np.errstate(all="ignore"):
        got = OPS[name].np_grad(g, OPS[name].np_fn(*args), *args)
    assert len(got) == len(args)
    for mine, theirs in zip(got, expected):
        assert np.asarray(mine).dtype == np.float32
        # Absolute slack for cancellations like 1 - tanh(x)^2 and i1e(x) - i0e(x) at large x.
        assert_same_floats(mine, theirs.numpy(), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPS))
def test_numpy_gradient_matches_a_finite_difference(name):
    """Away from kinks, np_grad is the derivative itself, not just torch's formula."""
    args = [np.linspace(0.3, 1.7, 15), np.linspace(1.9, 0.4, 15)][:OPS[name].arity]
    h = 1e-6
    g = np.ones(15)
    got = OPS[name].np_grad(g, OPS[name].np_fn(*args), *args)
    for k in range(len(args)):
        up = [a + h * (j == k) for j, a in enumerate(args)]
        down = [a - h * (j == k) for j, a in enumerate(args)]
        numeric = (OPS[name].np_fn(*up) - OPS[name].np_fn(*down)) / (2 * h)
        np.testing.assert_allclose(np.broadcast_to(got[k], numeric.shape), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(OPS))
def test_sympy_form_has_the_numpy_value(name):
    """The rendered formula is the computed function (checked at a few points in float64)."""
    symbols = sympy.symbols("a b", real=True)[:OPS[name].arity]
    fn = sympy.lambdify(symbols, OPS[name].sympy_fn(*symbols), modules=["scipy", "numpy"])
    points = [np.array([-1.7, -0.3, 0.2, 0.9, 2.5]), np.array([0.6, -2.2, 1.1, -0.4, 3.0])]
    args = points[:OPS[name].arity]
    np.testing.assert_allclose(np.asarray(fn(*args), dtype=float), OPS[name].np_fn(*args), rtol=1e-9)
