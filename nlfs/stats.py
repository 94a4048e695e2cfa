"""Statistics of the transfer study and of surrogate fidelity: pure functions over plain lists.

Which test and which interval are stated here and in docs/results.md: Welch's t-test
(`scipy.stats.ttest_ind(equal_var=False)`, the default) or the Mann-Whitney U test
(`scipy.stats.mannwhitneyu`, two-sided); rank correlations with a percentile bootstrap
confidence interval over resampled pairs, with a fixed seed so a table is reproducible.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

Test = Literal["welch", "mannwhitney"]
TEST_NAMES = {"welch": "Welch's t-test (scipy.stats.ttest_ind, equal_var=False), two-sided",
              "mannwhitney": "Mann-Whitney U test (scipy.stats.mannwhitneyu), two-sided"}


@dataclass(frozen=True)
class Summary:
    """mean ± std (sample std, ddof=1; 0 for one value) of n values; None when n == 0."""

    mean: float | None
    std: float | None
    n: int


def summarize(values: Sequence[float]) -> Summary:
    xs = np.asarray(values, dtype=float)
    if xs.size == 0:
        return Summary(None, None, 0)
    std = float(xs.std(ddof=1)) if xs.size > 1 else 0.0
    return Summary(float(xs.mean()), std, int(xs.size))


def p_value(a: Sequence[float], b: Sequence[float], test: Test = "welch") -> float | None:
    """Two-sided p-value of `a` against `b`; None where the test is undefined (too few values,
    or Welch with both samples constant)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    # scipy warns of precision loss on near-constant samples; the p-value is still its answer.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == "welch":
            # Both samples constant: no variance to test with (scipy returns NaN, or 0 after rounding).
            if a.size < 2 or b.size < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
                return None
            p = stats.ttest_ind(a, b, equal_var=False).pvalue
        elif test == "mannwhitney":
            if a.size < 1 or b.size < 1:
                return None
            p = stats.mannwhitneyu(a, b, alternative="two-sided").pvalue
        else:
            raise ValueError(f"unknown test {test!r}")
    p = float(p)
    return None if math.isnan(p) else p


def verdict(mean: float | None, baseline_mean: float | None, p: float | None, alpha: float) -> str:
    """"win", "loss" or "tie" against the baseline: a win or loss needs p < alpha; an undefined
    test or a missing mean is a tie (no evidence either way)."""
    if mean is None or baseline_mean is None or p is None or p >= alpha or mean == baseline_mean:
        return "tie"
    return "win" if mean > baseline_mean else "loss"


@dataclass(frozen=True)
class Correlation:
    """A rank correlation with its bootstrap confidence interval (None where undefined)."""

    value: float | None
    low: float | None
    high: float | None
    n: int


def rank_correlations(x: Sequence[float], y: Sequence[float], *, confidence: float = 0.95,
                      resamples: int = 2000, seed: int = 0) -> dict[str, Correlation]:
    """Spearman's rho and Kendall's tau-b of paired values, each with a percentile bootstrap CI.

    Pairs are resampled with replacement `resamples` times from `numpy.random.default_rng(seed)`;
    resamples where a coefficient is undefined (constant x or y) are dropped. With fewer than 3
    pairs, or a constant x or y, nothing is defined; with fewer than 4 the interval is not reported.
    """
    from scipy import stats

    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = int(xs.size)
    if xs.shape != ys.shape:
        raise ValueError("x and y must have the same length")
    funcs = {"spearman": lambda a, b: stats.spearmanr(a, b).statistic,
             "kendall": lambda a, b: stats.kendalltau(a, b).statistic}
    out: dict[str, Correlation] = {}
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n)) if n >= 4 else None
    for name, f in funcs.items():
        # A constant x or y has no ranking to agree with: undefined (scipy would warn and say NaN).
        value = _finite(f(xs, ys)) if n >= 3 and np.ptp(xs) > 0 and np.ptp(ys) > 0 else None
        low = high = None
        if value is not None and picks is not None:
            boot = []
            for idx in picks:
                a, b = xs[idx], ys[idx]
                if np.ptp(a) > 0 and np.ptp(b) > 0:
                    v = _finite(f(a, b))
                    if v is not None:
                        boot.append(v)
            if boot:
                tail = (1 - confidence) / 2 * 100
                low, high = (float(v) for v in np.percentile(boot, [tail, 100 - tail]))
        out[name] = Correlation(value, low, high, n)
    return out


def _finite(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v
